//! An agent loop through the whole stack: the optimizer recommends
//! parameters, the router sends the call to a provider (cloud models first,
//! a local model as fallback), the outcome goes back to the optimizer.
//! One task type's learner is rolled out from shadow to general; the other's
//! candidate degrades (the cloud's large model slows down for its traffic)
//! and the SLO monitor rolls it back.
//!
//! Run with `cargo run --release --example agent_loop --features router`. Provider latencies
//! are simulated on tokio's paused clock, so the run takes seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tuneloop::core::{ArmSet, ManualClock, TaskFeatures, TaskOutcome};
use tuneloop::providers::{
    GenerationRequest, Message, Provider, QualityProfile, Router, RouterConfig, Scorecard,
    ScorecardConfig, SimulatedConfig, SimulatedProvider, Tier,
};
use tuneloop::rollout::{Cohort, RolloutConfig, RolloutEvent};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

fn providers(slow_large: bool) -> Vec<Arc<dyn Provider>> {
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "summarize".to_owned(),
        QualityProfile {
            best_temperature: 0.3,
            best_max_tokens: 512.0,
            peak_quality: 0.88,
        },
    );
    profiles.insert(
        "code".to_owned(),
        QualityProfile {
            best_temperature: 0.0,
            best_max_tokens: 512.0,
            peak_quality: 0.9,
        },
    );
    let cloud =
        |id: &str, model: &str, base: f64, slowdown: f64, peak_shift: f64| -> Arc<dyn Provider> {
            let mut p = profiles.clone();
            for v in p.values_mut() {
                v.peak_quality += peak_shift;
            }
            Arc::new(SimulatedProvider::new(SimulatedConfig {
                id: id.into(),
                models: vec![model.into()],
                base_latency_ms: base,
                slowdown,
                failure_rate: 0.01,
                profiles: p,
                seed: 3,
                ..SimulatedConfig::default()
            }))
        };
    vec![
        cloud(
            "cloud-large",
            "large",
            900.0,
            if slow_large { 1.6 } else { 1.0 },
            0.04,
        ),
        cloud("cloud-small", "small", 400.0, 1.0, 0.0),
        Arc::new(SimulatedProvider::new(SimulatedConfig {
            id: "local".into(),
            tier: Tier::Local,
            base_latency_ms: 1500.0,
            profiles,
            seed: 4,
            ..SimulatedConfig::default()
        })),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["small", "large"])
        .temperatures([0.0, 0.3, 0.7])
        .max_tokens([512, 1024])
        .build()?;
    let incumbent = arms
        .iter()
        .position(|a| a.params.model() == "large" && a.params.max_tokens() == 512)
        .ok_or("incumbent")?;
    let clock = ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).single().ok_or("time")?);
    let scorecard = Arc::new(Scorecard::in_memory(ScorecardConfig::default()));
    // Short phases for a demonstration; the defaults wait minutes and
    // thousands of calls.
    let rollout = RolloutConfig {
        min_dwell: [60, 120, 300].map(std::time::Duration::from_secs),
        shadow_min_baseline_samples: 500,
        canary_min_samples: 150,
        guarded_min_samples: 500,
        slo: tuneloop::rollout::SloConfig {
            min_baseline_samples: 500,
            min_samples: 100,
            ..Default::default()
        },
        ..RolloutConfig::default()
    };
    let optimizer = Optimizer::builder()
        .task_type(
            "summarize",
            TaskTypeConfig::new(arms.clone())
                .incumbent(incumbent)
                .rollout(rollout.clone()),
        )
        .task_type(
            "code",
            TaskTypeConfig::new(arms)
                .incumbent(incumbent)
                .rollout(rollout),
        )
        .scorecard(scorecard.clone())
        .clock(Arc::new(clock.clone()))
        .seed(8)
        .build()?;
    let healthy =
        Router::new(providers(false), RouterConfig::default())?.with_scorecard(scorecard.clone());
    let degraded =
        Router::new(providers(true), RouterConfig::default())?.with_scorecard(scorecard.clone());
    for i in 0..9_000 {
        for (task, degrade) in [("summarize", false), ("code", i > 2_000)] {
            let user = format!("user-{}", i % 5_000);
            let rec = optimizer.recommend_parameters(
                task,
                &TaskFeatures::default(),
                &RecommendOptions {
                    key: Some(&user),
                    ..RecommendOptions::default()
                },
            )?;
            let request = GenerationRequest::new(
                rec.decision_id.to_string(),
                vec![Message::user("...")],
                &rec.params,
            )
            .with_task_type(task);
            // The slowdown hits the candidate's traffic only (it prefers the
            // model whose new version is slow); the incumbent's is unaffected.
            let router = if degrade && rec.cohort == Cohort::Candidate {
                &degraded
            } else {
                &healthy
            };
            let outcome = match router.generate(&request).await {
                Ok(routed) => {
                    let r = routed.response;
                    let quality = r
                        .text
                        .split("quality=")
                        .nth(1)
                        .and_then(|s| s.trim_end_matches(']').parse().ok())
                        .unwrap_or(0.0);
                    TaskOutcome::success(quality, r.latency.as_secs_f64() * 1000.0)
                        .with_tokens(r.usage.prompt_tokens, r.usage.completion_tokens)
                }
                Err(e) => {
                    eprintln!("[{task}] call {i}: no provider answered: {e}");
                    TaskOutcome::failure(tuneloop::core::ErrorClass::Transient, 0.0)
                }
            };
            for e in optimizer.record_outcome(rec.decision_id, &outcome)?.events {
                match e {
                    RolloutEvent::Promoted { from, to, .. } => {
                        println!("[{task}] call {i}: promoted {from:?} → {to:?}")
                    }
                    RolloutEvent::RolledBack {
                        from, to, breach, ..
                    } => println!(
                        "[{task}] call {i}: ROLLED BACK {from:?} → {to:?} on {:?}: candidate p99 {:.0} ms vs baseline {:.0} ms",
                        breach.metric,
                        breach.candidate.p99_ms.unwrap_or(f64::NAN),
                        breach.baseline.p99_ms.unwrap_or(f64::NAN),
                    ),
                    _ => {}
                }
            }
        }
        clock.advance(Duration::milliseconds(200));
    }
    println!(
        "final phases: summarize {:?}, code {:?}",
        optimizer.phase("summarize")?,
        optimizer.phase("code")?
    );
    println!("counters: {:?}", optimizer.counters());
    for (key, e) in scorecard.export() {
        if e.calls > 0 {
            println!(
                "scorecard {key}: {} calls, {:.1}% answered, EWMA latency {:.0} ms",
                e.calls,
                100.0 * e.successes as f64 / e.calls as f64,
                e.ewma_latency_ms.unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
