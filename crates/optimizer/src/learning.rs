//! Sharing learned state between processes: one exchange of a task type's
//! sufficient statistics in two halves, so the network is never crossed
//! under the learner's lock.
//!
//! [`Optimizer::begin_learning_sync`] takes what this process learned since
//! it last heard the fleet and adds it to the process's *contribution* (the
//! sum of every update it made, [`LearningSync::contribution`]). Whoever
//! keeps the fleet's state stores that contribution in place of the
//! previous one (it is cumulative, so storing it twice is harmless) and
//! answers with the fleet's sum of every member's contribution;
//! [`Optimizer::finish_learning_sync`] installs that sum, plus whatever
//! this process learned while the exchange was in flight. The learner then
//! decides as one learner fed every member's updates. `tuneloop-fleet`
//! runs this against PostgreSQL every second; any
//! other store can do the same with these two calls.
//!
//! With a discounted learner, each member's contribution forgets with that
//! member's own updates, so the fleet's state is the sum of one discounted
//! learner per member, each fed that member's updates (see
//! [`SufficientStatistics`]); between exchanges a member's learner also
//! forgets the others' contributions with its own updates.

use std::sync::PoisonError;

use tuneloop_core::SufficientStatistics;
use tuneloop_core::hash::StableHasher;

use crate::error::{Error, Result};
use crate::optimizer::{Optimizer, lock};
use crate::task::TaskState;

/// The first half of an exchange, from [`Optimizer::begin_learning_sync`].
#[derive(Debug, Clone)]
pub struct LearningSync {
    task_type: String,
    model: String,
    taken: SufficientStatistics,
    contribution: SufficientStatistics,
    generation: u64,
}

impl LearningSync {
    /// The task type.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// A stable name of what the statistics are of: the learner's kind and
    /// context dimension and the arm ids in order (`kind/dim/hash`). A
    /// store sums only contributions of the same model, so members
    /// configured differently (another deployment) learn apart.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Every update this process made to the task type's learner, summed:
    /// what the fleet's store keeps for this member, in place of what it
    /// kept before.
    pub fn contribution(&self) -> &SufficientStatistics {
        &self.contribution
    }
}

impl Optimizer {
    /// A copy of `task_type`'s learner's sufficient statistics (`None` for
    /// a learner without them): to compare a fleet's members, or to check
    /// a replay.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn learned_statistics(&self, task_type: &str) -> Result<Option<SufficientStatistics>> {
        Ok(self
            .task_state(task_type)?
            .1
            .learner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .statistics())
    }

    /// Begins an exchange of `task_type`'s learned state (see
    /// [`LearningSync`]): a copy of the learner's statistics, read under
    /// its lock, and this process's contribution with what it learned
    /// since the last exchange. `None` when the learner has no additive
    /// statistics (a fixed or uniform policy).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn begin_learning_sync(&self, task_type: &str) -> Result<Option<LearningSync>> {
        let (name, task) = self.task_state(task_type)?;
        let exchanged = lock(&task.fleet.state);
        let (statistics, model) = {
            let learner = task.learner.read().unwrap_or_else(PoisonError::into_inner);
            let model = model_key(task, learner.kind(), learner.context_dim());
            (learner.statistics(), model)
        };
        let Some(taken) = statistics else {
            return Ok(None);
        };
        let zero = taken.zeros_like();
        let base = exchanged.base.as_ref().unwrap_or(&zero);
        let delta = taken.delta_since(base)?;
        let mut contribution = exchanged.contribution.clone().unwrap_or(zero.clone());
        // With a discount, the contribution forgets by γᵏ for this
        // member's k new updates (and only for those).
        contribution.merge(&delta)?;
        Ok(Some(LearningSync {
            task_type: name.to_string(),
            model,
            taken,
            contribution,
            generation: exchanged.generation,
        }))
    }

    /// Ends an exchange: the learner's state becomes `fleet` (the sum of
    /// every member's contribution, this one's included) plus what it
    /// learned since [`begin_learning_sync`](Self::begin_learning_sync).
    /// The learner's inverse is refactorized under its lock (about
    /// `d³/3` operations per arm).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`]; [`Error::Core`] when `fleet` does not
    /// fit the learner (another arm set, dimension or discount: a member
    /// configured differently) or another exchange finished since this one
    /// began. Nothing changes then, and nothing is lost: the next exchange
    /// carries this one's updates.
    pub fn finish_learning_sync(
        &self,
        sync: LearningSync,
        fleet: &SufficientStatistics,
    ) -> Result<()> {
        let (_, task) = self.task_state(&sync.task_type)?;
        let mut exchanged = lock(&task.fleet.state);
        if exchanged.generation != sync.generation {
            return Err(stale(&sync.task_type));
        }
        let mut learner = task.learner.write().unwrap_or_else(PoisonError::into_inner);
        let Some(now) = learner.statistics() else {
            return Err(stale(&sync.task_type));
        };
        let meanwhile = now.delta_since(&sync.taken)?;
        let mut installed = fleet.clone();
        installed.merge(&meanwhile)?;
        learner.replace_statistics(&installed)?;
        drop(learner);
        exchanged.base = Some(fleet.clone());
        exchanged.contribution = Some(sync.contribution);
        exchanged.generation = exchanged.generation.wrapping_add(1);
        Ok(())
    }
}

/// A stable name of what a task type's statistics are of: the learner's
/// kind and dimension and the arms, in order.
fn model_key(task: &TaskState, kind: &str, dim: usize) -> String {
    let mut h = StableHasher::new();
    h.write_str(kind);
    h.write_u64(dim as u64);
    for arm in task.arms.iter() {
        h.write_str(&arm.id.to_string());
    }
    format!("{kind}/{dim}/{:016x}", h.finish())
}

fn stale(task_type: &str) -> Error {
    Error::Core(tuneloop_core::Error::InvalidConfig {
        field: "statistics",
        reason: format!("another exchange of `{task_type}`'s learning finished first"),
    })
}
