//! The SLO monitor watches the latency `SloConfig::latency_metric` names:
//! a candidate whose answers take ten times longer to finish but whose
//! first token comes as fast is rolled back when the whole call's latency
//! is watched, and kept when the time to the first token is.

use std::sync::Arc;
use std::time::Duration;

use tuneloop::core::{ArmSet, Cohort, LatencyMetric, ManualClock, TaskFeatures, TaskOutcome};
use tuneloop::rollout::{ProofConfig, RolloutConfig, SloConfig};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Rollbacks over 4,000 calls, with the candidate's calls slow to finish.
fn rollbacks(metric: LatencyMetric) -> Result<u64, Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let rollout = RolloutConfig {
        canary_fraction: 0.5,
        guarded_fraction: 0.5,
        shadow_min_baseline_samples: 100,
        canary_min_samples: 1_000_000,
        min_dwell: [Duration::ZERO; 3],
        slo: SloConfig {
            min_baseline_samples: 100,
            min_samples: 50,
            latency_metric: metric,
            ..SloConfig::default()
        },
        // The SLO's latency, not the candidate's proof.
        proof: ProofConfig {
            required: false,
            ..ProofConfig::default()
        },
        ..RolloutConfig::default()
    };
    let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
    let o = Optimizer::builder()
        .task_type("t", TaskTypeConfig::new(arms).rollout(rollout))
        .clock(Arc::new(clock.clone()))
        .seed(3)
        .build()?;
    for _ in 0..4_000 {
        let rec =
            o.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        let total = if rec.cohort == Cohort::Candidate {
            5_000.0
        } else {
            500.0
        };
        let outcome = TaskOutcome::success(0.8, total).with_time_to_first_token(100.0);
        o.record_outcome(rec.decision_id, &outcome)?;
        clock.advance(chrono::Duration::seconds(1));
    }
    Ok(o.counters().rollbacks)
}

#[test]
fn the_slo_watches_the_latency_it_is_told_to() -> TestResult {
    assert!(rollbacks(LatencyMetric::Total)? >= 1);
    assert_eq!(rollbacks(LatencyMetric::FirstToken)?, 0);
    Ok(())
}
