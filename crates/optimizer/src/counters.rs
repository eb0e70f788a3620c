//! [`Counters`]: what the optimizer did, for a user to read or export.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters a user can read or export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
    /// Outcomes of calls not made as their arm says (a completion longer
    /// than the arm's `max_tokens`): logged, not learned.
    pub misapplied: u64,
    /// Arms excluded by gates, summed over decisions.
    pub gate_exclusions: u64,
    /// The same by reason, in the order of `gates::Reason::KINDS`
    /// (trust region, model switch, quality floor, budget, constraint,
    /// custom).
    #[serde(default)]
    pub gate_exclusions_by_reason: [u64; 6],
    /// Decisions that fell back to the incumbent.
    pub fallbacks: u64,
    /// Rollout promotions.
    pub promotions: u64,
    /// Rollout rollbacks.
    pub rollbacks: u64,
    /// Sum of the rewards of the outcomes recorded (to a millionth each).
    #[serde(default)]
    pub reward_sum: f64,
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
    pub(crate) misapplied: AtomicU64,
    /// By `gates::Reason::kind_index`; their sum is the total.
    pub(crate) gate_exclusions_by_reason: [AtomicU64; 6],
    pub(crate) fallbacks: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) rollbacks: AtomicU64,
    /// Rewards summed in millionths (a reward is in [0, 1]: 2^64
    /// millionths are 1.8e13 outcomes).
    pub(crate) reward_micros: AtomicU64,
}

/// Adds a reward in `[0, 1]` to the sum.
pub(crate) fn add_reward(counters: &AtomicCounters, reward: f64) {
    add(
        &counters.reward_micros,
        (reward.clamp(0.0, 1.0) * 1e6).round() as u64,
    );
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
            misapplied: r(&self.misapplied),
            gate_exclusions: self
                .gate_exclusions_by_reason
                .iter()
                .map(r)
                .fold(0, u64::saturating_add),
            gate_exclusions_by_reason: self.gate_exclusions_by_reason.each_ref().map(r),
            fallbacks: r(&self.fallbacks),
            promotions: r(&self.promotions),
            rollbacks: r(&self.rollbacks),
            reward_sum: r(&self.reward_micros) as f64 / 1e6,
            log_dropped,
            log_failed,
        }
    }
}
