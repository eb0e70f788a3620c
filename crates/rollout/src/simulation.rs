//! Seeded simulations of whole rollouts, to measure the false-rollback rate
//! (A/A: no true difference) and the detection of an injected breach.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use tuneloop_core::{Cohort, Phase};

use crate::manager::{RolloutConfig, RolloutEvent, RolloutManager};
use crate::monitor::Observation;

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

/// Simulates `sim.runs` full rollouts under `config`.
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
