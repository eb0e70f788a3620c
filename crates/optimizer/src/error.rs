//! The error type of the facade.

use tuneloop_core::{ArmId, DecisionId, ErrorKind};

/// What went wrong in the optimizer. Lower crates' errors are wrapped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Core vocabulary (features, outcomes, policies).
    #[error(transparent)]
    Core(#[from] tuneloop_core::Error),
    /// Building or restoring a policy.
    #[error(transparent)]
    Bandit(#[from] tuneloop_bandit::Error),
    /// Gates and budgets.
    #[error(transparent)]
    Gates(#[from] tuneloop_gates::Error),
    /// Rollout.
    #[error(transparent)]
    Rollout(#[from] tuneloop_rollout::Error),
    /// Decision log.
    #[error(transparent)]
    Log(#[from] tuneloop_counterfactual::Error),
    /// A task type the optimizer was not built with.
    #[error("unknown task type `{0}`")]
    UnknownTaskType(String),
    /// A decision id the optimizer is not waiting for: never made, or its
    /// outcome was already recorded.
    #[error("no pending decision {0} (unknown, or its outcome was already recorded)")]
    UnknownDecision(DecisionId),
    /// An outcome that arrived after the decision's time to live.
    #[error("decision {0} expired before its outcome arrived")]
    Expired(DecisionId),
    /// The builder was given no task type.
    #[error("no task type configured")]
    NoTaskTypes,
    /// The builder was given the same task type twice.
    #[error("task type `{task_type}` configured twice")]
    DuplicateTaskType {
        /// The task type.
        task_type: String,
    },
    /// An incumbent that is not one of the task type's arms.
    #[error("task type `{task_type}`: incumbent {incumbent} is not among its {arms} arms")]
    IncumbentOutOfRange {
        /// The task type.
        task_type: String,
        /// The incumbent's index.
        incumbent: usize,
        /// How many arms the task type has.
        arms: usize,
    },
    /// An arm names a prompt variant that the task type has no prompt for
    /// ([`TaskTypeConfig::prompt`](crate::TaskTypeConfig::prompt)).
    #[error(
        "task type `{task_type}`: an arm names the prompt variant `{variant}`, which has no prompt (registered: {})",
        if registered.is_empty() { "none".to_owned() } else { registered.join(", ") }
    )]
    PromptMissing {
        /// The task type.
        task_type: String,
        /// The variant without a prompt.
        variant: String,
        /// The variants that have one.
        registered: Vec<String>,
    },
    /// An arm id that is not one of the task type's arms.
    #[error("arm {arm_id} is not an arm of `{task_type}`")]
    UnknownArm {
        /// The task type.
        task_type: String,
        /// The arm id given.
        arm_id: ArmId,
    },
    /// A propensity outside `(0, 1]`.
    #[error("propensity {value} is not in (0, 1]")]
    InvalidPropensity {
        /// The value given.
        value: f64,
    },
    /// A rollout operation on a task type without a rollout.
    #[error("task type `{task_type}` has no rollout")]
    NoRollout {
        /// The task type.
        task_type: String,
    },
    /// A setting that cannot be used.
    #[error("invalid setting `{field}` = {value}: expected {expected}")]
    InvalidSetting {
        /// The setting, as a path (`provider_weights.latency`).
        field: String,
        /// The value given, as text.
        value: String,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A snapshot of a format version this release does not read.
    #[error("snapshot schema version {found} is not supported (this release reads {supported})")]
    SnapshotVersion {
        /// The snapshot's version.
        found: u32,
        /// The version this release reads.
        supported: u32,
    },
    /// A snapshot with a task type the optimizer was not built with.
    #[error("snapshot has task type `{task_type}` the optimizer lacks")]
    SnapshotTaskType {
        /// The task type.
        task_type: String,
    },
    /// A snapshot whose learner does not fit the task type's arms or the
    /// featurizer.
    #[error(
        "snapshot of `{task_type}` has {snapshot_arms} arms of dimension {snapshot_dim}; the optimizer has {arms} of dimension {dim}"
    )]
    SnapshotMismatch {
        /// The task type.
        task_type: String,
        /// Arms in the snapshot.
        snapshot_arms: usize,
        /// Context dimension in the snapshot.
        snapshot_dim: usize,
        /// Arms configured.
        arms: usize,
        /// The featurizer's dimension.
        dim: usize,
    },
    /// A snapshot whose content does not fit (its tallies, its
    /// scorecard).
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A snapshot file that is not a snapshot's JSON (the error names the
    /// line and column).
    #[error("snapshot {path}: {source}")]
    SnapshotFormat {
        /// The file.
        path: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A snapshot file that cannot be read or written.
    #[error("snapshot {path}: {source}")]
    SnapshotIo {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A background thread could not be started.
    #[error("cannot start the {thread} thread: {source}")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// What kind of failure it is, for a caller that branches on it (an
    /// exit status, an HTTP status): a call or a file at fault is
    /// [`BadInput`](ErrorKind::BadInput); a budget spent, or no arm that
    /// passes the hard gates, is [`Refused`](ErrorKind::Refused) (the same
    /// call may pass later); a file or a thread of the machine is
    /// [`Io`](ErrorKind::Io). Wrapped errors say their own.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            Error::Bandit(e) => e.kind(),
            Error::Gates(e) => e.kind(),
            Error::Rollout(e) => e.kind(),
            Error::Log(e) => e.kind(),
            Error::SnapshotIo { .. } | Error::Spawn { .. } => ErrorKind::Io,
            Error::UnknownTaskType(_)
            | Error::UnknownDecision(_)
            | Error::Expired(_)
            | Error::NoTaskTypes
            | Error::DuplicateTaskType { .. }
            | Error::IncumbentOutOfRange { .. }
            | Error::PromptMissing { .. }
            | Error::UnknownArm { .. }
            | Error::InvalidPropensity { .. }
            | Error::NoRollout { .. }
            | Error::InvalidSetting { .. }
            | Error::SnapshotVersion { .. }
            | Error::SnapshotTaskType { .. }
            | Error::SnapshotMismatch { .. }
            | Error::Snapshot { .. }
            | Error::SnapshotFormat { .. } => ErrorKind::BadInput,
        }
    }

    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Error::InvalidSetting {
            field: field.into(),
            value: value.to_string(),
            expected,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
