//! Shared-parameter policies: one linear model over the joint features of
//! context and arm, so that what is learned about one arm informs its
//! neighbours (a temperature of 0.4 teaches something about 0.5).
//!
//! The joint feature of context `x` (dimension `d`) and arm features `z_a`
//! (dimension `m`, from [`ArmSet`](tuneloop_core::ArmSet)) is the outer
//! product `φ = x ⊗ z_a`, of dimension `D = d·m`: the model can learn a
//! different response surface over the parameters for every context. A
//! single ridge regression `A = λI + Σ φφᵀ`, `b = Σ rφ` holds everything.
//!
//! A decision never forms `φ_a` per arm. With `P = x ⊗ I_m` it computes
//! once the projected mean `w = Pᵀθ` (`D` multiply-adds) and the projected
//! covariance `B = PᵀA⁻¹P` (`D²`), then per arm only `z_a·w` and
//! `z_aᵀBz_a` (`m²`): a decision costs `D² + K·m²` instead of `K·D²`.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tuneloop_core::{
    ActionDistribution, ArmSet, Features, Policy, PolicySnapshot, Result as CoreResult, Selection,
    SelectionKey, SufficientStatistics, check_eligible,
};

use crate::error::{Error, Result, check_param};
use crate::linucb::{LinUcbParams, NOISE_PRIOR, NOISE_PRIOR_WEIGHT, check_shape};
use crate::normal::{NormalSampler, open_uniform};
use crate::ridge::RidgeArms;
use crate::snapshot::{from_snapshot, to_snapshot};
use crate::thompson::ThompsonParams;

/// Largest joint dimension `D = d·m` a shared model accepts (its matrix
/// has `D²` entries: 4096² doubles are 128 MiB).
pub const MAX_SHARED_DIM: usize = 4096;

/// Monte-Carlo draws behind a shared Thompson propensity (plus the draw
/// that chose the arm).
pub const THOMPSON_SHARED_DRAWS: usize = 255;

/// How a shared model explores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
enum Exploration {
    Ucb {
        alpha: f64,
        noise_scaled: bool,
    },
    Thompson {
        scale: f64,
        prior_noise_variance: f64,
        prior_noise_weight: f64,
    },
}

/// LinUCB or Thompson sampling over one shared linear model of context ×
/// arm features; built by [`LinUcbParams::build_shared`] or
/// [`ThompsonParams::build_shared`].
///
/// Propensities: the UCB mode is exact (argmax with ties split, plus the
/// floor). The Thompson mode samples the projected posterior jointly (arms
/// are correlated through the shared parameters, so no scalar shortcut
/// applies) and estimates the chosen arm's probability by Monte Carlo:
/// `(1 + c) / 256` where `c` counts the arm's wins in 255 further draws from
/// the same posterior; flagged `estimated`.
///
/// ```
/// use tuneloop_bandit::LinUcbParams;
/// use tuneloop_core::{ArmSet, DecisionId, Features, Policy, SelectionKey};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.25, 0.5, 0.75, 1.0]).build()?;
/// let mut p = LinUcbParams::default().build_shared(&arms, 1)?;
/// let x = Features::new(vec![1.0])?;
/// // Reward peaks at temperature 0.5: a quadratic the shared model can fit.
/// for round in 0..300u128 {
///     let s = p.select(&x, &arms.all_indices(), &SelectionKey::new(1, DecisionId::from_u128(round)))?;
///     let t = arms.arm(s.arm)?.params.temperature();
///     p.update(&x, s.arm, 1.0 - 2.0 * (t - 0.5).powi(2))?;
/// }
/// assert!(p.distribution(&x, &arms.all_indices())?.probability_of(2) > 0.9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedLinear {
    exploration: Exploration,
    exploration_floor: f64,
    context_dim: usize,
    arm_dim: usize,
    /// Row-major `K × m` arm features.
    arm_features: Vec<f64>,
    num_arms: usize,
    ridge: RidgeArms,
    version: u64,
}

fn arm_matrix(arms: &ArmSet) -> (Vec<f64>, usize) {
    let m = arms.arm_feature_dim();
    let mut out = Vec::with_capacity(arms.len() * m);
    for i in 0..arms.len() {
        if let Some(f) = arms.arm_features(i) {
            out.extend_from_slice(f);
        }
    }
    (out, m)
}

impl LinUcbParams {
    /// A shared-parameter LinUCB over `arms`, for contexts of dimension
    /// `dim`. `discount` and `refresh_every` apply as in [`LinUcb`](crate::LinUcb).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`], also when `dim × arm features` exceeds
    /// [`MAX_SHARED_DIM`].
    pub fn build_shared(&self, arms: &ArmSet, dim: usize) -> Result<SharedLinear> {
        self.check()?;
        SharedLinear::new(
            Exploration::Ucb {
                alpha: self.alpha,
                noise_scaled: self.noise_scaled,
            },
            self.exploration_floor,
            self.lambda,
            self.refresh_every,
            self.discount,
            arms,
            dim,
        )
    }
}

impl ThompsonParams {
    /// A shared-parameter Thompson sampling policy over `arms`, for
    /// contexts of dimension `dim`.
    ///
    /// # Errors
    /// As [`LinUcbParams::build_shared`].
    pub fn build_shared(&self, arms: &ArmSet, dim: usize) -> Result<SharedLinear> {
        self.check()?;
        SharedLinear::new(
            Exploration::Thompson {
                scale: self.scale,
                prior_noise_variance: self.prior_noise_variance,
                prior_noise_weight: self.prior_noise_weight,
            },
            self.exploration_floor,
            self.lambda,
            self.refresh_every,
            self.discount,
            arms,
            dim,
        )
    }
}

/// Per-decision projections: `w = Pᵀθ` (length m) and `B = PᵀA⁻¹P` (m × m).
struct Projection {
    w: Vec<f64>,
    b: Vec<f64>,
}

impl SharedLinear {
    /// Snapshot kind of the UCB mode.
    pub const KIND_UCB: &'static str = "linucb-shared";
    /// Snapshot kind of the Thompson mode.
    pub const KIND_THOMPSON: &'static str = "thompson-shared";

    fn new(
        exploration: Exploration,
        exploration_floor: f64,
        lambda: f64,
        refresh_every: u32,
        discount: Option<f64>,
        arms: &ArmSet,
        dim: usize,
    ) -> Result<Self> {
        check_shape(arms.len(), dim)?;
        let (arm_features, m) = arm_matrix(arms);
        let joint = dim.saturating_mul(m);
        check_param(
            "dim",
            joint as f64,
            joint <= MAX_SHARED_DIM,
            "context dim × arm feature dim <= 4096",
        )?;
        Ok(SharedLinear {
            exploration,
            exploration_floor,
            context_dim: dim,
            arm_dim: m,
            arm_features,
            num_arms: arms.len(),
            ridge: RidgeArms::new(1, joint, lambda, refresh_every, discount),
            version: 0,
        })
    }

    /// Restores a policy from [`Policy::snapshot`].
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn restore(snapshot: &PolicySnapshot) -> Result<Self> {
        let kind = if snapshot.kind == Self::KIND_THOMPSON {
            Self::KIND_THOMPSON
        } else {
            Self::KIND_UCB
        };
        let p: SharedLinear = from_snapshot(snapshot, kind)?;
        let mode_ok = matches!(
            (&p.exploration, kind),
            (Exploration::Ucb { .. }, Self::KIND_UCB)
                | (Exploration::Thompson { .. }, Self::KIND_THOMPSON)
        );
        let shape_ok = p.ridge.check_shape()
            && Some(p.ridge.dim()) == p.context_dim.checked_mul(p.arm_dim)
            && Some(p.arm_features.len()) == p.num_arms.checked_mul(p.arm_dim)
            && p.arm_features.iter().all(|v| v.is_finite())
            && (0.0..=1.0).contains(&p.exploration_floor);
        if !(mode_ok && shape_ok) {
            return Err(Error::Snapshot {
                reason: format!("{kind} state does not fit its declared shape"),
            });
        }
        Ok(p)
    }

    fn z(&self, arm: usize) -> &[f64] {
        &self.arm_features[arm * self.arm_dim..(arm + 1) * self.arm_dim]
    }

    fn joint(&self, x: &[f64], arm: usize) -> Vec<f64> {
        let z = self.z(arm);
        let mut phi = Vec::with_capacity(x.len() * z.len());
        for &xi in x {
            phi.extend(z.iter().map(|zj| xi * zj));
        }
        phi
    }

    fn project(&self, x: &[f64]) -> Projection {
        let (m, d) = (self.arm_dim, self.context_dim);
        let dim = m * d;
        let (a_inv, theta) = self.ridge.arm_state(0);
        let mut w = vec![0.0; m];
        for i in 0..d {
            for j in 0..m {
                w[j] += x[i] * theta[i * m + j];
            }
        }
        // B[j][l] = Σ_{i,k} x_i x_k A⁻¹[i·m + j][k·m + l], over the packed
        // upper triangle of A⁻¹ (row r = i·m + j, columns c = k·m + l >= r):
        // diagonal entries add to B directly, the others to S once, and
        // B += S + Sᵀ accounts for their mirror images.
        let mut b = vec![0.0; m * m];
        let mut upper = vec![0.0; m * m];
        let mut o = 0;
        for i in 0..d {
            let xi = x[i];
            for j in 0..m {
                let row = &a_inv[o..o + dim - (i * m + j)];
                o += row.len();
                if xi == 0.0 {
                    continue;
                }
                let sj = &mut upper[j * m..(j + 1) * m];
                b[j * m + j] += xi * xi * row[0];
                // The rest of block i: columns (i, l), l > j.
                for l in j + 1..m {
                    sj[l] += xi * xi * row[l - j];
                }
                // Whole blocks k > i.
                let mut pos = m - j;
                for &xk in &x[i + 1..d] {
                    if xk != 0.0 {
                        let coef = xi * xk;
                        for (sl, v) in sj.iter_mut().zip(&row[pos..pos + m]) {
                            *sl += coef * v;
                        }
                    }
                    pos += m;
                }
            }
        }
        for j in 0..m {
            for l in 0..m {
                b[j * m + l] += upper[j * m + l] + upper[l * m + j];
            }
        }
        Projection { w, b }
    }

    fn mean_and_var(&self, p: &Projection, arm: usize) -> (f64, f64) {
        let z = self.z(arm);
        let m = self.arm_dim;
        let mean: f64 = z.iter().zip(&p.w).map(|(a, b)| a * b).sum();
        let mut quad = 0.0;
        for j in 0..m {
            let row = &p.b[j * m..(j + 1) * m];
            let s: f64 = row.iter().zip(z).map(|(a, b)| a * b).sum();
            quad += z[j] * s;
        }
        (mean, quad.max(0.0))
    }

    fn checked(&self, x: &Features, eligible: &[usize]) -> CoreResult<Projection> {
        x.expect_dim(self.context_dim)?;
        check_eligible(eligible, self.num_arms)?;
        Ok(self.project(x.as_slice()))
    }

    fn ucb_probs(
        &self,
        p: &Projection,
        eligible: &[usize],
        alpha: f64,
        noise_scaled: bool,
    ) -> Vec<f64> {
        let sd = if noise_scaled {
            self.ridge
                .noise_variance(0, NOISE_PRIOR, NOISE_PRIOR_WEIGHT)
                .sqrt()
        } else {
            1.0
        };
        let alpha = alpha * sd;
        let scores: Vec<f64> = eligible
            .iter()
            .map(|&a| {
                let (mean, quad) = self.mean_and_var(p, a);
                mean + alpha * quad.sqrt()
            })
            .collect();
        let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let tied = |v: f64| best - v <= 1e-12 * (1.0 + best.abs());
        let ties = scores.iter().filter(|&&v| tied(v)).count() as f64;
        scores
            .iter()
            .map(|&v| if tied(v) { 1.0 / ties } else { 0.0 })
            .collect()
    }

    /// Cholesky factor (lower, row-major) of `scale²·σ²·B`, with jitter if
    /// `B` is numerically singular; `None` if it stays indefinite.
    fn sampling_factor(&self, p: &Projection, scale: f64, s0: f64, n0: f64) -> Option<Vec<f64>> {
        let m = self.arm_dim;
        let noise = self.ridge.noise_variance(0, s0, n0);
        let c = scale * scale * noise;
        let base = DMatrix::from_row_slice(m, m, &p.b) * c;
        let diag = (0..m).map(|i| base[(i, i)].abs()).fold(0.0, f64::max);
        let mut jitter = diag * 1e-12 + 1e-300;
        for _ in 0..8 {
            let mut mat = base.clone();
            for i in 0..m {
                mat[(i, i)] += jitter;
            }
            if let Some(ch) = mat.cholesky() {
                let l = ch.l();
                return Some((0..m * m).map(|idx| l[(idx / m, idx % m)]).collect());
            }
            jitter *= 100.0;
        }
        None
    }
}

/// Joint draws of the projected posterior `w ~ N(Pᵀθ, L Lᵀ)`.
struct PosteriorDraws {
    l: Vec<f64>,
    rng: ChaCha8Rng,
    normal: NormalSampler,
    w: Vec<f64>,
    z: Vec<f64>,
}

impl PosteriorDraws {
    fn new(l: Vec<f64>, rng: ChaCha8Rng, m: usize) -> Self {
        PosteriorDraws {
            l,
            rng,
            normal: NormalSampler::default(),
            w: vec![0.0; m],
            z: vec![0.0; m],
        }
    }

    /// Index (into `eligible`) of the best arm under one posterior draw.
    fn argmax(&mut self, model: &SharedLinear, p: &Projection, eligible: &[usize]) -> usize {
        let m = model.arm_dim;
        for v in self.z.iter_mut() {
            *v = self.normal.sample(&mut self.rng);
        }
        for i in 0..m {
            let row = &self.l[i * m..i * m + i + 1];
            self.w[i] = p.w[i] + row.iter().zip(&self.z).map(|(a, b)| a * b).sum::<f64>();
        }
        let mut best = f64::NEG_INFINITY;
        let mut pos = 0;
        for (idx, &a) in eligible.iter().enumerate() {
            let s: f64 = model.z(a).iter().zip(&self.w).map(|(a, b)| a * b).sum();
            if s > best {
                best = s;
                pos = idx;
            }
        }
        pos
    }
}

impl Policy for SharedLinear {
    fn kind(&self) -> &'static str {
        match self.exploration {
            Exploration::Ucb { .. } => Self::KIND_UCB,
            Exploration::Thompson { .. } => Self::KIND_THOMPSON,
        }
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    fn num_arms(&self) -> usize {
        self.num_arms
    }

    fn distribution(&self, x: &Features, eligible: &[usize]) -> CoreResult<ActionDistribution> {
        let p = self.checked(x, eligible)?;
        match self.exploration {
            Exploration::Ucb {
                alpha,
                noise_scaled,
            } => ActionDistribution::new(
                eligible.to_vec(),
                self.ucb_probs(&p, eligible, alpha, noise_scaled),
                false,
            )?
            .with_floor(self.exploration_floor),
            Exploration::Thompson {
                scale,
                prior_noise_variance,
                prior_noise_weight,
            } => {
                // Monte Carlo with a fixed seed, so the estimate is repeatable.
                let n = 4 * (THOMPSON_SHARED_DRAWS + 1);
                let mut counts = vec![0u32; eligible.len()];
                match self.sampling_factor(&p, scale, prior_noise_variance, prior_noise_weight) {
                    Some(l) => {
                        let rng = ChaCha8Rng::seed_from_u64(0x7475_6e65_6c6f_6f70);
                        let mut draws = PosteriorDraws::new(l, rng, self.arm_dim);
                        for _ in 0..n {
                            counts[draws.argmax(self, &p, eligible)] += 1;
                        }
                    }
                    None => counts.fill(1),
                }
                let total: u32 = counts.iter().sum();
                let probs = counts
                    .iter()
                    .map(|&c| f64::from(c) / f64::from(total))
                    .collect();
                ActionDistribution::new(eligible.to_vec(), probs, true)?
                    .with_floor(self.exploration_floor)
            }
        }
    }

    fn select(
        &self,
        x: &Features,
        eligible: &[usize],
        key: &SelectionKey,
    ) -> CoreResult<Selection> {
        let p = self.checked(x, eligible)?;
        let k = eligible.len();
        let floor = self.exploration_floor;
        let mut rng = ChaCha8Rng::from_seed(key.rng_seed());
        let u = open_uniform(&mut rng);
        match self.exploration {
            Exploration::Ucb {
                alpha,
                noise_scaled,
            } => {
                let d = ActionDistribution::new(
                    eligible.to_vec(),
                    self.ucb_probs(&p, eligible, alpha, noise_scaled),
                    false,
                )?
                .with_floor(floor)?;
                Ok(d.sample(u))
            }
            Exploration::Thompson {
                scale,
                prior_noise_variance,
                prior_noise_weight,
            } => {
                let Some(l) =
                    self.sampling_factor(&p, scale, prior_noise_variance, prior_noise_weight)
                else {
                    return Ok(ActionDistribution::uniform(eligible)?.sample(u));
                };
                let mut posterior = PosteriorDraws::new(l, rng, self.arm_dim);
                let explore = u < floor;
                let pos = if explore {
                    (((u / floor) * k as f64) as usize).min(k - 1)
                } else {
                    posterior.argmax(self, &p, eligible)
                };
                let mut wins = usize::from(!explore);
                let mut draws = usize::from(!explore);
                while draws < THOMPSON_SHARED_DRAWS + 1 {
                    if posterior.argmax(self, &p, eligible) == pos {
                        wins += 1;
                    }
                    draws += 1;
                }
                let ts = wins as f64 / draws as f64;
                Ok(Selection {
                    arm: eligible[pos],
                    propensity: (1.0 - floor) * ts + floor / k as f64,
                    propensity_estimated: true,
                })
            }
        }
    }

    fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        crate::ridge::check_update(x, arm, reward, self.context_dim, self.num_arms)?;
        let phi = self.joint(x.as_slice(), arm);
        self.ridge.update(0, &phi, reward);
        self.version = self.version.saturating_add(1);
        Ok(())
    }

    fn snapshot(&self) -> CoreResult<PolicySnapshot> {
        to_snapshot(self, self.kind(), self.version)
    }

    fn statistics(&self) -> Option<SufficientStatistics> {
        Some(self.ridge.statistics())
    }

    fn replace_statistics(&mut self, s: &SufficientStatistics) -> CoreResult<()> {
        self.ridge.replace_statistics(s)?;
        self.version = self.version.saturating_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_equals_the_explicit_joint_computation()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let arms = ArmSet::grid()
            .models(["a", "b"])
            .temperatures([0.0, 0.6, 1.2])
            .max_tokens([100, 1000])
            .build()?;
        let mut p = LinUcbParams::default().build_shared(&arms, 3)?;
        let xs = [[1.0, 0.3, -0.2], [1.0, -0.5, 0.9], [1.0, 0.0, 0.4]];
        for (i, x) in xs.iter().enumerate() {
            p.update(
                &Features::new(x.to_vec())?,
                i * 3 % arms.len(),
                0.1 * i as f64,
            )?;
        }
        let x = [1.0, 0.2, 0.7];
        let proj = p.project(&x);
        let (a_inv, theta) = p.ridge.arm_state(0);
        let dim = p.ridge.dim();
        for arm in 0..arms.len() {
            let phi = p.joint(&x, arm);
            let mean: f64 = phi.iter().zip(theta).map(|(a, b)| a * b).sum();
            let mut quad = 0.0;
            for r in 0..dim {
                for c in 0..dim {
                    quad += phi[r] * a_inv[crate::ridge::packed_index(dim, r, c)] * phi[c];
                }
            }
            let (m2, q2) = p.mean_and_var(&proj, arm);
            assert!(
                (mean - m2).abs() < 1e-12 && (quad - q2).abs() < 1e-12,
                "arm {arm}"
            );
        }
        Ok(())
    }
}
