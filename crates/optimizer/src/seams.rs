//! The seams integrations above the facade are built on (the fleet, the
//! admin endpoint, a store of your own): a weak handle for background
//! threads, the budget a lease is granted into, the clock, whether a
//! decision was made here, rollouts driven from elsewhere, and outcomes
//! checked before they are passed on. None of them is on the decision
//! path; each takes what it needs under the lock it needs and nothing
//! more.
//!
//! The learning exchange is the other seam
//! ([`begin_learning_sync`](Optimizer::begin_learning_sync) /
//! [`finish_learning_sync`](Optimizer::finish_learning_sync)).

use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use tuneloop_core::{DecisionId, TaskOutcome};
use tuneloop_counterfactual::LoggedDecision;
use tuneloop_gates::Budget;
use tuneloop_rollout::RolloutManager;

use crate::error::Result;
use crate::optimizer::{Inner, Optimizer, lock};
use tuneloop_counterfactual::Resolution;

/// A handle to an optimizer that does not keep it alive, for a background
/// thread that should end with it: [`upgrade`](Self::upgrade) it for each
/// piece of work.
#[derive(Debug, Clone)]
pub struct WeakOptimizer(Weak<Inner>);

impl WeakOptimizer {
    /// The optimizer, while a handle to it is alive.
    pub fn upgrade(&self) -> Option<Optimizer> {
        self.0.upgrade().map(|inner| Optimizer { inner })
    }
}

impl Optimizer {
    /// A handle that does not keep the optimizer alive.
    pub fn downgrade(&self) -> WeakOptimizer {
        WeakOptimizer(Arc::downgrade(&self.inner))
    }

    /// The budget every decision reserves against, if one is configured:
    /// an integration that shares it with other processes sets what this
    /// one may use ([`Budget::set_allowance`]) and reads what it used
    /// ([`Budget::window_usage`]).
    pub fn budget(&self) -> Option<&Budget> {
        self.inner.budget.as_ref()
    }

    /// Now, on the optimizer's clock (the one its budget windows, expiry
    /// and rollouts run on).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The upper 64 bits every decision id of this optimizer carries (a
    /// random number drawn when it was built): how a store finds the
    /// outcomes that belong here.
    pub fn decision_id_prefix(&self) -> u64 {
        self.inner.ids.prefix
    }

    /// Whether `decision_id` was made by this optimizer (it may have been
    /// recorded or expired since).
    pub fn decided_here(&self, decision_id: DecisionId) -> bool {
        (decision_id.as_u128() >> 64) as u64 == self.inner.ids.prefix
    }

    /// The reward `outcome` earns, or why it is refused: the check
    /// [`record_outcome`](Self::record_outcome) makes first, for an outcome
    /// passed on to the process that decided.
    ///
    /// # Errors
    /// [`Error::Core`](crate::Error::Core) naming the invalid field.
    pub fn check_outcome(&self, outcome: &TaskOutcome) -> Result<f64> {
        Ok(self.inner.reward.reward(outcome)?)
    }

    /// Runs `f` on `task_type`'s rollout manager, under its lock; `None`
    /// when the task type has no rollout. For an integration that drives
    /// rollouts from elsewhere (a fleet's leader publishing its phases,
    /// followers moving to them); keep `f` short: decisions of the task
    /// type wait for it.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`](crate::Error::UnknownTaskType).
    pub fn with_rollout<T>(
        &self,
        task_type: &str,
        f: impl FnOnce(&mut RolloutManager) -> T,
    ) -> Result<Option<T>> {
        let (_, task) = self.task_state(task_type)?;
        Ok(task.rollout.as_ref().map(|r| f(&mut lock(r))))
    }

    /// The task types that have a rollout, sorted.
    pub fn rollout_task_types(&self) -> Vec<&str> {
        self.task_types()
            .into_iter()
            .filter(|name| {
                self.task_state(name)
                    .is_ok_and(|(_, task)| task.rollout.is_some())
            })
            .collect()
    }

    /// Feeds a decision another process made and resolved (read from a
    /// shared log) to its task type's rollout, as that process's own
    /// outcome fed its rollout: the SLO monitor, the cohorts' rewards and,
    /// in shadow, the proof. Only a decision resolved with an outcome and
    /// made in the phase the rollout is in now counts; returns whether it
    /// did. The learner is not touched: learning travels through
    /// [`begin_learning_sync`](Self::begin_learning_sync).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`](crate::Error::UnknownTaskType); [`Error::Rollout`](crate::Error::Rollout) when the record does
    /// not fit the rollout.
    pub fn observe_for_rollout(&self, record: &LoggedDecision) -> Result<bool> {
        let (_, task) = self.task_state(&record.task_type)?;
        let Resolution::Recorded {
            outcome: Some(outcome),
            reward,
        } = &record.resolution
        else {
            return Ok(false);
        };
        let reward = *reward;
        let Some(r) = &task.rollout else {
            return Ok(false);
        };
        // Only what was decided in the phase the rollout is in counts for
        // it (as a late outcome would not).
        if record.phase != Some(lock(r).phase()) {
            return Ok(false);
        }
        self.observe_rollout(task, record, outcome, reward, self.now())?;
        Ok(true)
    }
}
