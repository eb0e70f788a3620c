//! The error type of the facade.

use tuneloop_core::DecisionId;

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
    /// A configuration that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A snapshot that cannot be written or read.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
