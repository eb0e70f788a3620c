//! Quickstart: an optimizer learns which temperature and max_tokens suit
//! each task, from the outcomes of its calls, and proves offline — with an
//! interval — that what it learned beats the hand-picked incumbent.
//!
//! Run with `cargo run --release --example quickstart`.
//!
//! The backend is simulated: quality peaks at a temperature and a length
//! that depend on the task's size (bigger tasks want more tokens and a
//! cooler temperature), with noise; latency and cost grow with the tokens
//! generated. The learner is rolled out against the incumbent (shadow →
//! canary → guarded → general) and every decision is logged to a JSON Lines
//! file in a temporary folder, as a real deployment would.

use std::sync::Arc;

use tuneloop::bandit::Fixed;
use tuneloop::core::hash::splitmix64;
use tuneloop::core::{ArmSet, Featurizer, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::{EstimatorSettings, JsonlLog, OfflineEvaluator, read_log};
use tuneloop::rollout::{RolloutConfig, SloConfig};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

/// Seeded uniform numbers in [0, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = splitmix64(self.0);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The simulated LLM backend. `size` in [0, 1] is the task's size.
fn call(p: &ParameterSet, size: f64, noise: &mut Noise) -> TaskOutcome {
    let best_t = 0.8 - 0.6 * size;
    let best_k = 256.0 * 16f64.powf(size);
    let dk = (f64::from(p.max_tokens()) / best_k).log2();
    let q = 0.92 - 0.7 * (p.temperature() - best_t).powi(2) - 0.04 * dk * dk;
    let q = (q + 0.15 * (noise.next() - 0.5)).clamp(0.0, 1.0);
    let used = f64::from(p.max_tokens()) * (0.4 + 0.4 * noise.next());
    TaskOutcome::success(q, 300.0 + 0.6 * used)
        .with_tokens(600, used as u64)
        .with_cost((600.0 + 3.0 * used) * 2e-6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["sim-model"])
        .temperatures([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
        .max_tokens([256, 512, 1024, 2048, 4096])
        .build()?;
    // The incumbent: the parameters hand-picked today.
    let incumbent = arms
        .iter()
        .position(|a| (a.params.temperature() - 0.6).abs() < 1e-9 && a.params.max_tokens() == 1024)
        .ok_or("incumbent arm")?;
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("decisions.jsonl");
    // The learner is rolled out against the incumbent: shadow, then 5%,
    // 25% and all traffic, each phase watched by the SLO monitor. (Phases
    // are short here; the defaults wait minutes and thousands of calls.)
    let rollout = RolloutConfig {
        shadow_min_baseline_samples: 300,
        canary_min_samples: 100,
        guarded_min_samples: 300,
        min_dwell: [std::time::Duration::ZERO; 3],
        slo: SloConfig {
            min_baseline_samples: 300,
            min_samples: 100,
            ..SloConfig::default()
        },
        ..RolloutConfig::default()
    };
    let optimizer = Optimizer::builder()
        .task_type(
            "answer",
            TaskTypeConfig::new(arms.clone())
                .incumbent(incumbent)
                .rollout(rollout),
        )
        .decision_log(Arc::new(JsonlLog::open(&log_path, 64 << 20, 2)?))
        .seed(42)
        .build()?;
    println!(
        "{} arms; incumbent: temperature 0.6, max_tokens 1024; log: {}",
        arms.len(),
        log_path.display()
    );

    let mut noise = Noise(7);
    let mut window = 0.0;
    let rounds = 3_000;
    println!("learning:");
    for t in 0..rounds {
        let size = noise.next();
        let task = TaskFeatures {
            description_length: (100.0 * 100f64.powf(size)) as u64,
            ..TaskFeatures::default()
        };
        let user = format!("user-{}", t % 997);
        let rec = optimizer.recommend_parameters(
            "answer",
            &task,
            &RecommendOptions {
                key: Some(&user),
                ..RecommendOptions::default()
            },
        )?;
        let outcome = call(&rec.params, size, &mut noise);
        let recorded = optimizer.record_outcome(rec.decision_id, &outcome)?;
        window += recorded.reward;
        for e in &recorded.events {
            println!(
                "  rollout: {}",
                serde_json::to_string(e).unwrap_or_default()
            );
        }
        if (t + 1) % 500 == 0 {
            println!(
                "  calls {:>4}-{:>4}: average reward {:.3}",
                t - 498,
                t + 1,
                window / 500.0
            );
            window = 0.0;
        }
    }
    let snapshot = optimizer.snapshot()?;
    let counters = optimizer.counters();
    drop(optimizer); // flushes the decision log
    println!(
        "{} recommendations, {} outcomes, {} log records dropped",
        counters.recommendations, counters.outcomes, counters.log_dropped
    );

    // Offline: the learned policy against the incumbent, on the same log.
    let records = read_log(&log_path)?.records;
    let learned = tuneloop::bandit::restore(&snapshot.task_types["answer"].learner)?;
    let dim = tuneloop::core::DefaultFeaturizer::default().dim();
    let baseline = Fixed::new(incumbent, arms.len(), dim, 0.0)?;
    let evaluator = OfflineEvaluator {
        settings: EstimatorSettings {
            bootstrap: 2_000,
            seed: 1,
            ..EstimatorSettings::default()
        },
        ..OfflineEvaluator::default()
    };
    let c = evaluator.compare(&records, learned.as_ref(), &baseline)?;
    println!(
        "offline, on {} logged calls (doubly robust, 95% bootstrap):\n  learned policy {:.3} [{:.3}, {:.3}]\n  incumbent      {:.3} [{:.3}, {:.3}]",
        c.rounds,
        c.candidate.estimate,
        c.candidate.ci_low,
        c.candidate.ci_high,
        c.baseline.estimate,
        c.baseline.ci_low,
        c.baseline.ci_high
    );
    println!(
        "gain over the incumbent: {:+.3} [{:+.3}, {:+.3}], one-sided lower bound {:+.3}: {}",
        c.difference.estimate,
        c.difference.ci_low,
        c.difference.ci_high,
        c.difference.lower_one_sided,
        if c.candidate_is_better {
            "proven better"
        } else {
            "not proven better"
        }
    );
    println!(
        "rollout phase at the end: {:?}; {} promotion(s), {} rollback(s). Reward and SLOs are separate guards: \
         a policy that earns more can still be rolled back for breaking the latency SLO.",
        snapshot.task_types["answer"]
            .rollout
            .as_ref()
            .map(|r| r.phase()),
        counters.promotions,
        counters.rollbacks
    );
    Ok(())
}
