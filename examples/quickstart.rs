//! Quickstart: an optimizer learns which temperature and max_tokens suit
//! each task from the outcomes of its calls, proves in shadow that what it
//! learned beats the hand-picked incumbent, is rolled back when it breaks
//! the latency SLO in canary, and, once the cause is fixed, proves itself
//! again and is promoted through canary and guarded to general.
//!
//! Run with `cargo run --release --example quickstart`.
//!
//! The backend is simulated: quality peaks at a temperature and a length
//! that depend on the task's size (bigger tasks want more tokens and a
//! cooler temperature), with noise; latency and cost grow with the tokens
//! generated. Every decision is logged to a JSON Lines file and every
//! rollout change to a provenance chain, in a temporary folder, as a real
//! deployment would.

use std::sync::Arc;

use tuneloop::bandit::Fixed;
use tuneloop::core::hash::splitmix64;
use tuneloop::core::{ArmSet, Featurizer, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::{EstimatorSettings, JsonlLog, OfflineEvaluator, read_log};
use tuneloop::gates::{Constraints, Parameter, Provenance, Rule};
use tuneloop::rollout::{RolloutConfig, RolloutEvent, SloConfig, Verdict, VerdictKind};
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
    let chain_path = dir.path().join("provenance.jsonl");
    // The learner is rolled out against the incumbent: shadow (where it
    // must prove itself off-policy), then 5%, 25% and all traffic, each
    // phase watched by the SLO monitor. The proof is the default one; the
    // sample minimums and dwell times are shortened (the defaults wait
    // minutes and thousands of calls).
    let rollout = RolloutConfig {
        shadow_min_baseline_samples: 300,
        canary_min_samples: 200,
        guarded_min_samples: 400,
        min_dwell: [std::time::Duration::ZERO; 3],
        slo: SloConfig {
            min_baseline_samples: 300,
            min_samples: 100,
            ..SloConfig::default()
        },
        ..RolloutConfig::default()
    };
    let chain = Arc::new(std::sync::Mutex::new(Provenance::open(&chain_path)?));
    let optimizer = Optimizer::builder()
        .task_type(
            "answer",
            TaskTypeConfig::new(arms.clone())
                .incumbent(incumbent)
                .rollout(rollout),
        )
        .decision_log(Arc::new(JsonlLog::open(&log_path, 64 << 20, 2)?))
        .provenance(chain.clone())
        .seed(42)
        .build()?;
    println!(
        "{} arms; incumbent: temperature 0.6, max_tokens 1024; log: {}",
        arms.len(),
        log_path.display()
    );

    let mut noise = Noise(7);
    let mut calls = 0u64;
    let mut window = (0.0, 0u64);
    // The fix, once the cause of the rollback is known: no more tokens
    // than the incumbent's 1,024 (a hard constraint on every request).
    let cap = Constraints::new(vec![Rule::ParameterRange {
        task_type: None,
        parameter: Parameter::MaxTokens,
        min: None,
        max: Some(1024.0),
    }]);
    let mut fixed = false;
    let mut in_general = 0;
    // The task type, resolved once.
    let answer = optimizer.task("answer")?;
    println!("learning, in shadow:");
    while calls < 60_000 {
        let size = noise.next();
        let task = TaskFeatures {
            description_length: (100.0 * 100f64.powf(size)) as u64,
            ..TaskFeatures::default()
        };
        let user = format!("user-{}", calls % 997);
        let rec = answer.recommend_parameters(
            &task,
            &RecommendOptions {
                key: Some(&user),
                constraints: fixed.then_some(&cap),
            },
        )?;
        let outcome = call(&rec.params, size, &mut noise);
        let recorded = optimizer.record_outcome(rec.decision_id, &outcome)?;
        calls += 1;
        window.0 += recorded.reward;
        window.1 += 1;
        if calls.is_multiple_of(2_000) {
            println!(
                "  calls {:>5}-{:>5}: average reward {:.3}",
                calls - 1_999,
                calls,
                window.0 / window.1 as f64
            );
            window = (0.0, 0);
        }
        for e in &recorded.events {
            print_event(e);
            if let RolloutEvent::RolledBack { .. } = e {
                // The evidence says latency: the candidate learned that big
                // tasks earn more with 2,048 and 4,096 tokens, and they are
                // slow. Fix the cause and resume: the candidate proves
                // itself again from shadow, under the cap.
                println!(
                    "  fix: max_tokens capped at the incumbent's 1,024 on every request; rollout resumed"
                );
                fixed = true;
                optimizer.resume_rollout("answer")?;
            }
        }
        if optimizer.phase("answer")? == Some(tuneloop::rollout::Phase::General) {
            // Everyone gets the learned choices now: a while longer, to see
            // what they earn.
            in_general += 1;
            if in_general == 4_000 {
                break;
            }
        }
    }
    let snapshot = optimizer.snapshot()?;
    let counters = optimizer.counters();
    let status = optimizer.rollout_status("answer")?.ok_or("a rollout")?;
    drop(optimizer); // flushes the decision log
    println!(
        "{} recommendations, {} outcomes, {} log records dropped",
        counters.recommendations, counters.outcomes, counters.log_dropped
    );
    println!(
        "rollout phase at the end: {}; {} promotion(s), {} rollback(s)",
        status.phase, counters.promotions, counters.rollbacks
    );
    let chain = chain.lock().map_err(|_| "provenance chain poisoned")?;
    tuneloop::gates::provenance::verify(chain.records())?;
    println!(
        "provenance: {} rollout changes recorded, chain verified ({})",
        chain.records().len(),
        chain_path.display()
    );

    // Offline, afterwards: the learned policy against the incumbent on the
    // whole log (every phase), the check a reviewer would run.
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
    Ok(())
}

/// One line per rollout event.
fn print_event(e: &RolloutEvent) {
    match e {
        RolloutEvent::Verdict(v) => println!("  {}", verdict(v)),
        RolloutEvent::Promoted { from, to, .. } => println!("  promoted: {from} → {to}"),
        RolloutEvent::RolledBack {
            from, to, breach, ..
        } => println!(
            "  ROLLED BACK {from} → {to}: {:?} breach, candidate p99 {:.0} ms against the baseline's {:.0} ms (e-value {:.0})",
            breach.metric,
            breach.candidate.p99_ms.unwrap_or(f64::NAN),
            breach.baseline.p99_ms.unwrap_or(f64::NAN),
            breach.e_value
        ),
        other => println!(
            "  rollout: {}",
            serde_json::to_string(other).unwrap_or_default()
        ),
    }
}

/// A verdict of the proof, in words.
fn verdict(v: &Verdict) -> String {
    let what = match v.kind {
        VerdictKind::OffPolicy => format!(
            "proof in {}, window {} ({} rounds, {})",
            v.phase, v.window, v.rounds, v.estimator
        ),
        VerdictKind::OnPolicy => format!(
            "proof in {}, cohorts compared ({} candidate calls)",
            v.phase, v.rounds
        ),
    };
    format!(
        "{what}: gain {:+.3}, 95% lower bound {:+.3} {} {:+.3}: {}{}",
        v.estimate,
        v.lower_bound,
        if v.passed { ">=" } else { "<" },
        v.threshold,
        if v.passed { "passed" } else { "not passed" },
        if v.kind == VerdictKind::OffPolicy && v.passed {
            format!(" ({} in a row)", v.consecutive)
        } else {
            String::new()
        }
    )
}
