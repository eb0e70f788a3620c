//! Named reasons to doubt an evaluation ([`EvaluationWarning`]), shared
//! by `tuneloop evaluate` and the report.

use serde::{Deserialize, Serialize};

use crate::data::OpeData;
use crate::estimators::{Estimate, EstimatorKind};

/// Share of the rounds under which the decision estimator's effective
/// sample size is flagged ([`EvaluationWarning::LittleSupport`]).
pub const LOW_SUPPORT_SHARE: f64 = 0.1;

/// A named reason to doubt an [`Evaluation`](crate::Evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EvaluationWarning {
    /// An estimate outside the range of the logged rewards: no policy can
    /// earn that on this log, so the estimator's reward model or weights
    /// are off (a candidate far from the logger, too few rounds).
    EstimateOutsideRewardRange {
        /// The estimator.
        estimator: EstimatorKind,
        /// Its estimate.
        estimate: f64,
        /// The smallest logged reward.
        low: f64,
        /// The largest logged reward.
        high: f64,
    },
    /// The decision estimator's effective sample size is under
    /// [`LOW_SUPPORT_SHARE`] of the rounds: the candidate goes where the
    /// logger seldom went, and the estimate rests on a few rounds.
    LittleSupport {
        /// The decision estimator.
        estimator: EstimatorKind,
        /// Its effective sample size.
        ess: f64,
        /// The rounds.
        rounds: usize,
    },
}

impl std::fmt::Display for EvaluationWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvaluationWarning::EstimateOutsideRewardRange {
                estimator,
                estimate,
                low,
                high,
            } => write!(
                f,
                "{} estimate {estimate:.4} is outside the logged rewards' range [{low}, {high}]: do not trust it",
                estimator.name()
            ),
            EvaluationWarning::LittleSupport {
                estimator,
                ess,
                rounds,
            } => write!(
                f,
                "{}'s effective sample size is {ess:.1} of {rounds} rounds (under {:.0}%): the candidate goes where the log seldom went",
                estimator.name(),
                LOW_SUPPORT_SHARE * 100.0
            ),
        }
    }
}

/// The named warnings (see [`EvaluationWarning`]) that `estimates` of
/// `data` deserve, the verdict resting on `decision_estimator`: every
/// estimate outside the logged rewards' range, and the decision
/// estimator's effective sample size under [`LOW_SUPPORT_SHARE`] of the
/// rounds.
pub fn evaluation_warnings(
    data: &OpeData,
    estimates: &[(EstimatorKind, Estimate)],
    decision_estimator: EstimatorKind,
) -> Vec<EvaluationWarning> {
    let (low, high) = (0..data.len())
        .map(|i| data.reward(i))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        });
    // A rounding error's worth of slack: a value equal to the range's
    // end up to the last bits is inside.
    let slack = 1e-9 * (high - low).abs().max(1.0);
    let mut out: Vec<EvaluationWarning> = estimates
        .iter()
        .filter(|(_, e)| e.estimate < low - slack || e.estimate > high + slack)
        .map(|(k, e)| EvaluationWarning::EstimateOutsideRewardRange {
            estimator: *k,
            estimate: e.estimate,
            low,
            high,
        })
        .collect();
    if let Some((k, e)) = estimates.iter().find(|(k, _)| *k == decision_estimator)
        && e.ess < LOW_SUPPORT_SHARE * data.len() as f64
    {
        out.push(EvaluationWarning::LittleSupport {
            estimator: *k,
            ess: e.ess,
            rounds: data.len(),
        });
    }
    out
}
