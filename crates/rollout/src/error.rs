//! The error type of `tuneloop-rollout`.

use tuneloop_core::ErrorKind;

/// What went wrong in a rollout.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An observation field out of range (NaN or negative latency,
    /// quality outside `[0, 1]`).
    #[error("observation field `{field}` = {value} is invalid: expected {expected}")]
    InvalidObservation {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A setting that cannot be used.
    #[error("invalid setting `{field}` = {value}: expected {expected}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// An operation the current state does not allow (approving with
    /// nothing awaiting approval, promoting past general).
    #[error("not allowed now: {0}")]
    NotAllowed(&'static str),
}

impl Error {
    /// What kind of failure it is: an operation the rollout's state does
    /// not allow now is [`Refused`](ErrorKind::Refused); a value out of
    /// range is [`BadInput`](ErrorKind::BadInput).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotAllowed(_) => ErrorKind::Refused,
            Error::InvalidObservation { .. } | Error::InvalidSetting { .. } => ErrorKind::BadInput,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) use tuneloop_core::check_setting as check;

tuneloop_core::setting_error!(Error::InvalidSetting);
