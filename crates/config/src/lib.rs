//! [`RuntimeConfig`]: the settings an operator (or an optimization job)
//! changes while the system runs, kept by a [`RuntimeConfigStore`] that
//! validates every update, tells listeners, and persists it as JSON with
//! debounced, atomic writes. [`RuntimeConfigStore::attach`] keeps an
//! optimizer's task settings ([`TaskSettings`](tuneloop::TaskSettings)) on it, and
//! [`RuntimeConfigStore::drive_router`] (feature `router`) a router's
//! provider weights.
//!
//! ```
//! use std::sync::Arc;
//! use tuneloop::{Optimizer, TaskTypeConfig};
//! use tuneloop::core::ArmSet;
//! use tuneloop_config::{RuntimeConfig, RuntimeConfigStore};
//!
//! let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.7]).build()?;
//! let optimizer = Optimizer::builder().task_type("code", TaskTypeConfig::new(arms)).build()?;
//! let store = Arc::new(RuntimeConfigStore::in_memory(RuntimeConfig::default())?);
//! store.attach(&optimizer)?;
//! store.update(|c| c.exploration_rate = 0.1)?;
//! assert_eq!(optimizer.task_settings("code")?.exploration_rate, 0.1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use tuneloop::core::ErrorKind;

mod config;
mod store;

pub use config::{
    Metadata, ProviderOverride, ProviderWeights, RUNTIME_CONFIG_SCHEMA_VERSION, RuntimeConfig,
    TaskOverride,
};
pub use store::{ConfigListener, RuntimeConfigStore, WRITE_INTERVAL};

/// What can go wrong with the runtime configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is refused: `field` holds `value`, and `expected` says
    /// what it may hold.
    #[error("{field} = {value}: expected {expected}")]
    InvalidSetting {
        /// The setting, as a path (`task_types.code.exploration_rate`).
        field: String,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A configuration file that cannot be read or written.
    #[error("runtime config {path}: {source}")]
    ConfigIo {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file that is not the configuration's JSON (the
    /// error names the line and column).
    #[error("runtime config {path}: {source}")]
    ConfigFormat {
        /// The file.
        path: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A configuration file whose values do not validate.
    #[error("runtime config {path}: {source}")]
    ConfigInvalid {
        /// The file.
        path: String,
        /// The setting refused.
        #[source]
        source: Box<Error>,
    },
    /// [`RuntimeConfigStore::update`] was called from inside an update's
    /// closure or a listener (it would wait for itself).
    #[error("runtime config: update called from inside an update closure or a listener")]
    ReentrantUpdate,
    /// The optimizer refused the settings.
    #[error(transparent)]
    Optimizer(#[from] tuneloop::Error),
    /// The writer thread could not be started.
    #[error("cannot start the runtime config writer: {0}")]
    Spawn(#[source] std::io::Error),
}

impl Error {
    /// What kind of failure it is: a file that cannot be read or written,
    /// or a writer that cannot start, is [`Io`](ErrorKind::Io); a reentrant
    /// update is [`Internal`](ErrorKind::Internal) (a bug of the caller's
    /// listener); the rest is a value or a file's content at fault
    /// ([`BadInput`](ErrorKind::BadInput)), or the optimizer's own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Optimizer(e) => e.kind(),
            Error::ConfigIo { .. } | Error::Spawn(_) => ErrorKind::Io,
            Error::ReentrantUpdate => ErrorKind::Internal,
            Error::InvalidSetting { .. }
            | Error::ConfigFormat { .. }
            | Error::ConfigInvalid { .. } => ErrorKind::BadInput,
        }
    }

    fn invalid(
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
