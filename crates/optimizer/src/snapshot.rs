//! Snapshots: everything an optimizer learned, as versioned JSON, written
//! atomically and restored by [`OptimizerBuilder::restore`](crate::OptimizerBuilder::restore).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use tuneloop_core::PolicySnapshot;
use tuneloop_gates::{Budget, BudgetSnapshot};
use tuneloop_rollout::RolloutManager;

use crate::error::{Error, Result};
use crate::learned::ArmTally;
use crate::optimizer::{Optimizer, lock};
use crate::task::TaskState;

/// Version of [`OptimizerSnapshot`]'s format.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// Everything an optimizer learned, as versioned JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptimizerSnapshot {
    /// Format version ([`SNAPSHOT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Decisions made so far (the counter of decision ids and selection
    /// keys continues from it).
    pub decision_counter: u64,
    /// Per task type.
    pub task_types: BTreeMap<String, TaskSnapshot>,
    /// The budget's spend, if a budget is configured.
    #[serde(default)]
    pub budget: Option<BudgetSnapshot>,
    /// The providers' scorecard, if one is attached
    /// ([`OptimizerBuilder::scorecard`](crate::OptimizerBuilder::scorecard),
    /// feature `router`): its entries by key as the providers crate writes
    /// them. Kept as JSON so that the snapshot has one shape in every
    /// build: a build without `router` keeps the field as it read it.
    #[serde(default)]
    pub scorecard: Option<serde_json::Value>,
}

/// One task type's learned state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The learner.
    pub learner: PolicySnapshot,
    /// The rollout, if any.
    pub rollout: Option<RolloutManager>,
    /// Per arm, the rewards the learner learned from (what
    /// [`Optimizer::learned`] reports; empty in snapshots written before
    /// it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tallies: Vec<ArmTally>,
}

impl OptimizerSnapshot {
    /// Reads a snapshot file.
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| Error::SnapshotIo {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| Error::SnapshotFormat {
            path: path.display().to_string(),
            source,
        })
    }

    /// Puts the snapshot's state into freshly built task types and budget;
    /// returns the decision counter to continue from.
    pub(crate) fn apply(
        &self,
        tasks: &mut HashMap<Arc<str>, TaskState>,
        dim: usize,
        budget: Option<&Budget>,
    ) -> Result<u64> {
        if self.schema_version != SNAPSHOT_SCHEMA_VERSION {
            return Err(Error::SnapshotVersion {
                found: self.schema_version,
                supported: SNAPSHOT_SCHEMA_VERSION,
            });
        }
        // Every optimizer has a task type, so every snapshot one wrote has
        // one: an empty one is not what it seems (an edited file, another
        // program's JSON), and restoring it would start from nothing
        // silently.
        if self.task_types.is_empty() {
            return Err(Error::Snapshot {
                path: "the snapshot".into(),
                reason: "it has no task types (no optimizer writes one without)".into(),
            });
        }
        if let (Some(b), Some(saved)) = (budget, &self.budget) {
            b.restore(saved)?;
        }
        for (name, t) in &self.task_types {
            let state = tasks
                .get_mut(name.as_str())
                .ok_or_else(|| Error::SnapshotTaskType {
                    task_type: name.clone(),
                })?;
            let learner = tuneloop_bandit::restore(&t.learner)?;
            if learner.num_arms() != state.arms.len() || learner.context_dim() != dim {
                return Err(Error::SnapshotMismatch {
                    task_type: name.clone(),
                    snapshot_arms: learner.num_arms(),
                    snapshot_dim: learner.context_dim(),
                    arms: state.arms.len(),
                    dim,
                });
            }
            state.learner = RwLock::new(learner);
            if t.tallies.len() == state.arms.len() {
                state.tallies = Mutex::new(t.tallies.clone());
            } else if !t.tallies.is_empty() {
                return Err(Error::Snapshot {
                    path: "the snapshot".into(),
                    reason: format!(
                        "task type `{name}`: {} arm tallies for {} arms",
                        t.tallies.len(),
                        state.arms.len()
                    ),
                });
            }
            if let (Some(r), Some(slot)) = (&t.rollout, state.rollout.as_mut()) {
                // A snapshot is a file: its rollout settings are checked as
                // the builder's are.
                r.config().check()?;
                *slot = Mutex::new(r.clone());
            }
        }
        Ok(self.decision_counter)
    }
}

impl Optimizer {
    /// Every learned state: learners, rollouts, budget spend, the
    /// providers' scorecard, the decision counter.
    /// Pending decisions are not included (their outcomes after a restart
    /// are refused as unknown).
    ///
    /// # Errors
    /// [`Error::Core`] if a policy cannot be serialized.
    pub fn snapshot(&self) -> Result<OptimizerSnapshot> {
        let inner = &*self.inner;
        let mut task_types = BTreeMap::new();
        for (name, t) in &inner.tasks {
            let learner = t
                .learner
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .snapshot()?;
            let rollout = t.rollout.as_ref().map(|r| lock(r).clone());
            let tallies = lock(&t.tallies).clone();
            task_types.insert(
                name.to_string(),
                TaskSnapshot {
                    learner,
                    rollout,
                    tallies,
                },
            );
        }
        Ok(OptimizerSnapshot {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            decision_counter: inner.ids.counter.load(Ordering::Relaxed),
            task_types,
            budget: inner.budget.as_ref().map(Budget::snapshot),
            scorecard: scorecard(inner),
        })
    }

    /// Writes a snapshot atomically: to a temporary file of its own beside
    /// `path`, fsynced, then renamed over it, so a crash (or a concurrent
    /// save) leaves the old snapshot or a new one, never half of one.
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn save_snapshot(&self, path: &Path) -> Result<()> {
        let snap = self.snapshot()?;
        let json = serde_json::to_vec(&snap).map_err(|source| Error::SnapshotFormat {
            path: path.display().to_string(),
            source,
        })?;
        tuneloop_core::fs::write_atomic(path, &json).map_err(|source| Error::SnapshotIo {
            path: path.display().to_string(),
            source,
        })?;
        Ok(())
    }
}

/// The attached scorecard's entries, as JSON.
#[cfg(feature = "router")]
fn scorecard(inner: &crate::optimizer::Inner) -> Option<serde_json::Value> {
    let entries = inner.scorecard.as_ref()?.export();
    serde_json::to_value(entries).ok()
}

#[cfg(not(feature = "router"))]
fn scorecard(_: &crate::optimizer::Inner) -> Option<serde_json::Value> {
    None
}
