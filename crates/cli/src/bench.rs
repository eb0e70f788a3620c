//! `tuneloop bench`: latency of the policy hot paths, in nanoseconds.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tuneloop_bandit::{LinUcbParams, ThompsonParams};
use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};

use crate::error::{CliError, CliResult};

fn summary(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
    json!({ "p50_ns": q(0.5), "p99_ns": q(0.99), "max_ns": ns[ns.len() - 1], "samples": ns.len() })
}

fn contexts(rng: &mut ChaCha8Rng, d: usize, n: usize) -> CliResult<Vec<Features>> {
    (0..n)
        .map(|_| {
            let mut x: Vec<f64> = (0..d)
                .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                .collect();
            x[0] = 1.0;
            Features::new(x).map_err(CliError::from)
        })
        .collect()
}

/// Times `select` and `update` of a policy after a warm-up of 20 updates
/// per arm, each call timed on its own.
fn time_policy(
    p: &mut dyn Policy,
    d: usize,
    k: usize,
    iterations: usize,
    rng: &mut ChaCha8Rng,
) -> CliResult<(Value, Value)> {
    let xs = contexts(rng, d, 256)?;
    let all: Vec<usize> = (0..k).collect();
    for i in 0..20 * k {
        p.update(&xs[i % xs.len()], i % k, (i % 7) as f64 / 7.0)?;
    }
    let mut sel = Vec::with_capacity(iterations);
    let mut upd = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let x = &xs[i % xs.len()];
        let key = SelectionKey::new(1, DecisionId::from_u128(i as u128));
        let t = Instant::now();
        let s = p.select(x, &all, &key)?;
        sel.push(t.elapsed().as_nanos() as u64);
        let r = (rng.next_u32() % 2) as f64;
        let t = Instant::now();
        p.update(x, s.arm, r)?;
        upd.push(t.elapsed().as_nanos() as u64);
    }
    Ok((summary(sel), summary(upd)))
}

/// Runs the benchmark: LinUCB, Thompson sampling (disjoint) and shared
/// LinUCB over an arm grid of `arms` arms.
pub(crate) fn run(dims: usize, arms: usize, iterations: usize) -> CliResult<Value> {
    if dims == 0 || arms < 2 || iterations == 0 {
        return Err(CliError::bad(
            "--dims must be >= 1, --arms >= 2 and --iterations >= 1",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = serde_json::Map::new();
    let mut lin = LinUcbParams::default().build(arms, dims)?;
    let (s, u) = time_policy(&mut lin, dims, arms, iterations, &mut rng)?;
    out.insert("linucb_select".into(), s);
    out.insert("linucb_update".into(), u);
    let mut ts = ThompsonParams::default().build(arms, dims)?;
    let (s, u) = time_policy(&mut ts, dims, arms, iterations, &mut rng)?;
    out.insert("thompson_select".into(), s);
    out.insert("thompson_update".into(), u);
    // A grid of `arms` arms over temperature × max_tokens for the shared model.
    let temps = arms.div_ceil(4).max(2);
    let grid = tuneloop_core::ArmSet::grid()
        .models(["m"])
        .temperatures((0..temps).map(|i| 2.0 * i as f64 / (temps - 1) as f64))
        .max_tokens([256, 512, 1024, 2048])
        .build()?;
    let mut shared = LinUcbParams::default().build_shared(&grid, dims)?;
    let (s, u) = time_policy(
        &mut shared,
        dims,
        grid.len(),
        iterations.min(20_000),
        &mut rng,
    )?;
    out.insert(
        "linucb_shared".into(),
        json!({ "arms": grid.len(), "joint_dim": dims * grid.arm_feature_dim(), "select": s, "update": u }),
    );
    Ok(json!({
        "dims": dims,
        "arms": arms,
        "iterations": iterations,
        "results": out,
        "not_measured": "recommend_parameters and record_outcome: the Optimizer facade is not built yet",
    }))
}
