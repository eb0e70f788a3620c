//! Staged rollout for tuneloop: shadow → canary (5%) → guarded (25%) →
//! general, with an SLO monitor that rolls back on a real breach and does
//! not cry wolf.
//!
//! - [`RolloutManager`] — phases, sticky cohort assignment by stable hash,
//!   promotion after a minimum of samples and dwell time, the candidate's
//!   [proof] (an off-policy lower bound ≥ 0 in consecutive shadow
//!   windows, on-policy non-inferiority in canary and guarded) and an
//!   optional approval, hold and resume, immediate rollback on a breach, events to
//!   callbacks and a history; serializable state; time passed in.
//! - [`SloMonitor`] — per cohort: p50/p99 latency from a [`QuantileSketch`]
//!   (1% relative error), mean quality, error rate; breach rules (default:
//!   candidate p99 > baseline p99 × 1.10, quality < baseline − 0.05, error
//!   rate > baseline + 0.02) judged by anytime-valid
//!   [sequential tests](sequential): the chance of any false alarm over a
//!   whole rollout is at most `alpha`, however often it is checked.
//! - `simulation` (feature `simulation`) — seeded whole-rollout simulations (A/A and injected
//!   breach), behind `tuneloop simulate --scenario rollout-aa|rollout-breach`.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use tuneloop_rollout::{Observation, ProofConfig, RolloutConfig, RolloutManager};
//! let t0 = Utc::now();
//! // Promotion on samples and dwell time alone (see `proof` for the rest).
//! let rules = RolloutConfig {
//!     proof: ProofConfig { required: false, ..ProofConfig::default() },
//!     ..RolloutConfig::default()
//! };
//! let mut r = RolloutManager::new(rules, t0)?;
//! for i in 0..2_000 {
//!     let a = r.assign(&format!("user-{i}"));
//!     let o = Observation { latency_ms: 800.0, quality: 0.8, error: false };
//!     r.observe(a.cohort, o, t0 + Duration::seconds(i))?;
//! }
//! assert_eq!(r.phase(), tuneloop_rollout::Phase::Canary);
//! # Ok::<(), tuneloop_rollout::Error>(())
//! ```

mod error;
mod manager;
mod monitor;
pub mod proof;
pub mod sequential;
#[cfg(feature = "simulation")]
pub mod simulation;
mod sketch;

pub use error::{Error, Result};
pub use manager::{
    Assignment, Listener, RollbackTarget, RolloutConfig, RolloutEvent, RolloutManager,
};
pub use monitor::{Breach, CohortStats, CohortSummary, Metric, Observation, SloConfig, SloMonitor};
pub use proof::{ProofConfig, ProofEstimator, ShadowRound, Verdict, VerdictKind};
pub use sketch::{QuantileSketch, RELATIVE_ACCURACY};
pub use tuneloop_core::{Cohort, Phase};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(RolloutManager: Send, Sync);
    static_assertions::assert_impl_all!(RolloutConfig: Send, Sync);
    static_assertions::assert_impl_all!(RolloutEvent: Send, Sync);
    static_assertions::assert_impl_all!(SloMonitor: Send, Sync);
    static_assertions::assert_impl_all!(QuantileSketch: Send, Sync);
    static_assertions::assert_impl_all!(Breach: Send, Sync);
    static_assertions::assert_impl_all!(sequential::SequentialTest: Send, Sync);
}
