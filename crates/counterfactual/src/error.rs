//! The error type of `tuneloop-counterfactual`.

use tuneloop_core::ErrorKind;

/// What went wrong reading logs or estimating a policy's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core vocabulary (a policy's own error, say).
    #[error(transparent)]
    Core(#[from] tuneloop_core::Error),
    /// One logged round is invalid: which round (0-based), which field, why.
    #[error("round {round}: field `{field}`: {reason}")]
    InvalidRound {
        /// Index of the round in its input, from 0.
        round: usize,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of a JSON Lines file that is not a valid record.
    #[error("{path}: line {line}: {reason}")]
    InvalidLine {
        /// The file.
        path: String,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No rounds to estimate from.
    #[error("no logged rounds to estimate from")]
    Empty,
    /// A file with no rounds in it (empty, or blank lines only).
    #[error("{path}: the file has no rounds")]
    EmptyFile {
        /// The file.
        path: String,
    },
    /// An estimator that needs reward-model predictions on data without them.
    #[error("estimator `{estimator}` needs `reward_hat` (a reward model's predictions)")]
    NeedsRewardModel {
        /// The estimator's name.
        estimator: &'static str,
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
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What kind of failure it is: bad input for a bad line or round, an
    /// empty input, a setting out of range, or a file that is missing, a
    /// directory, not what its name says (gzip) or cut short; I/O for the
    /// other failures to read or write; the core error's kind for a core
    /// error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidLine { .. }
            | Error::InvalidRound { .. }
            | Error::Empty
            | Error::EmptyFile { .. }
            | Error::NeedsRewardModel { .. }
            | Error::InvalidSetting { .. } => ErrorKind::BadInput,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::Unsupported => ErrorKind::BadInput,
                _ => ErrorKind::Io,
            },
            Error::Core(e) => e.kind(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) use tuneloop_core::check_setting;

tuneloop_core::setting_error!(Error::InvalidSetting);
