//! [`Counters`]: what the optimizer did, for a user to read or export.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters a user can read or export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Recommendations made.
    pub recommendations: u64,
    /// Outcomes recorded.
    pub outcomes: u64,
    /// Decisions that expired without an outcome.
    pub expired: u64,
    /// Decisions given up without an outcome (abandoned, a handle dropped
    /// unrecorded, shutdown).
    #[serde(default)]
    pub abandoned: u64,
    /// Arms excluded by gates, summed over decisions.
    pub gate_exclusions: u64,
    /// Decisions that fell back to the incumbent.
    pub fallbacks: u64,
    /// Rollout promotions.
    pub promotions: u64,
    /// Rollout rollbacks.
    pub rollbacks: u64,
    /// Log records dropped because the queue was full.
    pub log_dropped: u64,
    /// Log records the sink failed to write.
    pub log_failed: u64,
}

/// The optimizer's own counters (the log writer keeps the log's).
#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub(crate) recommendations: AtomicU64,
    pub(crate) outcomes: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) gate_exclusions: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) rollbacks: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl AtomicCounters {
    /// The counters now, with the log writer's `(dropped, failed)`.
    pub(crate) fn read(&self, (log_dropped, log_failed): (u64, u64)) -> Counters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            recommendations: r(&self.recommendations),
            outcomes: r(&self.outcomes),
            expired: r(&self.expired),
            abandoned: r(&self.abandoned),
            gate_exclusions: r(&self.gate_exclusions),
            fallbacks: r(&self.fallbacks),
            promotions: r(&self.promotions),
            rollbacks: r(&self.rollbacks),
            log_dropped,
            log_failed,
        }
    }
}
