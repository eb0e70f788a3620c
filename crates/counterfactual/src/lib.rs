//! Off-policy evaluation for tuneloop: prove on logs that a candidate
//! policy beats the incumbent before it touches traffic.
//!
//! - [`OpeData`] / [`read_jsonl`] — estimator-level input: logged action,
//!   reward, logging propensity, the target policy's distribution and
//!   optionally a reward model's predictions, validated round by round.
//! - [`estimate`] — IPS, SNIPS, DM, DR, SNDR, Switch-DR and DRos with the
//!   definitions of Open Bandit Pipeline, each with a seeded percentile
//!   bootstrap interval, an analytic normal interval, its effective sample
//!   size and largest weight.
//! - [`log`] — the decision log: [`LoggedDecision`] records, memory and
//!   JSON Lines sinks with rotation, a reader that survives a torn last
//!   line, and [`PendingDecisions`] joining late outcomes.
//! - [`OfflineEvaluator`] — a decision log and a candidate policy → both
//!   policies' values, their paired difference, and the verdict: better
//!   only if the one-sided lower 95% bound of the difference is `>= 0`.
//! - [`cross_fit_ridge`] (reward models) and [`replay`] (Li et al.).
//!
//! ```
//! use tuneloop_counterfactual::{EstimatorKind, EstimatorSettings, OpeData, OpeRound, estimate};
//! // Two actions, uniform logging, a target that always plays action 1.
//! let rounds = (0..100).map(|i| OpeRound {
//!     action: i % 2,
//!     reward: if i % 2 == 1 { 1.0 } else { 0.0 },
//!     propensity: 0.5,
//!     target: vec![0.0, 1.0],
//!     reward_hat: None,
//! });
//! let data = OpeData::new(rounds)?;
//! let settings = EstimatorSettings { bootstrap: 200, ..EstimatorSettings::default() };
//! let out = estimate(&data, &[EstimatorKind::Ipw], &settings)?;
//! assert!((out[0].1.estimate - 1.0).abs() < 1e-12);
//! # Ok::<(), tuneloop_counterfactual::Error>(())
//! ```

mod by_task;
mod data;
mod error;
mod estimators;
mod evaluator;
pub mod input;
pub mod log;
mod par;
mod reader;
mod resolution;
mod reward_model;
mod warnings;

pub use by_task::{ByTaskType, SkippedTaskType, TaskTypeEvaluation, by_task_type};
pub use data::{
    DEFAULT_MAX_VALUES, OpeData, OpeRound, TARGET_SUM_TOLERANCE, read_jsonl, read_jsonl_limited,
};
pub use error::{Error, Result};
pub use estimators::{
    Estimate, EstimatorKind, EstimatorSettings, Paired, estimate, percentile_sorted,
};
pub use evaluator::{
    Comparison, DefaultedRewards, EpisodeEvaluation, Evaluation, OfflineEvaluator, replay,
};
pub use log::{DecisionLog, JoinError, JsonlLog, LoggedDecision, MemoryLog, PendingDecisions};
pub use reader::{LogContents, LogReader, RecordError, read_log};
pub use resolution::{AbandonReason, Resolution, ResolutionError};
pub use reward_model::{cross_fit_ridge, cross_fit_ridge_with_arm_features};
pub use warnings::{EvaluationWarning, LOW_SUPPORT_SHARE, evaluation_warnings};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(OpeData: Send, Sync);
    static_assertions::assert_impl_all!(OpeRound: Send, Sync);
    static_assertions::assert_impl_all!(Estimate: Send, Sync);
    static_assertions::assert_impl_all!(EstimatorSettings: Send, Sync);
    static_assertions::assert_impl_all!(Paired: Send, Sync);
    static_assertions::assert_impl_all!(OfflineEvaluator: Send, Sync);
    static_assertions::assert_impl_all!(Evaluation: Send, Sync);
    static_assertions::assert_impl_all!(Comparison: Send, Sync);
    static_assertions::assert_impl_all!(LoggedDecision: Send, Sync);
    static_assertions::assert_impl_all!(MemoryLog: Send, Sync);
    static_assertions::assert_impl_all!(JsonlLog: Send, Sync);
    static_assertions::assert_impl_all!(PendingDecisions: Send, Sync);
    static_assertions::assert_impl_all!(JoinError: Send, Sync);
    static_assertions::assert_impl_all!(Box<dyn DecisionLog>: Send, Sync);
}
