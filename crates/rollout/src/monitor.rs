//! [`SloMonitor`]: per-cohort latency quantiles, quality and error rate,
//! and anytime-valid tests that say when the candidate is really worse.

use serde::{Deserialize, Serialize};

use tuneloop_core::{Cohort, LatencyMetric};

use crate::error::{Error, Result, check};
use crate::sequential::SequentialTest;
use crate::sketch::QuantileSketch;

/// What one request produced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Latency in milliseconds, finite and `>= 0`.
    pub latency_ms: f64,
    /// Quality in `[0, 1]`.
    pub quality: f64,
    /// Whether the call failed.
    pub error: bool,
}

impl Observation {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.latency_ms.is_finite() && self.latency_ms >= 0.0) {
            return Err(Error::InvalidObservation {
                field: "latency_ms",
                value: self.latency_ms,
                expected: "a finite latency >= 0",
            });
        }
        if !(self.quality.is_finite() && (0.0..=1.0).contains(&self.quality)) {
            return Err(Error::InvalidObservation {
                field: "quality",
                value: self.quality,
                expected: "a quality in [0, 1]",
            });
        }
        Ok(())
    }
}

/// Breach rules and the statistics behind verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    /// Breach when the candidate's latency quantile exceeds the baseline's
    /// times this (default 1.10).
    pub latency_ratio: f64,
    /// The latency quantile watched (default 0.99).
    pub latency_quantile: f64,
    /// Breach when the candidate's quality is below the baseline's minus
    /// this (default 0.05).
    pub quality_margin: f64,
    /// Breach when the candidate's error rate exceeds the baseline's plus
    /// this (default 0.02).
    pub error_margin: f64,
    /// Candidate observations before any verdict (default 200).
    pub min_samples: u64,
    /// Baseline observations before the candidate is compared (default
    /// 1,000: the latency quantile needs them).
    pub min_baseline_samples: u64,
    /// Probability of any false alarm over the monitor's whole life, shared
    /// equally by the three metrics (default 0.05).
    pub alpha: f64,
    /// Which latency of an outcome the facade observes (default the whole
    /// call's; [`LatencyMetric::FirstToken`] watches streamed answers'
    /// time to the first token).
    pub latency_metric: LatencyMetric,
}

impl Default for SloConfig {
    fn default() -> Self {
        SloConfig {
            latency_ratio: 1.10,
            latency_quantile: 0.99,
            quality_margin: 0.05,
            error_margin: 0.02,
            min_samples: 200,
            min_baseline_samples: 1_000,
            alpha: 0.05,
            latency_metric: LatencyMetric::Total,
        }
    }
}

impl SloConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn check(&self) -> Result<()> {
        check(
            "latency_ratio",
            self.latency_ratio,
            self.latency_ratio >= 1.0,
            "a ratio >= 1",
        )?;
        check(
            "latency_quantile",
            self.latency_quantile,
            self.latency_quantile > 0.0 && self.latency_quantile < 1.0,
            "in (0, 1)",
        )?;
        check(
            "quality_margin",
            self.quality_margin,
            (0.0..=1.0).contains(&self.quality_margin),
            "in [0, 1]",
        )?;
        check(
            "error_margin",
            self.error_margin,
            (0.0..=1.0).contains(&self.error_margin),
            "in [0, 1]",
        )?;
        check(
            "alpha",
            self.alpha,
            self.alpha > 0.0 && self.alpha < 1.0,
            "in (0, 1)",
        )?;
        Ok(())
    }
}

/// Running statistics of one cohort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CohortState")]
pub struct CohortStats {
    observations: u64,
    latency: QuantileSketch,
    quality_sum: f64,
    errors: u64,
}

/// A cohort's statistics as read from a file, checked before use: a
/// tampered quality sum or error count would otherwise steer the verdicts.
#[derive(Deserialize)]
struct CohortState {
    observations: u64,
    latency: QuantileSketch,
    quality_sum: f64,
    errors: u64,
}

impl TryFrom<CohortState> for CohortStats {
    type Error = String;

    fn try_from(s: CohortState) -> std::result::Result<Self, String> {
        let n = s.observations;
        // Each observation adds one latency and a quality in [0, 1].
        if s.latency.count() != n {
            return Err(format!(
                "cohort of {n} observations has {} latencies",
                s.latency.count()
            ));
        }
        if !(s.quality_sum.is_finite() && (0.0..=n as f64).contains(&s.quality_sum)) {
            return Err(format!(
                "cohort quality sum {} is outside [0, {n}]",
                s.quality_sum
            ));
        }
        if s.errors > n {
            return Err(format!(
                "cohort of {n} observations has {} errors",
                s.errors
            ));
        }
        Ok(CohortStats {
            observations: n,
            latency: s.latency,
            quality_sum: s.quality_sum,
            errors: s.errors,
        })
    }
}

impl CohortStats {
    fn add(&mut self, o: &Observation) {
        // Saturating: counters restored from a file may sit at the top.
        self.observations = self.observations.saturating_add(1);
        self.latency.add(o.latency_ms);
        self.quality_sum += o.quality;
        self.errors = self.errors.saturating_add(u64::from(o.error));
    }

    fn summary(&self) -> CohortSummary {
        let n = self.observations as f64;
        CohortSummary {
            observations: self.observations,
            p50_ms: self.latency.quantile(0.5),
            p99_ms: self.latency.quantile(0.99),
            quality_mean: (self.observations > 0).then(|| self.quality_sum / n),
            error_rate: (self.observations > 0).then(|| self.errors as f64 / n),
        }
    }
}

/// A cohort at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CohortSummary {
    /// Observations.
    pub observations: u64,
    /// Median latency (within 1%).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency (within 1%).
    pub p99_ms: Option<f64>,
    /// Mean quality.
    pub quality_mean: Option<f64>,
    /// Share of failed calls.
    pub error_rate: Option<f64>,
}

/// The metric that breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Tail latency.
    Latency,
    /// Quality.
    Quality,
    /// Error rate.
    ErrorRate,
}

/// Evidence of a real breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// The metric.
    pub metric: Metric,
    /// The test's e-value (≥ 3/alpha).
    pub e_value: f64,
    /// The candidate cohort at the time.
    pub candidate: CohortSummary,
    /// The baseline cohort at the time.
    pub baseline: CohortSummary,
}

/// Watches both cohorts and raises a [`Breach`] only on evidence.
///
/// Each metric has an anytime-valid [test martingale](crate::sequential)
/// against the null "the candidate meets the SLO relative to the baseline",
/// fed one candidate observation at a time with the baseline's current
/// estimate as reference:
///
/// - latency: `Y = 1[L > ratio · p̂_b] − (1 − q)`, whose mean is `≤ 0` when
///   the candidate's `q`-quantile is within the ratio of the baseline's;
/// - quality: `Y = (μ̂_b − margin) − X`;
/// - errors: `Y = E − (ê_b + margin)`.
///
/// A breach needs `min_samples` candidate observations and an e-value of at
/// least `3/alpha` on one metric: however often it is checked, the chance
/// of a false alarm over the monitor's life is at most `alpha` (up to the
/// error of the baseline's estimates, which see many more observations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloMonitor {
    config: SloConfig,
    baseline: CohortStats,
    candidate: CohortStats,
    latency: SequentialTest,
    quality: SequentialTest,
    errors: SequentialTest,
}

impl SloMonitor {
    /// A monitor with no observations.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn new(config: SloConfig) -> Result<Self> {
        config.check()?;
        Ok(SloMonitor {
            config,
            baseline: CohortStats::default(),
            candidate: CohortStats::default(),
            latency: SequentialTest::new(),
            quality: SequentialTest::new(),
            errors: SequentialTest::new(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &SloConfig {
        &self.config
    }

    /// A cohort's statistics.
    pub fn summary(&self, cohort: Cohort) -> CohortSummary {
        match cohort {
            Cohort::Baseline => self.baseline.summary(),
            Cohort::Candidate => self.candidate.summary(),
        }
    }

    /// A cohort's number of observations (without the quantiles a
    /// [`summary`](Self::summary) computes).
    pub fn observations(&self, cohort: Cohort) -> u64 {
        match cohort {
            Cohort::Baseline => self.baseline.observations,
            Cohort::Candidate => self.candidate.observations,
        }
    }

    /// Forgets the candidate (a new candidate starts from no evidence).
    pub fn reset_candidate(&mut self) {
        self.candidate = CohortStats::default();
        self.latency = SequentialTest::new();
        self.quality = SequentialTest::new();
        self.errors = SequentialTest::new();
    }

    /// Records an observation; returns a breach if the evidence now shows
    /// one.
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] (nothing is recorded).
    pub fn observe(&mut self, cohort: Cohort, o: Observation) -> Result<Option<Breach>> {
        o.validate()?;
        if cohort == Cohort::Baseline {
            self.baseline.add(&o);
            return Ok(None);
        }
        let c = &self.config;
        if self.baseline.observations >= c.min_baseline_samples {
            let b = &self.baseline;
            let n = b.observations as f64;
            if let Some(q) = b.latency.quantile(c.latency_quantile) {
                let tail = 1.0 - c.latency_quantile;
                let exceed = if o.latency_ms > c.latency_ratio * q {
                    1.0
                } else {
                    0.0
                };
                self.latency.observe(exceed - tail, tail);
            }
            let mu0 = b.quality_sum / n - c.quality_margin;
            if mu0 > 0.0 {
                self.quality.observe(mu0 - o.quality, 1.0 - mu0);
            }
            let e0 = b.errors as f64 / n + c.error_margin;
            if e0 < 1.0 {
                self.errors.observe(f64::from(u8::from(o.error)) - e0, e0);
            }
        }
        self.candidate.add(&o);
        if self.candidate.observations < c.min_samples {
            return Ok(None);
        }
        let level = c.alpha / 3.0;
        for (metric, test) in [
            (Metric::Latency, &self.latency),
            (Metric::Quality, &self.quality),
            (Metric::ErrorRate, &self.errors),
        ] {
            if test.rejects(level) {
                return Ok(Some(Breach {
                    metric,
                    e_value: test.e_value(),
                    candidate: self.candidate.summary(),
                    baseline: self.baseline.summary(),
                }));
            }
        }
        Ok(None)
    }
}
