//! Contextual bandit policies for tuneloop: `LinUcb` and `ThompsonGaussian`
//! over nalgebra, `EpsilonGreedy`, `Uniform` and `Fixed` baselines, each
//! implementing [`tuneloop_core::Policy`] with an exploration floor and
//! seeded, reproducible draws.
//!
//! **Status:** not implemented yet (issue "bandit: LinUCB and Thompson
//! sampling ..."). This crate compiles so that the workspace has its shape;
//! nothing here pretends to work.

pub use tuneloop_core::Policy;
