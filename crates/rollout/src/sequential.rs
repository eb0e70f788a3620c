//! Anytime-valid one-sided tests: test martingales built by betting
//! (Waudby-Smith and Ramdas, 2023).
//!
//! To test `H0: E[Y_i | past] ≤ 0` for observations bounded below,
//! `Y_i ≥ −c_i`, the wealth `W_n = Π (1 + λ_i Y_i)` with a predictable
//! `λ_i` in `[0, 1/c_i)` is a non-negative supermartingale under `H0`, so by
//! Ville's inequality `P(sup_n W_n ≥ 1/α) ≤ α`: the test may be checked
//! after every observation, forever, and still raises a false alarm with
//! probability at most `α`. Averaging the wealth of several bets
//! (`λ = f/c` for each fraction `f` in a grid) keeps that guarantee and
//! adapts to the unknown size of a real shift.

use serde::{Deserialize, Serialize};

/// Fractions of the largest admissible bet `1/c`: from cautious to bold.
const BETS: [f64; 6] = [
    1.0 / 64.0,
    1.0 / 32.0,
    1.0 / 16.0,
    1.0 / 8.0,
    1.0 / 4.0,
    1.0 / 2.0,
];

/// A mixture of betting martingales for `H0: E[Y] ≤ 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TestState")]
pub struct SequentialTest {
    log_wealth: [f64; BETS.len()],
    observations: u64,
}

/// A test as read from a file, checked before use: each bet loses at most
/// the fraction `f` of its wealth per observation, so after `n` of them
/// its log-wealth is at least `n · ln(1 − f)`, and it is 0 before any.
/// A tampered wealth (NaN, infinite, impossibly low) would otherwise
/// silence the test or raise a false alarm.
#[derive(Deserialize)]
struct TestState {
    log_wealth: [f64; BETS.len()],
    observations: u64,
}

impl TryFrom<TestState> for SequentialTest {
    type Error = String;

    fn try_from(s: TestState) -> Result<Self, String> {
        for (&w, f) in s.log_wealth.iter().zip(BETS) {
            let lowest = s.observations as f64 * (1.0 - f).ln();
            let possible = if s.observations == 0 {
                w == 0.0
            } else {
                w.is_finite() && w >= lowest * (1.0 + 1e-9)
            };
            if !possible {
                return Err(format!(
                    "sequential test log-wealth {w} is impossible after {} observations",
                    s.observations
                ));
            }
        }
        Ok(SequentialTest {
            log_wealth: s.log_wealth,
            observations: s.observations,
        })
    }
}

impl Default for SequentialTest {
    fn default() -> Self {
        SequentialTest {
            log_wealth: [0.0; BETS.len()],
            observations: 0,
        }
    }
}

impl SequentialTest {
    /// A test with no evidence yet (wealth 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `y`, known to satisfy `y ≥ −c` with `c > 0`. Values below `−c`
    /// are clamped to it (a conservative choice: the bet can only lose).
    pub fn observe(&mut self, y: f64, c: f64) {
        if !(y.is_finite() && c.is_finite() && c > 0.0) {
            return;
        }
        let y = y.max(-c);
        for (w, f) in self.log_wealth.iter_mut().zip(BETS) {
            *w += (1.0 + f / c * y).ln();
        }
        self.observations = self.observations.saturating_add(1);
    }

    /// Observations so far.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// The mixture's wealth (an e-value): evidence against `H0`.
    pub fn e_value(&self) -> f64 {
        let m = self
            .log_wealth
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = self.log_wealth.iter().map(|w| (w - m).exp()).sum();
        (m + (s / BETS.len() as f64).ln()).exp()
    }

    /// Whether `H0` is rejected at level `alpha` (wealth ≥ 1/alpha).
    pub fn rejects(&self, alpha: f64) -> bool {
        self.e_value() >= 1.0 / alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn false_alarms_stay_below_alpha_when_checked_every_step() {
        // Null: Y = X − 0.5 with X ~ Bernoulli(0.5), c = 0.5. 2,000 runs of
        // 2,000 steps, checked after every step: the rate of ever crossing
        // 1/α must be at most α = 0.05 (plus binomial noise: sd 0.005).
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut alarms = 0;
        for _ in 0..2_000 {
            let mut t = SequentialTest::new();
            for _ in 0..2_000 {
                let x = if rng.random::<f64>() < 0.5 { 1.0 } else { 0.0 };
                t.observe(x - 0.5, 0.5);
                if t.rejects(0.05) {
                    alarms += 1;
                    break;
                }
            }
        }
        assert!(alarms <= 115, "{alarms} false alarms in 2000 runs");
    }

    #[test]
    fn a_real_shift_is_detected() {
        // Y = X − 0.5 with X ~ Bernoulli(0.6): detected within 1,000 steps.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut t = SequentialTest::new();
        let mut at = None;
        for n in 0..1_000 {
            let x = if rng.random::<f64>() < 0.6 { 1.0 } else { 0.0 };
            t.observe(x - 0.5, 0.5);
            if t.rejects(0.05) {
                at = Some(n);
                break;
            }
        }
        assert!(at.is_some(), "e-value {}", t.e_value());
    }
}
