//! Per-arm ridge regression with a cached inverse: the statistics LinUCB,
//! Thompson sampling and ε-greedy share.
//!
//! For arm `a`: `A_a = λI + Σ x xᵀ`, `b_a = Σ r x`, `θ_a = A_a⁻¹ b_a`. The
//! inverse is kept by Sherman–Morrison updates (about 2d² multiply-adds) and
//! recomputed from `A_a` by a Cholesky factorization every `refresh_every`
//! updates of that arm, so rounding never accumulates. With a discount `γ`,
//! each update of an arm first forgets: `A ← γA + (1−γ)λI`, `b ← γb`, and
//! the inverse is refactorized (d³/3) on every update.
//!
//! All arms live in flat buffers, `A` and `A⁻¹` as packed upper triangles
//! (`d(d+1)/2` values), so a decision touches contiguous memory, computes
//! each `xᵀA⁻¹x` as one dot product, and allocates nothing for `d <= 22`.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use tuneloop_core::{Block, Error, Features, Result, SufficientStatistics};

use crate::scratch::with_zeros;

/// Checks an update's inputs for a policy of `num_arms` arms and contexts
/// of dimension `dim`: every policy's `update` starts here.
pub(crate) fn check_update(
    x: &Features,
    arm: usize,
    reward: f64,
    dim: usize,
    num_arms: usize,
) -> Result<()> {
    x.expect_dim(dim)?;
    if arm >= num_arms {
        return Err(Error::UnknownArm { arm, num_arms });
    }
    if !reward.is_finite() {
        return Err(Error::InvalidReward { value: reward });
    }
    Ok(())
}

/// Smallest reward noise standard deviation the policies assume (for
/// rewards on the `[0, 1]` scale). With noise-free rewards the residuals
/// vanish as soon as the model fits the few arms it has tried, and a bonus
/// scaled by them alone stops exploring before the model is right (a
/// quadratic in temperature seen only at its two ends, say). 0.15 was
/// chosen on a noise-free grid, the `llm-params` scenario and six supervised
/// sets together: it fixes the first and leaves the others within noise.
pub(crate) const MIN_NOISE_SD: f64 = 0.15;

/// Number of entries in the packed upper triangle of a `d × d` symmetric
/// matrix.
#[inline(always)]
pub(crate) const fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Where row `i` of a packed upper triangle starts: rows are stored one
/// after another, row `i` holding columns `i..d`.
#[inline(always)]
const fn row_start(d: usize, i: usize) -> usize {
    i * (2 * d + 1 - i) / 2
}

/// Index of entry `(i, j)` (either triangle) in packed upper storage.
#[inline(always)]
pub(crate) fn packed_index(d: usize, i: usize, j: usize) -> usize {
    let (r, c) = if i <= j { (i, j) } else { (j, i) };
    row_start(d, r) + (c - r)
}

/// Sufficient statistics of `k` independent ridge regressions in `d` dims.
///
/// `A` and `A⁻¹` are symmetric, so each arm keeps only their upper
/// triangles, packed row after row (`d(d+1)/2` values): a decision's
/// quadratic form `xᵀA⁻¹x` is then one contiguous dot product of that
/// many terms against [`quad_weights`], half the work of a full
/// matrix-vector product, and the rank-one updates touch half the memory.
/// Snapshots still hold full row-major matrices (the schema of
/// `RidgeRepr`), so the packing is invisible outside this module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RidgeRepr", into = "RidgeRepr")]
pub(crate) struct RidgeArms {
    k: usize,
    d: usize,
    lambda: f64,
    refresh_every: u32,
    discount: Option<f64>,
    /// Packed upper triangles of `A_a`, arm after arm.
    a: Vec<f64>,
    /// Packed upper triangles of `A_a⁻¹`, arm after arm.
    a_inv: Vec<f64>,
    b: Vec<f64>,
    theta: Vec<f64>,
    /// Σ r² per arm (discounted like `b`), for the noise estimate.
    sum_r2: Vec<f64>,
    /// Effective number of observations per arm (discounted like `b`).
    n: Vec<f64>,
    /// `b_aᵀθ_a`, kept current by every update, for the noise estimate.
    btheta: Vec<f64>,
    since_refresh: Vec<u32>,
    /// Updates per arm, never discounted (the merge rule of
    /// [`SufficientStatistics`] needs them).
    updates: Vec<u64>,
}

/// The serialized form of [`RidgeArms`]: full row-major `d × d` matrices,
/// the snapshot schema since version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename = "RidgeArms")]
struct RidgeRepr {
    k: usize,
    d: usize,
    lambda: f64,
    refresh_every: u32,
    discount: Option<f64>,
    a: Vec<f64>,
    a_inv: Vec<f64>,
    b: Vec<f64>,
    theta: Vec<f64>,
    sum_r2: Vec<f64>,
    n: Vec<f64>,
    btheta: Vec<f64>,
    since_refresh: Vec<u32>,
    /// Absent from snapshots written before fleet mode: then `n` (exact
    /// without a discount, the best there is with one).
    #[serde(default)]
    updates: Vec<u64>,
}

/// Packs `k` full row-major `d × d` matrices, averaging the two triangles.
fn pack(full: &[f64], k: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(k * packed_len(d));
    for m in full.chunks_exact(d * d).take(k) {
        for i in 0..d {
            for j in i..d {
                out.push(0.5 * (m[i * d + j] + m[j * d + i]));
            }
        }
    }
    out
}

/// Unpacks `k` packed upper triangles into full row-major matrices.
fn unpack(packed: &[f64], k: usize, d: usize) -> Vec<f64> {
    let p = packed_len(d);
    let mut out = vec![0.0; k * d * d];
    for (arm, m) in packed.chunks_exact(p).take(k).enumerate() {
        let full = &mut out[arm * d * d..(arm + 1) * d * d];
        for i in 0..d {
            for j in i..d {
                let v = m[packed_index(d, i, j)];
                full[i * d + j] = v;
                full[j * d + i] = v;
            }
        }
    }
    out
}

impl TryFrom<RidgeRepr> for RidgeArms {
    type Error = String;
    fn try_from(r: RidgeRepr) -> std::result::Result<Self, String> {
        let full = r.k.checked_mul(r.d).and_then(|v| v.checked_mul(r.d));
        match full {
            Some(n) if r.a.len() == n && r.a_inv.len() == n => {}
            _ => {
                return Err(format!(
                    "matrices of {} and {} values do not fit {} arms of dimension {}",
                    r.a.len(),
                    r.a_inv.len(),
                    r.k,
                    r.d
                ));
            }
        }
        let updates = if r.updates.is_empty() {
            r.n.iter().map(|n| n.max(0.0).round() as u64).collect()
        } else {
            r.updates
        };
        Ok(RidgeArms {
            updates,
            a: pack(&r.a, r.k, r.d),
            a_inv: pack(&r.a_inv, r.k, r.d),
            k: r.k,
            d: r.d,
            lambda: r.lambda,
            refresh_every: r.refresh_every,
            discount: r.discount,
            b: r.b,
            theta: r.theta,
            sum_r2: r.sum_r2,
            n: r.n,
            btheta: r.btheta,
            since_refresh: r.since_refresh,
        })
    }
}

impl From<RidgeArms> for RidgeRepr {
    fn from(r: RidgeArms) -> Self {
        RidgeRepr {
            a: unpack(&r.a, r.k, r.d),
            a_inv: unpack(&r.a_inv, r.k, r.d),
            k: r.k,
            d: r.d,
            lambda: r.lambda,
            refresh_every: r.refresh_every,
            discount: r.discount,
            b: r.b,
            theta: r.theta,
            sum_r2: r.sum_r2,
            n: r.n,
            btheta: r.btheta,
            since_refresh: r.since_refresh,
            updates: r.updates,
        }
    }
}

impl RidgeArms {
    pub(crate) fn new(
        k: usize,
        d: usize,
        lambda: f64,
        refresh_every: u32,
        discount: Option<f64>,
    ) -> Self {
        let p = packed_len(d);
        let mut a = vec![0.0; k * p];
        let mut a_inv = vec![0.0; k * p];
        for arm in 0..k {
            for i in 0..d {
                a[arm * p + row_start(d, i)] = lambda;
                a_inv[arm * p + row_start(d, i)] = 1.0 / lambda;
            }
        }
        RidgeArms {
            k,
            d,
            lambda,
            refresh_every: refresh_every.max(1),
            discount,
            a,
            a_inv,
            b: vec![0.0; k * d],
            theta: vec![0.0; k * d],
            sum_r2: vec![0.0; k],
            n: vec![0.0; k],
            btheta: vec![0.0; k],
            since_refresh: vec![0; k],
            updates: vec![0; k],
        }
    }

    pub(crate) fn num_arms(&self) -> usize {
        self.k
    }

    pub(crate) fn dim(&self) -> usize {
        self.d
    }

    /// Checks that the buffers fit the declared shape (after a restore).
    pub(crate) fn check_shape(&self) -> bool {
        let (k, d) = (self.k, self.d);
        // Shapes from a file may be anything: no product may overflow.
        let packed = d
            .checked_add(1)
            .and_then(|d1| d.checked_mul(d1))
            .map(|v| v / 2);
        let triangles = packed.and_then(|p| k.checked_mul(p));
        let vectors = k.checked_mul(d);
        Some(self.a.len()) == triangles
            && Some(self.a_inv.len()) == triangles
            && Some(self.b.len()) == vectors
            && Some(self.theta.len()) == vectors
            && self.sum_r2.len() == k
            && self.n.len() == k
            && self.btheta.len() == k
            && self.since_refresh.len() == k
            && self.updates.len() == k
            && self.lambda.is_finite()
            && self.lambda > 0.0
            // What the constructor checks, for a state read from a file.
            && self.refresh_every >= 1
            && self.discount.is_none_or(|g| g > 0.0 && g < 1.0)
            && self
                .a
                .iter()
                .chain(&self.a_inv)
                .chain(&self.b)
                .chain(&self.theta)
                .chain(&self.btheta)
                .all(|v| v.is_finite())
            && self
                .sum_r2
                .iter()
                .chain(&self.n)
                .all(|v| v.is_finite() && *v >= 0.0)
    }

    /// `(θ_a·x, xᵀA_a⁻¹x)`: the ridge prediction and its variance factor.
    /// `xx` holds [`quad_weights`] of `x` (computed once per decision).
    #[inline]
    pub(crate) fn predict(&self, arm: usize, x: &[f64], xx: &[f64]) -> (f64, f64) {
        let (d, p) = (self.d, packed_len(self.d));
        let quad = dot8(&self.a_inv[arm * p..(arm + 1) * p], xx);
        let mean = dot(&self.theta[arm * d..(arm + 1) * d], x);
        (mean, quad.max(0.0))
    }

    /// Residual noise variance of the arm: `(s0 n0 + RSS) / (n0 + n)` with
    /// `RSS = Σr² − bᵀθ` (exact for ridge) and a prior of `s0` worth `n0`
    /// observations.
    ///
    /// The result is at least [`MIN_NOISE_SD`]².
    #[inline]
    pub(crate) fn noise_variance(&self, arm: usize, s0: f64, n0: f64) -> f64 {
        let rss = (self.sum_r2[arm] - self.btheta[arm]).max(0.0);
        ((s0 * n0 + rss) / (n0 + self.n[arm])).max(MIN_NOISE_SD * MIN_NOISE_SD)
    }

    /// Checks the inputs of an update without changing anything.
    pub(crate) fn check_update(&self, x: &Features, arm: usize, reward: f64) -> Result<()> {
        check_update(x, arm, reward, self.d, self.k)
    }

    /// Adds the observation `(x, r)` to `arm`. Inputs must be checked.
    pub(crate) fn update(&mut self, arm: usize, x: &[f64], r: f64) {
        let d = self.d;
        let p = packed_len(d);
        if let Some(g) = self.discount {
            let a = &mut self.a[arm * p..(arm + 1) * p];
            for v in a.iter_mut() {
                *v *= g;
            }
            for i in 0..d {
                a[row_start(d, i)] += (1.0 - g) * self.lambda;
            }
            for v in &mut self.b[arm * d..(arm + 1) * d] {
                *v *= g;
            }
            self.sum_r2[arm] *= g;
            self.n[arm] *= g;
        }
        packed_rank_one(&mut self.a[arm * p..(arm + 1) * p], 1.0, x);
        for (bi, xi) in self.b[arm * d..(arm + 1) * d].iter_mut().zip(x) {
            *bi += r * xi;
        }
        self.sum_r2[arm] += r * r;
        self.n[arm] += 1.0;
        self.updates[arm] = self.updates[arm].saturating_add(1);
        self.since_refresh[arm] = self.since_refresh[arm].saturating_add(1);
        if self.discount.is_some() || self.since_refresh[arm] >= self.refresh_every {
            self.refresh(arm);
            return;
        }
        // Sherman–Morrison: A⁻¹ ← A⁻¹ − u uᵀ / (1 + xᵀu), u = A⁻¹x;
        // θ ← θ + u (r − xᵀθ) / (1 + xᵀu).
        let refactor = with_zeros(d, |u| self.sherman_morrison(arm, x, r, u));
        if refactor {
            // The cached inverse lost positive definiteness: rebuild it.
            self.refresh(arm);
        }
    }

    /// The rank-one update of `A⁻¹` and `θ` for `(x, r)`, with `u` as
    /// scratch for `A⁻¹x`. Returns true, having changed nothing, if the
    /// cached inverse is no longer positive definite and must be rebuilt.
    #[inline]
    fn sherman_morrison(&mut self, arm: usize, x: &[f64], r: f64, u: &mut [f64]) -> bool {
        let d = self.d;
        let p = packed_len(d);
        let m = &mut self.a_inv[arm * p..(arm + 1) * p];
        packed_matvec(m, x, u);
        let xu = dot(x, u);
        let denom = 1.0 + xu;
        if !(denom.is_finite() && denom >= 1.0 - 1e-9) {
            return true;
        }
        let inv = 1.0 / denom;
        packed_rank_one(m, -inv, u);
        let theta = &mut self.theta[arm * d..(arm + 1) * d];
        let xt = dot(theta, x);
        let step = (r - xt) * inv;
        for (t, ui) in theta.iter_mut().zip(u.iter()) {
            *t += ui * step;
        }
        self.refresh_btheta(arm);
        false
    }

    fn refresh_btheta(&mut self, arm: usize) {
        let d = self.d;
        self.btheta[arm] = dot(
            &self.b[arm * d..(arm + 1) * d],
            &self.theta[arm * d..(arm + 1) * d],
        );
    }

    /// Recomputes `A⁻¹` and `θ` of `arm` from `A` and `b` by Cholesky. If
    /// rounding made `A` numerically indefinite (features of wildly
    /// different scales), retries with a growing jitter on the diagonal; if
    /// even that fails, keeps the Sherman–Morrison inverse.
    pub(crate) fn refresh(&mut self, arm: usize) {
        let d = self.d;
        let p = packed_len(d);
        self.since_refresh[arm] = 0;
        let packed = &self.a[arm * p..(arm + 1) * p];
        let a = DMatrix::from_fn(d, d, |i, j| packed[packed_index(d, i, j)]);
        let scale = (0..d).map(|i| a[(i, i)].abs()).fold(self.lambda, f64::max);
        let mut jitter = 0.0;
        for _ in 0..6 {
            let mut aj = a.clone();
            for i in 0..d {
                aj[(i, i)] += jitter;
            }
            if let Some(ch) = aj.cholesky() {
                let inv = ch.inverse();
                if inv.iter().all(|v| v.is_finite()) {
                    let m = &mut self.a_inv[arm * p..(arm + 1) * p];
                    let mut o = 0;
                    for i in 0..d {
                        for j in i..d {
                            // Symmetrize: the average of the two triangles.
                            m[o] = 0.5 * (inv[(i, j)] + inv[(j, i)]);
                            o += 1;
                        }
                    }
                    break;
                }
            }
            jitter = if jitter == 0.0 {
                scale * 1e-14
            } else {
                jitter * 100.0
            };
        }
        let m = &self.a_inv[arm * p..(arm + 1) * p];
        let b = &self.b[arm * d..(arm + 1) * d];
        let theta = &mut self.theta[arm * d..(arm + 1) * d];
        packed_matvec(m, b, theta);
        self.refresh_btheta(arm);
    }

    /// The cached inverse (packed upper triangle, see [`packed_index`]) and
    /// θ of one arm.
    pub(crate) fn arm_state(&self, arm: usize) -> (&[f64], &[f64]) {
        let (d, p) = (self.d, packed_len(self.d));
        (
            &self.a_inv[arm * p..(arm + 1) * p],
            &self.theta[arm * d..(arm + 1) * d],
        )
    }

    /// Observations of each arm (discounted when forgetting).
    pub(crate) fn counts(&self) -> &[f64] {
        &self.n
    }

    /// The data part of every arm's `A` and `b`: `A − λI`, `b`, `Σr²`, `n`.
    pub(crate) fn statistics(&self) -> SufficientStatistics {
        let (d, p) = (self.d, packed_len(self.d));
        let blocks = (0..self.k)
            .map(|arm| {
                let mut xx = self.a[arm * p..(arm + 1) * p].to_vec();
                for i in 0..d {
                    xx[row_start(d, i)] -= self.lambda;
                }
                Block {
                    xx,
                    xr: self.b[arm * d..(arm + 1) * d].to_vec(),
                    rr: self.sum_r2[arm],
                    n: self.n[arm],
                    updates: self.updates[arm],
                }
            })
            .collect();
        SufficientStatistics {
            dim: d,
            discount: self.discount,
            blocks,
        }
    }

    /// Replaces every arm's state by `λI + Σxxᵀ`, `Σrx`, … from `s`, and
    /// refactorizes each arm's inverse.
    pub(crate) fn replace_statistics(&mut self, s: &SufficientStatistics) -> Result<()> {
        s.check()?;
        if s.dim != self.d || s.blocks.len() != self.k || s.discount != self.discount {
            return Err(Error::InvalidConfig {
                field: "statistics",
                reason: format!(
                    "statistics of {} blocks in {} dimensions with discount {:?} do not fit \
                     a learner of {} arms in {} dimensions with discount {:?}",
                    s.blocks.len(),
                    s.dim,
                    s.discount,
                    self.k,
                    self.d,
                    self.discount
                ),
            });
        }
        let (d, p) = (self.d, packed_len(self.d));
        for (arm, b) in s.blocks.iter().enumerate() {
            let a = &mut self.a[arm * p..(arm + 1) * p];
            a.copy_from_slice(&b.xx);
            for i in 0..d {
                a[row_start(d, i)] += self.lambda;
            }
            self.b[arm * d..(arm + 1) * d].copy_from_slice(&b.xr);
            self.sum_r2[arm] = b.rr;
            self.n[arm] = b.n;
            self.updates[arm] = b.updates;
            self.refresh(arm);
        }
        Ok(())
    }
}

/// The weights that turn a packed symmetric matrix into the quadratic form
/// of `x`: `xx[(i, j)] = x_i·x_j`, doubled off the diagonal, laid out like
/// the packed upper triangle, so that `xᵀMx = packed(M) · xx`. `xx` has
/// length `d(d+1)/2`.
#[inline]
pub(crate) fn quad_weights(x: &[f64], xx: &mut [f64]) {
    let d = x.len();
    let mut o = 0;
    for i in 0..d {
        let xi = x[i];
        let twice = 2.0 * xi;
        xx[o] = xi * xi;
        for (w, xj) in xx[o + 1..o + d - i].iter_mut().zip(&x[i + 1..]) {
            *w = twice * xj;
        }
        o += d - i;
    }
}

/// `M += alpha·v vᵀ` for a symmetric `M` in packed upper storage (row `i`
/// adds `(alpha·v_i)·v[i..]`).
#[inline]
fn packed_rank_one(m: &mut [f64], alpha: f64, v: &[f64]) {
    let d = v.len();
    let mut o = 0;
    for i in 0..d {
        let s = alpha * v[i];
        for (e, vj) in m[o..o + d - i].iter_mut().zip(&v[i..]) {
            *e += s * vj;
        }
        o += d - i;
    }
}

/// `u = M x` for a symmetric `M` in packed upper storage: row `i` adds
/// `x_i·M[i, i..]` to `u[i..]` (the lower triangle and diagonal, by
/// symmetry) and `M[i, i+1..]·x[i+1..]` to `u_i` (the upper triangle).
#[inline]
pub(crate) fn packed_matvec(m: &[f64], x: &[f64], u: &mut [f64]) {
    let d = x.len();
    u.fill(0.0);
    let mut o = 0;
    for i in 0..d {
        let row = &m[o..o + d - i];
        let xi = x[i];
        if xi != 0.0 {
            for (uj, mj) in u[i..].iter_mut().zip(row) {
                *uj += xi * mj;
            }
        }
        u[i] += dot(&row[1..], &x[i + 1..]);
        o += d - i;
    }
}

/// A dot product with four independent accumulators, so the additions do
/// not wait on each other.
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for l in 0..4 {
            acc[l] += a[c * 4 + l] * b[c * 4 + l];
        }
    }
    let mut tail = 0.0;
    for i in chunks * 4..a.len().min(b.len()) {
        tail += a[i] * b[i];
    }
    // Lanes {0, 1} and {2, 3} are the two vector registers: add them
    // vertically first, so no shuffle is needed inside the loop.
    ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail
}

/// [`dot`] with eight accumulators, for the long packed quadratic forms:
/// four two-wide vector additions in flight cover the adder's latency.
#[inline(always)]
pub(crate) fn dot8(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail = dot(ca.remainder(), cb.remainder());
    // Vertical adds of the lane pairs first (see `dot`).
    let even = (acc[0] + acc[2]) + (acc[4] + acc[6]);
    let odd = (acc[1] + acc[3]) + (acc[5] + acc[7]);
    (even + odd) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn fresh_solve(xs: &[Vec<f64>], rs: &[f64], d: usize, lambda: f64) -> (DMatrix<f64>, Vec<f64>) {
        let mut a = DMatrix::<f64>::identity(d, d) * lambda;
        let mut b = nalgebra::DVector::<f64>::zeros(d);
        for (x, r) in xs.iter().zip(rs) {
            let v = nalgebra::DVector::from_column_slice(x);
            a += &v * v.transpose();
            b += &v * *r;
        }
        let inv = a.clone().cholesky().map(|c| c.inverse()).unwrap_or(a);
        let theta = &inv * b;
        (inv, theta.iter().copied().collect())
    }

    #[test]
    fn cached_inverse_matches_a_fresh_solve_after_100k_updates() {
        let d = 16;
        let mut arms = RidgeArms::new(1, d, 1.0, 1024, None);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let truth: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut xs = Vec::new();
        let mut rs = Vec::new();
        for _ in 0..100_000 {
            let x: Vec<f64> = (0..d)
                .map(|_| (rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0)
                .collect();
            let noise = (rng.next_u32() as f64 / u32::MAX as f64) - 0.5;
            let r = truth.iter().zip(&x).map(|(t, x)| t * x).sum::<f64>() + 0.1 * noise;
            arms.update(0, &x, r);
            xs.push(x);
            rs.push(r);
        }
        let (inv, theta) = fresh_solve(&xs, &rs, d, 1.0);
        let (m, t) = arms.arm_state(0);
        let scale = inv.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for i in 0..d {
            for j in 0..d {
                assert!(
                    (m[packed_index(d, i, j)] - inv[(i, j)]).abs() <= 1e-9 * scale,
                    "A⁻¹[{i},{j}]"
                );
            }
            assert!(
                (t[i] - theta[i]).abs() < 1e-9,
                "θ[{i}] {} vs {}",
                t[i],
                theta[i]
            );
            // And the estimate recovers the truth (noise sd 0.029, n = 1e5).
            assert!((t[i] - truth[i]).abs() < 0.01);
        }
    }

    #[test]
    fn sherman_morrison_matches_fresh_solve_between_refreshes() {
        let d = 3;
        let mut arms = RidgeArms::new(2, d, 0.5, u32::MAX, None);
        let xs = vec![
            vec![1.0, 0.0, 2.0],
            vec![0.5, -1.0, 0.0],
            vec![1.0, 1.0, 1.0],
        ];
        let rs = [1.0, 0.0, 0.5];
        for (x, r) in xs.iter().zip(rs) {
            arms.update(1, x, r);
        }
        let (inv, theta) = fresh_solve(&xs, &rs, d, 0.5);
        let (m, t) = arms.arm_state(1);
        for i in 0..d {
            for j in 0..d {
                assert!((m[packed_index(d, i, j)] - inv[(i, j)]).abs() < 1e-12);
            }
            assert!((t[i] - theta[i]).abs() < 1e-12);
        }
        // Arm 0 untouched: A⁻¹ = I/λ, θ = 0.
        let (m0, t0) = arms.arm_state(0);
        assert!((m0[0] - 2.0).abs() < 1e-15 && t0.iter().all(|v| *v == 0.0));
    }

    /// A random symmetric matrix (row-major) and a vector, d = 7.
    fn symmetric_case(seed: u64) -> (usize, Vec<f64>, Vec<f64>) {
        let d = 7;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut u = || f64::from(rng.next_u32()) / f64::from(u32::MAX) - 0.5;
        let mut m = vec![0.0; d * d];
        for i in 0..d {
            for j in i..d {
                let v = u();
                m[i * d + j] = v;
                m[j * d + i] = v;
            }
        }
        let x = (0..d).map(|_| u()).collect();
        (d, m, x)
    }

    #[test]
    fn packed_kernels_match_the_full_matrix() {
        for seed in 0..20 {
            let (d, full, x) = symmetric_case(seed);
            let packed = pack(&full, 1, d);
            assert_eq!(packed.len(), packed_len(d));
            assert_eq!(unpack(&packed, 1, d), full);
            // M x, and xᵀ M x, written out in full.
            let want_mx: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| full[i * d + j] * x[j]).sum())
                .collect();
            let want_q: f64 = (0..d).map(|i| x[i] * want_mx[i]).sum();
            let mut u = vec![0.0; d];
            packed_matvec(&packed, &x, &mut u);
            for i in 0..d {
                assert!((u[i] - want_mx[i]).abs() < 1e-14, "(Mx)[{i}]");
            }
            let mut xx = vec![0.0; packed_len(d)];
            quad_weights(&x, &mut xx);
            assert!((dot8(&packed, &xx) - want_q).abs() < 1e-14);
        }
    }

    #[test]
    fn snapshots_hold_full_symmetric_matrices_and_refuse_a_wrong_shape() {
        let d = 3;
        let mut arms = RidgeArms::new(2, d, 0.5, u32::MAX, None);
        let xs = [[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [1.0, 1.0, 1.0]];
        for (x, r) in xs.iter().zip([1.0, 0.0, 0.5]) {
            arms.update(1, x, r);
        }
        let json = serde_json::to_value(&arms).map_err(|e| e.to_string());
        let json = json.unwrap_or_else(|e| panic!("{e}"));
        // The schema-1 layout: k row-major d × d matrices.
        let (inv, _) = fresh_solve(&xs.map(|x| x.to_vec()), &[1.0, 0.0, 0.5], d, 0.5);
        let a_inv: Vec<f64> =
            serde_json::from_value(json["a_inv"].clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a_inv.len(), 2 * d * d);
        for i in 0..d {
            for j in 0..d {
                assert!((a_inv[d * d + i * d + j] - inv[(i, j)]).abs() < 1e-12);
            }
        }
        let back: RidgeArms =
            serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, arms);
        let mut wrong = json;
        wrong["d"] = serde_json::json!(4);
        let e = serde_json::from_value::<RidgeArms>(wrong).map(|_| ());
        assert!(e.is_err_and(|e| e.to_string().contains("do not fit 2 arms of dimension 4")));
    }

    #[test]
    fn noise_variance_is_the_residual_variance() {
        // Constant feature 1, rewards alternating 0/1: θ → 0.5, RSS/n → 0.25.
        let mut arms = RidgeArms::new(1, 1, 1e-6, 1024, None);
        for i in 0..10_000 {
            arms.update(0, &[1.0], f64::from(i % 2));
        }
        let v = arms.noise_variance(0, 0.25, 1.0);
        assert!((v - 0.25).abs() < 1e-3, "{v}");
    }

    #[test]
    fn discount_forgets_old_rewards() {
        let mut arms = RidgeArms::new(1, 1, 1.0, 1024, Some(0.9));
        for _ in 0..200 {
            arms.update(0, &[1.0], 0.0);
        }
        for _ in 0..100 {
            arms.update(0, &[1.0], 1.0);
        }
        let (mean, _) = arms.predict(0, &[1.0], &[1.0]);
        // Effective window ~10 observations: the old zeros are forgotten.
        assert!(mean > 0.85, "{mean}");
        assert!(arms.counts()[0] < 10.5);
    }

    #[test]
    fn extreme_scales_stay_finite() {
        let d = 4;
        let mut arms = RidgeArms::new(1, d, 1.0, 64, None);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for i in 0..5_000 {
            let x = [
                1e6,
                1.0,
                (rng.next_u32() % 3) as f64 * 1e6,
                if i % 2 == 0 { 1e-6 } else { 0.0 },
            ];
            arms.update(0, &x, 0.5);
            let mut xx = [0.0; 10];
            quad_weights(&x, &mut xx);
            let (m, v) = arms.predict(0, &x, &xx);
            assert!(m.is_finite() && v.is_finite() && v >= 0.0);
        }
        assert!(arms.check_shape());
    }
}
