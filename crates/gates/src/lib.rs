//! Safety gates for tuneloop. Gates decide which arms are eligible
//! *before* the policy chooses, so the propensity the policy logs stays
//! true (constrain, then explore: see `docs/architecture.md`).
//!
//! | gate | hard? | excludes an arm when |
//! |---|---|---|
//! | [`TrustRegion`] | soft | a parameter moves further from the incumbent than allowed (defaults: temperature 0.2, max_tokens 200, top_p 0.1, penalties 0.2), or it switches to an unconfigured model |
//! | [`QualityFloor`] | soft | the lower confidence bound of its quality is below its task type's floor (after an exploration allowance) |
//! | [`BudgetGate`] | hard | its reservation would not fit the [`Budget`]'s remaining tokens or cost |
//! | [`Constraints`] | hard | a declarative [`Rule`] forbids it |
//!
//! A [`GateChain`] applies them in order, reports which gate excluded each
//! arm and why, and never returns an empty set: when nothing passes, the
//! incumbent does if it breaks only soft gates; otherwise a typed error.
//! [`clip_to_ratio`] bounds how far a new policy version's probabilities
//! move from the previous version's. [`Provenance`] keeps a hash-chained,
//! verifiable record of every change.
//!
//! ```
//! use chrono::Utc;
//! use tuneloop_core::{ArmSet, RiskTier};
//! use tuneloop_gates::{Constraints, GateChain, GateContext, Rule, TrustRegion, Parameter};
//!
//! let arms = ArmSet::grid().models(["m"]).temperatures([0.2, 0.4, 0.6, 1.4]).build()?;
//! let chain = GateChain::new()
//!     .with(Constraints::new(vec![Rule::ParameterRange {
//!         task_type: None, parameter: Parameter::Temperature, min: None, max: Some(1.0),
//!     }]))
//!     .with(TrustRegion::default());
//! let ctx = GateContext {
//!     task_type: "code", risk_tier: RiskTier::Low, incumbent: Some(1), prompt_tokens: 500, now: Utc::now(),
//! };
//! let e = chain.evaluate(&ctx, &arms, &arms.all_indices())?;
//! assert_eq!(e.eligible, vec![0, 1, 2]); // 1.4 breaks the rule
//! assert_eq!(e.excluded[0].gate, "constraints");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budget;
mod chain;
mod constraints;
mod error;
mod gate;
pub mod provenance;
mod quality;
mod trust;

pub use budget::{
    Allowance, Budget, BudgetConfig, BudgetGate, BudgetHold, BudgetSnapshot, HeldBudgetGate, Price,
    Usage, Window,
};
pub use chain::{Eligibility, GateChain};
pub use constraints::{Condition, Constraints, Rule};
pub use error::{Error, Result};
pub use gate::{Exclusion, Gate, GateContext, Parameter, Reason};
pub use provenance::{Approval, Change, ChangeKind, Provenance, ProvenanceRecord};
pub use quality::{QualityFloor, QualityFloorConfig};
pub use trust::{TrustRegion, clip_to_ratio};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(Budget: Send, Sync);
    static_assertions::assert_impl_all!(BudgetConfig: Send, Sync);
    static_assertions::assert_impl_all!(BudgetGate: Send, Sync);
    static_assertions::assert_impl_all!(Usage: Send, Sync);
    static_assertions::assert_impl_all!(GateChain: Send, Sync);
    static_assertions::assert_impl_all!(Eligibility: Send, Sync);
    static_assertions::assert_impl_all!(Constraints: Send, Sync);
    static_assertions::assert_impl_all!(Rule: Send, Sync);
    static_assertions::assert_impl_all!(Exclusion: Send, Sync);
    static_assertions::assert_impl_all!(Reason: Send, Sync);
    static_assertions::assert_impl_all!(Provenance: Send, Sync);
    static_assertions::assert_impl_all!(ProvenanceRecord: Send, Sync);
    static_assertions::assert_impl_all!(QualityFloor: Send, Sync);
    static_assertions::assert_impl_all!(TrustRegion: Send, Sync);
    static_assertions::assert_impl_all!(HeldBudgetGate<'static>: Send, Sync);
    static_assertions::assert_impl_all!(Box<dyn Gate>: Send, Sync);
}
