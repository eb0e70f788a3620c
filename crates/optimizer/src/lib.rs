//! tuneloop learns an agent's LLM generation parameters (model, temperature,
//! top_p, max_tokens, penalties, prompt variant) from the outcomes of its
//! calls, safely, in-process.
//!
//! The loop (see `docs/architecture.md`): `recommend_parameters` before a
//! call, `record_outcome` after it; gates restrict the eligible arms, a
//! contextual bandit chooses among them and logs the propensity, a staged
//! rollout and an SLO monitor guard what reaches traffic, and offline
//! estimators prove a candidate better on logs before it is promoted.
//!
//! **Status:** the vocabulary is complete and re-exported here (from
//! [`tuneloop_core`]); the `Optimizer` itself is not implemented yet (issue
//! "tuneloop facade: recommend_parameters / record_outcome ...").
//!
//! ```
//! use tuneloop::core::{ArmSet, DefaultFeaturizer, Featurizer, TaskFeatures};
//! let arms = ArmSet::grid().models(["gpt-4o-mini"]).temperatures([0.0, 0.7]).build()?;
//! let x = DefaultFeaturizer::default().featurize(&TaskFeatures::default())?;
//! assert_eq!((arms.len(), x.len()), (2, 19));
//! # Ok::<(), tuneloop::core::Error>(())
//! ```

pub use tuneloop_bandit as bandit;
pub use tuneloop_core as core;
pub use tuneloop_counterfactual as counterfactual;
pub use tuneloop_gates as gates;
pub use tuneloop_providers as providers;
pub use tuneloop_rollout as rollout;
