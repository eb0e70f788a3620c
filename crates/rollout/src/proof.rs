//! Promotion by proof: the evidence a candidate needs to leave a phase.
//!
//! **Shadow** serves the incumbent, so the candidate's value can only be
//! estimated off-policy, from the shadow log. Each shadow round gives the
//! logged arm `a` with its propensity `μ(a|x)`, the reward `r`, the arm the
//! candidate would have chosen `c` and the incumbent's arm `b`. With
//! one-hot targets and a reward model `q̂` (each arm's mean reward over the
//! earlier shadow rounds, so `q̂` never sees the round it corrects), the
//! paired per-round value of (candidate − incumbent) is
//!
//! - DR: `d = q̂(c) − q̂(b) + (1[a = c] − 1[a = b]) · (r − q̂(a)) / μ(a|x)`,
//! - IPW: `d = (1[a = c] − 1[a = b]) · r / μ(a|x)`.
//!
//! Both are unbiased for the difference of the two policies' values
//! whenever the logged propensities are right and positive on the
//! candidate's arms (the facade's shadow probe makes them so), and `d = 0`
//! exactly on rounds where the two agree. The shadow rounds are cut into
//! windows of [`ProofConfig::window`] rounds; a window passes when the
//! one-sided lower `1 − alpha` normal bound of `mean(d)` is at least 0; the
//! candidate may leave shadow after [`ProofConfig::consecutive`] passing
//! windows in a row (the seed's "lower bound ≥ 0 at α = 0.05 for two
//! consecutive weeks", with windows counted in rounds so that the rule
//! does not depend on traffic). A window that fails resets the run.
//!
//! **Canary and guarded** serve the candidate to a share of traffic, so the
//! comparison is on-policy: the candidate cohort's mean reward against the
//! baseline's since the phase began, non-inferior when the one-sided lower
//! `1 − alpha` (Welch) bound of the difference is at least
//! `−non_inferiority_margin`.
//!
//! Every verdict is a [`Verdict`], reported as a
//! [`RolloutEvent::Verdict`](crate::RolloutEvent::Verdict).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use tuneloop_core::stats::Moments;
use tuneloop_core::{MAX_ARMS, Phase};

use crate::error::{Error, Result, check};

/// The off-policy estimator of the shadow proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProofEstimator {
    /// Doubly robust (default).
    Dr,
    /// Inverse propensity weighting.
    Ipw,
}

impl ProofEstimator {
    /// Its name, as in the counterfactual crate and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ProofEstimator::Dr => "dr",
            ProofEstimator::Ipw => "ipw",
        }
    }
}

/// What a candidate must prove to be promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProofConfig {
    /// Whether promotion needs the proof (default true). Without it a
    /// phase is left on sample counts and dwell time alone.
    pub required: bool,
    /// The shadow proof's estimator (default DR).
    pub estimator: ProofEstimator,
    /// One-sided level of every bound (default 0.05).
    pub alpha: f64,
    /// Shadow rounds per evaluation window (default 1,000, at least 30).
    pub window: u64,
    /// Passing windows in a row needed to leave shadow (default 2).
    pub consecutive: u32,
    /// The share of shadow requests served the candidate's choice (default
    /// 0.05, at most 0.5), with the mixture's propensity logged. Without
    /// it the shadow log holds the candidate's choices only where the
    /// incumbent's exploration floor happened to pick them (`floor / arms`
    /// of the time), and no window of a practical size can prove anything.
    /// 0 keeps shadow pure: the candidate serves no request until canary.
    pub shadow_probe: f64,
    /// How much worse, in reward, the candidate cohort may be in canary
    /// and guarded and still count as non-inferior (default 0.02).
    pub non_inferiority_margin: f64,
}

impl Default for ProofConfig {
    fn default() -> Self {
        ProofConfig {
            required: true,
            estimator: ProofEstimator::Dr,
            alpha: 0.05,
            window: 1_000,
            consecutive: 2,
            shadow_probe: 0.05,
            non_inferiority_margin: 0.02,
        }
    }
}

impl ProofConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn check(&self) -> Result<()> {
        check(
            "proof.alpha",
            self.alpha,
            self.alpha > 0.0 && self.alpha < 0.5,
            "in (0, 0.5)",
        )?;
        check(
            "proof.window",
            self.window as f64,
            (30..=10_000_000).contains(&self.window),
            "between 30 and 10,000,000 rounds",
        )?;
        check(
            "proof.consecutive",
            f64::from(self.consecutive),
            (1..=1_000).contains(&self.consecutive),
            "between 1 and 1,000 windows",
        )?;
        check(
            "proof.shadow_probe",
            self.shadow_probe,
            (0.0..=0.5).contains(&self.shadow_probe),
            "in [0, 0.5]",
        )?;
        check(
            "proof.non_inferiority_margin",
            self.non_inferiority_margin,
            self.non_inferiority_margin.is_finite() && self.non_inferiority_margin >= 0.0,
            "a finite margin >= 0",
        )?;
        Ok(())
    }

    /// The normal quantile `z_{1−alpha}`.
    fn z(&self) -> f64 {
        Normal::standard().inverse_cdf(1.0 - self.alpha)
    }
}

/// One shadow round, as the off-policy proof needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShadowRound {
    /// The reward of the logged arm, finite.
    pub reward: f64,
    /// The arm served and logged.
    pub arm: usize,
    /// The logging policy's probability of `arm`, in `(0, 1]`.
    pub propensity: f64,
    /// The arm the candidate would have served.
    pub candidate_arm: usize,
    /// The arm the incumbent would have served.
    pub incumbent_arm: usize,
}

impl ShadowRound {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !self.reward.is_finite() {
            return Err(Error::InvalidObservation {
                field: "reward",
                value: self.reward,
                expected: "a finite reward",
            });
        }
        if !(self.propensity > 0.0 && self.propensity <= 1.0) {
            return Err(Error::InvalidObservation {
                field: "propensity",
                value: self.propensity,
                expected: "a propensity in (0, 1]",
            });
        }
        for (field, arm) in [
            ("arm", self.arm),
            ("candidate_arm", self.candidate_arm),
            ("incumbent_arm", self.incumbent_arm),
        ] {
            if arm >= MAX_ARMS {
                return Err(Error::InvalidObservation {
                    field,
                    value: arm as f64,
                    expected: "an arm index below 4096",
                });
            }
        }
        Ok(())
    }
}

/// Which comparison a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Off-policy, on one shadow window.
    OffPolicy,
    /// On-policy, the cohorts of canary or guarded since the phase began.
    OnPolicy,
}

impl VerdictKind {
    /// Its name, as in JSON and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::OffPolicy => "off-policy",
            VerdictKind::OnPolicy => "on-policy",
        }
    }
}

/// One evaluation of the candidate against the incumbent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The phase it was made in.
    pub phase: Phase,
    /// Off- or on-policy.
    pub kind: VerdictKind,
    /// The estimator (`dr`, `ipw`, or `welch` on-policy).
    pub estimator: String,
    /// The window's number since the shadow began (from 1), or the
    /// evaluation's number in the phase on-policy.
    pub window: u64,
    /// Rounds used (candidate cohort observations on-policy).
    pub rounds: u64,
    /// Estimated reward difference, candidate − incumbent.
    pub estimate: f64,
    /// Its standard error.
    pub standard_error: f64,
    /// One-sided lower `1 − alpha` bound of the difference.
    pub lower_bound: f64,
    /// The bound passes at or above this (0, or −margin on-policy).
    pub threshold: f64,
    /// Whether it passed.
    pub passed: bool,
    /// Passing windows in a row, this one included (off-policy).
    pub consecutive: u32,
    /// When.
    pub at: DateTime<Utc>,
}

impl std::fmt::Display for Verdict {
    /// One line: `off-policy verdict 2 in shadow: dr +0.0240, lower bound
    /// +0.0110 against +0.0000, 1000 rounds: passed` (the provenance
    /// chain's reason, the dashboard's cell).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} verdict {} in {}: {} {:+.4}, lower bound {:+.4} against {:+.4}, {} rounds: {}",
            self.kind.name(),
            self.window,
            self.phase,
            self.estimator,
            self.estimate,
            self.lower_bound,
            self.threshold,
            self.rounds,
            if self.passed { "passed" } else { "not passed" },
        )
    }
}

/// Whether moments read from a file can be used: finite, a non-negative
/// sum of squares, and a count that can still grow.
fn usable(m: &Moments) -> bool {
    m.mean.is_finite() && m.m2.is_finite() && m.m2 >= 0.0 && m.n < u64::MAX
}

/// The shadow proof in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ShadowProofState")]
pub(crate) struct ShadowProof {
    /// Each arm's reward moments over the shadow so far (the reward model).
    arms: Vec<Moments>,
    /// The open window's paired values.
    current: Moments,
    /// Windows closed so far.
    windows: u64,
    /// Passing windows in a row.
    consecutive: u32,
}

#[derive(Deserialize)]
struct ShadowProofState {
    arms: Vec<Moments>,
    current: Moments,
    windows: u64,
    consecutive: u32,
}

impl TryFrom<ShadowProofState> for ShadowProof {
    type Error = String;

    fn try_from(s: ShadowProofState) -> std::result::Result<Self, String> {
        if s.arms.len() > MAX_ARMS {
            return Err(format!(
                "shadow proof has a reward model of {} arms (at most {MAX_ARMS})",
                s.arms.len()
            ));
        }
        if !(usable(&s.current) && s.arms.iter().all(usable)) {
            return Err("shadow proof sums are not finite".into());
        }
        Ok(ShadowProof {
            arms: s.arms,
            current: s.current,
            windows: s.windows,
            consecutive: s.consecutive,
        })
    }
}

impl ShadowProof {
    /// The reward model's prediction for `arm`: its mean so far, else the
    /// mean over every arm, else 0.
    fn q_hat(&self, arm: usize) -> f64 {
        match self.arms.get(arm) {
            Some(m) if m.n > 0 => m.mean,
            _ => {
                let (n, s) = self.arms.iter().fold((0.0, 0.0), |(n, s), m| {
                    (n + m.n as f64, s + m.mean * m.n as f64)
                });
                if n > 0.0 { s / n } else { 0.0 }
            }
        }
    }

    /// The round's paired value of (candidate − incumbent).
    fn paired_value(&self, r: &ShadowRound, estimator: ProofEstimator) -> f64 {
        if r.candidate_arm == r.incumbent_arm {
            return 0.0;
        }
        let sign = f64::from(u8::from(r.arm == r.candidate_arm))
            - f64::from(u8::from(r.arm == r.incumbent_arm));
        match estimator {
            ProofEstimator::Ipw => sign * r.reward / r.propensity,
            ProofEstimator::Dr => {
                self.q_hat(r.candidate_arm) - self.q_hat(r.incumbent_arm)
                    + sign * (r.reward - self.q_hat(r.arm)) / r.propensity
            }
        }
    }

    /// Adds a validated round; returns the verdict when it closes a window.
    pub(crate) fn add(
        &mut self,
        r: &ShadowRound,
        config: &ProofConfig,
        now: DateTime<Utc>,
    ) -> Option<Verdict> {
        let d = self.paired_value(r, config.estimator);
        self.current.push(d);
        if self.arms.len() <= r.arm {
            self.arms.resize(r.arm + 1, Moments::default());
        }
        self.arms[r.arm].push(r.reward);
        if self.current.n < config.window {
            return None;
        }
        let window = std::mem::take(&mut self.current);
        self.windows = self.windows.saturating_add(1);
        let estimate = window.mean;
        let standard_error = (window.variance() / window.n as f64).sqrt();
        let lower_bound = estimate - config.z() * standard_error;
        let passed = lower_bound >= 0.0;
        self.consecutive = if passed {
            self.consecutive.saturating_add(1)
        } else {
            0
        };
        Some(Verdict {
            phase: Phase::Shadow,
            kind: VerdictKind::OffPolicy,
            estimator: config.estimator.name().into(),
            window: self.windows,
            rounds: window.n,
            estimate,
            standard_error,
            lower_bound,
            threshold: 0.0,
            passed,
            consecutive: self.consecutive,
            at: now,
        })
    }

    /// Whether the candidate has proved itself.
    pub(crate) fn proved(&self, config: &ProofConfig) -> bool {
        self.consecutive >= config.consecutive
    }

    /// Forgets the windows (a new candidate); keeps the reward model,
    /// which describes the arms, not the candidate.
    pub(crate) fn reset_candidate(&mut self) {
        self.current = Moments::default();
        self.consecutive = 0;
    }
}

/// The on-policy comparison of canary or guarded: each cohort's rewards
/// since the phase began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CohortRewardsState")]
pub(crate) struct CohortRewards {
    pub(crate) baseline: Moments,
    pub(crate) candidate: Moments,
    /// Evaluations made in this phase.
    evaluations: u64,
    /// Candidate observations at the last evaluation.
    last_evaluated: u64,
}

#[derive(Deserialize)]
struct CohortRewardsState {
    baseline: Moments,
    candidate: Moments,
    evaluations: u64,
    last_evaluated: u64,
}

impl TryFrom<CohortRewardsState> for CohortRewards {
    type Error = String;

    fn try_from(s: CohortRewardsState) -> std::result::Result<Self, String> {
        if !(usable(&s.baseline) && usable(&s.candidate)) {
            return Err("cohort reward sums are not finite".into());
        }
        Ok(CohortRewards {
            baseline: s.baseline,
            candidate: s.candidate,
            evaluations: s.evaluations,
            last_evaluated: s.last_evaluated,
        })
    }
}

impl CohortRewards {
    /// Whether an evaluation is due: never twice on the same evidence, and
    /// after a failed one only when a window's worth of new candidate
    /// observations has come in.
    pub(crate) fn due(&self, config: &ProofConfig) -> bool {
        self.evaluations == 0
            || self.candidate.n >= self.last_evaluated.saturating_add(config.window)
    }

    /// The Welch comparison of the cohorts now.
    pub(crate) fn evaluate(
        &mut self,
        phase: Phase,
        config: &ProofConfig,
        now: DateTime<Utc>,
    ) -> Verdict {
        self.evaluations = self.evaluations.saturating_add(1);
        self.last_evaluated = self.candidate.n;
        let (c, b) = (&self.candidate, &self.baseline);
        let estimate = c.mean - b.mean;
        let se = |m: &Moments| {
            if m.n == 0 {
                f64::INFINITY
            } else {
                m.variance() / m.n as f64
            }
        };
        let standard_error = (se(c) + se(b)).sqrt();
        let lower_bound = estimate - config.z() * standard_error;
        let threshold = -config.non_inferiority_margin;
        Verdict {
            phase,
            kind: VerdictKind::OnPolicy,
            estimator: "welch".into(),
            window: self.evaluations,
            rounds: c.n,
            estimate,
            standard_error,
            lower_bound,
            threshold,
            passed: lower_bound >= threshold,
            consecutive: 0,
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(reward: f64, arm: usize, propensity: f64, c: usize, b: usize) -> ShadowRound {
        ShadowRound {
            reward,
            arm,
            propensity,
            candidate_arm: c,
            incumbent_arm: b,
        }
    }

    #[test]
    fn paired_values_follow_the_closed_forms() {
        let mut p = ShadowProof::default();
        let now = Utc::now();
        let config = ProofConfig::default();
        // Empty model: q̂ = 0, DR reduces to IPW.
        let r = round(0.8, 1, 0.25, 1, 0);
        assert!((p.paired_value(&r, ProofEstimator::Dr) - 3.2).abs() < 1e-12);
        assert!((p.paired_value(&r, ProofEstimator::Ipw) - 3.2).abs() < 1e-12);
        p.add(&r, &config, now);
        // Model now: arm 1 → 0.8, others → the overall mean 0.8.
        p.add(&round(0.4, 0, 0.5, 1, 0), &config, now);
        // q̂(1) = 0.8, q̂(0) = 0.4. Logged the incumbent at reward 0.6,
        // propensity 0.9: DR = 0.8 − 0.4 − (0.6 − 0.4)/0.9.
        let r = round(0.6, 0, 0.9, 1, 0);
        let want = 0.8 - 0.4 - 0.2 / 0.9;
        assert!((p.paired_value(&r, ProofEstimator::Dr) - want).abs() < 1e-12);
        assert!((p.paired_value(&r, ProofEstimator::Ipw) + 0.6 / 0.9).abs() < 1e-12);
        // A third arm logged: only the model terms.
        let r = round(1.0, 2, 0.1, 1, 0);
        assert!((p.paired_value(&r, ProofEstimator::Dr) - 0.4).abs() < 1e-12);
        // The candidate agrees with the incumbent: exactly 0.
        let same = p.paired_value(&round(1.0, 0, 0.1, 0, 0), ProofEstimator::Dr);
        assert!(same.to_bits() == 0.0f64.to_bits(), "{same}");
    }

    #[test]
    fn a_window_closes_with_the_normal_bound() {
        let config = ProofConfig {
            window: 30,
            estimator: ProofEstimator::Ipw,
            ..ProofConfig::default()
        };
        let mut p = ShadowProof::default();
        let now = Utc::now();
        let mut verdict = None;
        // Paired IPW values alternate 2 and −1 (15 of each): mean 0.5,
        // sample variance 2.25·30/29.
        for i in 0..30 {
            let r = if i % 2 == 0 {
                round(1.0, 1, 0.5, 1, 0)
            } else {
                round(0.5, 0, 0.5, 1, 0)
            };
            verdict = p.add(&r, &config, now);
            assert_eq!(verdict.is_some(), i == 29);
        }
        let v = verdict.expect("closed");
        let se = (2.25 * 30.0 / 29.0 / 30.0f64).sqrt();
        assert!((v.estimate - 0.5).abs() < 1e-12);
        assert!((v.standard_error - se).abs() < 1e-12);
        // z_0.95 = 1.6448536269514722.
        assert!((v.lower_bound - (0.5 - 1.644_853_626_951_472_2 * se)).abs() < 1e-9);
        assert!(v.passed && v.consecutive == 1 && v.window == 1 && v.rounds == 30);
        assert!(!p.proved(&config));
        assert_eq!(
            v.to_string(),
            format!(
                "off-policy verdict 1 in shadow: ipw +0.5000, lower bound {:+.4} against +0.0000, 30 rounds: passed",
                0.5 - 1.644_853_626_951_472_2 * se
            )
        );
    }

    #[test]
    fn welch_bound_matches_the_closed_form() {
        let config = ProofConfig::default();
        let mut c = CohortRewards::default();
        for v in [1.0, 0.0, 1.0, 1.0] {
            c.candidate.push(v);
        }
        for v in [0.5, 0.5, 1.0, 0.0, 0.5] {
            c.baseline.push(v);
        }
        let v = c.evaluate(Phase::Canary, &config, Utc::now());
        // Means 0.75 and 0.5; variances 0.25 and 0.125.
        let se = (0.25 / 4.0 + 0.125 / 5.0f64).sqrt();
        assert!((v.estimate - 0.25).abs() < 1e-12);
        assert!((v.standard_error - se).abs() < 1e-12);
        assert_eq!(v.passed, 0.25 - 1.644_853_626_951_472_2 * se >= -0.02);
        assert!(!c.due(&config));
    }

    #[test]
    fn bad_rounds_and_settings_are_named() {
        let e = round(f64::NAN, 0, 0.5, 0, 0).validate().unwrap_err();
        assert!(e.to_string().contains("reward"), "{e}");
        let e = round(1.0, 0, 0.0, 0, 0).validate().unwrap_err();
        assert!(e.to_string().contains("propensity"), "{e}");
        let e = round(1.0, 0, 0.5, MAX_ARMS, 0).validate().unwrap_err();
        assert!(e.to_string().contains("candidate_arm"), "{e}");
        let e = ProofConfig {
            window: 3,
            ..ProofConfig::default()
        }
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("proof.window"), "{e}");
    }
}
