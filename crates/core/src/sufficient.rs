//! The additive part of a linear learner's state, to share learning between
//! processes without a central learner.
//!
//! A ridge regression's data enters its state only through sums: with
//! `n` observations `(x, r)`, `A = λI + Σ x xᵀ` and `b = Σ r x`. Sums add
//! up, so the learning of several processes combines exactly: each process
//! sends what it added since it last heard the merged state (a *delta*,
//! [`SufficientStatistics::delta_since`]), someone adds the deltas up
//! ([`SufficientStatistics::merge`]) and every process replaces its state
//! by the sum ([`Policy::replace_statistics`](crate::Policy::replace_statistics)).
//! The merged state is then the state of one learner fed every update, up
//! to the rounding of floating-point sums taken in another order.
//!
//! # Discount
//!
//! A discounted learner (`γ` in `(0, 1)`) forgets before each update of a
//! block: `S ← γS + x xᵀ`, so `k` updates scale what came before by `γᵏ`.
//! The statistics count each block's updates (`updates`), and a merge
//! follows the same rule: merging a delta of `k` updates scales the merged
//! sums by `γᵏ` before adding the delta's (itself discounted within its
//! `k` updates). The merged state is then exactly the state of one
//! discounted learner fed the updates **delta after delta, in the order
//! the deltas were merged**: each process's updates of one delta stay
//! together, and what another process learned meanwhile is forgotten as if
//! it had come first. Without a discount the order does not matter.
//!
//! ```
//! use tuneloop_core::SufficientStatistics;
//! let zero = SufficientStatistics::zeros(1, 2, None);
//! let mut merged = zero.clone();
//! let mut mine = zero.clone();
//! mine.add(0, &[1.0, 2.0], 0.5)?;
//! merged.merge(&mine.delta_since(&zero)?)?;
//! assert_eq!(merged, mine);
//! # Ok::<(), tuneloop_core::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Upper bound on `blocks × dim²`, checked on everything read from outside
/// (a database row, a file): 16 million values, 128 MB.
pub const MAX_STATISTICS_VALUES: usize = 1 << 24;

/// What one regression has added up: the data part of `A` and `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// `Σ x xᵀ` (discounted), its upper triangle packed row after row:
    /// `dim (dim + 1) / 2` values, row `i` holding columns `i..dim`.
    pub xx: Vec<f64>,
    /// `Σ r x` (discounted), `dim` values.
    pub xr: Vec<f64>,
    /// `Σ r²` (discounted).
    pub rr: f64,
    /// Effective number of observations (`Σ 1`, discounted).
    pub n: f64,
    /// Number of updates, never discounted: how much a merge of this block
    /// forgets of what came before.
    pub updates: u64,
}

/// The sufficient statistics of a set of ridge regressions of one shape:
/// one [`Block`] per regression (an arm of LinUCB, the one model of a
/// shared-parameter policy), each in `dim` dimensions, with the learner's
/// discount. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SufficientStatistics {
    /// Dimension of every block's regression.
    pub dim: usize,
    /// The discount `γ` of the learner (`None`: it never forgets).
    pub discount: Option<f64>,
    /// One per regression.
    pub blocks: Vec<Block>,
}

fn shape_error(reason: String) -> Error {
    Error::InvalidConfig {
        field: "statistics",
        reason,
    }
}

impl SufficientStatistics {
    /// Statistics of `blocks` regressions in `dim` dimensions with nothing
    /// added.
    pub fn zeros(blocks: usize, dim: usize, discount: Option<f64>) -> Self {
        let block = Block {
            xx: vec![0.0; dim * (dim + 1) / 2],
            xr: vec![0.0; dim],
            rr: 0.0,
            n: 0.0,
            updates: 0,
        };
        SufficientStatistics {
            dim,
            discount,
            blocks: vec![block; blocks],
        }
    }

    /// The same shape with nothing added.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.blocks.len(), self.dim, self.discount)
    }

    /// Number of updates of every block together.
    pub fn updates(&self) -> u64 {
        self.blocks
            .iter()
            .fold(0u64, |s, b| s.saturating_add(b.updates))
    }

    /// Adds one observation to `block`, as the learner does: forgets first
    /// (with a discount), then adds `x xᵀ`, `r x`, `r²` and one.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a block out of range, a context of
    /// another dimension or a non-finite value; nothing changes.
    pub fn add(&mut self, block: usize, x: &[f64], r: f64) -> Result<()> {
        let dim = self.dim;
        let discount = self.discount;
        let n_blocks = self.blocks.len();
        let b = self.blocks.get_mut(block).ok_or_else(|| {
            shape_error(format!(
                "block {block} of statistics with {n_blocks} blocks"
            ))
        })?;
        if x.len() != dim || !r.is_finite() || x.iter().any(|v| !v.is_finite()) {
            return Err(shape_error(format!(
                "an observation of {} finite values and a finite reward, in {dim} dimensions",
                x.len()
            )));
        }
        if let Some(g) = discount {
            b.scale(g);
        }
        let mut o = 0;
        for i in 0..dim {
            for j in i..dim {
                b.xx[o] += x[i] * x[j];
                o += 1;
            }
        }
        for (s, xi) in b.xr.iter_mut().zip(x) {
            *s += r * xi;
        }
        b.rr += r * r;
        b.n += 1.0;
        b.updates = b.updates.saturating_add(1);
        Ok(())
    }

    /// Checks that every value is finite, the counts are not negative, the
    /// discount is in `(0, 1)` and every block has the declared shape.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming what is wrong.
    pub fn check(&self) -> Result<()> {
        let d = self.dim;
        let packed = d
            .checked_add(1)
            .and_then(|d1| d.checked_mul(d1))
            .map(|v| v / 2);
        let total = packed.and_then(|p| p.checked_mul(self.blocks.len()));
        if total.is_none_or(|t| t > MAX_STATISTICS_VALUES) {
            return Err(shape_error(format!(
                "{} blocks of dimension {d} exceed {MAX_STATISTICS_VALUES} values",
                self.blocks.len()
            )));
        }
        if let Some(g) = self.discount
            && !(g > 0.0 && g < 1.0)
        {
            return Err(shape_error(format!("discount {g} is not in (0, 1)")));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if Some(b.xx.len()) != packed || b.xr.len() != d {
                return Err(shape_error(format!(
                    "block {i} has {} and {} values, expected {} and {d}",
                    b.xx.len(),
                    b.xr.len(),
                    packed.unwrap_or(0)
                )));
            }
            if b.xx.iter().chain(&b.xr).any(|v| !v.is_finite()) {
                return Err(shape_error(format!("block {i} has a non-finite value")));
            }
            if !(b.rr.is_finite() && b.rr >= 0.0 && b.n.is_finite() && b.n >= 0.0) {
                return Err(shape_error(format!(
                    "block {i} has Σr² = {} and n = {}, expected finite values >= 0",
                    b.rr, b.n
                )));
            }
        }
        Ok(())
    }

    fn expect_same_shape(&self, other: &Self) -> Result<()> {
        other.check()?;
        if self.dim != other.dim || self.blocks.len() != other.blocks.len() {
            return Err(shape_error(format!(
                "statistics of {} blocks in {} dimensions do not fit {} blocks in {} dimensions",
                other.blocks.len(),
                other.dim,
                self.blocks.len(),
                self.dim
            )));
        }
        if self.discount != other.discount {
            return Err(shape_error(format!(
                "statistics with discount {:?} do not fit a learner with discount {:?}",
                other.discount, self.discount
            )));
        }
        Ok(())
    }

    /// What `self` added since it was `base`: the updates of each block
    /// since then, their sums, with a discount the sums minus `base`'s
    /// forgotten by `γᵏ` (`k` the updates since).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the shapes differ or `base` has more
    /// updates than `self` in a block (it is not an earlier state of it).
    pub fn delta_since(&self, base: &Self) -> Result<Self> {
        self.expect_same_shape(base)?;
        let mut out = self.clone();
        for (i, (o, b)) in out.blocks.iter_mut().zip(&base.blocks).enumerate() {
            let k = o.updates.checked_sub(b.updates).ok_or_else(|| {
                shape_error(format!(
                    "block {i} has {} updates, fewer than the {} of the state it is compared with",
                    o.updates, b.updates
                ))
            })?;
            let forget = self.discount.map_or(1.0, |g| g.powf(k as f64));
            o.combine(b, -forget);
            o.updates = k;
        }
        Ok(out)
    }

    /// Adds `delta` (from [`delta_since`](Self::delta_since)): with a
    /// discount, each block first forgets by `γᵏ`, `k` the delta's updates.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the shapes or discounts differ or a
    /// value is not finite; nothing changes.
    pub fn merge(&mut self, delta: &Self) -> Result<()> {
        self.expect_same_shape(delta)?;
        for (s, d) in self.blocks.iter_mut().zip(&delta.blocks) {
            if let Some(g) = self.discount {
                s.scale(g.powf(d.updates as f64));
            }
            s.combine(d, 1.0);
            s.updates = s.updates.saturating_add(d.updates);
        }
        Ok(())
    }

    /// Adds `other`'s sums and counts to these, without forgetting: the
    /// state of a fleet is the plain sum of its members' contributions.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the shapes or discounts differ or a
    /// value is not finite; nothing changes.
    pub fn accumulate(&mut self, other: &Self) -> Result<()> {
        self.expect_same_shape(other)?;
        for (s, o) in self.blocks.iter_mut().zip(&other.blocks) {
            s.combine(o, 1.0);
            s.updates = s.updates.saturating_add(o.updates);
        }
        Ok(())
    }

    /// The largest difference between the two, each value's absolute
    /// difference divided by `max(1, |value|)` (so a relative difference
    /// for large sums), over every sum and count; infinite when the shapes
    /// differ.
    pub fn max_difference(&self, other: &Self) -> f64 {
        if self.dim != other.dim || self.blocks.len() != other.blocks.len() {
            return f64::INFINITY;
        }
        let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs()).max(1.0);
        let mut worst = 0.0f64;
        for (a, b) in self.blocks.iter().zip(&other.blocks) {
            let pairs = a.xx.iter().zip(&b.xx).chain(a.xr.iter().zip(&b.xr));
            for (x, y) in pairs {
                worst = worst.max(rel(*x, *y));
            }
            worst = worst
                .max(rel(a.rr, b.rr))
                .max(rel(a.n, b.n))
                .max(rel(a.updates as f64, b.updates as f64));
        }
        worst
    }
}

impl Block {
    fn scale(&mut self, f: f64) {
        for v in self.xx.iter_mut().chain(self.xr.iter_mut()) {
            *v *= f;
        }
        self.rr *= f;
        self.n *= f;
    }

    /// `self += f · other` on the sums (not the update count).
    fn combine(&mut self, other: &Block, f: f64) {
        for (s, o) in self.xx.iter_mut().zip(&other.xx) {
            *s += f * o;
        }
        for (s, o) in self.xr.iter_mut().zip(&other.xr) {
            *s += f * o;
        }
        self.rr += f * other.rr;
        self.n += f * other.n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random observations from a fixed-seed SplitMix64 chain.
    fn observations(seed: u64, n: usize, blocks: usize, dim: usize) -> Vec<(usize, Vec<f64>, f64)> {
        let mut z = seed;
        let mut next = move || {
            z = crate::hash::splitmix64(z);
            (z >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let b = ((next() * blocks as f64) as usize).min(blocks - 1);
                let x: Vec<f64> = (0..dim).map(|_| 2.0 * next() - 1.0).collect();
                (b, x, next())
            })
            .collect()
    }

    #[test]
    fn one_observation_adds_its_outer_product() -> Result<()> {
        let mut s = SufficientStatistics::zeros(2, 2, None);
        s.add(1, &[2.0, 3.0], 0.5)?;
        let b = &s.blocks[1];
        assert_eq!(b.xx, vec![4.0, 6.0, 9.0]);
        assert_eq!(b.xr, vec![1.0, 1.5]);
        assert_eq!((b.rr, b.n, b.updates), (0.25, 1.0, 1));
        assert_eq!(
            s.blocks[0],
            SufficientStatistics::zeros(1, 2, None).blocks[0]
        );
        Ok(())
    }

    /// Three "processes" learn alone and merge their deltas in turns; the
    /// merged statistics equal one learner fed every observation.
    #[test]
    fn merged_deltas_equal_one_learner_without_discount() -> Result<()> {
        let obs = observations(7, 3000, 4, 3);
        let zero = SufficientStatistics::zeros(4, 3, None);
        let mut merged = zero.clone();
        let mut local = vec![zero.clone(); 3];
        let mut base = vec![zero.clone(); 3];
        for (i, (b, x, r)) in obs.iter().enumerate() {
            let p = i % 3;
            local[p].add(*b, x, *r)?;
            if i % 97 == 0 {
                let delta = local[p].delta_since(&base[p])?;
                merged.merge(&delta)?;
                local[p] = merged.clone();
                base[p] = merged.clone();
            }
        }
        for p in 0..3 {
            merged.merge(&local[p].delta_since(&base[p])?)?;
        }
        let mut single = zero.clone();
        for (b, x, r) in &obs {
            single.add(*b, x, *r)?;
        }
        assert_eq!(merged.updates(), 3000);
        assert!(
            merged.max_difference(&single) < 1e-12,
            "{}",
            merged.max_difference(&single)
        );
        Ok(())
    }

    /// With a discount, the merged statistics equal one discounted learner
    /// fed the observations delta after delta in the order of the merges.
    #[test]
    fn merged_deltas_equal_one_discounted_learner_in_merge_order() -> Result<()> {
        let g = 0.99;
        let obs = observations(11, 2000, 3, 2);
        let zero = SufficientStatistics::zeros(3, 2, Some(g));
        let mut merged = zero.clone();
        let mut local = vec![zero.clone(); 2];
        let mut base = vec![zero.clone(); 2];
        let mut unmerged: Vec<Vec<usize>> = vec![Vec::new(); 2];
        let mut order = Vec::new();
        for (i, (b, x, r)) in obs.iter().enumerate() {
            let p = i % 2;
            local[p].add(*b, x, *r)?;
            unmerged[p].push(i);
            if i % 53 == 0 || i + 2 >= obs.len() {
                merged.merge(&local[p].delta_since(&base[p])?)?;
                order.append(&mut unmerged[p]);
                local[p] = merged.clone();
                base[p] = merged.clone();
            }
        }
        assert_eq!(order.len(), obs.len());
        let mut single = zero.clone();
        for &i in &order {
            let (b, x, r) = &obs[i];
            single.add(*b, x, *r)?;
        }
        assert!(
            merged.max_difference(&single) < 1e-12,
            "{}",
            merged.max_difference(&single)
        );
        // And it is not the learner fed in arrival order: the rule matters.
        let mut arrival = zero.clone();
        for (b, x, r) in &obs {
            arrival.add(*b, x, *r)?;
        }
        assert!(merged.max_difference(&arrival) > 1e-6);
        Ok(())
    }

    #[test]
    fn statistics_of_another_shape_are_refused_by_name() {
        let a = SufficientStatistics::zeros(2, 3, None);
        let Err(e) = a.clone().merge(&SufficientStatistics::zeros(3, 3, None)) else {
            panic!("merged statistics of another shape");
        };
        assert!(e.to_string().contains("3 blocks in 3 dimensions"), "{e}");
        let Err(e) = a
            .clone()
            .merge(&SufficientStatistics::zeros(2, 3, Some(0.9)))
        else {
            panic!("merged statistics of another discount");
        };
        assert!(e.to_string().contains("discount"), "{e}");
        let mut bad = a.clone();
        bad.blocks[1].xr[0] = f64::NAN;
        assert!(a.clone().merge(&bad).is_err());
        bad.blocks[1].xr.pop();
        assert!(bad.check().is_err());
        let mut later = a.clone();
        assert!(later.add(0, &[1.0, 0.0, 0.0], 1.0).is_ok());
        assert!(a.delta_since(&later).is_err());
        let huge = SufficientStatistics {
            dim: usize::MAX,
            discount: None,
            blocks: Vec::new(),
        };
        assert!(huge.check().is_err());
    }
}
