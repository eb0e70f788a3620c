//! Evaluation as the optimizer decides: per task type, each with its own
//! candidate and its own reward model, and an overall figure weighted by
//! each task type's traffic.

use serde::{Deserialize, Serialize};
use tuneloop_core::Policy;

use crate::data::{OpeData, OpeRound};
use crate::error::{Error, Result};
use crate::evaluator::{Evaluation, OfflineEvaluator};
use crate::log::LoggedDecision;

/// One task type's part of [`ByTaskType`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTypeEvaluation {
    /// The task type.
    pub task_type: String,
    /// Its candidate on its decisions alone.
    pub evaluation: Evaluation,
}

/// A task type of the log that was not evaluated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedTaskType {
    /// The task type.
    pub task_type: String,
    /// How many decisions of the log it has.
    pub decisions: usize,
    /// Why it was not evaluated (no candidate given, no reward that counts).
    pub reason: String,
}

/// The result of [`OfflineEvaluator::evaluate_by_task_type`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByTaskType {
    /// Per task type, in the order of their first decision in the log.
    pub task_types: Vec<TaskTypeEvaluation>,
    /// Every evaluated task type's rounds together, each valued with its
    /// own task type's candidate and reward model: the value of the
    /// candidates over the log's mix of traffic (the task types weighted
    /// by their rewarded rounds). With one task type it is that task
    /// type's evaluation.
    pub overall: Evaluation,
    /// Task types left out, and why.
    pub skipped: Vec<SkippedTaskType>,
}

impl OfflineEvaluator {
    /// Evaluates, for each task type of `records`, the candidate
    /// `candidates` gives for it, on that task type's decisions alone
    /// (its own cross-fitted reward model: contexts of different task
    /// types are never pooled), and all of them together as
    /// [`ByTaskType::overall`]. A task type without a candidate, or
    /// without a reward that counts, is named in [`ByTaskType::skipped`].
    ///
    /// # Errors
    /// [`Error::Empty`] when no task type could be evaluated; otherwise as
    /// [`evaluate`](Self::evaluate), for the task type at fault.
    pub fn evaluate_by_task_type<'a, 'c>(
        &self,
        records: impl IntoIterator<Item = &'a LoggedDecision>,
        candidates: &dyn Fn(&str) -> Option<&'c (dyn Policy + 'c)>,
    ) -> Result<ByTaskType> {
        self.settings.check()?;
        let mut task_types = Vec::new();
        let mut skipped = Vec::new();
        let mut parts: Vec<OpeData> = Vec::new();
        let mut without = 0;
        let mut left_out = crate::evaluator::LeftOut::default();
        for (task_type, group) in by_task_type(records) {
            let Some(candidate) = candidates(task_type) else {
                skipped.push(SkippedTaskType {
                    task_type: task_type.to_owned(),
                    decisions: group.len(),
                    reason: "no candidate for it".into(),
                });
                continue;
            };
            let (data, skipped_rounds) = match self.data(&group, candidate) {
                Ok(d) => d,
                Err(Error::Empty) => {
                    skipped.push(SkippedTaskType {
                        task_type: task_type.to_owned(),
                        decisions: group.len(),
                        reason: "no decision with a reward that counts".into(),
                    });
                    continue;
                }
                Err(e) => return Err(in_task_type(task_type, e)),
            };
            let left = self.left_out(&group);
            let evaluation = self
                .evaluation(&data, skipped_rounds, left)
                .map_err(|e| in_task_type(task_type, e))?;
            without += skipped_rounds;
            left_out.defaulted += left.defaulted;
            left_out.misapplied += left.misapplied;
            task_types.push(TaskTypeEvaluation {
                task_type: task_type.to_owned(),
                evaluation,
            });
            parts.push(data);
        }
        if parts.is_empty() {
            return Err(Error::Empty);
        }
        let overall = if let [one] = task_types.as_slice() {
            one.evaluation.clone()
        } else {
            self.evaluation(&concatenate(&parts)?, without, left_out)?
        };
        Ok(ByTaskType {
            task_types,
            overall,
            skipped,
        })
    }
}

/// The records of each task type, in the order of its first decision
/// (how [`OfflineEvaluator::evaluate_by_task_type`] groups them).
pub fn by_task_type<'a>(
    records: impl IntoIterator<Item = &'a LoggedDecision>,
) -> Vec<(&'a str, Vec<&'a LoggedDecision>)> {
    let mut groups: Vec<(&str, Vec<&LoggedDecision>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for r in records {
        let i = *index.entry(r.task_type.as_str()).or_insert_with(|| {
            groups.push((r.task_type.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(r);
    }
    groups
}

/// `e` with the task type it arose in, where it names a round.
fn in_task_type(task_type: &str, e: Error) -> Error {
    match e {
        Error::InvalidRound {
            round,
            field,
            reason,
        } => Error::InvalidRound {
            round,
            field,
            reason: format!("task type `{task_type}`: {reason}"),
        },
        other => other,
    }
}

/// The rounds of every part as one data set: task types with fewer arms
/// get zero target mass and zero predicted reward on the arms they lack,
/// which adds nothing to any estimate.
fn concatenate(parts: &[OpeData]) -> Result<OpeData> {
    let k = parts.iter().map(OpeData::num_actions).max().unwrap_or(0);
    let pad = |v: &[f64]| {
        let mut out = v.to_vec();
        out.resize(k, 0.0);
        out
    };
    OpeData::new(parts.iter().flat_map(|d| {
        (0..d.len()).map(move |i| OpeRound {
            action: d.action(i),
            reward: d.reward(i),
            propensity: d.propensity(i),
            target: pad(d.target(i)),
            reward_hat: d.reward_hat(i).map(pad),
        })
    }))
}
