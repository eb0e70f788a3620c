//! Seeded simulations of whole rollouts, to measure the false-rollback rate
//! (A/A: no true difference) and the detection of an injected breach
//! ([`simulate`]), and how often and how fast a candidate proves itself in
//! shadow ([`simulate_proof`]).

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use tuneloop_core::{Cohort, Phase};

use crate::manager::{RolloutConfig, RolloutEvent, RolloutManager};
use crate::monitor::Observation;
use crate::proof::ShadowRound;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Independent rollouts.
    pub runs: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Candidate latency = baseline latency × this (1 for A/A).
    pub latency_factor: f64,
    /// Candidate quality = baseline quality × this (1 for A/A).
    pub quality_factor: f64,
    /// Requests per second (time advances by 1/rate per request).
    pub requests_per_second: f64,
    /// Requests after which an unfinished run stops.
    pub max_requests: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            runs: 200,
            seed: 1,
            latency_factor: 1.0,
            quality_factor: 1.0,
            requests_per_second: 10.0,
            max_requests: 1_000_000,
        }
    }
}

/// The outcome of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationReport {
    /// Runs simulated.
    pub runs: usize,
    /// Runs that reached general without a rollback.
    pub completed: usize,
    /// Runs with a rollback.
    pub rolled_back: usize,
    /// `rolled_back / runs`.
    pub rollback_rate: f64,
    /// Median candidate observations before the rollback, over rolled-back runs.
    pub median_candidate_observations_to_rollback: Option<u64>,
    /// Which metric triggered each rollback: latency, quality, error_rate.
    pub rollbacks_by_metric: [usize; 3],
}

/// The traffic: latency log-normal with median 800 ms and σ 0.4, quality
/// normal (0.8, 0.1) clipped to `[0, 1]`, 2% errors.
fn observation(rng: &mut ChaCha8Rng, latency_factor: f64, quality_factor: f64) -> Observation {
    let normal = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };
    let latency_ms = 800.0 * (0.4 * normal(rng)).exp() * latency_factor;
    let quality = ((0.8 + 0.1 * normal(rng)) * quality_factor).clamp(0.0, 1.0);
    let error = rng.random::<f64>() < 0.02;
    Observation {
        latency_ms,
        quality,
        error,
    }
}

/// Simulates `sim.runs` full rollouts under `config`. The traffic has no
/// arms, so the off-policy proof cannot be simulated here: the proof is not
/// required in these runs (see [`simulate_proof`]).
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) from `config`.
pub fn simulate(config: &RolloutConfig, sim: &SimulationConfig) -> Result<SimulationReport> {
    let start: DateTime<Utc> = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let step_ns = (1e9 / sim.requests_per_second.max(1e-3)) as i64;
    let mut completed = 0;
    let mut rolled_back = 0;
    let mut to_rollback = Vec::new();
    let mut by_metric = [0usize; 3];
    for run in 0..sim.runs {
        // Run `run` has a stream of its own: results do not depend on order.
        let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
        rng.set_stream(run as u64);
        let mut cfg = config.clone();
        cfg.salt = format!("{}-{run}", config.salt);
        cfg.proof.required = false;
        let mut r = RolloutManager::new(cfg, start)?;
        for i in 0..sim.max_requests {
            let now = start + Duration::nanoseconds(step_ns.saturating_mul(i as i64));
            let a = r.assign(&format!("request-{i}"));
            let candidate = a.cohort == Cohort::Candidate;
            let o = if candidate {
                observation(&mut rng, sim.latency_factor, sim.quality_factor)
            } else {
                observation(&mut rng, 1.0, 1.0)
            };
            let events = r.observe(a.cohort, o, now)?;
            if let Some(RolloutEvent::RolledBack { breach, .. }) = events
                .iter()
                .find(|e| matches!(e, RolloutEvent::RolledBack { .. }))
            {
                rolled_back += 1;
                to_rollback.push(breach.candidate.observations);
                by_metric[breach.metric as usize] += 1;
                break;
            }
            if r.phase() == Phase::General {
                completed += 1;
                break;
            }
        }
    }
    to_rollback.sort_unstable();
    Ok(SimulationReport {
        runs: sim.runs,
        completed,
        rolled_back,
        rollback_rate: rolled_back as f64 / sim.runs.max(1) as f64,
        median_candidate_observations_to_rollback: to_rollback.get(to_rollback.len() / 2).copied(),
        rollbacks_by_metric: by_metric,
    })
}

/// A shadow to simulate: `arms` arms with Bernoulli rewards, the incumbent
/// arm 0 of mean `incumbent_reward`, a fixed candidate that always chooses
/// arm 1 of mean `candidate_reward`, the others of mean
/// `incumbent_reward − 0.1`. The logging policy is the facade's: the
/// incumbent with a uniform exploration floor `exploration`, mixed with the
/// candidate's choice on the config's
/// [`shadow_probe`](crate::ProofConfig::shadow_probe) share of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProofSimulation {
    /// Independent shadows.
    pub runs: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Arms (at least 2).
    pub arms: usize,
    /// The incumbent's mean reward.
    pub incumbent_reward: f64,
    /// The candidate's mean reward.
    pub candidate_reward: f64,
    /// The incumbent's exploration floor.
    pub exploration: f64,
    /// Shadow rounds after which a run that has not left stops.
    pub max_rounds: u64,
}

impl Default for ProofSimulation {
    fn default() -> Self {
        ProofSimulation {
            runs: 200,
            seed: 1,
            arms: 10,
            incumbent_reward: 0.5,
            candidate_reward: 0.5,
            exploration: 0.02,
            max_rounds: 50_000,
        }
    }
}

/// How the shadows ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofReport {
    /// Runs simulated.
    pub runs: usize,
    /// Runs whose candidate left shadow within `max_rounds`.
    pub exits: usize,
    /// Shadow rounds to the exit, over the runs that left: median.
    pub median_rounds_to_exit: Option<u64>,
    /// 90th percentile of the same (nearest rank).
    pub p90_rounds_to_exit: Option<u64>,
}

/// Simulates `sim.runs` shadows under `config` (its dwell time and sample
/// minimum of shadow apply; time advances a second per round) and counts
/// the candidates that prove themselves.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) from `config`,
/// or from `sim` (fewer than 2 arms, a rate outside `[0, 1]`, a mean
/// outside `[0, 1]`).
pub fn simulate_proof(config: &RolloutConfig, sim: &ProofSimulation) -> Result<ProofReport> {
    use crate::error::check;
    check(
        "arms",
        sim.arms as f64,
        (2..=4096).contains(&sim.arms),
        "2 to 4096",
    )?;
    for (field, v) in [
        ("exploration", sim.exploration),
        ("incumbent_reward", sim.incumbent_reward),
        ("candidate_reward", sim.candidate_reward),
    ] {
        check(field, v, (0.0..=1.0).contains(&v), "in [0, 1]")?;
    }
    let start: DateTime<Utc> = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let k = sim.arms as f64;
    let probe = config.proof.shadow_probe;
    let floor = sim.exploration / k;
    // The logging policy: arm 0 gets the incumbent's mass, arm 1 the
    // probe's, every arm the floor.
    let mu = |arm: usize| -> f64 {
        let base = floor + if arm == 0 { 1.0 - sim.exploration } else { 0.0 };
        (1.0 - probe) * base + if arm == 1 { probe } else { 0.0 }
    };
    let mean = |arm: usize| match arm {
        0 => sim.incumbent_reward,
        1 => sim.candidate_reward,
        _ => (sim.incumbent_reward - 0.1).max(0.0),
    };
    let mut exits = Vec::new();
    for run in 0..sim.runs {
        let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
        rng.set_stream(run as u64);
        let mut r = RolloutManager::new(config.clone(), start)?;
        for i in 0..sim.max_rounds {
            let now = start + Duration::seconds(i as i64);
            // Draw the logged arm from μ by inverse CDF.
            let u: f64 = rng.random();
            let mut arm = sim.arms - 1;
            let mut cumulative = 0.0;
            for a in 0..sim.arms {
                cumulative += mu(a);
                if u < cumulative {
                    arm = a;
                    break;
                }
            }
            let reward = f64::from(u8::from(rng.random::<f64>() < mean(arm)));
            let o = Observation {
                latency_ms: 800.0,
                quality: reward,
                error: false,
            };
            r.observe(Cohort::Baseline, o, now)?;
            let round = ShadowRound {
                reward,
                arm,
                propensity: mu(arm),
                candidate_arm: 1,
                incumbent_arm: 0,
            };
            r.observe_shadow(round, now)?;
            if r.phase() != Phase::Shadow {
                exits.push(i + 1);
                break;
            }
        }
    }
    exits.sort_unstable();
    let rank = |q: f64| {
        let n = exits.len();
        (n > 0).then(|| exits[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Ok(ProofReport {
        runs: sim.runs,
        exits: exits.len(),
        median_rounds_to_exit: rank(0.5),
        p90_rounds_to_exit: rank(0.9),
    })
}
