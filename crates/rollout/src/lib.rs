//! Staged rollout for tuneloop: shadow → canary (5%) → guarded (25%) →
//! general, sticky cohort assignment, an SLO monitor (p99 latency, quality,
//! error rate) and automatic rollback on a real breach.
//!
//! **Status:** not implemented yet (issue "rollout: shadow → canary →
//! guarded → general ..."). Nothing here pretends to work.

pub use tuneloop_core::Clock;
