//! Safety gates for tuneloop, applied *before* a policy chooses: trust
//! regions, quality floors, token and cost budgets, hard constraints, and a
//! tamper-evident provenance record of every change.
//!
//! **Status:** not implemented yet (issue "gates: trust regions, quality
//! floors, budgets ..."). Nothing here pretends to work.

pub use tuneloop_core::ArmSet;
