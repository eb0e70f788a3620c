//! A streaming quantile estimator with a guaranteed relative error: the
//! DDSketch of Masson, Rim and Lee (VLDB 2019).

use serde::{Deserialize, Serialize};

/// Relative accuracy of [`QuantileSketch`]: every quantile it reports is
/// within 1% of a value whose rank is exactly the requested one.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Values at or below this are counted as zero (latencies in ms).
const MIN_POSITIVE: f64 = 1e-9;

/// Streaming quantiles of non-negative values with relative error at most
/// [`RELATIVE_ACCURACY`], in memory logarithmic in the value range.
///
/// Value `x > 0` lands in bucket `⌈log_γ x⌉` with `γ = (1 + α)/(1 − α)`;
/// a quantile is answered by the bucket holding its rank, as
/// `2γ^i/(γ + 1)`, which is within relative `α` of every value in the
/// bucket.
///
/// ```
/// use tuneloop_rollout::QuantileSketch;
/// let mut s = QuantileSketch::new();
/// for i in 1..=1000 { s.add(f64::from(i)); }
/// let p99 = s.quantile(0.99).unwrap_or(0.0);
/// assert!((p99 - 990.0).abs() <= 0.01 * 990.0 + 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SketchState")]
pub struct QuantileSketch {
    /// Counts of buckets `offset .. offset + counts.len()`.
    counts: Vec<u64>,
    offset: i32,
    zeros: u64,
    total: u64,
}

/// A sketch as read from a file, checked before it becomes one: the buckets
/// must be ones a value can land in, and the counts must add up (a tampered
/// offset would otherwise make the next value allocate gigabytes).
#[derive(Deserialize)]
struct SketchState {
    counts: Vec<u64>,
    offset: i32,
    zeros: u64,
    total: u64,
}

impl TryFrom<SketchState> for QuantileSketch {
    type Error = String;

    fn try_from(s: SketchState) -> Result<Self, String> {
        let lowest = (MIN_POSITIVE.ln() / gamma_ln()).ceil() as i64;
        let highest = (f64::MAX.ln() / gamma_ln()).ceil() as i64;
        let last = i64::from(s.offset) + s.counts.len() as i64 - 1;
        if !s.counts.is_empty() && (i64::from(s.offset) < lowest || last > highest) {
            return Err(format!(
                "sketch buckets {}..={last} are outside the possible {lowest}..={highest}",
                s.offset
            ));
        }
        let sum = s
            .counts
            .iter()
            .try_fold(s.zeros, |acc, &c| acc.checked_add(c));
        if sum != Some(s.total) {
            return Err(format!(
                "sketch counts add up to {sum:?}, not its total {}",
                s.total
            ));
        }
        Ok(QuantileSketch {
            counts: s.counts,
            offset: s.offset,
            zeros: s.zeros,
            total: s.total,
        })
    }
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        QuantileSketch {
            counts: Vec::new(),
            offset: 0,
            zeros: 0,
            total: 0,
        }
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds a value; NaN, infinite and negative values are ignored (callers
    /// check their input first).
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        self.total = self.total.saturating_add(1);
        if x <= MIN_POSITIVE {
            self.zeros = self.zeros.saturating_add(1);
            return;
        }
        let idx = (x.ln() / gamma_ln()).ceil() as i32;
        if self.counts.is_empty() {
            self.offset = idx;
            self.counts.push(0);
        }
        if idx < self.offset {
            let grow = (self.offset - idx) as usize;
            let mut v = vec![0; grow];
            v.extend_from_slice(&self.counts);
            self.counts = v;
            self.offset = idx;
        }
        let pos = (idx - self.offset) as usize;
        if pos >= self.counts.len() {
            self.counts.resize(pos + 1, 0);
        }
        self.counts[pos] = self.counts[pos].saturating_add(1);
    }

    /// The `q`-quantile (`q` in `[0, 1]`, the value of rank `⌊q·(n − 1)⌋`),
    /// or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 || !q.is_finite() {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.total - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let g = gamma_ln().exp();
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                let idx = self.offset + i as i32;
                return Some(2.0 * (f64::from(idx) * gamma_ln()).exp() / (g + 1.0));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tampered_sketch_is_refused_on_reading() -> serde_json::Result<()> {
        let mut s = super::QuantileSketch::new();
        for i in 1..=100 {
            s.add(f64::from(i));
        }
        let good = serde_json::to_value(&s)?;
        assert_eq!(
            serde_json::from_value::<super::QuantileSketch>(good.clone())?,
            s
        );
        let mut far = good.clone();
        far["offset"] = serde_json::json!(-2_000_000_000);
        assert!(serde_json::from_value::<super::QuantileSketch>(far).is_err());
        let mut miscounted = good;
        miscounted["total"] = serde_json::json!(u64::MAX);
        assert!(serde_json::from_value::<super::QuantileSketch>(miscounted).is_err());
        Ok(())
    }

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn quantiles_are_within_the_stated_relative_error(
            mut values in proptest::collection::vec(0.001f64..1e6, 1..2000),
            q in 0.0f64..=1.0,
        ) {
            let mut s = QuantileSketch::new();
            for &v in &values { s.add(v); }
            values.sort_by(f64::total_cmp);
            let rank = (q * (values.len() - 1) as f64).floor() as usize;
            let exact = values[rank];
            let got = s.quantile(q).unwrap_or(f64::NAN);
            prop_assert!((got - exact).abs() <= RELATIVE_ACCURACY * exact * (1.0 + 1e-9), "{} vs {}", got, exact);
        }
    }

    #[test]
    fn zeros_and_bad_values() {
        let mut s = QuantileSketch::new();
        assert_eq!(s.quantile(0.5), None);
        s.add(0.0);
        s.add(f64::NAN);
        s.add(-1.0);
        s.add(100.0);
        assert_eq!(s.count(), 2);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert!((s.quantile(1.0).unwrap_or(0.0) - 100.0).abs() <= 1.0);
    }
}
