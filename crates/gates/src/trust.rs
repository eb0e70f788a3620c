//! Trust regions: how far a new choice may move from what is in use.
//!
//! - [`TrustRegion`] (a [`Gate`]): per-parameter maximum change from the
//!   incumbent's parameters, and model switches only among configured
//!   models.
//! - [`clip_to_ratio`]: a policy-level region in the spirit of PPO: each
//!   arm's probability may change by at most a factor from the previous
//!   policy version's, which keeps importance weights between successive
//!   versions within `[1/factor, factor]`.

use serde::{Deserialize, Serialize};
use tuneloop_core::{ActionDistribution, ArmSet};

use crate::error::{Result, check};
use crate::gate::{Gate, GateContext, Parameter, Reason};

/// Largest change of each parameter from the incumbent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustRegion {
    /// Temperature (default 0.2).
    pub temperature: f64,
    /// max_tokens (default 200).
    pub max_tokens: f64,
    /// top_p (default 0.1).
    pub top_p: f64,
    /// Each penalty (default 0.2).
    pub penalties: f64,
    /// Models an arm may switch to (besides the incumbent's); empty means
    /// no switch is allowed.
    pub models: Vec<String>,
}

impl Default for TrustRegion {
    fn default() -> Self {
        TrustRegion {
            temperature: 0.2,
            max_tokens: 200.0,
            top_p: 0.1,
            penalties: 0.2,
            models: Vec::new(),
        }
    }
}

impl TrustRegion {
    /// Checks the limits.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](crate::Error::InvalidSetting) for a NaN or
    /// negative limit.
    pub fn check(&self) -> Result<()> {
        for (field, v) in [
            ("temperature", self.temperature),
            ("max_tokens", self.max_tokens),
            ("top_p", self.top_p),
            ("penalties", self.penalties),
        ] {
            check(field, v, v >= 0.0, "a finite limit >= 0")?;
        }
        Ok(())
    }

    fn limit(&self, p: Parameter) -> f64 {
        match p {
            Parameter::Temperature => self.temperature,
            Parameter::TopP => self.top_p,
            Parameter::MaxTokens => self.max_tokens,
            Parameter::FrequencyPenalty | Parameter::PresencePenalty => self.penalties,
        }
    }
}

impl Gate for TrustRegion {
    fn name(&self) -> &'static str {
        "trust_region"
    }
    fn is_hard(&self) -> bool {
        false
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        let Some(inc) = ctx.incumbent.and_then(|i| arms.get(i)) else {
            return Ok(None);
        };
        let p = &arms.arm(arm)?.params;
        let q = &inc.params;
        if p.model() != q.model() && !self.models.iter().any(|m| m == p.model()) {
            return Ok(Some(Reason::ModelSwitch));
        }
        for parameter in Parameter::ALL {
            let change = (parameter.of(p) - parameter.of(q)).abs();
            let limit = self.limit(parameter);
            // A hair of tolerance: 0.1 + 0.2 is not exactly 0.3.
            if change > limit + 1e-9 {
                return Ok(Some(Reason::TrustRegion {
                    parameter,
                    change,
                    limit,
                }));
            }
        }
        Ok(None)
    }
}

/// The distribution closest in shape to `new` (the same arms, probabilities
/// scaled by one common factor where they are not clamped) whose every
/// probability lies within `[old/factor, old·factor]` of `old`'s. Arms that
/// `old` does not list are bounded only by `[0, 1]`. If no distribution
/// satisfies the bounds (the eligible arms changed), `new` is returned
/// unchanged.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) unless `factor >= 1`.
pub fn clip_to_ratio(
    new: &ActionDistribution,
    old: &ActionDistribution,
    factor: f64,
) -> Result<ActionDistribution> {
    check("factor", factor, factor >= 1.0, "a ratio factor >= 1")?;
    let bounds: Vec<(f64, f64)> = new
        .arms()
        .iter()
        .map(|&a| {
            let o = old.probability_of(a);
            if old.arms().contains(&a) {
                (o / factor, (o * factor).min(1.0))
            } else {
                (0.0, 1.0)
            }
        })
        .collect();
    let lo: f64 = bounds.iter().map(|b| b.0).sum();
    let hi: f64 = bounds.iter().map(|b| b.1).sum();
    if lo > 1.0 + 1e-12 || hi < 1.0 - 1e-12 {
        return Ok(new.clone());
    }
    let p = new.probabilities();
    let mass = |scale: f64| -> f64 {
        p.iter()
            .zip(&bounds)
            .map(|(&q, &(l, h))| (q * scale).clamp(l, h))
            .sum()
    };
    // The clamped mass grows with the scale: bisect for mass 1.
    let (mut a, mut b) = (0.0, 1.0);
    while mass(b) < 1.0 && b < 1e300 {
        b *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (a + b);
        if mass(mid) < 1.0 { a = mid } else { b = mid }
    }
    let mut out: Vec<f64> = p
        .iter()
        .zip(&bounds)
        .map(|(&q, &(l, h))| (q * b).clamp(l, h))
        .collect();
    let total: f64 = out.iter().sum();
    out.iter_mut().for_each(|v| *v /= total);
    Ok(ActionDistribution::new(
        new.arms().to_vec(),
        out,
        new.is_estimated(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_clipping_bounds_every_ratio() -> Result<()> {
        let old = ActionDistribution::new(vec![0, 1, 2], vec![0.5, 0.3, 0.2], false)?;
        let new = ActionDistribution::new(vec![0, 1, 2], vec![0.02, 0.08, 0.9], false)?;
        let c = clip_to_ratio(&new, &old, 2.0)?;
        let sum: f64 = c.probabilities().iter().sum();
        assert!((sum - 1.0).abs() < 1e-12);
        for (a, q) in c.iter() {
            let o = old.probability_of(a);
            assert!(
                q >= o / 2.0 - 1e-9 && q <= o * 2.0 + 1e-9,
                "arm {a}: {q} vs old {o}"
            );
        }
        // The arm the new policy favours moves as far as it may: 0.2 → 0.4.
        assert!((c.probability_of(2) - 0.4).abs() < 1e-9, "{:?}", c);
        // Within the region, nothing changes.
        let near = ActionDistribution::new(vec![0, 1, 2], vec![0.45, 0.3, 0.25], false)?;
        let same = clip_to_ratio(&near, &old, 2.0)?;
        for (a, q) in same.iter() {
            assert!((q - near.probability_of(a)).abs() < 1e-9);
        }
        assert!(clip_to_ratio(&near, &old, 0.5).is_err());
        Ok(())
    }
}
