//! The [`Policy`] trait every chooser implements, and the
//! [`ActionDistribution`] it reports.
//!
//! Arms are addressed by their index in the [`ArmSet`](crate::ArmSet). A
//! policy is asked about an *eligible* subset — what the gates left — and
//! must put all its probability there. The probability of the arm it picks
//! is the propensity that the decision log records.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Features;
use crate::hash::splitmix64;
use crate::id::DecisionId;
use crate::sufficient::SufficientStatistics;

/// How far a distribution's sum may stray from 1 before it is refused
/// (within it, the probabilities are renormalized to sum to 1).
pub const PROBABILITY_TOLERANCE: f64 = 1e-9;

/// A policy's probabilities over the eligible arms of one decision.
///
/// Invariants (checked at construction): at least one arm, no arm twice,
/// every probability finite and in `[0, 1]`, and the sum within
/// [`PROBABILITY_TOLERANCE`] of 1 (then renormalized). `estimated` marks
/// probabilities that are Monte-Carlo estimates rather than exact.
///
/// ```
/// use tuneloop_core::ActionDistribution;
/// let d = ActionDistribution::new(vec![0, 3], vec![0.25, 0.75], false)?;
/// assert_eq!(d.probability_of(3), 0.75);
/// assert_eq!(d.probability_of(1), 0.0);
/// let floored = d.with_floor(0.1)?; // each arm gets at least 0.1 / 2
/// assert!((floored.probability_of(0) - 0.275).abs() < 1e-12);
/// # Ok::<(), tuneloop_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDistribution", into = "RawDistribution")]
pub struct ActionDistribution {
    arms: Vec<usize>,
    probabilities: Vec<f64>,
    estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawDistribution {
    arms: Vec<usize>,
    probabilities: Vec<f64>,
    #[serde(default)]
    estimated: bool,
}

impl TryFrom<RawDistribution> for ActionDistribution {
    type Error = Error;
    fn try_from(r: RawDistribution) -> Result<Self> {
        ActionDistribution::new(r.arms, r.probabilities, r.estimated)
    }
}

impl From<ActionDistribution> for RawDistribution {
    fn from(d: ActionDistribution) -> Self {
        RawDistribution {
            arms: d.arms,
            probabilities: d.probabilities,
            estimated: d.estimated,
        }
    }
}

impl ActionDistribution {
    /// A distribution putting `probabilities[i]` on arm `arms[i]`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for lists of different lengths,
    /// [`Error::EmptyEligibleSet`], [`Error::DuplicateArm`],
    /// [`Error::InvalidProbability`], [`Error::ProbabilitiesDoNotSumToOne`].
    pub fn new(arms: Vec<usize>, mut probabilities: Vec<f64>, estimated: bool) -> Result<Self> {
        if arms.len() != probabilities.len() {
            return Err(Error::DimensionMismatch {
                expected: arms.len(),
                actual: probabilities.len(),
            });
        }
        check_unique_nonempty(&arms)?;
        let mut sum = 0.0;
        for (index, &value) in probabilities.iter().enumerate() {
            if !(value.is_finite() && (0.0..=1.0 + PROBABILITY_TOLERANCE).contains(&value)) {
                return Err(Error::InvalidProbability { index, value });
            }
            sum += value;
        }
        if (sum - 1.0).abs() > PROBABILITY_TOLERANCE {
            return Err(Error::ProbabilitiesDoNotSumToOne {
                sum,
                tolerance: PROBABILITY_TOLERANCE,
            });
        }
        for p in &mut probabilities {
            *p = (*p / sum).min(1.0);
        }
        Ok(ActionDistribution {
            arms,
            probabilities,
            estimated,
        })
    }

    /// The uniform distribution over `arms`.
    ///
    /// # Errors
    /// [`Error::EmptyEligibleSet`] or [`Error::DuplicateArm`].
    pub fn uniform(arms: &[usize]) -> Result<Self> {
        check_unique_nonempty(arms)?;
        let p = 1.0 / arms.len() as f64;
        Ok(ActionDistribution {
            arms: arms.to_vec(),
            probabilities: vec![p; arms.len()],
            estimated: false,
        })
    }

    /// All mass on `arm`, which must be one of `eligible`.
    ///
    /// # Errors
    /// As [`uniform`](Self::uniform), or [`Error::UnknownArm`] if `arm` is
    /// not eligible.
    pub fn point(arm: usize, eligible: &[usize]) -> Result<Self> {
        check_unique_nonempty(eligible)?;
        let probabilities: Vec<f64> = eligible
            .iter()
            .map(|&a| if a == arm { 1.0 } else { 0.0 })
            .collect();
        if !eligible.contains(&arm) {
            return Err(Error::UnknownArm {
                arm,
                num_arms: eligible.len(),
            });
        }
        Ok(ActionDistribution {
            arms: eligible.to_vec(),
            probabilities,
            estimated: false,
        })
    }

    /// Mixes in uniform exploration: `p' = (1 − floor) · p + floor / K`, so
    /// every one of the `K` arms has probability at least `floor / K`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `floor` is in `[0, 1]`.
    pub fn with_floor(mut self, floor: f64) -> Result<Self> {
        if !(floor.is_finite() && (0.0..=1.0).contains(&floor)) {
            return Err(Error::InvalidConfig {
                field: "exploration_floor",
                reason: format!("{floor} is not in [0, 1]"),
            });
        }
        let k = self.arms.len() as f64;
        for p in &mut self.probabilities {
            *p = (1.0 - floor) * *p + floor / k;
        }
        Ok(self)
    }

    /// The arms, in the order given.
    pub fn arms(&self) -> &[usize] {
        &self.arms
    }

    /// The probabilities, aligned with [`arms`](Self::arms).
    pub fn probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// Whether the probabilities are estimates (e.g. Thompson sampling's
    /// Monte-Carlo probability of being the argmax).
    pub fn is_estimated(&self) -> bool {
        self.estimated
    }

    /// Number of arms.
    pub fn len(&self) -> usize {
        self.arms.len()
    }

    /// Never true for a constructed distribution.
    pub fn is_empty(&self) -> bool {
        self.arms.is_empty()
    }

    /// The probability of `arm` (0 for an arm not in the distribution).
    pub fn probability_of(&self, arm: usize) -> f64 {
        self.arms
            .iter()
            .position(|&a| a == arm)
            .map_or(0.0, |i| self.probabilities[i])
    }

    /// `(arm, probability)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.arms
            .iter()
            .copied()
            .zip(self.probabilities.iter().copied())
    }

    /// The arm at quantile `u` of the distribution (inverse CDF in arm
    /// order) and its probability. `u` outside `[0, 1)` is clamped. Arms of
    /// probability 0 are never returned.
    pub fn sample(&self, u: f64) -> Selection {
        let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
        let mut cumulative = 0.0;
        let mut last_positive = 0;
        for (i, &p) in self.probabilities.iter().enumerate() {
            if p > 0.0 {
                last_positive = i;
                cumulative += p;
                if u < cumulative {
                    return self.selection(i);
                }
            }
        }
        // Only reached through rounding when u is within 1 ulp of 1.
        self.selection(last_positive)
    }

    fn selection(&self, i: usize) -> Selection {
        Selection {
            arm: self.arms[i],
            propensity: self.probabilities[i],
            propensity_estimated: self.estimated,
        }
    }
}

fn check_unique_nonempty(arms: &[usize]) -> Result<()> {
    if arms.is_empty() {
        return Err(Error::EmptyEligibleSet);
    }
    // A bitset on the stack covers every arm index below 512 in O(n).
    let mut bits = [0u64; 8];
    let mut large = Vec::new();
    for &a in arms {
        if a < 512 {
            let (word, bit) = (a / 64, 1u64 << (a % 64));
            if bits[word] & bit != 0 {
                return Err(Error::DuplicateArm { arm: a });
            }
            bits[word] |= bit;
        } else {
            large.push(a);
        }
    }
    if !large.is_empty() {
        large.sort_unstable();
        if let Some(w) = large.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateArm { arm: w[0] });
        }
    }
    Ok(())
}

/// Checks an eligible set against a policy of `num_arms` arms: not empty,
/// every index in range, none twice.
///
/// # Errors
/// [`Error::EmptyEligibleSet`], [`Error::UnknownArm`] or
/// [`Error::DuplicateArm`].
pub fn check_eligible(eligible: &[usize], num_arms: usize) -> Result<()> {
    if let Some(&arm) = eligible.iter().find(|&&a| a >= num_arms) {
        return Err(Error::UnknownArm { arm, num_arms });
    }
    check_unique_nonempty(eligible)
}

/// The arm a policy chose and the probability with which it chose it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Index of the chosen arm in the arm set.
    pub arm: usize,
    /// The policy's probability of choosing it, in `(0, 1]`.
    pub propensity: f64,
    /// Whether `propensity` is an estimate.
    pub propensity_estimated: bool,
}

/// What makes a selection reproducible: the optimizer's seed and the
/// decision's id. Same policy state + same key ⇒ same choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SelectionKey {
    /// The optimizer's (or simulation's) seed.
    pub seed: u64,
    /// The decision being made.
    pub decision: DecisionId,
}

impl SelectionKey {
    /// A key from a seed and a decision id.
    pub fn new(seed: u64, decision: DecisionId) -> Self {
        SelectionKey { seed, decision }
    }

    /// 32 bytes to seed a ChaCha8 generator, derived from both halves of the
    /// key by a SplitMix64 chain. Stable: part of the replay contract.
    pub fn rng_seed(&self) -> [u8; 32] {
        let id = self.decision.as_u128();
        let mut z = splitmix64(self.seed);
        z = splitmix64(z ^ (id as u64));
        z = splitmix64(z ^ ((id >> 64) as u64));
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            z = splitmix64(z);
            chunk.copy_from_slice(&z.to_le_bytes());
        }
        out
    }

    /// A uniform number in `[0, 1)` derived from the key (53 random bits),
    /// for policies that need one draw.
    pub fn uniform(&self) -> f64 {
        let s = self.rng_seed();
        let mut b = [0u8; 8];
        b.copy_from_slice(&s[..8]);
        (u64::from_le_bytes(b) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The learned state of a policy, as versioned JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySnapshot {
    /// Version of the snapshot format of `kind`.
    pub schema_version: u32,
    /// Which policy wrote it (`"linucb"`, `"thompson"`, ...).
    pub kind: String,
    /// The policy version at the time of the snapshot.
    pub version: u64,
    /// The policy's own state.
    pub state: serde_json::Value,
}

/// A chooser of arms: given a context and the eligible arms, a distribution
/// and a selection; given a reward, an update.
///
/// Implemented by every policy of `tuneloop-bandit`; used by the optimizer
/// to decide and by `tuneloop-counterfactual` to evaluate a candidate on
/// logged contexts. Implementations must be deterministic given their state
/// and the [`SelectionKey`].
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// Short name of the policy kind, as in snapshots.
    fn kind(&self) -> &'static str;

    /// A counter that changes whenever the learned state changes.
    fn version(&self) -> u64;

    /// Dimension of the contexts it accepts.
    fn context_dim(&self) -> usize;

    /// Number of arms it chooses among (eligible sets index `0..num_arms`).
    fn num_arms(&self) -> usize;

    /// The probability of choosing each eligible arm in this context.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`], [`Error::EmptyEligibleSet`],
    /// [`Error::UnknownArm`], [`Error::DuplicateArm`].
    fn distribution(&self, context: &Features, eligible: &[usize]) -> Result<ActionDistribution>;

    /// Chooses an eligible arm, reproducibly for `key`, with its propensity.
    ///
    /// The default samples [`distribution`](Self::distribution) at the
    /// key's [`uniform`](SelectionKey::uniform) draw; policies whose choice
    /// is itself random (Thompson sampling) override it.
    ///
    /// # Errors
    /// As [`distribution`](Self::distribution).
    fn select(
        &self,
        context: &Features,
        eligible: &[usize],
        key: &SelectionKey,
    ) -> Result<Selection> {
        Ok(self.distribution(context, eligible)?.sample(key.uniform()))
    }

    /// Learns from the reward observed for `arm` in `context`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`], [`Error::UnknownArm`],
    /// [`Error::InvalidReward`]; on error the state is unchanged.
    fn update(&mut self, context: &Features, arm: usize, reward: f64) -> Result<()>;

    /// The learned state, to persist and restore.
    ///
    /// # Errors
    /// [`Error::Snapshot`] if it cannot be serialized.
    fn snapshot(&self) -> Result<PolicySnapshot>;

    /// The additive part of the learned state, to merge with other
    /// processes' learning (see [`crate::sufficient`]); `None` for a policy
    /// that does not learn or whose state does not add up (the default).
    fn statistics(&self) -> Option<SufficientStatistics> {
        None
    }

    /// Replaces the learned state by the one these statistics define (as
    /// if the policy had been fed the updates they sum), recomputing what
    /// it derives from them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the statistics do not fit the policy
    /// (shape, discount, a non-finite value) or the policy has none (the
    /// default); on error the state is unchanged.
    fn replace_statistics(&mut self, statistics: &SufficientStatistics) -> Result<()> {
        let _ = statistics;
        Err(Error::InvalidConfig {
            field: "statistics",
            reason: format!("policy `{}` has no sufficient statistics", self.kind()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invalid_distributions_are_refused() {
        assert_eq!(
            ActionDistribution::new(vec![0, 1], vec![0.5], false),
            Err(Error::DimensionMismatch {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            ActionDistribution::new(vec![], vec![], false),
            Err(Error::EmptyEligibleSet)
        );
        assert_eq!(
            ActionDistribution::new(vec![1, 1], vec![0.5, 0.5], false),
            Err(Error::DuplicateArm { arm: 1 })
        );
        assert!(matches!(
            ActionDistribution::new(vec![0, 1], vec![-0.1, 1.1], false),
            Err(Error::InvalidProbability { index: 0, .. })
        ));
        assert!(matches!(
            ActionDistribution::new(vec![0, 1], vec![0.5, f64::NAN], false),
            Err(Error::InvalidProbability { index: 1, .. })
        ));
        assert!(matches!(
            ActionDistribution::new(vec![0, 1], vec![0.5, 0.6], false),
            Err(Error::ProbabilitiesDoNotSumToOne { .. })
        ));
        assert!(
            ActionDistribution::with_floor(
                ActionDistribution::uniform(&[0]).unwrap_or_else(|_| unreachable!()),
                1.5
            )
            .is_err()
        );
    }

    #[test]
    fn sample_is_the_inverse_cdf() -> Result<()> {
        let d = ActionDistribution::new(vec![7, 2, 5], vec![0.2, 0.0, 0.8], false)?;
        assert_eq!(d.sample(0.0).arm, 7);
        assert_eq!(d.sample(0.1999).arm, 7);
        assert_eq!(d.sample(0.2).arm, 5, "zero-probability arm 2 is skipped");
        assert_eq!(d.sample(0.999_999).arm, 5);
        assert_eq!(d.sample(1.0).arm, 5);
        assert_eq!(d.sample(f64::NAN).arm, 7);
        assert!((d.sample(0.5).propensity - 0.8).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn check_eligible_names_the_problem() {
        assert_eq!(check_eligible(&[], 3), Err(Error::EmptyEligibleSet));
        assert_eq!(
            check_eligible(&[0, 3], 3),
            Err(Error::UnknownArm {
                arm: 3,
                num_arms: 3
            })
        );
        assert_eq!(
            check_eligible(&[2, 0, 2], 3),
            Err(Error::DuplicateArm { arm: 2 })
        );
        let big: Vec<usize> = (0..100).chain([50]).collect();
        assert_eq!(
            check_eligible(&big, 200),
            Err(Error::DuplicateArm { arm: 50 })
        );
        let huge: Vec<usize> = (0..2000).chain([1500]).collect();
        assert_eq!(
            check_eligible(&huge, 4096),
            Err(Error::DuplicateArm { arm: 1500 })
        );
        assert_eq!(check_eligible(&[1, 0], 2), Ok(()));
    }

    // Value stability: the key → seed derivation is part of the replay
    // contract; decision logs replay only while these hold.
    #[test]
    fn selection_key_derivation_is_pinned() {
        let key = SelectionKey::new(42, DecisionId::from_u128(7));
        let s = key.rng_seed();
        assert_eq!(&s[..8], &PINNED_SEED_BYTES);
        assert!((key.uniform() - PINNED_UNIFORM).abs() < 1e-18);
        let other = SelectionKey::new(43, DecisionId::from_u128(7));
        assert_ne!(other.rng_seed(), s);
    }

    // Computed independently (Python transcription of `rng_seed`).
    const PINNED_SEED_BYTES: [u8; 8] = [225, 22, 219, 45, 35, 158, 155, 125];
    const PINNED_UNIFORM: f64 = 0.490_655_788_029_340_07;

    #[test]
    fn key_uniforms_look_uniform() {
        // 10,000 keys: mean 1/2 ± 4σ (σ = sqrt(1/12/n) ≈ 0.0029), and every
        // decile within binomial bounds.
        let n = 10_000u128;
        let mut deciles = [0u32; 10];
        let mut sum = 0.0;
        for i in 0..n {
            let u = SelectionKey::new(1, DecisionId::from_u128(i)).uniform();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            deciles[(u * 10.0) as usize] += 1;
        }
        assert!((sum / n as f64 - 0.5).abs() < 4.0 * 0.0029);
        // Binomial(10000, 0.1): mean 1000, sd 30; allow 5 sd.
        assert!(
            deciles.iter().all(|&c| (850..=1150).contains(&c)),
            "{deciles:?}"
        );
    }

    proptest! {
        #[test]
        fn constructed_distributions_are_proper(
            weights in proptest::collection::vec(0.0f64..10.0, 1..40),
            floor in 0.0f64..=1.0,
        ) {
            let total: f64 = weights.iter().sum();
            prop_assume!(total > 0.0);
            let probs: Vec<f64> = weights.iter().map(|w| w / total).collect();
            let arms: Vec<usize> = (0..probs.len()).collect();
            let d = ActionDistribution::new(arms, probs, false)
                .and_then(|d| d.with_floor(floor))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let k = d.len() as f64;
            let sum: f64 = d.probabilities().iter().sum();
            prop_assert!((sum - 1.0).abs() <= 1e-12);
            for &p in d.probabilities() {
                prop_assert!((0.0..=1.0).contains(&p));
                prop_assert!(p >= floor / k - 1e-15);
            }
        }

        #[test]
        fn sampling_returns_an_arm_with_positive_probability(
            weights in proptest::collection::vec(0.0f64..10.0, 1..20),
            u in any::<f64>(),
        ) {
            let total: f64 = weights.iter().sum();
            prop_assume!(total > 0.0);
            let probs: Vec<f64> = weights.iter().map(|w| w / total).collect();
            let d = ActionDistribution::new((0..probs.len()).collect(), probs, false)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let s = d.sample(u);
            prop_assert!(s.propensity > 0.0);
            prop_assert!((d.probability_of(s.arm) - s.propensity).abs() < 1e-15);
        }
    }
}
