//! [`GateChain`]: gates composed, and the eligible set they leave.

use serde::Serialize;
use tuneloop_core::ArmSet;

use crate::error::{Error, Result};
use crate::gate::{Exclusion, Gate, GateContext};

/// What a chain decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Eligibility {
    /// The arms a policy may choose from; never empty.
    pub eligible: Vec<usize>,
    /// Every excluded arm, with the first gate that excluded it and why.
    pub excluded: Vec<Exclusion>,
    /// True when every arm was excluded and the incumbent was let through
    /// (it breaks only soft gates).
    pub fell_back_to_incumbent: bool,
}

/// Gates applied in order; each sees only what the ones before left.
///
/// If nothing is left, the incumbent is eligible alone, provided it passes
/// every *hard* gate (constraints, budget): soft gates (trust region,
/// quality floor) yield to it, hard ones never do.
#[derive(Debug, Default)]
pub struct GateChain {
    gates: Vec<Box<dyn Gate>>,
}

impl GateChain {
    /// An empty chain (everything is eligible).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a gate.
    #[must_use]
    pub fn with(mut self, gate: impl Gate + 'static) -> Self {
        self.gates.push(Box::new(gate));
        self
    }

    /// Appends a boxed gate.
    pub fn push(&mut self, gate: Box<dyn Gate>) {
        self.gates.push(gate);
    }

    /// Names of the gates, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.gates.iter().map(|g| g.name()).collect()
    }

    /// The arms of `candidates` that pass every gate.
    ///
    /// # Errors
    /// [`Error::NothingEligible`] when every arm is excluded and there is no
    /// incumbent that passes the hard gates; a gate's own error.
    pub fn evaluate(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &[usize],
    ) -> Result<Eligibility> {
        self.evaluate_with(ctx, arms, candidates, &[])
    }

    /// As [`evaluate`](Self::evaluate), with `extra` gates applied after the
    /// chain's own, as if they were appended to it: gates that live for one
    /// decision only (a request's own rules, a [held
    /// budget](crate::Budget::hold)).
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub fn evaluate_with(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &[usize],
        extra: &[&dyn Gate],
    ) -> Result<Eligibility> {
        for &a in candidates {
            arms.arm(a)?;
        }
        let gates = || {
            self.gates
                .iter()
                .map(|g| &**g as &dyn Gate)
                .chain(extra.iter().copied())
        };
        let mut eligible = candidates.to_vec();
        let mut excluded = Vec::new();
        for gate in gates() {
            if eligible.is_empty() {
                break;
            }
            gate.apply(ctx, arms, &mut eligible, &mut excluded)?;
        }
        if !eligible.is_empty() {
            return Ok(Eligibility {
                eligible,
                excluded,
                fell_back_to_incumbent: false,
            });
        }
        let Some(inc) = ctx.incumbent.filter(|i| candidates.contains(i)) else {
            return Err(nothing_eligible(&excluded));
        };
        for gate in gates().filter(|g| g.is_hard()) {
            if gate.exclude(ctx, arms, inc)?.is_some() {
                return Err(nothing_eligible(&excluded));
            }
        }
        Ok(Eligibility {
            eligible: vec![inc],
            excluded,
            fell_back_to_incumbent: true,
        })
    }
}

/// The refusal when nothing is eligible: each gate that excluded arms,
/// with its first reason, so the caller reads which limit refused.
fn nothing_eligible(excluded: &[Exclusion]) -> Error {
    let mut why: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for e in excluded {
        if !seen.contains(&e.gate) {
            seen.push(e.gate);
            why.push(format!("{}: {}", e.gate, e.reason));
        }
    }
    Error::NothingEligible {
        excluded: excluded.len(),
        why,
    }
}
