//! The vocabulary of tuneloop, shared by every other crate.
//!
//! - [`ParameterSet`] — the generation parameters of one LLM call, validated,
//!   with a stable content-hash identity [`ArmId`].
//! - [`ArmSet`] — the arms a policy chooses among: an explicit list or a
//!   grid, deduplicated, bounded by [`MAX_ARMS`], with numeric arm features.
//! - [`Features`] — a finite context vector; [`TaskFeatures`] — what an agent
//!   planner knows about a task; a [`Featurizer`] turns one into the other
//!   ([`DefaultFeaturizer`] has a documented, fixed layout).
//! - [`TaskOutcome`] — what a call produced; [`RewardFunction`] — what it was
//!   worth, always in `[0, 1]`.
//! - [`Policy`] — the trait every chooser implements, with the
//!   [`ActionDistribution`] over eligible arms and a reproducible
//!   [`Selection`] keyed by a [`SelectionKey`] (seed + [`DecisionId`]).
//! - [`Cohort`] and [`Phase`] — rollout vocabulary, as the decision log
//!   stores it.
//! - [`Clock`] — injected time ([`SystemClock`], [`ManualClock`]).
//!
//! ```
//! use tuneloop_core::{
//!     ArmSet, DefaultFeaturizer, Featurizer, RewardFunction, TaskFeatures, TaskOutcome,
//! };
//!
//! let arms = ArmSet::grid()
//!     .models(["gpt-4o-mini"])
//!     .temperatures([0.0, 0.3, 0.7])
//!     .max_tokens([256, 1024])
//!     .build()?;
//! let featurizer = DefaultFeaturizer::default();
//! let x = featurizer.featurize(&TaskFeatures { title_length: 40, ..Default::default() })?;
//! assert_eq!(x.len(), featurizer.dim());
//!
//! let reward = RewardFunction::default().reward(&TaskOutcome::success(0.9, 1200.0))?;
//! assert!((0.0..=1.0).contains(&reward));
//! println!("{} arms; first is {}", arms.len(), arms.iter().next().map(|a| a.id.to_string()).unwrap_or_default());
//! # Ok::<(), tuneloop_core::Error>(())
//! ```

pub mod arms;
pub mod clock;
pub mod cohort;
pub mod duration;
pub mod error;
pub mod features;
pub mod fs;
pub mod hash;
pub mod id;
pub mod jsonl;
pub mod outcome;
pub mod params;
pub mod policy;
pub mod stats;
pub mod sufficient;

pub use arms::{Arm, ArmGrid, ArmSet, MAX_ARMS};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cohort::{Cohort, Phase};
pub use error::{Error, ErrorKind, InvalidSetting, Result, check_setting};
pub use features::{DefaultFeaturizer, Features, Featurizer, RiskTier, TaskFeatures};
pub use id::{ArmId, ArmIdBuildHasher, ArmIdHasher, DecisionId, ParseArmIdError};
pub use outcome::{
    ErrorClass, FinishReason, LatencyMetric, RewardFunction, RewardFunctionBuilder, TaskOutcome,
};
pub use params::{ParameterSet, ParameterSetBuilder, SamplingExtras};
pub use policy::{
    ActionDistribution, PROBABILITY_TOLERANCE, Policy, PolicySnapshot, Selection, SelectionKey,
    check_eligible,
};
pub use sufficient::{Block, MAX_STATISTICS_VALUES, SufficientStatistics};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(ParameterSet: Send, Sync);
    static_assertions::assert_impl_all!(ParameterSetBuilder: Send, Sync);
    static_assertions::assert_impl_all!(ArmId: Send, Sync);
    static_assertions::assert_impl_all!(Arm: Send, Sync);
    static_assertions::assert_impl_all!(ArmSet: Send, Sync);
    static_assertions::assert_impl_all!(ArmGrid: Send, Sync);
    static_assertions::assert_impl_all!(Features: Send, Sync);
    static_assertions::assert_impl_all!(TaskFeatures: Send, Sync);
    static_assertions::assert_impl_all!(DefaultFeaturizer: Send, Sync);
    static_assertions::assert_impl_all!(TaskOutcome: Send, Sync);
    static_assertions::assert_impl_all!(RewardFunction: Send, Sync);
    static_assertions::assert_impl_all!(RewardFunctionBuilder: Send, Sync);
    static_assertions::assert_impl_all!(ActionDistribution: Send, Sync);
    static_assertions::assert_impl_all!(Selection: Send, Sync);
    static_assertions::assert_impl_all!(SelectionKey: Send, Sync);
    static_assertions::assert_impl_all!(PolicySnapshot: Send, Sync);
    static_assertions::assert_impl_all!(DecisionId: Send, Sync);
    static_assertions::assert_impl_all!(ManualClock: Send, Sync);
    static_assertions::assert_impl_all!(SystemClock: Send, Sync);
    static_assertions::assert_impl_all!(Box<dyn Policy>: Send, Sync);
    static_assertions::assert_impl_all!(Box<dyn Featurizer>: Send, Sync);
    static_assertions::assert_impl_all!(Box<dyn Clock>: Send, Sync);
}
