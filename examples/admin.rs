//! A simulated agent loop with the admin endpoint on: prints the
//! endpoint's base URL as the first line of stdout and serves until
//! stopped (Ctrl-C).
//!
//! ```text
//! cargo run --release --example admin
//! curl http://127.0.0.1:PORT/metrics
//! curl http://127.0.0.1:PORT/rollouts
//! curl -X POST http://127.0.0.1:PORT/runtime-config -d '{"exploration_rate": 0.2}'
//! curl -X POST http://127.0.0.1:PORT/rollouts/answer/hold -d '{"reason": "looking"}'
//! ```
//!
//! and open `http://127.0.0.1:PORT/` in a browser: the live dashboard (the
//! report's charts over the decision log so far, the rollout now, the
//! candidate's proof and every rollout change), refreshed on reload.
//!
//! `TUNELOOP_ADMIN_ADDR` sets the address (default 127.0.0.1 on a free
//! port) and `TUNELOOP_ADMIN_TOKEN` a bearer token (needed off loopback).
//! The simulated backend: quality peaks at temperature 0.3, latency grows
//! with max_tokens; one call every 5 ms of real time.

use std::sync::Arc;
use std::time::Duration;

use tuneloop::core::hash::splitmix64;
use tuneloop::core::{ArmSet, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::JsonlLog;
use tuneloop::gates::Provenance;
use tuneloop::rollout::{RolloutConfig, SloConfig};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_admin::{AdminConfig, serve};
use tuneloop_config::{RuntimeConfig, RuntimeConfigStore};

fn call(p: &ParameterSet, seed: &mut u64) -> TaskOutcome {
    *seed = splitmix64(*seed);
    let noise = (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    let q = (0.9 - 0.8 * (p.temperature() - 0.3).powi(2) + 0.2 * noise).clamp(0.0, 1.0);
    let used = f64::from(p.max_tokens()) * 0.6;
    TaskOutcome::success(q, 300.0 + 0.5 * used).with_tokens(500, used as u64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["sim-model"])
        .temperatures([0.0, 0.3, 0.7, 1.0])
        .max_tokens([256, 1024])
        .build()?;
    let incumbent = arms
        .iter()
        .position(|a| (a.params.temperature() - 0.7).abs() < 1e-9 && a.params.max_tokens() == 1024)
        .ok_or("incumbent arm")?;
    let store = Arc::new(RuntimeConfigStore::in_memory(RuntimeConfig::default())?);
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("decisions.jsonl");
    let rollout = RolloutConfig {
        shadow_min_baseline_samples: 500,
        canary_min_samples: 300,
        guarded_min_samples: 500,
        min_dwell: [Duration::from_secs(5); 3],
        slo: SloConfig {
            min_baseline_samples: 500,
            min_samples: 200,
            ..SloConfig::default()
        },
        ..RolloutConfig::default()
    };
    let optimizer = Optimizer::builder()
        .task_type(
            "answer",
            TaskTypeConfig::new(arms)
                .incumbent(incumbent)
                .rollout(rollout),
        )
        .decision_log(Arc::new(JsonlLog::open(&log_path, 256 << 20, 2)?))
        .provenance(Arc::new(std::sync::Mutex::new(Provenance::in_memory())))
        .seed(1)
        .build()?;
    store.attach(&optimizer)?;
    let addr = match std::env::var("TUNELOOP_ADMIN_ADDR") {
        Ok(a) => a.parse()?,
        Err(_) => AdminConfig::default().addr,
    };
    let token = std::env::var("TUNELOOP_ADMIN_TOKEN").ok();
    let admin = serve(
        optimizer.clone(),
        AdminConfig {
            addr,
            token,
            dashboard_log: Some(log_path.clone()),
            runtime_config: Some(store),
        },
    )
    .await?;
    println!("{}", admin.url());
    let mut seed = 7;
    for i in 0u64.. {
        let rec = optimizer.recommend_parameters(
            "answer",
            &TaskFeatures::default(),
            &RecommendOptions {
                key: Some(&format!("user-{}", i % 1000)),
                ..RecommendOptions::default()
            },
        )?;
        let outcome = call(&rec.params, &mut seed);
        optimizer.record_outcome(rec.decision_id, &outcome)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    admin.stop().await;
    Ok(())
}
