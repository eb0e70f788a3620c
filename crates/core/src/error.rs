//! The error type of `tuneloop-core`.

use crate::id::{ArmId, ParseArmIdError};

/// What went wrong in `tuneloop-core` (and in any [`Policy`](crate::Policy)).
///
/// Every variant carries the offending value and where it was, so that a
/// message can name what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numeric parameter is outside its valid range (or not finite).
    #[error("parameter `{field}` = {value} is out of range: expected {expected}")]
    ParameterOutOfRange {
        /// Name of the parameter.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A non-numeric parameter is invalid (an empty model name, say).
    #[error("parameter `{field}` is invalid: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A feature value is NaN or infinite.
    #[error("feature {index} is not finite: {value}")]
    NonFiniteFeature {
        /// Position of the feature.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// A vector has the wrong length.
    #[error("dimension mismatch: expected {expected}, got {actual}")]
    DimensionMismatch {
        /// The length the receiver was built for.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// An arm set with no arm.
    #[error("the arm set is empty")]
    EmptyArmSet,
    /// An arm set larger than [`MAX_ARMS`](crate::MAX_ARMS).
    #[error("the arm set would have {size} arms, more than the maximum {max}")]
    TooManyArms {
        /// Requested size (saturating).
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// An arm index outside the arm set.
    #[error("unknown arm {arm}: there are {num_arms} arms")]
    UnknownArm {
        /// The index given.
        arm: usize,
        /// How many arms there are.
        num_arms: usize,
    },
    /// An arm id not in the arm set.
    #[error("unknown arm id {id}")]
    UnknownArmId {
        /// The id given.
        id: ArmId,
    },
    /// A text that does not parse as an [`ArmId`].
    #[error("`{text}` is not an arm id (16 hexadecimal digits)")]
    InvalidArmId {
        /// The text given.
        text: String,
    },
    /// No arm is eligible.
    #[error("the eligible set is empty")]
    EmptyEligibleSet,
    /// An arm listed twice in an eligible set or distribution.
    #[error("arm {arm} is listed twice")]
    DuplicateArm {
        /// The repeated arm index.
        arm: usize,
    },
    /// A probability that is negative, above 1 or not finite.
    #[error("probability at position {index} is invalid: {value}")]
    InvalidProbability {
        /// Position in the distribution.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// Probabilities that do not sum to one.
    #[error("probabilities sum to {sum}, not 1 (tolerance {tolerance})")]
    ProbabilitiesDoNotSumToOne {
        /// Their sum.
        sum: f64,
        /// The tolerance allowed.
        tolerance: f64,
    },
    /// A reward that is NaN or infinite.
    #[error("reward {value} is not a finite number")]
    InvalidReward {
        /// The value given.
        value: f64,
    },
    /// An outcome field out of range.
    #[error("outcome field `{field}` = {value} is invalid: expected {expected}")]
    InvalidOutcome {
        /// Name of the field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A configuration value that cannot be used.
    #[error("invalid configuration `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the setting.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A snapshot that cannot be written or restored.
    #[error("snapshot: {reason}")]
    Snapshot {
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is, for a caller that branches on it (a
/// command line's exit status, a server's response): each crate's error
/// says its own with `kind()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is at fault: a value, a setting or a file's content that a
    /// caller or a file controls. A command line exits 2.
    BadInput,
    /// A valid request that a limit refuses now: a budget spent, no arm
    /// that passes the hard gates, an operation the current state does not
    /// allow. The same request may pass later; a server answers 429 or
    /// 409, a command line exits 1.
    Refused,
    /// The machine or a service: a file that cannot be read or written, a
    /// thread that cannot start, a server away.
    Io,
    /// Neither: a state the caller did not cause.
    Internal,
}

impl Error {
    /// What kind of failure it is: every error of the vocabulary is a value
    /// outside its rules, so [`ErrorKind::BadInput`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// A setting outside its range, as [`check_setting`] reports it. Each crate
/// turns it into the `InvalidSetting` (or `InvalidParameter`) variant of its
/// own error, with the same fields.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid setting `{field}` = {value}: expected {expected}")]
pub struct InvalidSetting {
    /// The setting.
    pub field: &'static str,
    /// The value given.
    pub value: f64,
    /// The valid range, in words.
    pub expected: &'static str,
}

/// Checks one numeric setting: `Ok` when `value` is finite and `ok` holds.
///
/// # Errors
/// [`InvalidSetting`] naming `field`, `value` and `expected`.
pub fn check_setting(
    field: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> std::result::Result<(), InvalidSetting> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(InvalidSetting {
            field,
            value,
            expected,
        })
    }
}

/// Implements `From<`[`InvalidSetting`]`>` for a crate's error enum, into
/// its variant of the same three fields: `setting_error!(Error::InvalidSetting);`.
#[macro_export]
macro_rules! setting_error {
    ($error:ident :: $variant:ident) => {
        impl From<$crate::InvalidSetting> for $error {
            fn from(e: $crate::InvalidSetting) -> Self {
                $error::$variant {
                    field: e.field,
                    value: e.value,
                    expected: e.expected,
                }
            }
        }
    };
}

impl From<ParseArmIdError> for Error {
    fn from(e: ParseArmIdError) -> Self {
        Error::InvalidArmId { text: e.text }
    }
}
