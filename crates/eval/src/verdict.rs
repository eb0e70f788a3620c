//! A configuration's verdict: its summary, its regression check and its
//! gates, as the supervisor judged them and the plan reads them.

use serde::{Deserialize, Serialize};
use tuneloop_rollout::Phase;

use crate::regression::Regression;
use crate::summary::ConfigSummary;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// Whether it passed.
    pub passed: bool,
    /// Why.
    pub detail: String,
}

/// Every gate's verdict for one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResults {
    /// The restraint floor.
    pub restraint: GateCheck,
    /// The variance threshold.
    pub variance: GateCheck,
    /// The regression check.
    pub regression: GateCheck,
    /// The minimum accuracy per phase.
    pub accuracy: GateCheck,
    /// The furthest rollout phase the configuration qualifies for.
    pub max_phase: Option<Phase>,
    /// Whether every gate passed.
    pub passed: bool,
}

/// A configuration's summary, regression check and gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The aggregates.
    pub summary: ConfigSummary,
    /// The comparison with the baseline, if there is one.
    pub regression: Option<Regression>,
    /// The comparison of its provider, model and parameter set over every
    /// task type, if there is a baseline.
    pub model_regression: Option<Regression>,
    /// The gates.
    pub gates: GateResults,
}
