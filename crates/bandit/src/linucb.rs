//! LinUCB (Li et al., 2010, disjoint model) and ε-greedy over per-arm ridge
//! regressions: both choose the arm of highest score, mixed with uniform
//! exploration, so their distributions are exact.

use serde::{Deserialize, Serialize};
use tuneloop_core::{
    ActionDistribution, Features, Policy, PolicySnapshot, Result as CoreResult, Selection,
    SelectionKey, SufficientStatistics, check_eligible,
};

use crate::error::{Error, Result, check_param};
use crate::ridge::{RidgeArms, packed_len, quad_weights};
use crate::scratch::{Scratch, with_zeros};
use crate::snapshot::{from_snapshot, to_snapshot};

/// Relative tolerance within which two scores count as tied.
const TIE_TOLERANCE: f64 = 1e-12;

/// Hyperparameters of [`LinUcb`].
///
/// ```
/// use tuneloop_bandit::LinUcbParams;
/// let policy = LinUcbParams { alpha: 0.5, ..LinUcbParams::default() }.build(8, 16)?;
/// assert!(LinUcbParams { alpha: -1.0, ..LinUcbParams::default() }.build(8, 16).is_err());
/// # Ok::<(), tuneloop_bandit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinUcbParams {
    /// Width of the confidence bonus, `>= 0` (default 2.0, in units of the
    /// estimated noise standard deviation; see `noise_scaled`). The default
    /// was chosen once, on the built-in `llm-params` scenario and six
    /// supervised data sets together, and is not tuned per data set.
    pub alpha: f64,
    /// Whether the bonus is measured in units of the arm's estimated reward
    /// noise: `alpha·σ̂_a·sqrt(xᵀA⁻¹x)` instead of `alpha·sqrt(xᵀA⁻¹x)`
    /// (default true). `σ̂_a²` is the arm's residual variance shrunk towards
    /// 0.25 with the weight of 4 observations, as in Thompson sampling. This
    /// makes `alpha` independent of the reward's scale and noise.
    pub noise_scaled: bool,
    /// Ridge regularization λ, `> 0` (default 1.0).
    pub lambda: f64,
    /// Probability mass spread uniformly over the eligible arms, in
    /// `[0, 1]` (default 0.02): every arm has probability `>= floor / K`.
    pub exploration_floor: f64,
    /// Updates of an arm between full re-inversions of its matrix (default
    /// 1024).
    pub refresh_every: u32,
    /// Forgetting factor γ in `(0, 1)` applied at each update of an arm, for
    /// backends whose behaviour drifts; `None` (default) remembers all.
    pub discount: Option<f64>,
}

impl Default for LinUcbParams {
    fn default() -> Self {
        LinUcbParams {
            alpha: 2.0,
            noise_scaled: true,
            lambda: 1.0,
            exploration_floor: 0.02,
            refresh_every: 1024,
            discount: None,
        }
    }
}

pub(crate) fn check_common(
    lambda: f64,
    floor: f64,
    discount: Option<f64>,
    refresh: u32,
) -> Result<()> {
    check_param("lambda", lambda, lambda > 0.0, "a finite lambda > 0")?;
    check_param(
        "exploration_floor",
        floor,
        (0.0..=1.0).contains(&floor),
        "0 <= exploration_floor <= 1",
    )?;
    if let Some(g) = discount {
        check_param("discount", g, g > 0.0 && g < 1.0, "0 < discount < 1")?;
    }
    check_param(
        "refresh_every",
        f64::from(refresh),
        refresh >= 1,
        "refresh_every >= 1",
    )?;
    Ok(())
}

/// Most context dimensions a policy takes.
pub const MAX_DIM: usize = 4096;

/// Most values a per-arm learner's state may hold: `K·(d(d+1) + 2d + 3)`
/// doubles (two packed triangles, two vectors and counters per arm) up to
/// 2²⁷, 1 GiB. Checked before anything is allocated.
pub const MAX_STATE_VALUES: usize = 1 << 27;

pub(crate) fn check_shape(num_arms: usize, dim: usize) -> Result<()> {
    check_param(
        "num_arms",
        num_arms as f64,
        num_arms >= 1,
        "at least one arm",
    )?;
    check_param(
        "dim",
        dim as f64,
        (1..=MAX_DIM).contains(&dim),
        "a context dimension in 1..=4096 (MAX_DIM)",
    )?;
    Ok(())
}

/// [`check_shape`], and the learned state within [`MAX_STATE_VALUES`].
pub(crate) fn check_state(num_arms: usize, dim: usize) -> Result<()> {
    check_shape(num_arms, dim)?;
    let values = num_arms.saturating_mul(dim * (dim + 1) + 2 * dim + 3);
    check_param(
        "num_arms·dim²",
        values as f64,
        values <= MAX_STATE_VALUES,
        "a learned state of at most 2^27 values, 1 GiB (MAX_STATE_VALUES): fewer arms or features",
    )
    .map_err(Into::into)
}

impl LinUcbParams {
    /// Checks every hyperparameter.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad one.
    pub fn check(&self) -> Result<()> {
        check_param(
            "alpha",
            self.alpha,
            self.alpha >= 0.0,
            "a finite alpha >= 0",
        )?;
        check_common(
            self.lambda,
            self.exploration_floor,
            self.discount,
            self.refresh_every,
        )
    }

    pub(crate) fn bonus(&self) -> Bonus {
        Bonus {
            alpha: self.alpha,
            noise_scaled: self.noise_scaled,
        }
    }

    /// A LinUCB policy over `num_arms` arms and contexts of dimension `dim`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`].
    pub fn build(&self, num_arms: usize, dim: usize) -> Result<LinUcb> {
        self.check()?;
        check_state(num_arms, dim)?;
        Ok(LinUcb {
            core: GreedyCore::new(
                num_arms,
                dim,
                self.lambda,
                self.refresh_every,
                self.discount,
            ),
            params: self.clone(),
        })
    }
}

/// Prior guess of the reward noise variance for a noise-scaled bonus.
pub(crate) const NOISE_PRIOR: f64 = 0.25;
/// How many observations [`NOISE_PRIOR`] is worth.
pub(crate) const NOISE_PRIOR_WEIGHT: f64 = 4.0;

/// The exploration bonus of a score: `alpha·sqrt(xᵀA⁻¹x)`, times `σ̂` if
/// noise-scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bonus {
    pub(crate) alpha: f64,
    pub(crate) noise_scaled: bool,
}

impl Bonus {
    pub(crate) const NONE: Bonus = Bonus {
        alpha: 0.0,
        noise_scaled: false,
    };
}

/// The shared machinery: per-arm ridge regression, a bonus `alpha·sqrt(xᵀA⁻¹x)`,
/// argmax with ties split evenly, and a uniform floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GreedyCore {
    pub(crate) ridge: RidgeArms,
    pub(crate) version: u64,
}

impl GreedyCore {
    pub(crate) fn new(
        k: usize,
        d: usize,
        lambda: f64,
        refresh: u32,
        discount: Option<f64>,
    ) -> Self {
        GreedyCore {
            ridge: RidgeArms::new(k, d, lambda, refresh, discount),
            version: 0,
        }
    }

    /// Scores of the eligible arms, after checking the inputs.
    fn scores(&self, x: &Features, eligible: &[usize], bonus: Bonus) -> CoreResult<Scratch> {
        x.expect_dim(self.ridge.dim())?;
        check_eligible(eligible, self.ridge.num_arms())?;
        let mut s = Scratch::zeros(eligible.len());
        let xs = x.as_slice();
        let score = |arm: usize, (mean, quad): (f64, f64)| {
            if bonus.alpha > 0.0 {
                let width = if bonus.noise_scaled {
                    (self
                        .ridge
                        .noise_variance(arm, NOISE_PRIOR, NOISE_PRIOR_WEIGHT)
                        * quad)
                        .sqrt()
                } else {
                    quad.sqrt()
                };
                mean + bonus.alpha * width
            } else {
                mean
            }
        };
        with_zeros(packed_len(xs.len()), |xx| {
            quad_weights(xs, xx);
            for (slot, &arm) in s.iter_mut().zip(eligible) {
                *slot = score(arm, self.ridge.predict(arm, xs, xx));
            }
        });
        Ok(s)
    }

    fn is_tied(score: f64, best: f64) -> bool {
        best - score <= TIE_TOLERANCE * (1.0 + best.abs())
    }

    pub(crate) fn distribution(
        &self,
        x: &Features,
        eligible: &[usize],
        bonus: Bonus,
        floor: f64,
    ) -> CoreResult<ActionDistribution> {
        let s = self.scores(x, eligible, bonus)?;
        let best = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ties = s.iter().filter(|&&v| Self::is_tied(v, best)).count() as f64;
        let probs = s
            .iter()
            .map(|&v| {
                if Self::is_tied(v, best) {
                    1.0 / ties
                } else {
                    0.0
                }
            })
            .collect();
        ActionDistribution::new(eligible.to_vec(), probs, false)?.with_floor(floor)
    }

    /// The same probabilities as `distribution`, sampled without building it.
    pub(crate) fn select(
        &self,
        x: &Features,
        eligible: &[usize],
        key: &SelectionKey,
        bonus: Bonus,
        floor: f64,
    ) -> CoreResult<Selection> {
        let s = self.scores(x, eligible, bonus)?;
        let k = eligible.len();
        let best = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ties = s.iter().filter(|&&v| Self::is_tied(v, best)).count();
        let u = key.uniform();
        let pos = if u < floor {
            // Uniform exploration: u / floor is uniform in [0, 1).
            (((u / floor) * k as f64) as usize).min(k - 1)
        } else {
            // Greedy: the j-th tied arm, j uniform from the rest of u.
            let v = (u - floor) / (1.0 - floor);
            let j = ((v * ties as f64) as usize).min(ties - 1);
            s.iter()
                .enumerate()
                .filter(|(_, v)| Self::is_tied(**v, best))
                .nth(j)
                .map_or(0, |(i, _)| i)
        };
        let greedy = if Self::is_tied(s[pos], best) {
            1.0 / ties as f64
        } else {
            0.0
        };
        Ok(Selection {
            arm: eligible[pos],
            propensity: (1.0 - floor) * greedy + floor / k as f64,
            propensity_estimated: false,
        })
    }

    pub(crate) fn replace_statistics(&mut self, s: &SufficientStatistics) -> CoreResult<()> {
        self.ridge.replace_statistics(s)?;
        self.version = self.version.saturating_add(1);
        Ok(())
    }

    pub(crate) fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        self.ridge.check_update(x, arm, reward)?;
        self.ridge.update(arm, x.as_slice(), reward);
        self.version = self.version.saturating_add(1);
        Ok(())
    }
}

/// LinUCB with disjoint per-arm models and an exploration floor.
///
/// Score of arm `a` in context `x`: `θ_aᵀx + alpha·σ̂_a·sqrt(xᵀA_a⁻¹x)`
/// (`σ̂_a = 1` when not [noise-scaled](LinUcbParams::noise_scaled)). The
/// arm of highest score gets `1 − floor` (split evenly among exact ties),
/// and every eligible arm gets `floor / K` more, so the distribution and
/// the logged propensity are exact. A decision costs about `K·(d²/2 + 2d)`
/// multiply-adds; an update about `2d²`.
///
/// ```
/// use tuneloop_bandit::LinUcbParams;
/// use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};
/// let mut policy = LinUcbParams::default().build(3, 2)?;
/// let x = Features::new(vec![1.0, 0.5])?;
/// for _ in 0..50 {
///     policy.update(&x, 2, 1.0)?;
///     policy.update(&x, 0, 0.0)?;
///     policy.update(&x, 1, 0.0)?;
/// }
/// let s = policy.select(&x, &[0, 1, 2], &SelectionKey::new(1, DecisionId::from_u128(1)))?;
/// let d = policy.distribution(&x, &[0, 1, 2])?;
/// assert!((d.probability_of(s.arm) - s.propensity).abs() < 1e-12);
/// assert!(d.probability_of(2) > 0.9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinUcb {
    params: LinUcbParams,
    core: GreedyCore,
}

impl LinUcb {
    /// Snapshot kind of this policy.
    pub const KIND: &'static str = "linucb";

    /// Its hyperparameters.
    pub fn params(&self) -> &LinUcbParams {
        &self.params
    }

    /// Observations of each arm so far (discounted when forgetting).
    pub fn observations(&self) -> &[f64] {
        self.core.ridge.counts()
    }

    /// Restores a policy from [`Policy::snapshot`].
    ///
    /// # Errors
    /// [`Error::Snapshot`] if the snapshot is of another kind or version, or
    /// its state does not fit; [`Error::InvalidParameter`].
    pub fn restore(snapshot: &PolicySnapshot) -> Result<Self> {
        let p: LinUcb = from_snapshot(snapshot, Self::KIND)?;
        p.params.check()?;
        if !p.core.ridge.check_shape() {
            return Err(Error::Snapshot {
                reason: "linucb state has buffers of the wrong size or non-finite values".into(),
            });
        }
        Ok(p)
    }
}

impl Policy for LinUcb {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn version(&self) -> u64 {
        self.core.version
    }
    fn context_dim(&self) -> usize {
        self.core.ridge.dim()
    }
    fn num_arms(&self) -> usize {
        self.core.ridge.num_arms()
    }
    fn distribution(&self, x: &Features, eligible: &[usize]) -> CoreResult<ActionDistribution> {
        self.core.distribution(
            x,
            eligible,
            self.params.bonus(),
            self.params.exploration_floor,
        )
    }
    fn select(
        &self,
        x: &Features,
        eligible: &[usize],
        key: &SelectionKey,
    ) -> CoreResult<Selection> {
        self.core.select(
            x,
            eligible,
            key,
            self.params.bonus(),
            self.params.exploration_floor,
        )
    }
    fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        self.core.update(x, arm, reward)
    }
    fn snapshot(&self) -> CoreResult<PolicySnapshot> {
        to_snapshot(self, Self::KIND, self.core.version)
    }
    fn statistics(&self) -> Option<SufficientStatistics> {
        Some(self.core.ridge.statistics())
    }
    fn replace_statistics(&mut self, s: &SufficientStatistics) -> CoreResult<()> {
        self.core.replace_statistics(s)
    }
}

/// Hyperparameters of [`EpsilonGreedy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpsilonGreedyParams {
    /// Probability of a uniformly random eligible arm, in `[0, 1]`
    /// (default 0.1).
    pub epsilon: f64,
    /// Ridge regularization λ, `> 0` (default 1.0).
    pub lambda: f64,
    /// Forgetting factor, as in [`LinUcbParams::discount`].
    pub discount: Option<f64>,
}

impl Default for EpsilonGreedyParams {
    fn default() -> Self {
        EpsilonGreedyParams {
            epsilon: 0.1,
            lambda: 1.0,
            discount: None,
        }
    }
}

impl EpsilonGreedyParams {
    /// Checks every hyperparameter.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`].
    pub fn check(&self) -> Result<()> {
        check_common(self.lambda, self.epsilon, self.discount, 1024).map_err(|e| match e {
            Error::InvalidParameter {
                field: "exploration_floor",
                value,
                ..
            } => Error::InvalidParameter {
                field: "epsilon",
                value,
                expected: "0 <= epsilon <= 1",
            },
            other => other,
        })
    }

    /// An ε-greedy policy over `num_arms` arms in `dim` dimensions.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`].
    pub fn build(&self, num_arms: usize, dim: usize) -> Result<EpsilonGreedy> {
        self.check()?;
        check_state(num_arms, dim)?;
        Ok(EpsilonGreedy {
            core: GreedyCore::new(num_arms, dim, self.lambda, 1024, self.discount),
            params: self.clone(),
        })
    }
}

/// ε-greedy over per-arm ridge regressions: the arm of highest predicted
/// reward with probability `1 − ε` (ties split), a uniform eligible arm
/// with probability `ε`. Exact propensities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpsilonGreedy {
    params: EpsilonGreedyParams,
    core: GreedyCore,
}

impl EpsilonGreedy {
    /// Snapshot kind of this policy.
    pub const KIND: &'static str = "epsilon-greedy";

    /// Restores a policy from [`Policy::snapshot`].
    ///
    /// # Errors
    /// As [`LinUcb::restore`].
    pub fn restore(snapshot: &PolicySnapshot) -> Result<Self> {
        let p: EpsilonGreedy = from_snapshot(snapshot, Self::KIND)?;
        p.params.check()?;
        if !p.core.ridge.check_shape() {
            return Err(Error::Snapshot {
                reason: "epsilon-greedy state does not fit its shape".into(),
            });
        }
        Ok(p)
    }
}

impl Policy for EpsilonGreedy {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn version(&self) -> u64 {
        self.core.version
    }
    fn context_dim(&self) -> usize {
        self.core.ridge.dim()
    }
    fn num_arms(&self) -> usize {
        self.core.ridge.num_arms()
    }
    fn distribution(&self, x: &Features, eligible: &[usize]) -> CoreResult<ActionDistribution> {
        self.core
            .distribution(x, eligible, Bonus::NONE, self.params.epsilon)
    }
    fn select(
        &self,
        x: &Features,
        eligible: &[usize],
        key: &SelectionKey,
    ) -> CoreResult<Selection> {
        self.core
            .select(x, eligible, key, Bonus::NONE, self.params.epsilon)
    }
    fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        self.core.update(x, arm, reward)
    }
    fn snapshot(&self) -> CoreResult<PolicySnapshot> {
        to_snapshot(self, Self::KIND, self.core.version)
    }
    fn statistics(&self) -> Option<SufficientStatistics> {
        Some(self.core.ridge.statistics())
    }
    fn replace_statistics(&mut self, s: &SufficientStatistics) -> CoreResult<()> {
        self.core.replace_statistics(s)
    }
}
