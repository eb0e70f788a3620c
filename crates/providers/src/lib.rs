//! LLM backends for tuneloop: one async `Provider` trait, a tiered `Router`
//! (cloud first, local fallback) with retries, circuit breaking and
//! deadlines, a `Scorecard`, a seeded `SimulatedProvider`, and an
//! OpenAI-compatible HTTP provider behind the `http` feature.
//!
//! **Status:** not implemented yet (issue "providers: one async trait, a
//! tiered router ..."). Nothing here pretends to work.

pub use tuneloop_core::ParameterSet;
