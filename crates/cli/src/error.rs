//! How the command line fails: bad input (exit 2) or anything else (exit 1).

use std::fmt;

/// A failure of a command, with the exit status it maps to.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The input is wrong: the message names the file, line and field.
    BadInput(String),
    /// Anything else (I/O, internal).
    Other(anyhow::Error),
}

impl CliError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        CliError::BadInput(msg.into())
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Other(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(m) => write!(f, "bad input: {m}"),
            CliError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(e)
    }
}

impl CliError {
    /// An error of a library, by its kind: bad input exits 2, the rest 1.
    pub(crate) fn of_kind<E>(kind: tuneloop_core::ErrorKind, e: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match kind {
            tuneloop_core::ErrorKind::BadInput => CliError::BadInput(e.to_string()),
            _ => CliError::Other(e.into()),
        }
    }
}

impl From<tuneloop_bandit::Error> for CliError {
    /// A policy's hyperparameters, shape and snapshots come from the
    /// command line and its files: bad input (exit 2).
    fn from(e: tuneloop_bandit::Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

impl From<tuneloop_core::Error> for CliError {
    fn from(e: tuneloop_core::Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

impl From<tuneloop_counterfactual::Error> for CliError {
    fn from(e: tuneloop_counterfactual::Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

impl From<tuneloop::Error> for CliError {
    fn from(e: tuneloop::Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Other(e.into())
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;
