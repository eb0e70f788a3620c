//! The aggregates of benchmark runs per configuration (one task type on
//! one provider, model and parameter set), and the gates they are judged
//! by: what the regression check, the plan and the supervisor share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tuneloop_providers::Tier;
use tuneloop_rollout::Phase;

use crate::error::{Error, Result};
use crate::runner::{BenchmarkRun, CallRecord};
use crate::stats::{Moments, anova_p, quantile};

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
