//! Contextual bandit policies for tuneloop, each implementing
//! [`tuneloop_core::Policy`]:
//!
//! | policy | model | propensity |
//! |---|---|---|
//! | [`LinUcb`] | per-arm ridge regression, upper confidence bound | exact |
//! | [`ThompsonGaussian`] | per-arm Bayesian linear regression, posterior sampling | quadrature estimate, flagged |
//! | [`EpsilonGreedy`] | per-arm ridge regression, greedy + ε uniform | exact |
//! | [`Uniform`] | none | exact |
//! | [`Fixed`] | the incumbent arm + floor | exact |
//! | [`SharedLinear`] (UCB) | one ridge model over context ⊗ arm features | exact |
//! | [`SharedLinear`] (Thompson) | one Bayesian model over context ⊗ arm features | Monte-Carlo estimate, flagged |
//!
//! Every learning policy mixes in an exploration floor, so each eligible arm
//! has probability at least `floor / K` and off-policy evaluation always has
//! support. Choices are reproducible: the same state and
//! [`SelectionKey`](tuneloop_core::SelectionKey) (seed + decision id) give
//! the same arm, through ChaCha8 seeded from both. Snapshots restore a
//! policy that decides exactly as the original would.
//!
//! [`PolicyConfig`] names a policy and its hyperparameters in one
//! serializable value, and [`restore`] rebuilds any policy from a snapshot.
//!
//! ```
//! use tuneloop_bandit::{PolicyConfig, LinUcbParams};
//! use tuneloop_core::{DecisionId, Features, SelectionKey};
//!
//! let mut policy = PolicyConfig::LinUcb(LinUcbParams::default()).build(4, 3)?;
//! let x = Features::new(vec![1.0, 0.2, -0.5])?;
//! let eligible = [0, 1, 2, 3];
//! let choice = policy.select(&x, &eligible, &SelectionKey::new(42, DecisionId::from_u128(1)))?;
//! assert!(choice.propensity > 0.0);
//! policy.update(&x, choice.arm, 0.7)?;
//! # Ok::<(), tuneloop_bandit::Error>(())
//! ```

mod baselines;
mod error;
mod linucb;
mod normal;
mod ridge;
mod scratch;
mod shared;
mod snapshot;
mod thompson;

pub use baselines::{Fixed, Uniform};
pub use error::{Error, Result};
pub use linucb::{
    EpsilonGreedy, EpsilonGreedyParams, LinUcb, LinUcbParams, MAX_DIM, MAX_STATE_VALUES,
};
pub use shared::{MAX_SHARED_DIM, SharedLinear, THOMPSON_SHARED_DRAWS};
pub use snapshot::SCHEMA_VERSION;
pub use thompson::{ThompsonGaussian, ThompsonParams};

use serde::{Deserialize, Serialize};
use tuneloop_core::{Policy, PolicySnapshot};

/// A policy kind and its hyperparameters: what to build, as data.
///
/// Serialized with a `kind` tag, e.g. `{"kind": "linucb", "alpha": 0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyConfig {
    /// [`LinUcb`].
    #[serde(rename = "linucb")]
    LinUcb(LinUcbParams),
    /// [`ThompsonGaussian`].
    Thompson(ThompsonParams),
    /// [`EpsilonGreedy`].
    EpsilonGreedy(EpsilonGreedyParams),
    /// [`Uniform`].
    Uniform,
    /// [`Fixed`].
    Fixed {
        /// The incumbent arm.
        arm: usize,
        /// Uniform exploration mass.
        exploration_floor: f64,
    },
    /// [`SharedLinear`] in UCB mode (needs the arm set: [`PolicyConfig::build_for_arms`]).
    LinucbShared(LinUcbParams),
    /// [`SharedLinear`] in Thompson mode (needs the arm set).
    ThompsonShared(ThompsonParams),
}

impl PolicyConfig {
    /// The policy of this kind over `num_arms` arms and contexts of
    /// dimension `dim`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`].
    pub fn build(&self, num_arms: usize, dim: usize) -> Result<Box<dyn Policy>> {
        Ok(match self {
            PolicyConfig::LinucbShared(_) | PolicyConfig::ThompsonShared(_) => {
                return Err(Error::InvalidParameter {
                    field: "kind",
                    value: f64::NAN,
                    expected: "a policy without arm features (shared policies need build_for_arms)",
                });
            }
            PolicyConfig::LinUcb(p) => Box::new(p.build(num_arms, dim)?),
            PolicyConfig::Thompson(p) => Box::new(p.build(num_arms, dim)?),
            PolicyConfig::EpsilonGreedy(p) => Box::new(p.build(num_arms, dim)?),
            PolicyConfig::Uniform => Box::new(Uniform::new(num_arms, dim)?),
            PolicyConfig::Fixed {
                arm,
                exploration_floor,
            } => Box::new(Fixed::new(*arm, num_arms, dim, *exploration_floor)?),
        })
    }
}

impl PolicyConfig {
    /// The policy of this kind over the arms of `arms` and contexts of
    /// dimension `dim`: the only way to build the shared kinds, which read
    /// the arms' features.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`].
    pub fn build_for_arms(
        &self,
        arms: &tuneloop_core::ArmSet,
        dim: usize,
    ) -> Result<Box<dyn Policy>> {
        match self {
            PolicyConfig::LinucbShared(p) => Ok(Box::new(p.build_shared(arms, dim)?)),
            PolicyConfig::ThompsonShared(p) => Ok(Box::new(p.build_shared(arms, dim)?)),
            other => other.build(arms.len(), dim),
        }
    }
}

/// Rebuilds any policy of this crate from its snapshot.
///
/// # Errors
/// [`Error::Snapshot`] for an unknown kind or a state that does not fit.
pub fn restore(snapshot: &PolicySnapshot) -> Result<Box<dyn Policy>> {
    Ok(match snapshot.kind.as_str() {
        LinUcb::KIND => Box::new(LinUcb::restore(snapshot)?),
        ThompsonGaussian::KIND => Box::new(ThompsonGaussian::restore(snapshot)?),
        EpsilonGreedy::KIND => Box::new(EpsilonGreedy::restore(snapshot)?),
        Uniform::KIND => Box::new(Uniform::restore(snapshot)?),
        Fixed::KIND => Box::new(Fixed::restore(snapshot)?),
        SharedLinear::KIND_UCB | SharedLinear::KIND_THOMPSON => {
            Box::new(SharedLinear::restore(snapshot)?)
        }
        other => {
            return Err(Error::Snapshot {
                reason: format!("unknown policy kind `{other}`"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(LinUcb: Send, Sync);
    static_assertions::assert_impl_all!(LinUcbParams: Send, Sync);
    static_assertions::assert_impl_all!(ThompsonGaussian: Send, Sync);
    static_assertions::assert_impl_all!(ThompsonParams: Send, Sync);
    static_assertions::assert_impl_all!(EpsilonGreedy: Send, Sync);
    static_assertions::assert_impl_all!(EpsilonGreedyParams: Send, Sync);
    static_assertions::assert_impl_all!(Uniform: Send, Sync);
    static_assertions::assert_impl_all!(Fixed: Send, Sync);
    static_assertions::assert_impl_all!(PolicyConfig: Send, Sync);
    static_assertions::assert_impl_all!(SharedLinear: Send, Sync);
}
