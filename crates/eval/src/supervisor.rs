//! The supervisor: several runs → aggregates with intervals → variance and
//! regression detection → policy gates → a recommendation per task type →
//! a routing plan the providers' `Router` and the `Optimizer` load.
//!
//! The unit of analysis is a *configuration*: one task type on one
//! provider, model and parameter set. Failed calls count as quality 0.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::ParameterSet;
use tuneloop_providers::{Entry, Scorecard, ScorecardConfig, Tier};
use tuneloop_rollout::Phase;

use crate::error::{Error, Result};
use crate::runner::{BenchmarkConfig, BenchmarkRun, CallRecord, Progress, run_benchmark};
use crate::stats::{Moments, anova_p, holm, quantile, stratified_drop_p, welch_drop_p};
use crate::suite::Suite;

/// Version of the baseline and routing-plan formats.
pub const EVAL_SCHEMA_VERSION: u32 = 1;

/// Quality at or above which a call counts as a verified-correct answer in
/// the scorecard.
pub const VERIFIED_QUALITY: f64 = 0.5;

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
    fn validate(&self) -> Result<()> {
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
    fn of(c: &CallRecord) -> Self {
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

/// Stored quality moments of every configuration: what later runs are
/// compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Format version.
    pub schema_version: u32,
    /// The suite it was measured on.
    pub suite: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Quality moments, keyed `task_type/provider/model/arm`.
    pub configs: BTreeMap<String, Moments>,
}

impl Baseline {
    /// The baseline of `summaries`.
    pub fn from_summaries(suite: &str, summaries: &[ConfigSummary]) -> Self {
        Baseline {
            schema_version: EVAL_SCHEMA_VERSION,
            suite: suite.to_owned(),
            created_at: Utc::now(),
            configs: summaries
                .iter()
                .map(|s| (s.key.to_string(), s.quality))
                .collect(),
        }
    }

    /// Writes it as JSON (atomically).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io(path, e.into()))?;
        tuneloop_core::fs::write_atomic(path, &json).map_err(|e| Error::io(path, e))
    }

    /// Reads and checks a baseline file.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::File`] naming what is wrong.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let b: Baseline = serde_json::from_slice(&text).map_err(|e| Error::File {
            path: path.to_owned(),
            message: format!("not a baseline: {e}"),
        })?;
        if b.schema_version != EVAL_SCHEMA_VERSION {
            return Err(Error::File {
                path: path.to_owned(),
                message: format!(
                    "baseline schema_version {} is not supported",
                    b.schema_version
                ),
            });
        }
        for (k, m) in &b.configs {
            if !(m.mean.is_finite() && m.variance.is_finite() && m.variance >= 0.0) {
                return Err(Error::File {
                    path: path.to_owned(),
                    message: format!(
                        "configs.{k}: mean and variance must be finite, variance >= 0"
                    ),
                });
            }
        }
        Ok(b)
    }
}

/// A configuration's comparison with the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// The baseline's moments.
    pub baseline: Moments,
    /// This run's moments.
    pub current: Moments,
    /// Baseline mean minus current mean.
    pub drop: f64,
    /// One-sided (stratified) Welch p-value of "the drop exceeds the margin".
    pub p_value: f64,
    /// Rejected by Holm's procedure within its family.
    pub regressed: bool,
}

/// What [`detect_regressions`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Regressions {
    /// Per configuration (`task_type/provider/model/arm`).
    pub configs: BTreeMap<String, Regression>,
    /// Per provider, model and parameter set (`provider/model/arm`),
    /// stratified over task types.
    pub models: BTreeMap<String, Regression>,
}

/// Compares the current run with the baseline at two levels:
///
/// - each *model* (`provider/model/arm`) over all its task types, with a
///   stratified one-sided Welch test (strata weighted by the baseline's
///   calls): this pools every call, so it sees a model-wide drop that no
///   single task type shows clearly;
/// - each *configuration* (task type too), with a one-sided Welch test.
///
/// A drop counts only beyond `margin`. Each family is Holm-corrected at
/// `alpha / 2`, so the chance of flagging anything when nothing changed is
/// at most `alpha` (the measured rate is in `docs/evaluation.md`).
pub fn detect_regressions(
    baseline: &Baseline,
    current: &[ConfigSummary],
    alpha: f64,
    margin: f64,
) -> Regressions {
    let pairs: Vec<(&ConfigKey, Moments, Moments)> = current
        .iter()
        .filter_map(|s| {
            baseline
                .configs
                .get(&s.key.to_string())
                .map(|b| (&s.key, *b, s.quality))
        })
        .collect();
    let mut out = Regressions::default();
    // Configurations.
    let p: Vec<f64> = pairs
        .iter()
        .map(|(_, b, c)| welch_drop_p(c, b, margin))
        .collect();
    for (((k, b, c), p_value), regressed) in pairs.iter().zip(&p).zip(holm(&p, alpha / 2.0)) {
        out.configs.insert(
            k.to_string(),
            Regression {
                drop: b.mean - c.mean,
                baseline: *b,
                current: *c,
                p_value: *p_value,
                regressed,
            },
        );
    }
    // Models, stratified over task types.
    let mut by_model: BTreeMap<String, Vec<(Moments, Moments)>> = BTreeMap::new();
    for (k, b, c) in &pairs {
        by_model
            .entry(format!("{}/{}/{}", k.provider, k.model, k.arm))
            .or_default()
            .push((*b, *c));
    }
    let tests: Vec<(String, Regression)> = by_model
        .into_iter()
        .map(|(k, strata)| {
            let total = strata.iter().map(|(b, _)| b.n).sum::<u64>().max(1) as f64;
            let weighted: Vec<(f64, Moments, Moments)> = strata
                .iter()
                .map(|(b, c)| (b.n as f64 / total, *c, *b))
                .collect();
            let (drop, p_value) = stratified_drop_p(&weighted, margin);
            let pooled = |pick: fn(&(Moments, Moments)) -> Moments| {
                let n = strata.iter().map(|s| pick(s).n).sum::<u64>();
                Moments {
                    n,
                    mean: strata
                        .iter()
                        .map(|s| pick(s).mean * pick(s).n as f64)
                        .sum::<f64>()
                        / n.max(1) as f64,
                    // The stratified test's variance is not a pooled one;
                    // report the mean of the strata's variances.
                    variance: strata.iter().map(|s| pick(s).variance).sum::<f64>()
                        / strata.len().max(1) as f64,
                }
            };
            (
                k,
                Regression {
                    baseline: pooled(|s| s.0),
                    current: pooled(|s| s.1),
                    drop,
                    p_value,
                    regressed: false,
                },
            )
        })
        .collect();
    let p: Vec<f64> = tests.iter().map(|(_, r)| r.p_value).collect();
    for ((k, mut r), regressed) in tests.into_iter().zip(holm(&p, alpha / 2.0)) {
        r.regressed = regressed;
        out.models.insert(k, r);
    }
    out
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

/// A recommended configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The provider.
    pub provider: String,
    /// Its tier.
    pub tier: Tier,
    /// The parameters (their model is the model to use).
    pub parameters: ParameterSet,
    /// Mean quality.
    pub quality: f64,
    /// Its interval.
    pub ci: (f64, f64),
    /// Median latency (ms).
    pub latency_p50_ms: f64,
    /// The furthest rollout phase it qualifies for.
    pub max_phase: Option<Phase>,
}

/// What to use for one task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The task type.
    pub task_type: String,
    /// The best configuration that passed every gate (highest lower
    /// interval bound; ties by mean, then latency); `None` if none passed.
    pub choice: Option<Choice>,
    /// The best configuration on another provider (another tier first)
    /// that passed every gate but, possibly, the accuracy gate.
    pub fallback: Option<Choice>,
    /// The chosen provider's first call was much slower than its median:
    /// send it a warm-up request before traffic.
    pub warm_up: bool,
    /// Why, in words.
    pub reasons: Vec<String>,
}

/// A routing configuration: per task type, which provider, model and
/// parameters; which providers to disable; and a scorecard seeded with the
/// benchmark's calls. [`RoutingPlan::write`] writes `routing.json` and
/// `scorecard.json` (which `Scorecard::open` loads for the `Router` and
/// the `Optimizer`); the CLI also writes the optimizer's
/// `runtime-config.json` from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingPlan {
    /// Format version.
    pub schema_version: u32,
    /// The suite.
    pub suite: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Per task type.
    pub recommendations: BTreeMap<String, Recommendation>,
    /// Providers in the order to try them: online before local, then by
    /// how many task types chose them.
    pub provider_order: Vec<String>,
    /// Providers no task type chose or falls back to.
    pub disabled_providers: Vec<String>,
    /// The model each enabled provider should serve (its most chosen).
    pub provider_models: BTreeMap<String, String>,
    /// The parameters chosen for the most task types.
    pub default_parameters: Option<ParameterSet>,
    /// Mean quality of the choices.
    pub score: Option<f64>,
    /// Scorecard entries (`provider/model/task_type`) of every call.
    pub scorecard: BTreeMap<String, Entry>,
}

impl RoutingPlan {
    /// `providers` as the plan wants them for a `Router`: disabled ones
    /// left out, the rest in [`provider_order`](Self::provider_order)
    /// (providers the plan does not know keep their order, after those it
    /// does). Pass the result to `Router::new`.
    pub fn order_providers(
        &self,
        providers: Vec<std::sync::Arc<dyn tuneloop_providers::Provider>>,
    ) -> Vec<std::sync::Arc<dyn tuneloop_providers::Provider>> {
        let mut kept: Vec<_> = providers
            .into_iter()
            .filter(|p| !self.disabled_providers.iter().any(|d| d == p.id()))
            .collect();
        kept.sort_by_key(|p| {
            self.provider_order
                .iter()
                .position(|o| o == p.id())
                .unwrap_or(usize::MAX)
        });
        kept
    }

    /// Writes `routing.json` and `scorecard.json` into `dir` (created if
    /// missing), atomically.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, json) in [
            ("routing.json", serde_json::to_vec_pretty(self)),
            ("scorecard.json", serde_json::to_vec_pretty(&self.scorecard)),
        ] {
            let path = dir.join(name);
            let json = json.map_err(|e| Error::io(&path, e.into()))?;
            tuneloop_core::fs::write_atomic(&path, &json).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
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
        let pairs = bench
            .providers
            .iter()
            .map(|p| {
                bench
                    .parameter_sets
                    .iter()
                    .filter(|ps| p.capabilities().serves(ps.model()))
                    .count()
            })
            .sum::<usize>();
        let per_run = suite.cases.len() * pairs;
        for i in 0..self.config.runs {
            let offset = i as usize * per_run * bench.repetitions as usize;
            let total_all = self.config.runs as usize * per_run * bench.repetitions as usize;
            let wrapped = |done: usize, _total: usize| {
                if let Some(p) = progress {
                    p(offset + done, total_all);
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

fn choice(r: &ConfigReport, runs: &[BenchmarkRun]) -> Option<Choice> {
    let parameters = runs
        .iter()
        .find_map(|run| run.parameters.get(&r.summary.key.arm))?
        .clone();
    Some(Choice {
        provider: r.summary.key.provider.clone(),
        tier: r.summary.tier,
        parameters,
        quality: r.summary.quality.mean,
        ci: r.summary.ci,
        latency_p50_ms: r.summary.latency_p50_ms,
        max_phase: r.gates.max_phase,
    })
}

fn rank(a: &&ConfigReport, b: &&ConfigReport) -> std::cmp::Ordering {
    let (a, b) = (&a.summary, &b.summary);
    b.ci.0
        .total_cmp(&a.ci.0)
        .then(b.quality.mean.total_cmp(&a.quality.mean))
        .then(a.latency_p50_ms.total_cmp(&b.latency_p50_ms))
        .then(a.key.cmp(&b.key))
}

fn recommend(
    task_type: &str,
    configs: &[ConfigReport],
    runs: &[BenchmarkRun],
    warm_up: &BTreeMap<String, bool>,
) -> Recommendation {
    let mut of_type: Vec<&ConfigReport> = configs
        .iter()
        .filter(|c| c.summary.key.task_type == task_type)
        .collect();
    of_type.sort_by(rank);
    let mut reasons = Vec::new();
    let chosen = of_type
        .iter()
        .find(|c| c.gates.passed)
        .and_then(|b| choice(b, runs));
    if let Some(c) = &chosen {
        reasons.push(format!(
            "{} {} at quality {:.3} [{:.3}, {:.3}] passed every gate ({} configurations compared)",
            c.provider,
            c.parameters.model(),
            c.quality,
            c.ci.0,
            c.ci.1,
            of_type.len()
        ));
    } else {
        reasons.push(format!(
            "no configuration of {} passed every gate",
            of_type.len()
        ));
        for c in of_type.iter().take(3) {
            let g = &c.gates;
            let failed: Vec<&str> = [
                ("restraint", &g.restraint),
                ("variance", &g.variance),
                ("regression", &g.regression),
                ("accuracy", &g.accuracy),
            ]
            .iter()
            .filter(|(_, check)| !check.passed)
            .map(|(n, _)| *n)
            .collect();
            reasons.push(format!("{}: failed {}", c.summary.key, failed.join(", ")));
        }
    }
    let fallback_candidates = |other_tier: bool| {
        of_type
            .iter()
            .filter(|c| {
                let g = &c.gates;
                g.restraint.passed
                    && g.variance.passed
                    && g.regression.passed
                    && c.summary.successes > 0
            })
            .filter(|c| match &chosen {
                Some(ch) => {
                    c.summary.key.provider != ch.provider
                        && (!other_tier || c.summary.tier != ch.tier)
                }
                None => false,
            })
            .copied()
            .next()
    };
    let fallback = fallback_candidates(true)
        .or_else(|| fallback_candidates(false))
        .and_then(|c| choice(c, runs));
    if let Some(f) = &fallback {
        reasons.push(format!(
            "fallback {} {} at quality {:.3}",
            f.provider,
            f.parameters.model(),
            f.quality
        ));
    }
    let warm = chosen
        .as_ref()
        .is_some_and(|c| warm_up.get(&c.provider).copied().unwrap_or(false));
    if warm {
        reasons.push("the chosen provider's first call was slow: warm it up".into());
    }
    Recommendation {
        task_type: task_type.to_owned(),
        choice: chosen,
        fallback,
        warm_up: warm,
        reasons,
    }
}

fn plan(
    suite: &Suite,
    recommendations: BTreeMap<String, Recommendation>,
    calls: &[&CallRecord],
    configs: &[ConfigReport],
) -> RoutingPlan {
    let mut chosen_count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut used: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut model_count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut params_count: BTreeMap<String, (usize, &ParameterSet)> = BTreeMap::new();
    let mut tiers: BTreeMap<&str, Tier> = BTreeMap::new();
    for c in configs {
        tiers.insert(&c.summary.key.provider, c.summary.tier);
    }
    let mut score = (0.0, 0usize);
    let recs = recommendations.clone();
    for r in recs.values() {
        if let Some(c) = &r.choice {
            *chosen_count.entry(&c.provider).or_default() += 1;
            used.insert(&c.provider);
            *model_count
                .entry((&c.provider, c.parameters.model()))
                .or_default() += 1;
            params_count
                .entry(c.parameters.arm_id().to_string())
                .or_insert((0, &c.parameters))
                .0 += 1;
            score.0 += c.quality;
            score.1 += 1;
        }
        if let Some(f) = &r.fallback {
            used.insert(&f.provider);
            model_count
                .entry((&f.provider, f.parameters.model()))
                .or_default();
        }
    }
    let mut provider_order: Vec<&str> = used.iter().copied().collect();
    provider_order.sort_by(|a, b| {
        tiers
            .get(a)
            .cmp(&tiers.get(b))
            .then(chosen_count.get(b).cmp(&chosen_count.get(a)))
            .then(a.cmp(b))
    });
    let disabled_providers = tiers
        .keys()
        .filter(|p| !used.contains(*p))
        .map(|p| (*p).to_owned())
        .collect();
    let mut provider_models: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for ((p, m), n) in model_count {
        let e = provider_models
            .entry(p.to_owned())
            .or_insert((n, m.to_owned()));
        if n > e.0 {
            *e = (n, m.to_owned());
        }
    }
    let default_parameters = params_count
        .values()
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| (*p).clone());
    let scorecard = Scorecard::in_memory(ScorecardConfig::default());
    for c in calls {
        scorecard.record(
            &c.provider,
            &c.model,
            &c.task_type,
            c.success,
            std::time::Duration::from_secs_f64(c.latency_ms.max(0.0) / 1000.0),
            0.0,
        );
        if c.success {
            scorecard.verify(
                &c.provider,
                &c.model,
                &c.task_type,
                c.quality >= VERIFIED_QUALITY,
            );
        }
    }
    RoutingPlan {
        schema_version: EVAL_SCHEMA_VERSION,
        suite: suite.name.clone(),
        created_at: Utc::now(),
        recommendations,
        provider_order: provider_order.into_iter().map(str::to_owned).collect(),
        disabled_providers,
        provider_models: provider_models
            .into_iter()
            .map(|(p, (_, m))| (p, m))
            .collect(),
        default_parameters,
        score: (score.1 > 0).then(|| score.0 / score.1 as f64),
        scorecard: scorecard.export(),
    }
}

/// One line of the run history: a round's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// The round.
    pub round: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The suite.
    pub suite: String,
    /// Calls.
    pub calls: u64,
    /// Share of calls answered and scored.
    pub success_rate: f64,
    /// Mean quality over every call.
    pub mean_quality: f64,
    /// Mean quality per configuration key.
    pub configs: BTreeMap<String, f64>,
}

impl RoundSummary {
    /// The summary of a run.
    pub fn of(run: &BenchmarkRun) -> Self {
        let n = run.calls.len().max(1) as f64;
        let mut configs: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for c in &run.calls {
            let e = configs.entry(ConfigKey::of(c).to_string()).or_default();
            e.0 += c.quality;
            e.1 += 1;
        }
        RoundSummary {
            round: run.round,
            started_at: run.started_at,
            suite: run.suite.clone(),
            calls: run.calls.len() as u64,
            success_rate: run.calls.iter().filter(|c| c.success).count() as f64 / n,
            mean_quality: run.calls.iter().map(|c| c.quality).sum::<f64>() / n,
            configs: configs
                .into_iter()
                .map(|(k, (s, n))| (k, s / n as f64))
                .collect(),
        }
    }
}

/// The history of rounds: a JSON Lines file, one [`RoundSummary`] a line,
/// appended and flushed per round.
#[derive(Debug, Clone, Copy)]
pub struct History;

impl History {
    /// Appends the summaries of `runs`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn append(path: &Path, runs: &[BenchmarkRun]) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        for r in runs {
            let mut line =
                serde_json::to_vec(&RoundSummary::of(r)).map_err(|e| Error::io(path, e.into()))?;
            line.push(b'\n');
            f.write_all(&line).map_err(|e| Error::io(path, e))?;
        }
        f.flush().map_err(|e| Error::io(path, e))
    }

    /// Reads the history; a missing file is an empty history, and a torn
    /// last line (a crash mid-write) is skipped.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::File`] naming a bad line other than the
    /// last.
    pub fn read(path: &Path) -> Result<Vec<RoundSummary>> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(path, e))?;
        let mut out = Vec::with_capacity(lines.len());
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(_) if i == last => {}
                Err(e) => {
                    return Err(Error::File {
                        path: path.to_owned(),
                        message: format!("line {}: {e}", i + 1),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The round after the last one recorded (0 for no history).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn next_round(path: &Path) -> Result<u32> {
        Ok(History::read(path)?
            .iter()
            .map(|r| r.round + 1)
            .max()
            .unwrap_or(0))
    }
}

/// How often regression detection flags something over repeated
/// baseline-then-current trials: on A/A trials (nothing changed) the
/// false-positive rate, on A/B trials (the current setup is worse) the
/// detection rate, or power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialReport {
    /// Trials (a baseline run, then a current run).
    pub trials: u32,
    /// Configuration-level tests per trial.
    pub config_tests: usize,
    /// Model-level tests per trial.
    pub model_tests: usize,
    /// Trials in which anything was flagged.
    pub trials_flagged: u32,
    /// `trials_flagged / trials`: on A/A trials, the family-wise
    /// false-positive rate (at most `alpha` by construction).
    pub any_flag_rate: f64,
    /// Share of configuration-level tests flagged.
    pub config_flag_rate: f64,
    /// Share of model-level tests flagged: on A/B trials where every
    /// model got worse, the power of the model-level test.
    pub model_flag_rate: f64,
    /// The nominal family-wise rate.
    pub alpha: f64,
}

/// Runs `trials` times a baseline run of `before` and a current run of
/// `after`, and counts how often [`detect_regressions`] flags something.
/// With `before` and `after` the same setup this measures the false-positive
/// rate (see [`aa_false_positive_rate`]).
///
/// # Errors
/// As [`run_benchmark`].
pub async fn regression_trials(
    suite: &Suite,
    before: &BenchmarkConfig,
    after: &BenchmarkConfig,
    gates: &Gates,
    trials: u32,
    progress: Option<Progress<'_>>,
) -> Result<TrialReport> {
    gates.validate()?;
    let (mut trials_flagged, mut configs_flagged, mut models_flagged) = (0u32, 0usize, 0usize);
    let (mut config_tests, mut model_tests) = (0usize, 0usize);
    for t in 0..trials {
        let a = run_benchmark(suite, before, 2 * t, None).await?;
        let b = run_benchmark(suite, after, 2 * t + 1, None).await?;
        let baseline = Baseline::from_summaries(&suite.name, &summarize(&[a], 0.05));
        let current = summarize(&[b], 0.05);
        let r = detect_regressions(
            &baseline,
            &current,
            gates.regression_alpha,
            gates.regression_margin,
        );
        config_tests = r.configs.len();
        model_tests = r.models.len();
        let c = r.configs.values().filter(|x| x.regressed).count();
        let m = r.models.values().filter(|x| x.regressed).count();
        configs_flagged += c;
        models_flagged += m;
        trials_flagged += u32::from(c + m > 0);
        if let Some(p) = progress {
            p(t as usize + 1, trials as usize);
        }
    }
    let rate = |k: usize, per: usize| k as f64 / (per * trials as usize).max(1) as f64;
    Ok(TrialReport {
        trials,
        config_tests,
        model_tests,
        trials_flagged,
        any_flag_rate: f64::from(trials_flagged) / f64::from(trials.max(1)),
        config_flag_rate: rate(configs_flagged, config_tests),
        model_flag_rate: rate(models_flagged, model_tests),
        alpha: gates.regression_alpha,
    })
}

/// Measures how often regression detection flags a configuration when
/// nothing changed: `trials` times, one run becomes the baseline and an
/// independent run of the same setup is compared with it. The returned
/// `any_flag_rate` is the family-wise false-positive rate.
///
/// # Errors
/// As [`run_benchmark`].
pub async fn aa_false_positive_rate(
    suite: &Suite,
    bench: &BenchmarkConfig,
    gates: &Gates,
    trials: u32,
    progress: Option<Progress<'_>>,
) -> Result<TrialReport> {
    regression_trials(suite, bench, bench, gates, trials, progress).await
}
