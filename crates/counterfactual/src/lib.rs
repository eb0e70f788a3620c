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

mod data;
mod error;
mod estimators;

pub use data::{OpeData, OpeRound, TARGET_SUM_TOLERANCE, read_jsonl};
pub use error::{Error, Result};
pub use estimators::{Estimate, EstimatorKind, EstimatorSettings, estimate, percentile_sorted};
