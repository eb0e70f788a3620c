//! The store that keeps the runtime configuration: validated updates,
//! listeners, a debounced writer thread, and the optimizer and router it
//! drives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tuneloop::Optimizer;

use crate::config::RuntimeConfig;
use crate::{Error, Result};

/// Shortest time between two writes of the configuration file.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

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
        // Serializing a validated configuration does not fail; were it to,
        // the write fails as an I/O error would.
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
                Err(Error::ConfigIo {
                    path: path.display().to_string(),
                    source: e,
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
    /// [`Error::ConfigIo`] for a file that cannot be read,
    /// [`Error::ConfigFormat`] for one that does not parse,
    /// [`Error::ConfigInvalid`] for one that does not validate.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let config = if path.exists() {
            let shown = path.display().to_string();
            let text = std::fs::read(&path).map_err(|source| Error::ConfigIo {
                path: shown.clone(),
                source,
            })?;
            let c: RuntimeConfig =
                serde_json::from_slice(&text).map_err(|source| Error::ConfigFormat {
                    path: shown.clone(),
                    source,
                })?;
            c.validate().map_err(|e| Error::ConfigInvalid {
                path: shown,
                source: Box::new(e),
            })?;
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
        let to_weights = |w: &crate::config::ProviderWeights| tuneloop_providers::ScoreWeights {
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
    /// [`Error::ConfigIo`] naming the file, with the I/O error as its
    /// source.
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
