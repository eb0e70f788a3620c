//! The supervisor: several runs → aggregates with intervals → variance and
//! regression detection → policy gates → a recommendation per task type →
//! a routing plan the providers' `Router` and the `Optimizer` load.
//!
//! The unit of analysis is a *configuration*: one task type on one
//! provider, model and parameter set. Failed calls count as quality 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tuneloop_providers::Tier;
use tuneloop_rollout::Phase;

use crate::error::{Error, Result};
use crate::plan::{RoutingPlan, plan, recommend};
use crate::regression::{Baseline, Regression, detect_regressions};
use crate::runner::{BenchmarkConfig, BenchmarkRun, CallRecord, Progress, run_benchmark};
use crate::stats::{Moments, anova_p, quantile};
use crate::suite::Suite;

/// Version of the baseline and routing-plan formats.
pub const EVAL_SCHEMA_VERSION: u32 = 1;

/// The policy gates a configuration must pass to be recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Lowest mean quality on the suite's restraint cases for the
    /// provider, model and parameter set (default 0.8). Suites without
    /// restraint cases pass this gate and say it was not measured.
    pub restraint_floor: f64,
    /// Largest standard deviation of quality between answers to the same
    /// case (default 0.3): above it, the configuration is unstable.
    pub variance_threshold: f64,
    /// Lowest lower-interval bound of quality to enter each rollout phase
    /// (default canary 0.5, guarded 0.7, general 0.85); a configuration
    /// that qualifies for no phase fails.
    pub min_accuracy: BTreeMap<Phase, f64>,
    /// Family-wise error rate of the regression test (default 0.05).
    pub regression_alpha: f64,
    /// Drops of quality smaller than this are not regressions (default 0.02).
    pub regression_margin: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            restraint_floor: 0.8,
            variance_threshold: 0.3,
            min_accuracy: BTreeMap::from([
                (Phase::Canary, 0.5),
                (Phase::Guarded, 0.7),
                (Phase::General, 0.85),
            ]),
            regression_alpha: 0.05,
            regression_margin: 0.02,
        }
    }
}

impl Gates {
    pub(crate) fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::setting(name, format!("{v} is not in [0, 1]")))
            }
        };
        unit("restraint_floor", self.restraint_floor)?;
        unit("variance_threshold", self.variance_threshold)?;
        unit("regression_margin", self.regression_margin)?;
        if !(self.regression_alpha > 0.0 && self.regression_alpha < 1.0) {
            return Err(Error::setting(
                "regression_alpha",
                format!("{} is not in (0, 1)", self.regression_alpha),
            ));
        }
        for v in self.min_accuracy.values() {
            unit("min_accuracy", *v)?;
        }
        Ok(())
    }
}

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

/// One task type on one provider, model and parameter set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigKey {
    /// The task type.
    pub task_type: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The parameter set's arm id.
    pub arm: String,
}

impl ConfigKey {
    pub(crate) fn of(c: &CallRecord) -> Self {
        ConfigKey {
            task_type: c.task_type.clone(),
            provider: c.provider.clone(),
            model: c.model.clone(),
            arm: c.arm.clone(),
        }
    }
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.task_type, self.provider, self.model, self.arm
        )
    }
}

/// Aggregates of one configuration over every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// Which configuration.
    pub key: ConfigKey,
    /// The provider's tier.
    pub tier: Tier,
    /// Calls made.
    pub calls: u64,
    /// Calls answered and scored.
    pub successes: u64,
    /// Moments of the per-call quality (failures count 0).
    pub quality: Moments,
    /// The `1 - alpha` t-interval of the mean quality, clipped to `[0, 1]`.
    pub ci: (f64, f64),
    /// Pooled standard deviation of quality around each case's mean: how
    /// much answers to the same prompt differ.
    pub within_case_sd: f64,
    /// Mean quality of each run.
    pub run_means: Vec<f64>,
    /// Standard deviation of the run means (`None` for one run).
    pub between_run_sd: Option<f64>,
    /// One-way ANOVA p-value of "every run has the same mean" (`None` when
    /// it cannot be computed); a small value says runs differ beyond
    /// call-to-call noise.
    pub run_heterogeneity_p: Option<f64>,
    /// Median latency of the calls, in milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile of latency, in milliseconds.
    pub latency_p95_ms: f64,
    /// Mean completion tokens per call.
    pub mean_completion_tokens: f64,
    /// Mean prompt tokens per call.
    pub mean_prompt_tokens: f64,
}

/// Aggregates every configuration of `runs`, with `1 - alpha` intervals.
pub fn summarize(runs: &[BenchmarkRun], alpha: f64) -> Vec<ConfigSummary> {
    let mut groups: BTreeMap<ConfigKey, Vec<&CallRecord>> = BTreeMap::new();
    for c in runs.iter().flat_map(|r| &r.calls) {
        groups.entry(ConfigKey::of(c)).or_default().push(c);
    }
    groups
        .into_iter()
        .map(|(key, calls)| {
            let quality = Moments::of(calls.iter().map(|c| c.quality));
            let mut by_case: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let mut by_run: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
            for c in &calls {
                by_case.entry(&c.case_id).or_default().push(c.quality);
                by_run.entry(c.round).or_default().push(c.quality);
            }
            let (mut ss, mut df) = (0.0, 0usize);
            for qs in by_case.values() {
                let m = Moments::of(qs.iter().copied());
                ss += m.variance * (qs.len().saturating_sub(1)) as f64;
                df += qs.len().saturating_sub(1);
            }
            let within_case_sd = if df > 0 { (ss / df as f64).sqrt() } else { 0.0 };
            let run_means: Vec<f64> = by_run
                .values()
                .map(|qs| qs.iter().sum::<f64>() / qs.len() as f64)
                .collect();
            let between_run_sd =
                (run_means.len() > 1).then(|| Moments::of(run_means.iter().copied()).sd());
            let groups: Vec<Vec<f64>> = by_run.into_values().collect();
            let latencies: Vec<f64> = calls.iter().map(|c| c.latency_ms).collect();
            let n = calls.len() as f64;
            ConfigSummary {
                tier: calls[0].tier,
                calls: calls.len() as u64,
                successes: calls.iter().filter(|c| c.success).count() as u64,
                ci: {
                    // Quality lives in [0, 1]; so does its interval.
                    let (lo, hi) = quality.t_interval(alpha);
                    (lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0))
                },
                quality,
                within_case_sd,
                run_means,
                between_run_sd,
                run_heterogeneity_p: anova_p(&groups),
                latency_p50_ms: quantile(&latencies, 0.5).unwrap_or(0.0),
                latency_p95_ms: quantile(&latencies, 0.95).unwrap_or(0.0),
                mean_completion_tokens: calls
                    .iter()
                    .map(|c| c.completion_tokens as f64)
                    .sum::<f64>()
                    / n,
                mean_prompt_tokens: calls.iter().map(|c| c.prompt_tokens as f64).sum::<f64>() / n,
                key,
            }
        })
        .collect()
}

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
