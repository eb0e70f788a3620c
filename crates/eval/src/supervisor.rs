//! The supervisor: several runs → aggregates with intervals → variance and
//! regression detection → policy gates → a recommendation per task type →
//! a routing plan the providers' `Router` and the `Optimizer` load.
//!
//! The unit of analysis is a *configuration*: one task type on one
//! provider, model and parameter set. Failed calls count as quality 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{RoutingPlan, plan, recommend};
use crate::regression::{Baseline, Regression, detect_regressions};
use crate::runner::{BenchmarkConfig, BenchmarkRun, CallRecord, Progress, run_benchmark};
use crate::stats::quantile;
use crate::suite::Suite;
use crate::summary::{ConfigSummary, Gates, summarize};
use crate::verdict::{ConfigReport, GateCheck, GateResults};

/// How the supervisor runs and judges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Benchmark runs (default 3).
    pub runs: u32,
    /// Intervals are at level `1 - alpha` (default 0.05).
    pub alpha: f64,
    /// The gates.
    pub gates: Gates,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            runs: 3,
            alpha: 0.05,
            gates: Gates::default(),
        }
    }
}

/// What the supervisor found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorReport {
    /// The suite.
    pub suite: String,
    /// Runs analysed.
    pub runs: u32,
    /// Calls analysed.
    pub calls: u64,
    /// Every configuration.
    pub configs: Vec<ConfigReport>,
    /// Mean restraint-case quality per `provider/model/arm`.
    pub restraint: BTreeMap<String, f64>,
    /// Providers whose first call was much slower than their median.
    pub warm_up: BTreeMap<String, bool>,
    /// Models (`provider/model/arm`) and configurations flagged as regressed.
    pub regressions: Vec<String>,
    /// Configurations flagged as unstable.
    pub unstable: Vec<String>,
    /// The routing plan.
    pub plan: RoutingPlan,
}

/// Several runs of a suite and what to make of them.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    config: SupervisorConfig,
}

/// A first call slower than this many times the provider's median latency
/// means the provider needs a warm-up.
pub const WARM_UP_RATIO: f64 = 2.0;

impl Supervisor {
    /// A supervisor with these settings.
    ///
    /// # Errors
    /// [`Error::Setting`] naming a value out of range.
    pub fn new(config: SupervisorConfig) -> Result<Self> {
        if config.runs == 0 {
            return Err(Error::setting("runs", "must be at least 1"));
        }
        if !(config.alpha > 0.0 && config.alpha < 1.0) {
            return Err(Error::setting(
                "alpha",
                format!("{} is not in (0, 1)", config.alpha),
            ));
        }
        config.gates.validate()?;
        Ok(Supervisor { config })
    }

    /// The settings.
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    /// Runs the suite `runs` times (rounds numbered from `first_round`),
    /// then [`analyze`](Self::analyze)s the runs.
    ///
    /// # Errors
    /// As [`run_benchmark`].
    pub async fn run(
        &self,
        suite: &Suite,
        bench: &BenchmarkConfig,
        first_round: u32,
        baseline: Option<&Baseline>,
        progress: Option<Progress<'_>>,
    ) -> Result<(Vec<BenchmarkRun>, SupervisorReport)> {
        let mut runs = Vec::with_capacity(self.config.runs as usize);
        let runs_total = self.config.runs as usize;
        for i in 0..self.config.runs {
            // Every run makes the same number of calls, which run_benchmark
            // reports as its total.
            let wrapped = |done: usize, total: usize| {
                if let Some(p) = progress {
                    p(i as usize * total + done, runs_total * total);
                }
            };
            runs.push(run_benchmark(suite, bench, first_round + i, Some(&wrapped)).await?);
        }
        let report = self.analyze(suite, &runs, baseline);
        Ok((runs, report))
    }

    /// Aggregates `runs`, checks them against `baseline`, applies the
    /// gates and derives recommendations and a routing plan.
    pub fn analyze(
        &self,
        suite: &Suite,
        runs: &[BenchmarkRun],
        baseline: Option<&Baseline>,
    ) -> SupervisorReport {
        let g = &self.config.gates;
        let summaries = summarize(runs, self.config.alpha);
        let regressions = baseline
            .map(|b| detect_regressions(b, &summaries, g.regression_alpha, g.regression_margin))
            .unwrap_or_default();
        let calls: Vec<&CallRecord> = runs.iter().flat_map(|r| &r.calls).collect();

        // Restraint: mean quality on restraint cases per provider/model/arm.
        let mut restraint_acc: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for c in calls.iter().filter(|c| c.restraint) {
            let e = restraint_acc
                .entry(format!("{}/{}/{}", c.provider, c.model, c.arm))
                .or_default();
            e.0 += c.quality;
            e.1 += 1;
        }
        let restraint: BTreeMap<String, f64> = restraint_acc
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect();

        let warm_up = warm_up_needs(runs);

        let configs: Vec<ConfigReport> = summaries
            .into_iter()
            .map(|s| {
                let regression = regressions.configs.get(&s.key.to_string()).cloned();
                let model_regression = regressions
                    .models
                    .get(&format!("{}/{}/{}", s.key.provider, s.key.model, s.key.arm))
                    .cloned();
                let gates = self.gate(
                    &s,
                    regression.as_ref(),
                    model_regression.as_ref(),
                    &restraint,
                    baseline.is_some(),
                );
                ConfigReport {
                    summary: s,
                    regression,
                    model_regression,
                    gates,
                }
            })
            .collect();

        let mut recommendations = BTreeMap::new();
        for task_type in suite.task_types() {
            let rec = recommend(&task_type, &configs, runs, &warm_up);
            recommendations.insert(task_type, rec);
        }
        let plan = plan(suite, recommendations, &calls, &configs);
        SupervisorReport {
            suite: suite.name.clone(),
            runs: runs.len() as u32,
            calls: calls.len() as u64,
            regressions: regressions
                .models
                .iter()
                .chain(&regressions.configs)
                .filter(|(_, r)| r.regressed)
                .map(|(k, _)| k.clone())
                .collect(),
            unstable: configs
                .iter()
                .filter(|c| !c.gates.variance.passed)
                .map(|c| c.summary.key.to_string())
                .collect(),
            configs,
            restraint,
            warm_up,
            plan,
        }
    }

    fn gate(
        &self,
        s: &ConfigSummary,
        regression: Option<&Regression>,
        model_regression: Option<&Regression>,
        restraint: &BTreeMap<String, f64>,
        has_baseline: bool,
    ) -> GateResults {
        let g = &self.config.gates;
        let rk = format!("{}/{}/{}", s.key.provider, s.key.model, s.key.arm);
        let restraint = match restraint.get(&rk) {
            None => GateCheck {
                passed: true,
                detail: "not measured: the suite has no restraint case".into(),
            },
            Some(&r) => GateCheck {
                passed: r >= g.restraint_floor,
                detail: format!("restraint {r:.3} vs floor {:.3}", g.restraint_floor),
            },
        };
        let variance = GateCheck {
            passed: s.within_case_sd <= g.variance_threshold,
            detail: format!(
                "within-case sd {:.3} vs threshold {:.3}",
                s.within_case_sd, g.variance_threshold
            ),
        };
        let regression = match (regression, model_regression) {
            (_, Some(m)) if m.regressed => GateCheck {
                passed: false,
                detail: format!(
                    "the model regressed across task types: drop {:+.3} (p = {:.2e})",
                    m.drop, m.p_value
                ),
            },
            (Some(r), _) => GateCheck {
                passed: !r.regressed,
                detail: format!(
                    "drop {:+.3} from baseline {:.3} (p = {:.2e})",
                    r.drop, r.baseline.mean, r.p_value
                ),
            },
            (None, _) if has_baseline => GateCheck {
                passed: true,
                detail: "not in the baseline".into(),
            },
            (None, _) => GateCheck {
                passed: true,
                detail: "no baseline".into(),
            },
        };
        let max_phase = g
            .min_accuracy
            .iter()
            .filter(|(_, min)| s.ci.0 >= **min)
            .map(|(p, _)| *p)
            .max();
        let accuracy = GateCheck {
            passed: max_phase.is_some(),
            detail: match max_phase {
                Some(p) => format!("lower bound {:.3} qualifies for {p:?}", s.ci.0),
                None => format!("lower bound {:.3} qualifies for no phase", s.ci.0),
            },
        };
        let passed = restraint.passed && variance.passed && regression.passed && accuracy.passed;
        GateResults {
            restraint,
            variance,
            regression,
            accuracy,
            max_phase,
            passed,
        }
    }
}

fn warm_up_needs(runs: &[BenchmarkRun]) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let Some(first) = runs.first() else {
        return out;
    };
    let mut by_provider: BTreeMap<&str, Vec<&CallRecord>> = BTreeMap::new();
    for c in first.calls.iter().filter(|c| c.success) {
        by_provider.entry(&c.provider).or_default().push(c);
    }
    for (p, calls) in by_provider {
        let Some(first_call) = calls
            .iter()
            .min_by(|a, b| a.started_ms.total_cmp(&b.started_ms))
        else {
            continue;
        };
        let rest: Vec<f64> = calls
            .iter()
            .filter(|c| !std::ptr::eq(**c, *first_call))
            .map(|c| c.latency_ms)
            .collect();
        let needs = quantile(&rest, 0.5).is_some_and(|m| first_call.latency_ms > WARM_UP_RATIO * m);
        out.insert(p.to_owned(), needs);
    }
    out
}
