//! An agent loop with a staged rollout: one task type's learner goes from
//! shadow to general; another's candidate degrades (its preferred model
//! slows down) and the SLO monitor rolls it back.
//!
//! Run with `cargo run --release --example agent_loop`.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tuneloop::core::hash::splitmix64;
use tuneloop::core::{ArmSet, ManualClock, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::rollout::{RolloutConfig, RolloutEvent};
use tuneloop::{Optimizer, Request, TaskTypeConfig};

/// The backend. `slow_large` injects a degradation: the large model's
/// latency grows 60%.
fn call(p: &ParameterSet, noise: f64, slow_large: bool) -> TaskOutcome {
    let large = p.model() == "large";
    let q = if large { 0.86 } else { 0.8 } - 0.3 * (p.temperature() - 0.3).powi(2)
        + 0.1 * (noise - 0.5);
    let mut latency =
        if large { 1200.0 } else { 700.0 } * (0.8 + 0.4 * noise) + 0.2 * f64::from(p.max_tokens());
    if large && slow_large {
        latency *= 1.6;
    }
    TaskOutcome::success(q.clamp(0.0, 1.0), latency).with_tokens(800, 300)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let rollout = RolloutConfig {
        min_dwell_seconds: [60, 120, 300],
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
        .clock(Arc::new(clock.clone()))
        .seed(8)
        .build()?;
    let mut state = 1u64;
    let mut noise = || {
        state = splitmix64(state);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let report = |task: &str, i: usize, events: &[RolloutEvent]| {
        for e in events {
            match e {
                RolloutEvent::Promoted { from, to, .. } => {
                    println!("[{task}] call {i}: promoted {from:?} → {to:?}")
                }
                RolloutEvent::RolledBack {
                    from, to, breach, ..
                } => println!(
                    "[{task}] call {i}: ROLLED BACK {from:?} → {to:?}: {:?} breach — candidate p99 {:.0} ms vs baseline {:.0} ms, quality {:.3} vs {:.3}",
                    breach.metric,
                    breach.candidate.p99_ms.unwrap_or(f64::NAN),
                    breach.baseline.p99_ms.unwrap_or(f64::NAN),
                    breach.candidate.quality_mean.unwrap_or(f64::NAN),
                    breach.baseline.quality_mean.unwrap_or(f64::NAN),
                ),
                _ => {}
            }
        }
    };
    for i in 0..60_000 {
        for (task, degraded) in [("summarize", false), ("code", i > 15_000)] {
            let user = format!("user-{}", i % 5_000);
            let rec = optimizer.recommend_parameters(
                task,
                &TaskFeatures::default(),
                &Request {
                    key: Some(&user),
                    ..Request::default()
                },
            )?;
            // The degradation hits the candidate's traffic only (a new model
            // version it prefers); the incumbent's calls are unaffected.
            let slow = degraded && rec.cohort == tuneloop::rollout::Cohort::Candidate;
            let done =
                optimizer.record_outcome(rec.decision_id, &call(&rec.params, noise(), slow))?;
            report(task, i, &done.events);
        }
        clock.advance(Duration::milliseconds(200));
    }
    println!(
        "final phases: summarize {:?}, code {:?}; counters {:?}",
        optimizer.phase("summarize")?,
        optimizer.phase("code")?,
        optimizer.counters()
    );
    Ok(())
}
