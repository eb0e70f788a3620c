//! Evaluation for tuneloop: benchmark suites with scorers, variance and
//! regression detection, prompt refinement with an interviewer model, and
//! session records.
//!
//! **Status:** not implemented yet (issue "eval: benchmark suites ...").
//! Nothing here pretends to work.

pub use tuneloop_core::TaskOutcome;
