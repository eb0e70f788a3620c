//! What a task type's learner has learned, as data: per arm, the outcomes
//! it learned from and their mean reward with an interval, the learner's
//! probability of choosing it for a context, and the arm it would choose.

use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};
use tuneloop_core::{ArmId, ParameterSet};

use crate::context::Context;
use crate::error::Result;
use crate::optimizer::{Optimizer, lock};
use crate::task::TaskState;
use crate::task_handle::{TaskType, with_state};

/// The rewards an arm's learner learned from: their count, sum and sum of
/// squares (kept in snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmTally {
    /// Outcomes learned from.
    pub outcomes: u64,
    /// Their rewards' sum.
    pub reward_sum: f64,
    /// Their rewards' sum of squares.
    pub reward_sum_sq: f64,
}

impl ArmTally {
    pub(crate) fn add(&mut self, reward: f64) {
        self.outcomes += 1;
        self.reward_sum += reward;
        self.reward_sum_sq += reward * reward;
    }

    /// The mean reward, if there is an outcome.
    pub fn mean(&self) -> Option<f64> {
        (self.outcomes > 0).then(|| self.reward_sum / self.outcomes as f64)
    }

    /// A 95% interval of the mean reward (normal approximation, the
    /// sample's standard deviation; clamped to `[0, 1]`, the rewards'
    /// range), from two outcomes on.
    pub fn interval_95(&self) -> Option<(f64, f64)> {
        let mean = self.mean()?;
        if self.outcomes < 2 {
            return None;
        }
        let n = self.outcomes as f64;
        let var = ((self.reward_sum_sq - n * mean * mean) / (n - 1.0)).max(0.0);
        let half = 1.959_963_984_540_054 * (var / n).sqrt();
        Some(((mean - half).max(0.0), (mean + half).min(1.0)))
    }
}

/// One arm of a task type, as its learner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmLearned {
    /// Its index in the task type's arm set.
    pub arm: usize,
    /// Its stable id.
    pub arm_id: ArmId,
    /// Its parameters.
    pub params: ParameterSet,
    /// The rewards its learner learned from in this process (restored
    /// from a snapshot; a fleet's other members' are not counted).
    pub tally: ArmTally,
    /// The mean reward of those ([`ArmTally::mean`]).
    pub mean_reward: Option<f64>,
    /// Its 95% interval ([`ArmTally::interval_95`]).
    pub interval_95: Option<(f64, f64)>,
    /// The learner's probability of choosing it for the context asked
    /// about, with every arm eligible (for Thompson sampling an estimate).
    pub probability: f64,
}

/// What a task type's learner has learned, from [`Optimizer::learned`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learned {
    /// The task type.
    pub task_type: String,
    /// The learner's kind (`linucb`, `thompson`, …).
    pub learner: &'static str,
    /// The incumbent arm.
    pub incumbent: usize,
    /// The arm the learner would choose for the context asked about: its
    /// most likely one.
    pub choice: usize,
    /// Every arm, in the arm set's order.
    pub arms: Vec<ArmLearned>,
}

impl Optimizer {
    /// What `task_type`'s learner has learned: each arm's outcomes and mean
    /// reward with its interval, the learner's probability of choosing it
    /// for `context` (every arm eligible, no gate or rollout applied), and
    /// the arm it would choose. Reads the learner under its read lock; no
    /// decision is made or logged.
    ///
    /// ```
    /// use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    /// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
    /// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 1.0]).build()?;
    /// let opt = Optimizer::builder().task_type("code", TaskTypeConfig::new(arms)).seed(3).build()?;
    /// for _ in 0..200 {
    ///     let d = opt.recommend("code", &TaskFeatures::default(), &RecommendOptions::default())?;
    ///     let q = if d.params().temperature() < 0.5 { 0.9 } else { 0.2 };
    ///     d.record(&TaskOutcome::success(q, 100.0))?;
    /// }
    /// let learned = opt.learned("code", &TaskFeatures::default())?;
    /// assert_eq!(learned.choice, 0);
    /// println!("{}", serde_json::to_string_pretty(&learned).unwrap_or_default());
    /// # Ok::<(), tuneloop::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`](crate::Error::UnknownTaskType); the
    /// context's errors, and a context of the wrong dimension.
    pub fn learned(
        &self,
        task_type: &(impl TaskType + ?Sized),
        context: &(impl Context + ?Sized),
    ) -> Result<Learned> {
        with_state(task_type, self, |name, task| {
            self.learned_in(name, task, context)
        })
    }

    fn learned_in(
        &self,
        name: &Arc<str>,
        task: &TaskState,
        context: &(impl Context + ?Sized),
    ) -> Result<Learned> {
        let x = context.features(&*self.inner.featurizer)?;
        x.expect_dim(self.inner.featurizer.dim())?;
        let (kind, distribution) = {
            let learner = task.learner.read().unwrap_or_else(PoisonError::into_inner);
            (
                learner.kind(),
                learner.distribution(&x, &task.arms.all_indices())?,
            )
        };
        let tallies = lock(&task.tallies).clone();
        let mut probability = vec![0.0; task.arms.len()];
        for (arm, p) in distribution.iter() {
            if let Some(slot) = probability.get_mut(arm) {
                *slot = p;
            }
        }
        let choice = distribution
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(task.incumbent, |(arm, _)| arm);
        let arms = task
            .arms
            .iter()
            .enumerate()
            .map(|(i, arm)| {
                let tally = tallies.get(i).copied().unwrap_or_default();
                ArmLearned {
                    arm: i,
                    arm_id: arm.id,
                    params: arm.params.clone(),
                    tally,
                    mean_reward: tally.mean(),
                    interval_95: tally.interval_95(),
                    probability: probability[i],
                }
            })
            .collect();
        Ok(Learned {
            task_type: name.to_string(),
            learner: kind,
            incumbent: task.incumbent,
            choice,
            arms,
        })
    }
}

/// What the recorded outcomes of one task type and model spent since the
/// optimizer was built, from [`Optimizer::spend`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spend {
    /// The task type.
    pub task_type: String,
    /// The model.
    pub model: String,
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// US dollars: the outcomes' own cost, or their tokens priced by the
    /// budget's price table.
    pub cost_usd: f64,
}

impl Optimizer {
    /// What the recorded outcomes spent, per task type and model, in the
    /// order of the task types' names and the models' first arm (what
    /// `/metrics` exports: its cardinality is the arms').
    pub fn spend(&self) -> Vec<Spend> {
        let mut out = Vec::new();
        for name in self.task_types() {
            let Ok((_, task)) = self.task_state(name) else {
                continue;
            };
            let spend = lock(&task.spend).clone();
            let start = out.len();
            for (arm, (tokens, cost)) in task.arms.iter().zip(spend) {
                let model = arm.params.model();
                match out[start..]
                    .iter_mut()
                    .find(|s: &&mut Spend| s.model == model)
                {
                    Some(s) => {
                        s.tokens = s.tokens.saturating_add(tokens);
                        s.cost_usd += cost;
                    }
                    None => out.push(Spend {
                        task_type: name.to_owned(),
                        model: model.to_owned(),
                        tokens,
                        cost_usd: cost,
                    }),
                }
            }
        }
        out
    }
}
