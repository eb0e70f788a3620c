//! Errors of providers and of the router.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tuneloop_core::{ErrorClass, ErrorKind};

/// A provider's failure, classified so the router knows what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProviderError {
    /// May pass on retry (a 5xx, a dropped connection, malformed output).
    #[error("{provider}: transient failure: {message}")]
    Transient {
        /// The provider.
        provider: String,
        /// What happened.
        message: String,
    },
    /// Too many requests; retry after the given delay, if known.
    #[error("{provider}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// The provider.
        provider: String,
        /// The delay the provider asked for.
        retry_after: Option<Duration>,
    },
    /// No answer within the time allowed.
    #[error("{provider}: timed out after {after:?}")]
    Timeout {
        /// The provider.
        provider: String,
        /// How long it was given.
        after: Duration,
    },
    /// The prompt plus `max_tokens` do not fit the model's context window.
    #[error("{provider}: context length exceeded: {message}")]
    ContextLength {
        /// The provider.
        provider: String,
        /// What the provider said.
        message: String,
    },
    /// Credentials were refused (the message never contains them).
    #[error("{provider}: authentication failed")]
    Authentication {
        /// The provider.
        provider: String,
    },
    /// Will not pass on retry (a 4xx, an unknown model).
    #[error("{provider}: permanent failure: {message}")]
    Permanent {
        /// The provider.
        provider: String,
        /// What happened.
        message: String,
    },
}

impl ProviderError {
    /// Whether retrying the same provider may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Transient { .. }
                | ProviderError::RateLimited { .. }
                | ProviderError::Timeout { .. }
        )
    }

    /// What kind of failure it is, for a caller outside the router: a
    /// rate limit is [`Refused`](ErrorKind::Refused); a transient failure
    /// or a timeout is [`Io`](ErrorKind::Io) (the server or the network);
    /// a request the provider will never accept (context length,
    /// credentials, any other 4xx) is [`BadInput`](ErrorKind::BadInput).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProviderError::RateLimited { .. } => ErrorKind::Refused,
            ProviderError::Transient { .. } | ProviderError::Timeout { .. } => ErrorKind::Io,
            ProviderError::ContextLength { .. }
            | ProviderError::Authentication { .. }
            | ProviderError::Permanent { .. } => ErrorKind::BadInput,
        }
    }

    /// The error class recorded in outcomes.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Transient { .. } => ErrorClass::Transient,
            ProviderError::RateLimited { .. } => ErrorClass::RateLimited,
            ProviderError::Timeout { .. } => ErrorClass::Timeout,
            ProviderError::ContextLength { .. } => ErrorClass::ContextLength,
            ProviderError::Authentication { .. } => ErrorClass::Authentication,
            ProviderError::Permanent { .. } => ErrorClass::Permanent,
        }
    }
}

/// Why the router could not produce an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// Every provider was tried (or skipped) and none answered.
    #[error("no provider answered after {attempts} attempt(s); last error: {last:?}")]
    Exhausted {
        /// Attempts made.
        attempts: usize,
        /// The last provider error, if any attempt was made.
        last: Option<ProviderError>,
    },
    /// The call's deadline passed.
    #[error("deadline of {0:?} passed")]
    Deadline(Duration),
    /// A configuration that cannot be used.
    #[error("invalid router configuration: {0}")]
    Config(String),
}

impl RouterError {
    /// What kind of failure it is: a configuration is
    /// [`BadInput`](ErrorKind::BadInput); a passed deadline is
    /// [`Io`](ErrorKind::Io); with every provider exhausted, the last
    /// provider error's kind ([`Io`](ErrorKind::Io) when none was tried).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RouterError::Config(_) => ErrorKind::BadInput,
            RouterError::Deadline(_) => ErrorKind::Io,
            RouterError::Exhausted { last, .. } => {
                last.as_ref().map_or(ErrorKind::Io, ProviderError::kind)
            }
        }
    }
}
