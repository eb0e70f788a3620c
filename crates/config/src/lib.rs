//! [`RuntimeConfig`]: the settings an operator (or an optimization job)
//! changes while the system runs, kept by a [`RuntimeConfigStore`] that
//! validates every update, tells listeners, and persists it as JSON with
//! debounced, atomic writes. [`RuntimeConfigStore::attach`] keeps an
//! optimizer's task settings ([`TaskSettings`]) on it, and
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop::core::ParameterSet;
use tuneloop::{Optimizer, TaskSettings};

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
    /// A configuration file that cannot be read, written, or does not
    /// validate.
    #[error("runtime config {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
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

/// Version of the runtime configuration format.
pub const RUNTIME_CONFIG_SCHEMA_VERSION: u32 = 1;

/// Shortest time between two writes of the configuration file.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How providers are weighed against each other when choosing among them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderWeights {
    /// Weight of latency (default 0.3).
    pub latency: f64,
    /// Weight of cost (default 0.3).
    pub cost: f64,
    /// Weight of reliability (default 0.4).
    pub reliability: f64,
}

impl Default for ProviderWeights {
    fn default() -> Self {
        ProviderWeights {
            latency: 0.3,
            cost: 0.3,
            reliability: 0.4,
        }
    }
}

/// Settings of one provider that override the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderOverride {
    /// Whether the provider may be used (default true).
    pub enabled: Option<bool>,
    /// A weight multiplier for this provider, `>= 0`.
    pub weight: Option<f64>,
    /// The model to use with it.
    pub model: Option<String>,
}

/// Who last optimized the configuration, when, and how well.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metadata {
    /// Who (a person or a job).
    pub optimized_by: Option<String>,
    /// When.
    pub optimized_at: Option<DateTime<Utc>>,
    /// The score the optimization reached.
    pub score: Option<f64>,
    /// How many optimization iterations produced it.
    pub iterations: u64,
}

/// One task type's overrides of the runtime configuration's own settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskOverride {
    /// Its exploration rate, instead of the configuration's.
    pub exploration_rate: Option<f64>,
    /// Whether its learner learns, instead of the configuration's.
    pub learning: Option<bool>,
    /// Whether its rollout is held, instead of the configuration's.
    pub rollout_hold: Option<bool>,
}

/// Settings that change while the system runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Format version.
    pub schema_version: u32,
    /// Provider weights.
    pub provider_weights: ProviderWeights,
    /// The parameters to use when nothing better is known.
    pub default_parameters: Option<ParameterSet>,
    /// Share of the incumbent's decisions spent exploring the other
    /// eligible arms, in `[0, 1]` (default 0.02): the baseline cohort's
    /// exploration floor, read by an optimizer on every decision.
    pub exploration_rate: f64,
    /// Whether the learners learn from outcomes (default true; off, the
    /// outcomes are still logged, budgeted and monitored).
    pub learning: bool,
    /// Hold every rollout where it is: no promotion while set (default
    /// false). Clearing it resumes a rollout this flag held, not one a
    /// breach or a person held.
    pub rollout_hold: bool,
    /// Per task type, overrides of the three settings above.
    pub task_types: BTreeMap<String, TaskOverride>,
    /// Named on/off switches of the caller's own.
    pub feature_flags: BTreeMap<String, bool>,
    /// Per provider id.
    pub provider_overrides: BTreeMap<String, ProviderOverride>,
    /// Provenance of the current values.
    pub metadata: Metadata,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            schema_version: RUNTIME_CONFIG_SCHEMA_VERSION,
            provider_weights: ProviderWeights::default(),
            default_parameters: None,
            exploration_rate: 0.02,
            learning: true,
            rollout_hold: false,
            task_types: BTreeMap::new(),
            feature_flags: BTreeMap::new(),
            provider_overrides: BTreeMap::new(),
            metadata: Metadata::default(),
        }
    }
}

impl RuntimeConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        if self.schema_version != RUNTIME_CONFIG_SCHEMA_VERSION {
            return Err(Error::invalid(
                "schema_version",
                self.schema_version,
                "the version this release writes (RUNTIME_CONFIG_SCHEMA_VERSION)",
            ));
        }
        let w = &self.provider_weights;
        for (name, v) in [
            ("latency", w.latency),
            ("cost", w.cost),
            ("reliability", w.reliability),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("provider_weights.{name}"),
                    v,
                    "a finite weight >= 0",
                ));
            }
        }
        if w.latency + w.cost + w.reliability <= 0.0 {
            return Err(Error::invalid(
                "provider_weights",
                "all zero",
                "at least one positive weight",
            ));
        }
        if !(self.exploration_rate.is_finite() && (0.0..=1.0).contains(&self.exploration_rate)) {
            return Err(Error::invalid(
                "exploration_rate",
                self.exploration_rate,
                "a value in [0, 1]",
            ));
        }
        for (task, o) in &self.task_types {
            if let Some(r) = o.exploration_rate
                && !(r.is_finite() && (0.0..=1.0).contains(&r))
            {
                return Err(Error::invalid(
                    format!("task_types.{task}.exploration_rate"),
                    r,
                    "a value in [0, 1]",
                ));
            }
        }
        for (id, o) in &self.provider_overrides {
            if let Some(v) = o.weight
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(Error::invalid(
                    format!("provider_overrides.{id}.weight"),
                    v,
                    "a finite weight >= 0",
                ));
            }
        }
        if let Some(s) = self.metadata.score
            && !s.is_finite()
        {
            return Err(Error::invalid("metadata.score", s, "a finite number"));
        }
        Ok(())
    }
}

impl RuntimeConfig {
    /// The settings in effect for `task_type`: its overrides, else the
    /// configuration's own.
    pub fn for_task(&self, task_type: &str) -> TaskSettings {
        let o = self.task_types.get(task_type).copied().unwrap_or_default();
        TaskSettings {
            exploration_rate: o.exploration_rate.unwrap_or(self.exploration_rate),
            learning: o.learning.unwrap_or(self.learning),
            rollout_hold: o.rollout_hold.unwrap_or(self.rollout_hold),
        }
    }
}

/// A change listener.
pub type ConfigListener = Box<dyn Fn(&RuntimeConfig) + Send + Sync>;

thread_local! {
    /// Set while this thread runs an update's closure and listeners: a
    /// nested `update` would wait for its own lock.
    static IN_UPDATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as updating until dropped.
struct Updating;

impl Updating {
    fn enter() -> Result<Self> {
        if IN_UPDATE.with(std::cell::Cell::get) {
            return Err(Error::ReentrantUpdate);
        }
        IN_UPDATE.with(|u| u.set(true));
        Ok(Updating)
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        IN_UPDATE.with(|u| u.set(false));
    }
}

#[derive(Debug)]
struct State {
    config: RuntimeConfig,
    dirty: bool,
    shutdown: bool,
}

struct Shared {
    path: Option<PathBuf>,
    state: Mutex<State>,
    wake: Condvar,
    /// Serializes updates (closure, validation, listeners), so listeners
    /// see the configurations in the order they took effect.
    updates: Mutex<()>,
    listeners: RwLock<Vec<Arc<ConfigListener>>>,
    writes: AtomicU64,
    write_errors: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Writes `config` (when the store has a file), counting the outcome.
    fn write(&self, config: &RuntimeConfig) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let result = serde_json::to_vec_pretty(config)
            .map_err(std::io::Error::other)
            .and_then(|json| tuneloop::core::fs::write_atomic(path, &json));
        match result {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path.display(), error = %e, "runtime config write failed");
                Err(Error::ConfigFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// Keeps the [`RuntimeConfig`]: validated updates, change listeners, and a
/// background writer that persists the latest value at most once per
/// [`WRITE_INTERVAL`] (a burst of updates costs one or two writes), each
/// write atomic. Dropping the store writes any pending change.
#[derive(Debug)]
pub struct RuntimeConfigStore {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl RuntimeConfigStore {
    /// A store persisted at `path`: loads (and validates) the file if it
    /// exists, else starts from the defaults.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] for a file that cannot be read, does not
    /// parse or does not validate.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let config = if path.exists() {
            let bad = |reason: String| Error::ConfigFile {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
            let c: RuntimeConfig = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
            c.validate().map_err(|e| bad(e.to_string()))?;
            c
        } else {
            RuntimeConfig::default()
        };
        Self::start(Some(path), config)
    }

    /// A store kept in memory only.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] if `config` does not validate.
    pub fn in_memory(config: RuntimeConfig) -> Result<Self> {
        config.validate()?;
        Self::start(None, config)
    }

    fn start(path: Option<PathBuf>, config: RuntimeConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            path,
            state: Mutex::new(State {
                config,
                dirty: false,
                shutdown: false,
            }),
            wake: Condvar::new(),
            updates: Mutex::new(()),
            listeners: RwLock::new(Vec::new()),
            writes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        });
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("tuneloop-config".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                loop {
                    let mut st = lock(&s.state);
                    while !st.dirty && !st.shutdown {
                        st = s.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                    }
                    if st.shutdown && !st.dirty {
                        return;
                    }
                    // Debounce: wait out the interval since the last write.
                    if let Some(t) = last
                        && !st.shutdown
                    {
                        let due = t + WRITE_INTERVAL;
                        let now = Instant::now();
                        if now < due {
                            drop(
                                s.wake
                                    .wait_timeout(st, due - now)
                                    .unwrap_or_else(PoisonError::into_inner),
                            );
                            continue;
                        }
                    }
                    st.dirty = false;
                    let config = st.config.clone();
                    let shutdown = st.shutdown;
                    drop(st);
                    let failed = s.write(&config).is_err();
                    last = Some(Instant::now());
                    if shutdown {
                        return;
                    }
                    if failed {
                        // Try again after the interval (a full disk may
                        // clear); `write_errors` counts every failure.
                        lock(&s.state).dirty = true;
                    }
                }
            })
            .map_err(Error::Spawn)?;
        Ok(RuntimeConfigStore {
            shared,
            writer: Some(writer),
        })
    }

    /// The current configuration.
    pub fn get(&self) -> RuntimeConfig {
        lock(&self.shared.state).config.clone()
    }

    /// Applies `change` to a copy of the configuration; if the result
    /// validates, it becomes current, listeners are told, and a write is
    /// scheduled. Returns the new configuration. `Ok` means in effect, not
    /// yet on disk: [`flush`](Self::flush) writes and reports, and
    /// [`write_errors`](Self::write_errors) counts the background writer's
    /// failures.
    ///
    /// Updates take turns: listeners see the configurations in the order
    /// they took effect. The closure and the listeners may read the store
    /// ([`get`](Self::get)) and subscribe; an `update` from inside them is
    /// refused ([`Error::ReentrantUpdate`]) instead of waiting for itself.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] if the result does not validate (nothing
    /// changes); [`Error::ReentrantUpdate`].
    pub fn update(&self, change: impl FnOnce(&mut RuntimeConfig)) -> Result<RuntimeConfig> {
        let _updating = Updating::enter()?;
        let _turn = self
            .shared
            .updates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = self.get();
        change(&mut next);
        next.validate()?;
        {
            let mut st = lock(&self.shared.state);
            st.config = next.clone();
            st.dirty = true;
        }
        self.shared.wake.notify_all();
        // A copy of the list: a listener may subscribe another.
        let listeners: Vec<Arc<ConfigListener>> = self
            .shared
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for l in listeners {
            l(&next);
        }
        Ok(next)
    }

    /// Has `router` order its providers by the configuration's
    /// [`provider_weights`](RuntimeConfig::provider_weights) from now on,
    /// and follow every change of them on its next call (feature `router`).
    #[cfg(feature = "router")]
    pub fn drive_router(&self, router: &Arc<tuneloop_providers::Router>) {
        let to_weights = |w: &ProviderWeights| tuneloop_providers::ScoreWeights {
            latency: w.latency,
            cost: w.cost,
            reliability: w.reliability,
        };
        // The configuration validates the same rules the router checks.
        let _ = router.set_weights(Some(to_weights(&self.get().provider_weights)));
        let weak = Arc::downgrade(router);
        self.subscribe(Box::new(move |c| {
            if let Some(r) = weak.upgrade() {
                let _ = r.set_weights(Some(to_weights(&c.provider_weights)));
            }
        }));
    }

    /// Keeps `optimizer`'s task settings on this configuration: applies
    /// the current one now ([`RuntimeConfig::for_task`] for each task
    /// type) and every future one as it takes effect. Holds the optimizer
    /// weakly: it is not kept alive by the store.
    ///
    /// # Errors
    /// [`Error::Optimizer`] if the optimizer refuses the current settings.
    pub fn attach(&self, optimizer: &Optimizer) -> Result<()> {
        let current = self.get();
        optimizer.apply_settings(|name| current.for_task(name))?;
        let weak = optimizer.downgrade();
        self.subscribe(Box::new(move |c| {
            if let Some(o) = weak.upgrade() {
                // The configuration validated the same ranges.
                let _ = o.apply_settings(|name| c.for_task(name));
            }
        }));
        Ok(())
    }

    /// Calls `listener` with every future configuration.
    pub fn subscribe(&self, listener: ConfigListener) {
        self.shared
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(listener));
    }

    /// Writes made so far (for observability and tests).
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// Writes that failed so far (a full disk, a read-only mount). A failed
    /// background write is retried after [`WRITE_INTERVAL`].
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }

    /// Writes the current configuration now, and says whether it could.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the file and why.
    pub fn flush(&self) -> Result<()> {
        let config = self.get();
        self.shared.write(&config)
    }

    /// The file the configuration is persisted to.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }
}

impl Drop for RuntimeConfigStore {
    /// Writes any pending change, then stops the writer.
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}
