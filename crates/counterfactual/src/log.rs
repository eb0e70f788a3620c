//! The decision log: one [`LoggedDecision`] per decision, written to a
//! [`DecisionLog`] sink (memory or JSON Lines), read back with
//! [`read_log`](crate::read_log), and joined with outcomes that arrive later by
//! [`PendingDecisions`].
//!
//! The JSON Lines format is stable and documented field by field in
//! `docs/decision-log.md`; people load these files with pandas, DuckDB or
//! `jq`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use tuneloop_core::{ArmId, Cohort, DecisionId, ParameterSet, Phase, TaskOutcome};

use crate::error::{Error, Result};
use crate::resolution::{AbandonReason, Resolution};

/// Version of the record format written by this release.
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// One decision and, once known, how it ended. Field names are stable:
/// in JSON, the [`Resolution`] is written as the four fields every release
/// wrote (`outcome`, `reward`, `reward_defaulted`, `abandoned`), and a
/// combination no writer makes is refused when read.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    /// Version of this record's format.
    pub schema_version: u32,
    /// The decision's id (joins recommendation and outcome).
    pub decision_id: DecisionId,
    /// The caller's own request id, if it gave one.
    pub request_id: Option<String>,
    /// The episode (an agent task of several calls with one outcome) the
    /// decision belongs to, if any: every decision of an episode carries
    /// the episode's outcome and reward.
    pub episode_id: Option<DecisionId>,
    /// Task type; each has its own arms and policy.
    pub task_type: String,
    /// Model of the chosen parameters.
    pub model: String,
    /// Stable fingerprint of the context (16 hex digits).
    pub context_fingerprint: String,
    /// The context features the policy saw.
    pub context: Vec<f64>,
    /// Indices (into the task type's arm set) of the eligible arms.
    pub eligible: Vec<usize>,
    /// Ids of the eligible arms, aligned with `eligible`.
    pub eligible_ids: Vec<ArmId>,
    /// Index of the chosen arm.
    pub arm: usize,
    /// Id of the chosen arm.
    pub arm_id: ArmId,
    /// The parameters applied.
    pub params: ParameterSet,
    /// The logging policy's probability of the chosen arm, in `(0, 1]`.
    pub propensity: f64,
    /// Whether `propensity` is an estimate.
    pub propensity_estimated: bool,
    /// Kind of the logging policy.
    pub policy_kind: String,
    /// Version of the logging policy.
    pub policy_version: u64,
    /// Rollout cohort, if a rollout was running.
    pub cohort: Option<Cohort>,
    /// Rollout phase when the decision was made (`shadow`, `canary`,
    /// `guarded`, `general`), if a rollout was running.
    pub phase: Option<Phase>,
    /// In shadow: the arm the candidate would have chosen (the incumbent's
    /// choice, or on a probe the candidate's, is `arm`).
    pub shadow_arm: Option<usize>,
    /// When the decision was made.
    pub timestamp: DateTime<Utc>,
    /// How the decision ended: recorded with its outcome, abandoned,
    /// expired, or not yet.
    pub resolution: Resolution,
}

impl LoggedDecision {
    /// Checks what an estimator relies on.
    ///
    /// # Errors
    /// [`Error::InvalidRound`] naming the field (round index 0).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| {
            Err(Error::InvalidRound {
                round: 0,
                field,
                reason,
            })
        };
        if !(self.propensity.is_finite() && self.propensity > 0.0 && self.propensity <= 1.0) {
            return bad(
                "propensity",
                format!("{} is not in (0, 1]", self.propensity),
            );
        }
        if self.eligible.len() != self.eligible_ids.len() {
            return bad("eligible_ids", "not aligned with `eligible`".into());
        }
        if !self.eligible.contains(&self.arm) {
            return bad(
                "arm",
                format!("{} is not among the eligible arms", self.arm),
            );
        }
        if let Some(v) = self.context.iter().find(|v| !v.is_finite()) {
            return bad("context", format!("contains {v}"));
        }
        if let Some(r) = self.resolution.reward()
            && !(0.0..=1.0).contains(&r)
        {
            return bad("reward", format!("{r} is not in [0, 1]"));
        }
        if let Some(o) = self.resolution.outcome()
            && let Err(e) = o.validate()
        {
            return bad("outcome", e.to_string());
        }
        if self.schema_version == 0 || self.schema_version > LOG_SCHEMA_VERSION {
            return bad(
                "schema_version",
                format!(
                    "{} is not a version this release reads (1..={LOG_SCHEMA_VERSION})",
                    self.schema_version
                ),
            );
        }
        Ok(())
    }
}

/// Where decision records go. Sinks are shared between threads.
pub trait DecisionLog: Send + Sync + std::fmt::Debug {
    /// Appends one record (durably handed to the sink before returning).
    ///
    /// # Errors
    /// [`Error::Io`] when the record cannot be written.
    fn append(&self, record: &LoggedDecision) -> Result<()>;
}

/// Keeps records in memory (tests, simulations, small tools).
#[derive(Debug, Default)]
pub struct MemoryLog {
    records: Mutex<Vec<LoggedDecision>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record so far, in order.
    pub fn records(&self) -> Vec<LoggedDecision> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DecisionLog for MemoryLog {
    fn append(&self, record: &LoggedDecision) -> Result<()> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.clone());
        Ok(())
    }
}

#[derive(Debug)]
struct JsonlState {
    file: File,
    size: u64,
    /// The file may end inside a line (a write cut short by a full disk,
    /// or a process killed mid-write, which can stop a write at a page
    /// boundary): the next record starts with a line break, so the torn
    /// line stays a line of its own that readers skip.
    torn: bool,
}

/// Appends records to a JSON Lines file, one line each, flushed per
/// record. When the file would pass `max_bytes`, it is rotated: `log.jsonl`
/// becomes `log.jsonl.1`, `.1` becomes `.2`, … up to `max_files`, and the
/// oldest is dropped.
#[derive(Debug)]
pub struct JsonlLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    state: Mutex<JsonlState>,
}

impl JsonlLog {
    /// Opens (or creates) `path` for appending, rotating at `max_bytes`
    /// and keeping `max_files` rotated files.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, max_files: u32) -> Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let torn = tuneloop_core::jsonl::ends_inside_line(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(JsonlLog {
            path,
            max_bytes: max_bytes.max(1),
            max_files,
            state: Mutex::new(JsonlState { file, size, torn }),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotate(&self, state: &mut JsonlState) -> Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        let io = |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        if self.max_files == 0 {
            std::fs::remove_file(&self.path).map_err(io)?;
        } else {
            for i in (1..self.max_files).rev() {
                if name(i).exists() {
                    std::fs::rename(name(i), name(i + 1)).map_err(io)?;
                }
            }
            std::fs::rename(&self.path, name(1)).map_err(io)?;
        }
        state.file = open_append(&self.path)?;
        state.size = 0;
        state.torn = false;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
}

impl DecisionLog for JsonlLog {
    fn append(&self, record: &LoggedDecision) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| Error::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.torn {
            line.insert(0, b'\n');
        } else if state.size > 0 && state.size + line.len() as u64 > self.max_bytes {
            self.rotate(&mut state)?;
        }
        let io = |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        if let Err(e) = state
            .file
            .write_all(&line)
            .and_then(|()| state.file.flush())
        {
            // A short write (a full disk) leaves part of the record: cut the
            // file back to where it began, so the next record starts a line
            // of its own. If even that fails, the next record starts with a
            // line break, and the reader skips the torn line.
            let size = state.size;
            if state.file.set_len(size).is_err() {
                state.torn = true;
                state.size = state.file.metadata().map_or(size, |m| m.len());
            }
            return Err(io(e));
        }
        state.torn = false;
        state.size += line.len() as u64;
        Ok(())
    }
}

/// Decisions waiting for their outcome, joined by id within a wait window;
/// after it, a configured default reward is applied and marked.
///
/// ```
/// use std::time::Duration;
/// use tuneloop_counterfactual::PendingDecisions;
/// let pending = PendingDecisions::new(Duration::from_secs(3_600), 0.0)?;
/// assert!(pending.is_empty());
/// assert!(PendingDecisions::new(Duration::ZERO, 0.0).is_err());
/// # Ok::<(), tuneloop_counterfactual::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PendingDecisions {
    wait: TimeDelta,
    default_reward: f64,
    pending: HashMap<DecisionId, LoggedDecision>,
}

/// Why an outcome could not be joined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No pending decision has this id (never made, or already joined).
    #[error("no pending decision {0}")]
    Unknown(DecisionId),
    /// The decision's wait window closed before its outcome arrived.
    #[error("decision {0} expired before its outcome arrived")]
    Expired(DecisionId),
}

/// `d` given up on: the default reward, with the reason.
fn abandoned(mut d: LoggedDecision, default_reward: f64, reason: AbandonReason) -> LoggedDecision {
    d.resolution = Resolution::Abandoned {
        reason,
        default_reward,
    };
    d
}

impl PendingDecisions {
    /// The longest wait: about 292 million years (chrono's range).
    pub const MAX_WAIT: Duration = Duration::from_millis(i64::MAX as u64);

    /// Waits `wait` for each outcome; then applies `default_reward`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a zero wait or one over
    /// [`MAX_WAIT`](Self::MAX_WAIT), or a default reward that is not finite.
    pub fn new(wait: Duration, default_reward: f64) -> Result<Self> {
        let bad_wait = || Error::InvalidSetting {
            field: "wait",
            value: wait.as_secs_f64(),
            expected: "a wait of more than 0 s and at most PendingDecisions::MAX_WAIT",
        };
        if wait.is_zero() || wait > Self::MAX_WAIT {
            return Err(bad_wait());
        }
        let wait = TimeDelta::from_std(wait).map_err(|_| bad_wait())?;
        if !default_reward.is_finite() {
            return Err(Error::InvalidSetting {
                field: "default_reward",
                value: default_reward,
                expected: "a finite reward",
            });
        }
        Ok(PendingDecisions {
            wait,
            default_reward,
            pending: HashMap::new(),
        })
    }

    /// Starts waiting for `decision`'s outcome (from its `timestamp` on).
    pub fn insert(&mut self, decision: LoggedDecision) {
        self.pending.insert(decision.decision_id, decision);
    }

    /// Number of decisions waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the window of `d` closed before `now` (a deadline past the
    /// end of representable time never closes).
    fn closed(&self, d: &LoggedDecision, now: DateTime<Utc>) -> bool {
        d.timestamp
            .checked_add_signed(self.wait)
            .is_some_and(|deadline| now > deadline)
    }

    /// Joins an outcome and its reward to its decision at time `now`.
    ///
    /// # Errors
    /// [`JoinError::Unknown`] or [`JoinError::Expired`] (the decision stays
    /// pending until [`expire`](Self::expire) takes it).
    pub fn join(
        &mut self,
        id: DecisionId,
        outcome: TaskOutcome,
        reward: f64,
        now: DateTime<Utc>,
    ) -> Result<LoggedDecision, JoinError> {
        let Some(d) = self.pending.get(&id) else {
            return Err(JoinError::Unknown(id));
        };
        if self.closed(d, now) {
            return Err(JoinError::Expired(id));
        }
        let mut d = self.pending.remove(&id).ok_or(JoinError::Unknown(id))?;
        d.resolution = Resolution::Recorded {
            outcome: Some(outcome),
            reward,
        };
        Ok(d)
    }

    /// Takes decision `id` whatever its deadline, as it is (no outcome):
    /// for a caller that joins it itself.
    pub fn take(&mut self, id: DecisionId) -> Option<LoggedDecision> {
        self.pending.remove(&id)
    }

    /// Takes decision `id` without an outcome, the default reward applied
    /// and marked, and `reason` recorded: the caller knows none will come.
    ///
    /// # Errors
    /// [`JoinError::Unknown`].
    pub fn abandon(
        &mut self,
        id: DecisionId,
        reason: AbandonReason,
    ) -> Result<LoggedDecision, JoinError> {
        let d = self.pending.remove(&id).ok_or(JoinError::Unknown(id))?;
        Ok(abandoned(d, self.default_reward, reason))
    }

    /// Takes every pending decision as [`abandon`](Self::abandon) does,
    /// oldest first.
    pub fn abandon_all(&mut self, reason: &AbandonReason) -> Vec<LoggedDecision> {
        let default_reward = self.default_reward;
        let mut out: Vec<LoggedDecision> = self
            .pending
            .drain()
            .map(|(_, d)| abandoned(d, default_reward, reason.clone()))
            .collect();
        out.sort_by_key(|d| d.timestamp);
        out
    }

    /// Takes every decision whose window closed before `now`, with the
    /// default reward applied and marked, oldest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<LoggedDecision> {
        let ids: Vec<DecisionId> = self
            .pending
            .values()
            .filter(|d| self.closed(d, now))
            .map(|d| d.decision_id)
            .collect();
        let mut out: Vec<LoggedDecision> = ids
            .into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|mut d| {
                d.resolution = Resolution::Expired {
                    default_reward: self.default_reward,
                };
                d
            })
            .collect();
        out.sort_by_key(|d| d.timestamp);
        out
    }
}
