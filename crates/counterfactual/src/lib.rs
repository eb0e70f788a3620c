//! Off-policy evaluation for tuneloop: the decision log (`LoggedDecision`,
//! memory and JSON Lines sinks), estimators (IPS, SNIPS, DM, DR, SNDR,
//! Switch-DR, DRos) with bootstrap and analytic intervals, reward models,
//! replay, and the `OfflineEvaluator` that compares a candidate policy with
//! the logging policy.
//!
//! **Status:** not implemented yet (issue "counterfactual: decision log,
//! off-policy estimators ..."). Nothing here pretends to work.

pub use tuneloop_core::Policy;
