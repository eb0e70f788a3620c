//! The error type of `tuneloop-bandit`.

/// What went wrong building or restoring a policy.
///
/// Errors of the [`Policy`](tuneloop_core::Policy) methods themselves are
/// [`tuneloop_core::Error`]s (the trait's contract); they convert into this
/// type with `?`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core vocabulary (dimension, arm, reward, ...).
    #[error(transparent)]
    Core(#[from] tuneloop_core::Error),
    /// A hyperparameter that cannot be used.
    #[error("invalid parameter `{field}` = {value}: expected {expected}")]
    InvalidParameter {
        /// Name of the hyperparameter.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A snapshot of another kind, another schema version, or with state
    /// that does not fit the policy's shape.
    #[error("cannot restore snapshot: {reason}")]
    Snapshot {
        /// What does not fit.
        reason: String,
    },
}

impl Error {
    /// What kind of failure it is: a hyperparameter or a snapshot that
    /// cannot be used is bad input; a core error says its own.
    pub fn kind(&self) -> tuneloop_core::ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            Error::InvalidParameter { .. } | Error::Snapshot { .. } => {
                tuneloop_core::ErrorKind::BadInput
            }
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) use tuneloop_core::check_setting as check_param;

tuneloop_core::setting_error!(Error::InvalidParameter);
