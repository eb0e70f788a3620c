//! Off-policy estimators with the definitions of Open Bandit Pipeline
//! (Saito et al.), percentile-bootstrap and analytic normal intervals.
//!
//! With `w_i = π(a_i|x_i) / μ(a_i|x_i)`, `q̂_π,i = Σ_a π(a|x_i) q̂(x_i, a) /
//! Σ_a π(a|x_i)` and `δ_i = r_i − q̂(x_i, a_i)`:
//!
//! | estimator | value |
//! |---|---|
//! | `ipw` | `mean(min(w, clip)·r)` |
//! | `snipw` | `Σ w·r / Σ w` |
//! | `dm` | `mean(q̂_π)` |
//! | `dr` | `mean(q̂_π + w·δ)` |
//! | `sndr` | `mean(q̂_π) + Σ w·δ / Σ w` |
//! | `switch-dr` | `mean(q̂_π + 1[w ≤ τ]·w·δ)` |
//! | `dros` | `mean(q̂_π + λw/(w² + λ)·δ)` |
//!
//! Clipping applies to `ipw` only. The bootstrap draws `B` resamples of the
//! rounds with replacement (resample `b` from a wyrand stream seeded by the
//! seed and `b`, so results do not depend on the number of threads), evaluates every
//! estimator on the same resample — self-normalized ones renormalize inside
//! it — and reports the `α/2` and `1 − α/2` percentiles (linear
//! interpolation, as numpy's default). Open Bandit Pipeline instead
//! resamples per-round values normalized by the full-sample mean weight;
//! the two agree to Monte-Carlo error.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::data::OpeData;
use crate::error::{Error, Result, check_setting};
use tuneloop_core::hash::splitmix64;

/// An off-policy estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EstimatorKind {
    /// Inverse propensity weighting.
    Ipw,
    /// Self-normalized inverse propensity weighting.
    Snipw,
    /// Direct method.
    Dm,
    /// Doubly robust.
    Dr,
    /// Self-normalized doubly robust.
    Sndr,
    /// Switch doubly robust.
    SwitchDr,
    /// Doubly robust with optimistic shrinkage.
    Dros,
}

impl EstimatorKind {
    /// Every estimator, in output order.
    pub const ALL: [EstimatorKind; 7] = [
        EstimatorKind::Ipw,
        EstimatorKind::Snipw,
        EstimatorKind::Dm,
        EstimatorKind::Dr,
        EstimatorKind::Sndr,
        EstimatorKind::SwitchDr,
        EstimatorKind::Dros,
    ];

    /// Its name, as on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Ipw => "ipw",
            EstimatorKind::Snipw => "snipw",
            EstimatorKind::Dm => "dm",
            EstimatorKind::Dr => "dr",
            EstimatorKind::Sndr => "sndr",
            EstimatorKind::SwitchDr => "switch-dr",
            EstimatorKind::Dros => "dros",
        }
    }

    /// The estimator of this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether it needs reward-model predictions.
    pub fn needs_reward_model(self) -> bool {
        !matches!(self, EstimatorKind::Ipw | EstimatorKind::Snipw)
    }
}

/// Settings of the estimators and their intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimatorSettings {
    /// Largest importance weight `ipw` uses (`None`: no clipping).
    pub clip: Option<f64>,
    /// Switch-DR's threshold τ (default 5).
    pub switch_tau: f64,
    /// DRos's shrinkage λ (default 100).
    pub dros_lambda: f64,
    /// Bootstrap resamples (default 10,000; 0 skips the bootstrap).
    pub bootstrap: usize,
    /// Two-sided interval level is `1 − alpha` (default 0.05).
    pub alpha: f64,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for EstimatorSettings {
    fn default() -> Self {
        EstimatorSettings {
            clip: None,
            switch_tau: 5.0,
            dros_lambda: 100.0,
            bootstrap: 10_000,
            alpha: 0.05,
            seed: 0,
        }
    }
}

impl EstimatorSettings {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn check(&self) -> Result<()> {
        if let Some(c) = self.clip {
            check_setting("clip", c, c > 0.0, "a clipping weight > 0")?;
        }
        check_setting(
            "switch_tau",
            self.switch_tau,
            self.switch_tau >= 0.0,
            "tau >= 0",
        )?;
        check_setting(
            "dros_lambda",
            self.dros_lambda,
            self.dros_lambda >= 0.0,
            "lambda >= 0",
        )?;
        check_setting(
            "alpha",
            self.alpha,
            self.alpha > 0.0 && self.alpha < 1.0,
            "0 < alpha < 1",
        )?;
        Ok(())
    }
}

/// One estimator's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Point estimate of the target policy's value.
    pub estimate: f64,
    /// Lower percentile-bootstrap bound (`None` without a bootstrap).
    pub ci_low: Option<f64>,
    /// Upper percentile-bootstrap bound.
    pub ci_high: Option<f64>,
    /// Lower bound of the analytic normal interval.
    pub normal_low: f64,
    /// Upper bound of the analytic normal interval.
    pub normal_high: f64,
    /// Effective sample size of the weights it uses, `(Σw)² / Σw²` (`n` for DM).
    pub ess: f64,
    /// Largest weight it uses.
    pub max_weight: f64,
    /// Rounds where the target puts mass on actions the logger could not
    /// take. The input gives only the logged action's propensity, so a
    /// round counts when that propensity is 1 (the logger was
    /// deterministic) and the target gives the other actions mass.
    pub unsupported_rounds: usize,
}

/// Per-round quantities every estimator is a function of.
#[derive(Debug)]
struct Rounds {
    /// `r`, for the logging policy's on-policy value.
    r: Vec<f64>,
    /// `min(w, clip)·r`.
    ipw: Vec<f64>,
    /// `w·r`.
    wr: Vec<f64>,
    w: Vec<f64>,
    /// `q̂_π` (zeros without a reward model).
    dm: Vec<f64>,
    /// `w·δ`.
    corr: Vec<f64>,
    /// `1[w ≤ τ]·w·δ`.
    switch: Vec<f64>,
    /// `λw/(w²+λ)·δ`.
    dros: Vec<f64>,
    clipped_w: Vec<f64>,
    switch_w: Vec<f64>,
    dros_w: Vec<f64>,
}

impl Rounds {
    fn new(d: &OpeData, s: &EstimatorSettings) -> Self {
        let n = d.len();
        let mut r = Rounds {
            r: Vec::with_capacity(n),
            ipw: Vec::with_capacity(n),
            wr: Vec::with_capacity(n),
            w: Vec::with_capacity(n),
            dm: Vec::with_capacity(n),
            corr: Vec::with_capacity(n),
            switch: Vec::with_capacity(n),
            dros: Vec::with_capacity(n),
            clipped_w: Vec::with_capacity(n),
            switch_w: Vec::with_capacity(n),
            dros_w: Vec::with_capacity(n),
        };
        for i in 0..n {
            let a = d.action(i);
            let target = d.target(i);
            let w = target[a] / d.propensity(i);
            let reward = d.reward(i);
            let cw = s.clip.map_or(w, |c| w.min(c));
            let (qpi, delta) = match d.reward_hat(i) {
                Some(q) => {
                    let total: f64 = target.iter().sum();
                    let qpi = target.iter().zip(q).map(|(p, q)| p * q).sum::<f64>() / total;
                    (qpi, reward - q[a])
                }
                None => (0.0, 0.0),
            };
            let sw = if w <= s.switch_tau { w } else { 0.0 };
            let dw = if s.dros_lambda > 0.0 {
                s.dros_lambda * w / (w * w + s.dros_lambda)
            } else {
                0.0
            };
            r.r.push(reward);
            r.ipw.push(cw * reward);
            r.wr.push(w * reward);
            r.w.push(w);
            r.dm.push(qpi);
            r.corr.push(w * delta);
            r.switch.push(sw * delta);
            r.dros.push(dw * delta);
            r.clipped_w.push(cw);
            r.switch_w.push(sw);
            r.dros_w.push(dw);
        }
        r
    }
}

/// A column of [`Rounds`] that some estimator sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    R,
    Ipw,
    Wr,
    W,
    Dm,
    Corr,
    Switch,
    Dros,
}

impl EstimatorKind {
    fn columns(self) -> &'static [Column] {
        match self {
            EstimatorKind::Ipw => &[Column::Ipw],
            EstimatorKind::Snipw => &[Column::Wr, Column::W],
            EstimatorKind::Dm => &[Column::Dm],
            EstimatorKind::Dr => &[Column::Dm, Column::Corr],
            EstimatorKind::Sndr => &[Column::Dm, Column::Corr, Column::W],
            EstimatorKind::SwitchDr => &[Column::Dm, Column::Switch],
            EstimatorKind::Dros => &[Column::Dm, Column::Dros],
        }
    }
}

impl Rounds {
    fn column(&self, c: Column) -> &[f64] {
        match c {
            Column::R => &self.r,
            Column::Ipw => &self.ipw,
            Column::Wr => &self.wr,
            Column::W => &self.w,
            Column::Dm => &self.dm,
            Column::Corr => &self.corr,
            Column::Switch => &self.switch,
            Column::Dros => &self.dros,
        }
    }

    /// One row per round holding just `columns` (zero-padded to `N`), so a
    /// resample gathers one short contiguous row per draw.
    fn rows<const N: usize>(&self, columns: &[Column]) -> Vec<Row<N>> {
        let cols: Vec<&[f64]> = columns.iter().map(|&c| self.column(c)).collect();
        (0..self.w.len())
            .map(|i| {
                let mut row = Row([0.0; N]);
                for (slot, col) in row.0.iter_mut().zip(&cols) {
                    *slot = col[i];
                }
                row
            })
            .collect()
    }
}

/// One round's bootstrap columns, aligned to 16 bytes (a row's length is a
/// multiple of 16) so that the additions read each two-value half
/// straight from memory (SSE2's `addpd` takes only an aligned memory
/// operand; an unaligned row costs a separate load per half). About 6% off
/// `ope`'s time on the OBD fixture.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Row<const N: usize>([f64; N]);

/// Sums over one (re)sample, from which every estimator follows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    r: f64,
    ipw: f64,
    wr: f64,
    w: f64,
    dm: f64,
    corr: f64,
    switch: f64,
    dros: f64,
}

impl Sums {
    fn from_columns(n: usize, columns: &[Column], values: &[f64]) -> Self {
        let mut s = Sums {
            n: n as f64,
            ..Sums::default()
        };
        for (&c, &v) in columns.iter().zip(values) {
            match c {
                Column::R => s.r = v,
                Column::Ipw => s.ipw = v,
                Column::Wr => s.wr = v,
                Column::W => s.w = v,
                Column::Dm => s.dm = v,
                Column::Corr => s.corr = v,
                Column::Switch => s.switch = v,
                Column::Dros => s.dros = v,
            }
        }
        s
    }

    #[inline]
    fn add(&mut self, r: &Rounds, i: usize) {
        self.n += 1.0;
        self.r += r.r[i];
        self.ipw += r.ipw[i];
        self.wr += r.wr[i];
        self.w += r.w[i];
        self.dm += r.dm[i];
        self.corr += r.corr[i];
        self.switch += r.switch[i];
        self.dros += r.dros[i];
    }

    fn value(&self, kind: EstimatorKind) -> f64 {
        let n = self.n;
        // A resample whose weights are all zero says nothing about the
        // self-normalized part: it contributes 0.
        let sn = |num: f64| if self.w > 0.0 { num / self.w } else { 0.0 };
        match kind {
            EstimatorKind::Ipw => self.ipw / n,
            EstimatorKind::Snipw => sn(self.wr),
            EstimatorKind::Dm => self.dm / n,
            EstimatorKind::Dr => (self.dm + self.corr) / n,
            EstimatorKind::Sndr => self.dm / n + sn(self.corr),
            EstimatorKind::SwitchDr => (self.dm + self.switch) / n,
            EstimatorKind::Dros => (self.dm + self.dros) / n,
        }
    }
}

pub use tuneloop_core::stats::quantile_sorted as percentile_sorted;

/// Draws resample `b`'s `n` indices and returns its sums.
///
/// Resample `b` has a stream of its own: `fastrand`'s wyrand generator
/// seeded with `splitmix64(seed ^ splitmix64(b))`, so the bootstrap's
/// result depends on the seed alone, not on the number of threads or on
/// which thread drew which resample. Each 64-bit draw yields two indices by
/// 32-bit multiply-shift (bias below `n / 2³²`, 2.3e-6 at n = 10,000: the
/// generator is most of the bootstrap's cost); inputs of 2³² rounds or more
/// use one unbiased draw per index. Two accumulators alternate so the
/// additions do not wait on each other.
fn resample<const N: usize>(rows: &[Row<N>], seed: u64, b: usize) -> [f64; N] {
    let mut rng = fastrand::Rng::with_seed(splitmix64(seed ^ splitmix64(b as u64)));
    let n = rows.len();
    let mut acc0 = [0.0; N];
    let mut acc1 = [0.0; N];
    let add = |acc: &mut [f64; N], i: usize| {
        for (a, v) in acc.iter_mut().zip(&rows[i].0) {
            *a += v;
        }
    };
    if n <= u32::MAX as usize {
        let n64 = n as u64;
        for _ in 0..n / 2 {
            let v = rng.u64(..);
            add(&mut acc0, (((v & 0xffff_ffff) * n64) >> 32) as usize);
            add(&mut acc1, (((v >> 32) * n64) >> 32) as usize);
        }
        if n % 2 == 1 {
            add(
                &mut acc0,
                (((rng.u64(..) & 0xffff_ffff) * n64) >> 32) as usize,
            );
        }
    } else {
        for _ in 0..n {
            add(&mut acc0, rng.usize(..n));
        }
    }
    for (a, b) in acc0.iter_mut().zip(acc1) {
        *a += b;
    }
    acc0
}

/// What a bootstrap replicate is computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantity {
    Estimator(EstimatorKind),
    /// The mean logged reward: the logging policy's on-policy value.
    Logged,
    /// An estimator minus the mean logged reward, on the same resample.
    Difference(EstimatorKind),
}

impl Quantity {
    fn columns(self) -> Vec<Column> {
        match self {
            Quantity::Estimator(k) => k.columns().to_vec(),
            Quantity::Logged => vec![Column::R],
            Quantity::Difference(k) => {
                let mut c = k.columns().to_vec();
                c.push(Column::R);
                c
            }
        }
    }

    fn value(self, s: &Sums) -> f64 {
        match self {
            Quantity::Estimator(k) => s.value(k),
            Quantity::Logged => s.r / s.n,
            Quantity::Difference(k) => s.value(k) - s.r / s.n,
        }
    }
}

/// Bootstrap replicates of every requested quantity: `out[e][b]`.
fn bootstrap(r: &Rounds, kinds: &[Quantity], b_total: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut columns: Vec<Column> = Vec::new();
    for k in kinds {
        for c in k.columns() {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
    }
    if columns.len() <= 4 {
        bootstrap_rows(&r.rows::<4>(&columns), &columns, kinds, b_total, seed)
    } else {
        bootstrap_rows(&r.rows::<8>(&columns), &columns, kinds, b_total, seed)
    }
}

fn bootstrap_rows<const N: usize>(
    rows: &[Row<N>],
    columns: &[Column],
    kinds: &[Quantity],
    b_total: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let sums = crate::par::map_range(b_total, |b| {
        Sums::from_columns(rows.len(), columns, &resample(rows, seed, b))
    });
    kinds
        .iter()
        .map(|k| sums.iter().map(|s| k.value(s)).collect())
        .collect()
}

/// Rounds logged with propensity 1 whose target puts mass elsewhere.
pub(crate) fn unsupported_rounds(data: &OpeData) -> usize {
    (0..data.len())
        .filter(|&i| {
            data.propensity(i) >= 1.0 - 1e-12 && data.target(i)[data.action(i)] < 1.0 - 1e-12
        })
        .count()
}

fn ess_and_max(w: &[f64]) -> (f64, f64) {
    let (s, s2, m) = w.iter().fold((0.0, 0.0, 0.0f64), |(s, s2, m), &v| {
        (s + v, s2 + v * v, m.max(v))
    });
    (if s2 > 0.0 { s * s / s2 } else { 0.0 }, m)
}

/// Standard error of a mean of `values`.
fn standard_error(values: impl Iterator<Item = f64> + Clone, n: usize) -> f64 {
    let nf = n as f64;
    let mean = values.clone().sum::<f64>() / nf;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0).max(1.0);
    (var / nf).sqrt()
}

/// Estimates of the requested estimators on `data`, with intervals.
///
/// # Errors
/// [`Error::InvalidSetting`], or [`Error::NeedsRewardModel`] when DM or a
/// DR variant is asked for on data without `reward_hat`.
pub fn estimate(
    data: &OpeData,
    kinds: &[EstimatorKind],
    s: &EstimatorSettings,
) -> Result<Vec<(EstimatorKind, Estimate)>> {
    s.check()?;
    for &k in kinds {
        if k.needs_reward_model() && !data.has_reward_hat() {
            return Err(Error::NeedsRewardModel {
                estimator: k.name(),
            });
        }
    }
    let n = data.len();
    let r = Rounds::new(data, s);
    let mut full = Sums::default();
    for i in 0..n {
        full.add(&r, i);
    }
    let unsupported = unsupported_rounds(data);
    let z = Normal::new(0.0, 1.0)
        .map(|d| d.inverse_cdf(1.0 - s.alpha / 2.0))
        .unwrap_or(1.959_963_984_540_054);
    let boot = if s.bootstrap > 0 {
        let qs: Vec<Quantity> = kinds.iter().map(|&k| Quantity::Estimator(k)).collect();
        Some(bootstrap(&r, &qs, s.bootstrap, s.seed))
    } else {
        None
    };
    let mut out = Vec::with_capacity(kinds.len());
    for (e, &k) in kinds.iter().enumerate() {
        let est = full.value(k);
        let wbar = full.w / n as f64;
        // Influence values whose mean is the estimator, for the analytic interval.
        let se = match k {
            EstimatorKind::Ipw => standard_error(r.ipw.iter().copied(), n),
            EstimatorKind::Snipw => standard_error(
                r.wr.iter().zip(&r.w).map(|(wr, w)| {
                    if wbar > 0.0 {
                        (wr - w * est) / wbar
                    } else {
                        0.0
                    }
                }),
                n,
            ),
            EstimatorKind::Dm => standard_error(r.dm.iter().copied(), n),
            EstimatorKind::Dr => standard_error(r.dm.iter().zip(&r.corr).map(|(a, b)| a + b), n),
            EstimatorKind::Sndr => {
                let c = if full.w > 0.0 {
                    full.corr / full.w
                } else {
                    0.0
                };
                standard_error(
                    r.dm.iter().zip(&r.corr).zip(&r.w).map(|((dm, corr), w)| {
                        dm + if wbar > 0.0 {
                            (corr - w * c) / wbar
                        } else {
                            0.0
                        }
                    }),
                    n,
                )
            }
            EstimatorKind::SwitchDr => {
                standard_error(r.dm.iter().zip(&r.switch).map(|(a, b)| a + b), n)
            }
            EstimatorKind::Dros => standard_error(r.dm.iter().zip(&r.dros).map(|(a, b)| a + b), n),
        };
        let (ess, max_weight) = match k {
            EstimatorKind::Ipw => ess_and_max(&r.clipped_w),
            EstimatorKind::Dm => (n as f64, 0.0),
            EstimatorKind::SwitchDr => ess_and_max(&r.switch_w),
            EstimatorKind::Dros => ess_and_max(&r.dros_w),
            _ => ess_and_max(&r.w),
        };
        let (ci_low, ci_high) = match &boot {
            Some(b) => {
                let mut v = b[e].clone();
                v.sort_by(f64::total_cmp);
                (
                    Some(percentile_sorted(&v, s.alpha / 2.0)),
                    Some(percentile_sorted(&v, 1.0 - s.alpha / 2.0)),
                )
            }
            None => (None, None),
        };
        out.push((
            k,
            Estimate {
                estimate: est,
                ci_low,
                ci_high,
                normal_low: est - z * se,
                normal_high: est + z * se,
                ess,
                max_weight,
                unsupported_rounds: unsupported,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear_interpolation() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile_sorted(&v, 0.025) - 1.075).abs() < 1e-12);
        assert!((percentile_sorted(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((percentile_sorted(&v, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn names_round_trip() {
        for k in EstimatorKind::ALL {
            assert_eq!(EstimatorKind::from_name(k.name()), Some(k));
        }
        assert_eq!(EstimatorKind::from_name("nope"), None);
    }
}

/// A paired comparison: candidate minus the logging policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Point estimate of the difference.
    pub estimate: f64,
    /// Two-sided percentile-bootstrap interval at level `1 − alpha`.
    pub ci_low: f64,
    /// Upper end of that interval.
    pub ci_high: f64,
    /// One-sided lower bound at level `1 − alpha` (the `alpha` percentile).
    pub lower_one_sided: f64,
}

/// The logging policy's value (mean logged reward, with intervals) and the
/// paired difference `kind − logged` on the same bootstrap resamples.
///
/// # Errors
/// As [`estimate`]; a bootstrap of 0 resamples is refused here.
pub(crate) fn paired_difference(
    data: &OpeData,
    kind: EstimatorKind,
    s: &EstimatorSettings,
) -> Result<(Estimate, Paired)> {
    s.check()?;
    check_setting(
        "bootstrap",
        s.bootstrap as f64,
        s.bootstrap >= 10,
        "at least 10 resamples for a verdict",
    )?;
    if kind.needs_reward_model() && !data.has_reward_hat() {
        return Err(Error::NeedsRewardModel {
            estimator: kind.name(),
        });
    }
    let n = data.len();
    let r = Rounds::new(data, s);
    let mut full = Sums::default();
    for i in 0..n {
        full.add(&r, i);
    }
    let boot = bootstrap(
        &r,
        &[Quantity::Logged, Quantity::Difference(kind)],
        s.bootstrap,
        s.seed,
    );
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let mut boot = boot.into_iter();
    let logged = sorted(boot.next().unwrap_or_default());
    let diff = sorted(boot.next().unwrap_or_default());
    let z = Normal::new(0.0, 1.0)
        .map(|d| d.inverse_cdf(1.0 - s.alpha / 2.0))
        .unwrap_or(1.959_963_984_540_054);
    let mean = full.r / n as f64;
    let se = standard_error(r.r.iter().copied(), n);
    let baseline = Estimate {
        estimate: mean,
        ci_low: Some(percentile_sorted(&logged, s.alpha / 2.0)),
        ci_high: Some(percentile_sorted(&logged, 1.0 - s.alpha / 2.0)),
        normal_low: mean - z * se,
        normal_high: mean + z * se,
        ess: n as f64,
        max_weight: 1.0,
        unsupported_rounds: 0,
    };
    let paired = Paired {
        estimate: Quantity::Difference(kind).value(&full),
        ci_low: percentile_sorted(&diff, s.alpha / 2.0),
        ci_high: percentile_sorted(&diff, 1.0 - s.alpha / 2.0),
        lower_one_sided: percentile_sorted(&diff, s.alpha),
    };
    Ok((baseline, paired))
}

/// The percentile-bootstrap distribution of the mean of `values` (sorted),
/// drawn as the estimators' resamples are.
pub(crate) fn bootstrap_mean(values: &[f64], b_total: usize, seed: u64) -> Vec<f64> {
    let rows: Vec<Row<2>> = values.iter().map(|&v| Row([v, 0.0])).collect();
    let n = rows.len() as f64;
    let mut out = crate::par::map_range(b_total, |b| resample(&rows, seed, b)[0] / n);
    out.sort_by(f64::total_cmp);
    out
}

/// Per-round doubly robust values `q̂_π + w·δ` of `data`'s target policy.
pub(crate) fn dr_rounds(data: &OpeData) -> Result<Vec<f64>> {
    if !data.has_reward_hat() {
        return Err(Error::NeedsRewardModel { estimator: "dr" });
    }
    let r = Rounds::new(data, &EstimatorSettings::default());
    Ok(r.dm.iter().zip(&r.corr).map(|(a, b)| a + b).collect())
}
