//! Small statistics: Student-t intervals, Welch's test, quantiles.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Count, mean and unbiased variance of a sample: enough for a t-interval
/// and for Welch's test, and small enough to store as a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Sample size.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Unbiased variance (0 for n < 2).
    pub variance: f64,
}

impl Moments {
    /// The moments of `xs` (non-finite values are skipped).
    pub fn of(xs: impl IntoIterator<Item = f64>) -> Moments {
        let mut m = tuneloop_core::stats::Moments::default();
        xs.into_iter()
            .filter(|x| x.is_finite())
            .for_each(|x| m.push(x));
        Moments {
            n: m.n,
            mean: m.mean,
            variance: m.variance(),
        }
    }

    /// Standard deviation.
    pub fn sd(&self) -> f64 {
        self.variance.sqrt()
    }

    /// The two-sided `1 - alpha` Student-t interval for the mean; the mean
    /// twice when `n < 2`.
    pub fn t_interval(&self, alpha: f64) -> (f64, f64) {
        if self.n < 2 {
            return (self.mean, self.mean);
        }
        let se = (self.variance / self.n as f64).sqrt();
        let q = t_quantile(1.0 - alpha / 2.0, (self.n - 1) as f64);
        (self.mean - q * se, self.mean + q * se)
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df.max(1e-9)) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// One-sided Welch test of `H0: mean(b) - mean(a) <= margin` against
/// `H1: mean(b) - mean(a) > margin` (read: `a` dropped below `b` by more
/// than `margin`). Returns the p-value; with both variances 0 it is 0 if
/// the drop exceeds the margin and 1 otherwise.
pub fn welch_drop_p(a: &Moments, b: &Moments, margin: f64) -> f64 {
    stratified_drop_p(&[(1.0, *a, *b)], margin).1
}

/// The stratified version of [`welch_drop_p`]: each stratum `(w, a, b)`
/// contributes `w · (mean(b) − mean(a))` to the drop and
/// `w² · (var(a)/n(a) + var(b)/n(b))` to its variance, so differences
/// *between* strata (easy and hard task types) add no noise. Degrees of
/// freedom by Welch–Satterthwaite over every component. Returns
/// `(drop, p-value)`; strata with an empty side are skipped.
pub fn stratified_drop_p(strata: &[(f64, Moments, Moments)], margin: f64) -> (f64, f64) {
    let (mut drop, mut se2, mut df_den) = (0.0, 0.0, 0.0);
    let mut any = false;
    let mut small = false;
    for (w, a, b) in strata {
        if a.n == 0 || b.n == 0 {
            continue;
        }
        any = true;
        drop += w * (b.mean - a.mean);
        let va = w * w * a.variance / a.n as f64;
        let vb = w * w * b.variance / b.n as f64;
        se2 += va + vb;
        if a.n < 2 || b.n < 2 {
            small = true;
            continue;
        }
        df_den += va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64;
    }
    if !any {
        return (0.0, 1.0);
    }
    let excess = drop - margin;
    if se2 <= 0.0 {
        return (drop, if excess > 0.0 { 0.0 } else { 1.0 });
    }
    if small {
        return (drop, 1.0);
    }
    let df = se2 * se2 / df_den.max(f64::MIN_POSITIVE);
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => 1.0 - dist.cdf(excess / se2.sqrt()),
        Err(_) => 1.0,
    };
    (drop, p)
}

/// Holm's step-down procedure: which of the p-values are rejected at
/// family-wise error rate `alpha`.
pub fn holm(p_values: &[f64], alpha: f64) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut rejected = vec![false; m];
    for (rank, &i) in order.iter().enumerate() {
        if p_values[i] <= alpha / (m - rank) as f64 {
            rejected[i] = true;
        } else {
            break;
        }
    }
    rejected
}

/// The `q` quantile (linear interpolation between order statistics, as
/// numpy's default) of `xs`; `None` when empty.
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    Some(tuneloop_core::stats::quantile_sorted(&v, q))
}

/// One-way ANOVA across groups: the p-value of "all group means are
/// equal". `None` with fewer than two groups or no within-group spread.
pub fn anova_p(groups: &[Vec<f64>]) -> Option<f64> {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let k = groups.len();
    let n: usize = groups.iter().map(|g| g.len()).sum();
    if k < 2 || n <= k {
        return None;
    }
    let grand = groups.iter().flat_map(|g| g.iter()).sum::<f64>() / n as f64;
    let (mut ssb, mut ssw) = (0.0, 0.0);
    for g in &groups {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        ssb += g.len() as f64 * (m - grand).powi(2);
        ssw += g.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    }
    if ssw <= 0.0 {
        return None;
    }
    let f = (ssb / (k - 1) as f64) / (ssw / (n - k) as f64);
    let dist = statrs::distribution::FisherSnedecor::new((k - 1) as f64, (n - k) as f64).ok()?;
    Some(1.0 - dist.cdf(f))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scores are exact ratios of small integers
mod tests {
    use super::*;

    #[test]
    fn moments_and_t_interval_match_reference_values() {
        let m = Moments::of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m.n, 8);
        assert!((m.mean - 5.0).abs() < 1e-12);
        assert!((m.variance - 32.0 / 7.0).abs() < 1e-12);
        // scipy.stats.t.ppf(0.975, 7) = 2.364624251592784
        let (lo, hi) = m.t_interval(0.05);
        let half = 2.364_624_251_592_784 * (32.0f64 / 7.0 / 8.0).sqrt();
        assert!((lo - (5.0 - half)).abs() < 1e-9 && (hi - (5.0 + half)).abs() < 1e-9);
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind([3,4,5,6,7,8], [1,2,3,4,5], equal_var=False,
        // alternative='greater'): t = 2.401922, df = 8.989362, p = 0.0199015.
        let a = Moments::of([1.0, 2.0, 3.0, 4.0, 5.0]);
        let b = Moments::of([3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        // H1: a < b, i.e. mean(b) - mean(a) > 0.
        let p = welch_drop_p(&a, &b, 0.0);
        assert!((p - 0.019_901_541).abs() < 1e-6, "{p}");
        // A margin as large as the difference gives p = 0.5.
        assert!((welch_drop_p(&a, &b, 2.5) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_stratified_test_matches_a_numpy_transcription() {
        // Two strata weighted 0.6 / 0.4, margin 0.02; reference computed
        // with numpy + scipy.stats.t.sf: drop 0.2342857142857143,
        // df 11.847194039714557, p 0.11091009538639011.
        let a1 = Moments::of([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        let b1 = Moments::of([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        let a2 = Moments::of([0.5, 0.2, 0.4, 0.9]);
        let b2 = Moments::of([0.8, 0.9, 0.7, 0.6, 1.0]);
        let (drop, p) = stratified_drop_p(&[(0.6, a1, b1), (0.4, a2, b2)], 0.02);
        assert!((drop - 0.234_285_714_285_714_3).abs() < 1e-12, "{drop}");
        assert!((p - 0.110_910_095_386_390_11).abs() < 1e-9, "{p}");
        // One stratum of weight 1 is Welch's test.
        assert_eq!(
            stratified_drop_p(&[(1.0, a1, b1)], 0.0).1,
            welch_drop_p(&a1, &b1, 0.0)
        );
    }

    #[test]
    fn holm_rejects_step_down() {
        assert_eq!(holm(&[0.01, 0.04, 0.03], 0.05), vec![true, false, false]);
        assert_eq!(holm(&[0.001, 0.02, 0.04], 0.05), vec![true, true, true]);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.5), Some(2.5));
        // numpy.quantile([1,2,3,4], 0.95) = 3.85
        assert!((quantile(&xs, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn anova_matches_scipy() {
        // scipy.stats.f_oneway([1,2,3], [2,3,4], [5,6,7]): F = 13.0, p = 0.006591
        let p = anova_p(&[
            vec![1.0, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![5.0, 6.0, 7.0],
        ])
        .unwrap();
        assert!((p - 0.006_591).abs() < 1e-5, "{p}");
    }
}
