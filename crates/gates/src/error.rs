//! The error type of `tuneloop-gates`.

use tuneloop_core::{DecisionId, ErrorKind};

/// What went wrong configuring or running a gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core vocabulary.
    #[error(transparent)]
    Core(#[from] tuneloop_core::Error),
    /// A setting that cannot be used (NaN, negative, inverted range).
    #[error("invalid setting `{field}` = {value}: expected {expected}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// The value given (NaN for non-numeric settings).
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A task type no gate was configured for, where one must be.
    #[error("unknown task type `{0}`")]
    UnknownTaskType(String),
    /// A model without a price where a price is needed.
    #[error("no price for model `{0}` (and no default price)")]
    UnknownModel(String),
    /// A reservation that would pass a hard budget limit.
    #[error("over budget: {resource} needed {needed}, available {available}")]
    OverBudget {
        /// `tokens` or `cost_usd`.
        resource: &'static str,
        /// What the reservation needs.
        needed: f64,
        /// What is left in the window.
        available: f64,
    },
    /// A reservation id that is unknown (never made, committed, released or expired).
    #[error("no reservation for decision {0}")]
    UnknownReservation(DecisionId),
    /// A second reservation for one decision.
    #[error("decision {0} already holds a reservation")]
    DuplicateReservation(DecisionId),
    /// Every arm was excluded, and the incumbent (if any) breaks a hard gate.
    #[error(
        "no arm is eligible ({excluded} excluded: {}) and no incumbent passes the hard gates",
        why.join("; ")
    )]
    NothingEligible {
        /// How many arms were excluded.
        excluded: usize,
        /// Each gate that excluded arms, with its first reason
        /// (`budget: cost needs 0.0031 USD, 0.0012 left`), in the order
        /// the gates ran.
        why: Vec<String>,
    },
    /// A provenance chain that does not verify.
    #[error("provenance record {seq}: {problem}")]
    Tampered {
        /// Sequence number of the first bad record.
        seq: u64,
        /// What is wrong with it.
        problem: String,
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
    /// What kind of failure it is: a spent budget and an empty eligible
    /// set are [`Refused`](ErrorKind::Refused); a file that cannot be read
    /// or written is [`Io`](ErrorKind::Io); the rest is a value, a setting
    /// or a file's content at fault ([`BadInput`](ErrorKind::BadInput)).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            Error::OverBudget { .. } | Error::NothingEligible { .. } => ErrorKind::Refused,
            Error::Io { .. } => ErrorKind::Io,
            Error::InvalidSetting { .. }
            | Error::UnknownTaskType(_)
            | Error::UnknownModel(_)
            | Error::UnknownReservation(_)
            | Error::DuplicateReservation(_)
            | Error::Tampered { .. } => ErrorKind::BadInput,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) use tuneloop_core::check_setting as check;

tuneloop_core::setting_error!(Error::InvalidSetting);
