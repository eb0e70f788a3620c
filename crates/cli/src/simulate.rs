//! `tuneloop simulate`: supervised-to-bandit runs and built-in scenarios.

use std::path::Path;
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tuneloop_bandit::{EpsilonGreedyParams, LinUcbParams, PolicyConfig, ThompsonParams};
use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};

use tuneloop_eval::scenario::{TASKS, TaskType, World};

use crate::csv;
use crate::error::{CliError, CliResult};

/// The policies `simulate` knows by name.
pub(crate) const POLICIES: &str = "linucb|thompson|epsilon-greedy|uniform";

pub(crate) fn config(policy: &str, shared: bool) -> CliResult<PolicyConfig> {
    let lp = LinUcbParams::default();
    Ok(match (policy, shared) {
        ("linucb", false) => PolicyConfig::LinUcb(lp),
        ("linucb", true) => PolicyConfig::LinucbShared(lp),
        ("thompson", false) => PolicyConfig::Thompson(ThompsonParams::default()),
        ("thompson", true) => PolicyConfig::ThompsonShared(ThompsonParams::default()),
        ("epsilon-greedy", _) => PolicyConfig::EpsilonGreedy(EpsilonGreedyParams::default()),
        ("uniform", _) => PolicyConfig::Uniform,
        (other, _) => {
            return Err(CliError::bad(format!(
                "--policy: unknown policy `{other}`; expected one of {POLICIES}"
            )));
        }
    })
}

/// One round per row in file order; the arm equal to the label pays 1.
/// The context is a bias term followed by the row's features.
pub(crate) fn supervised(path: &Path, policy: &str, seed: u64) -> CliResult<Value> {
    let cfg = config(policy, false)?;
    let data = csv::Supervised::read(path)?;
    let k = data.num_labels();
    let width = data.width();
    let d = width + 1;
    let mut p = cfg.build(k, d)?;
    let eligible: Vec<usize> = (0..k).collect();
    let mut total = 0.0;
    let mut rounds = 0usize;
    // One buffer for every round's context (taken back after each round).
    let mut x = vec![0.0; d];
    x[0] = 1.0;
    let start = Instant::now();
    for (row, label) in data.rows() {
        let mut buf = std::mem::take(&mut x);
        buf[1..].copy_from_slice(row);
        let ctx = Features::new(buf)?;
        let s = p.select(
            &ctx,
            &eligible,
            &SelectionKey::new(seed, DecisionId::from_u128(rounds as u128)),
        )?;
        let r = if s.arm == label { 1.0 } else { 0.0 };
        p.update(&ctx, s.arm, r)?;
        x = ctx.into_vec();
        total += r;
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "policy": policy,
        "rounds": rounds,
        "arms": k,
        "features": width,
        "average_reward": total / rounds as f64,
        "decisions_per_second": rounds as f64 / secs.max(1e-9),
        "seconds": secs,
    }))
}

/// The `llm-params` scenario: four task types, each with its own policy
/// over a 35-arm grid (7 temperatures × 5 max_tokens); the context is a
/// bias and the centred log prompt size.
pub(crate) fn scenario_llm_params(
    policy: &str,
    rounds: usize,
    runs: usize,
    seed: u64,
) -> CliResult<Value> {
    if rounds == 0 || runs == 0 {
        return Err(CliError::bad("--rounds and --runs must be at least 1"));
    }
    let env = World::new()?;
    let cfg = config(policy, true)?;
    let all = env.arms.all_indices();
    let window = 25.min(rounds);
    let windows = rounds.div_ceil(window);
    // Per task type and window: sums of realized-expected reward and oracle.
    let mut got = vec![vec![0.0; windows]; TASKS.len()];
    let mut best = vec![vec![0.0; windows]; TASKS.len()];
    // Expected reward of an arm, by Monte Carlo over the outcome noise.
    let mut mc_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut expected = |task: &TaskType, arm: usize, s: f64| -> f64 {
        let n = 64;
        (0..n)
            .map(|_| {
                env.reward
                    .reward(&env.outcome(task, arm, s, &mut mc_rng))
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
            / f64::from(n)
    };
    let start = Instant::now();
    let mut decisions = 0usize;
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(run as u64));
        for (ti, task) in TASKS.iter().enumerate() {
            let mut p: Box<dyn Policy> = cfg.build_for_arms(&env.arms, 2)?;
            for t in 0..rounds {
                let s = 2.0 * rng.random::<f64>() - 1.0;
                let x = Features::new(vec![1.0, s])?;
                let id =
                    DecisionId::from_u128(((run as u128) << 64) | ((ti as u128) << 32) | t as u128);
                let sel = p.select(&x, &all, &SelectionKey::new(seed, id))?;
                let outcome = env.outcome(task, sel.arm, s, &mut rng);
                p.update(&x, sel.arm, env.reward.reward(&outcome)?)?;
                decisions += 1;
                // Regret is measured in expectation, on a subsample of rounds
                // (every 5th) to keep the Monte-Carlo oracle affordable.
                if t % 5 == 0 {
                    let chosen = expected(task, sel.arm, s);
                    let oracle = all
                        .iter()
                        .map(|&a| expected(task, a, s))
                        .fold(0.0, f64::max);
                    got[ti][t / window] += chosen;
                    best[ti][t / window] += oracle;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut per_task = serde_json::Map::new();
    let mut final_fraction_max: f64 = 0.0;
    for (ti, task) in TASKS.iter().enumerate() {
        let curve: Vec<Value> = (0..windows)
            .map(|w| {
                let b = best[ti][w];
                json!({
                    "rounds": [w * window, ((w + 1) * window).min(rounds)],
                    "regret_fraction": if b > 0.0 { (b - got[ti][w]) / b } else { 0.0 },
                })
            })
            .collect();
        let last = windows - 1;
        let frac = if best[ti][last] > 0.0 {
            (best[ti][last] - got[ti][last]) / best[ti][last]
        } else {
            0.0
        };
        final_fraction_max = final_fraction_max.max(frac);
        let samples = (rounds.div_ceil(5) * runs) as f64;
        let (sum_got, sum_best): (f64, f64) = (got[ti].iter().sum(), best[ti].iter().sum());
        per_task.insert(
            task.name.to_owned(),
            json!({
                "average_reward": sum_got / samples,
                "oracle_average_reward": sum_best / samples,
                "final_window_regret_fraction": frac,
                "regret_over_time": curve,
            }),
        );
    }
    Ok(json!({
        "scenario": "llm-params",
        "policy": policy,
        "arms": env.arms.len(),
        "task_types": TASKS.len(),
        "rounds_per_task_type": rounds,
        "runs": runs,
        "worst_final_window_regret_fraction": final_fraction_max,
        "task": per_task,
        "decisions_per_second": decisions as f64 / secs.max(1e-9),
    }))
}

/// `rollout-aa` (no true difference) or `rollout-breach` (candidate p99
/// latency +30% and quality −10%): whole rollouts from shadow to general.
pub(crate) fn scenario_rollout(breach: bool, runs: usize, seed: u64) -> CliResult<Value> {
    use tuneloop_rollout::simulation::{SimulationConfig, simulate};
    if runs == 0 {
        return Err(CliError::bad("--runs must be at least 1"));
    }
    let sim = SimulationConfig {
        runs,
        seed,
        latency_factor: if breach { 1.3 } else { 1.0 },
        quality_factor: if breach { 0.9 } else { 1.0 },
        ..SimulationConfig::default()
    };
    let start = Instant::now();
    let report = simulate(&tuneloop_rollout::RolloutConfig::default(), &sim)
        .map_err(|e| CliError::Other(e.into()))?;
    let mut out = json!({
        "scenario": if breach { "rollout-breach" } else { "rollout-aa" },
        "runs": report.runs,
        "completed": report.completed,
        "rolled_back": report.rolled_back,
        "rollbacks_by_metric": {
            "latency": report.rollbacks_by_metric[0],
            "quality": report.rollbacks_by_metric[1],
            "error_rate": report.rollbacks_by_metric[2],
        },
        "seconds": start.elapsed().as_secs_f64(),
    });
    if breach {
        out["detection_rate"] = json!(report.rollback_rate);
        out["median_candidate_observations_to_rollback"] =
            json!(report.median_candidate_observations_to_rollback);
    } else {
        out["false_rollback_rate"] = json!(report.rollback_rate);
    }
    Ok(out)
}

/// `rollout-proof`: shadows of a fixed candidate against the incumbent
/// (reward 0.5) under the default proof, for candidates worse, equal and
/// better: how many leave shadow within 50,000 rounds, and how fast.
pub(crate) fn scenario_rollout_proof(runs: usize, seed: u64) -> CliResult<Value> {
    use tuneloop_rollout::simulation::{ProofSimulation, simulate_proof};
    if runs == 0 {
        return Err(CliError::bad("--runs must be at least 1"));
    }
    let start = Instant::now();
    let config = tuneloop_rollout::RolloutConfig::default();
    let mut candidates = Vec::new();
    for (i, gain) in [-0.05, 0.0, 0.05, 0.1].into_iter().enumerate() {
        let sim = ProofSimulation {
            runs,
            seed: seed.wrapping_add(i as u64),
            candidate_reward: 0.5 + gain,
            ..ProofSimulation::default()
        };
        let r = simulate_proof(&config, &sim).map_err(|e| CliError::Other(e.into()))?;
        candidates.push(json!({
            "true_gain": gain,
            "exits": r.exits,
            "exit_rate": r.exits as f64 / r.runs as f64,
            "median_rounds_to_exit": r.median_rounds_to_exit,
            "p90_rounds_to_exit": r.p90_rounds_to_exit,
        }));
    }
    let d = ProofSimulation::default();
    Ok(json!({
        "scenario": "rollout-proof",
        "runs": runs,
        "max_rounds": d.max_rounds,
        "arms": d.arms,
        "exploration": d.exploration,
        "proof": config.proof,
        "candidates": candidates,
        "seconds": start.elapsed().as_secs_f64(),
    }))
}
