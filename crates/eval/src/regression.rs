//! Regression detection against a stored baseline, and how often it
//! flags something when nothing changed (A/A) or when something did (A/B).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::{BenchmarkConfig, Progress, run_benchmark};
use crate::stats::{Moments, holm, stratified_drop_p, welch_drop_p};
use crate::suite::Suite;
use crate::summary::{ConfigKey, ConfigSummary, EVAL_SCHEMA_VERSION, Gates, summarize};

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
