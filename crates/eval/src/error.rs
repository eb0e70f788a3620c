//! Errors of the evaluation crate.

use std::path::PathBuf;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A suite (file or value) is invalid; `entry` names the case.
    #[error("suite {source_name}: {entry}: {message}")]
    Suite {
        /// The file, or `<inline>`.
        source_name: String,
        /// Which entry: `cases[3] (id "sum")`, or `suite` for the whole.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name}: {message}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A baseline or session file is invalid.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn setting(name: &'static str, message: impl Into<String>) -> Self {
        Error::Setting {
            name,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl Error {
    /// What kind of failure it is: a suite, a setting or a file's content
    /// that cannot be used, or a file that is not there, is bad input; the
    /// other I/O failures are I/O.
    pub fn kind(&self) -> tuneloop_core::ErrorKind {
        use tuneloop_core::ErrorKind;
        match self {
            Error::Suite { .. } | Error::Setting { .. } | Error::File { .. } => ErrorKind::BadInput,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::BadInput
            }
            _ => ErrorKind::Io,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
