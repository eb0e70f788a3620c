//! The two statistics every crate needs, written once: running moments
//! (Welford's update) and the quantile of sorted values (numpy's default,
//! linear interpolation).

use serde::{Deserialize, Serialize};

/// Count, mean and the sum of squared deviations of a stream of values,
/// updated one value at a time without cancellation (Welford).
///
/// ```
/// use tuneloop_core::stats::Moments;
/// let mut m = Moments::default();
/// [1.0, 2.0, 4.0].into_iter().for_each(|x| m.push(x));
/// assert_eq!(m.n, 3);
/// assert!((m.mean - 7.0 / 3.0).abs() < 1e-15);
/// assert!((m.variance() - 7.0 / 3.0).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Values seen.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The unbiased sample variance (0 below two values).
    pub fn variance(&self) -> f64 {
        if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        }
    }
}

/// The `q`-quantile of `sorted` (ascending) with linear interpolation
/// between order statistics, as numpy's default; `q` is clamped to
/// `[0, 1]`. NaN when `sorted` is empty.
///
/// ```
/// use tuneloop_core::stats::quantile_sorted;
/// assert!((quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25) - 1.75).abs() < 1e-15);
/// assert!(quantile_sorted(&[], 0.5).is_nan());
/// ```
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_match_the_two_pass_formulas_on_large_offsets() {
        // Values near 1e9 with spread 1: the naive sum of squares loses
        // every digit; Welford keeps the variance exact to 1e-6.
        let xs: Vec<f64> = (0..1000).map(|i| 1e9 + f64::from(i % 7)).collect();
        let mut m = Moments::default();
        xs.iter().for_each(|&x| m.push(x));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0;
        assert!((m.mean - mean).abs() < 1e-6 && (m.variance() - var).abs() < 1e-6);
        assert!(Moments::default().variance().abs() < f64::EPSILON);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([3, 1, 4, 1, 5], q) for q = 0, 0.1, 0.5, 0.9, 1.
        let mut v = [3.0, 1.0, 4.0, 1.0, 5.0];
        v.sort_by(f64::total_cmp);
        for (q, want) in [(0.0, 1.0), (0.1, 1.0), (0.5, 3.0), (0.9, 4.6), (1.0, 5.0)] {
            assert!((quantile_sorted(&v, q) - want).abs() < 1e-12, "{q}");
        }
    }
}
