//! Offline replay: read a decision log and evaluate candidate policies on
//! it, with intervals, before any of them touches traffic.
//!
//! Run with `cargo run --release --example offline_replay [DECISIONS.jsonl]`.
//! Without a file, it first writes one: 4,000 decisions of a uniformly
//! exploring incumbent on a simulated backend.

use std::sync::Arc;

use tuneloop::bandit::{Fixed, LinUcbParams, PolicyConfig, Uniform};
use tuneloop::core::hash::splitmix64;
use tuneloop::core::{
    ArmSet, DefaultFeaturizer, Features, Featurizer, Policy, TaskFeatures, TaskOutcome,
};
use tuneloop::counterfactual::{EstimatorSettings, JsonlLog, OfflineEvaluator, read_log};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

fn arms() -> Result<ArmSet, tuneloop::core::Error> {
    ArmSet::grid()
        .models(["sim-model"])
        .temperatures([0.0, 0.4, 0.8, 1.2])
        .max_tokens([512, 2048])
        .build()
}

/// Writes a log of a uniformly exploring policy on a simulated backend.
fn write_log(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let optimizer = Optimizer::builder()
        .task_type(
            "answer",
            TaskTypeConfig::new(arms()?).policy(PolicyConfig::Uniform),
        )
        .decision_log(Arc::new(JsonlLog::open(path, 64 << 20, 2)?))
        .seed(11)
        .build()?;
    let mut state = 5u64;
    let mut next = || {
        state = splitmix64(state);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..4_000 {
        let size = next();
        let task = TaskFeatures {
            description_length: (100.0 * 100f64.powf(size)) as u64,
            ..TaskFeatures::default()
        };
        let rec = optimizer.recommend_parameters("answer", &task, &RecommendOptions::default())?;
        let p = &rec.params;
        let best_t = 0.9 - 0.8 * size;
        let q = (0.9
            - 0.6 * (p.temperature() - best_t).powi(2)
            - if p.max_tokens() == 512 {
                0.15 * size
            } else {
                0.03
            }
            + 0.1 * (next() - 0.5))
            .clamp(0.0, 1.0);
        optimizer.record_outcome(
            rec.decision_id,
            &TaskOutcome::success(q, 400.0 + 0.3 * f64::from(p.max_tokens())),
        )?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = dir.path().join("decisions.jsonl");
            write_log(&p)?;
            p
        }
    };
    let log = read_log(&path)?;
    for w in &log.warnings {
        eprintln!("warning: {w}");
    }
    let records = log.records;
    println!("{} decisions read from {}", records.len(), path.display());
    let arms = arms()?;
    let dim = DefaultFeaturizer::default().dim();
    let k = records
        .iter()
        .flat_map(|r| r.eligible.iter())
        .copied()
        .max()
        .unwrap_or(0)
        + 1;

    // A learner trained on the first half, judged on the second.
    let half = records.len() / 2;
    let mut learned = LinUcbParams::default().build_shared(&arms, dim)?;
    for r in records[..half].iter() {
        if let Some(reward) = r.resolution.recorded_reward() {
            learned.update(&Features::new(r.context.clone())?, r.arm, reward)?;
        }
    }
    let test = &records[half..];
    let evaluator = OfflineEvaluator {
        settings: EstimatorSettings {
            bootstrap: 2_000,
            seed: 3,
            ..EstimatorSettings::default()
        },
        ..OfflineEvaluator::default()
    };
    let candidates: Vec<(String, Box<dyn Policy>)> = vec![
        (
            "uniform (the logger)".into(),
            Box::new(Uniform::new(k, dim)?),
        ),
        (
            "always arm 0 (temperature 0.0, 512 tokens)".into(),
            Box::new(Fixed::new(0, k, dim, 0.0)?),
        ),
        (
            "always arm 3 (temperature 0.4, 2048 tokens)".into(),
            Box::new(Fixed::new(3, k, dim, 0.0)?),
        ),
        (
            "shared LinUCB trained on the first half".into(),
            Box::new(learned),
        ),
    ];
    println!(
        "on the {} decisions of the second half (95% bootstrap intervals):",
        test.len()
    );
    println!(
        "{:<46} {:>18} {:>18}  verdict vs the logger",
        "candidate", "DR", "SNIPS"
    );
    for (name, policy) in &candidates {
        let e = evaluator.evaluate(test, policy.as_ref())?;
        let get = |n: &str| {
            e.candidate
                .iter()
                .find(|(k, _)| k.name() == n)
                .map(|(_, v)| v.clone())
        };
        let show = |v: Option<tuneloop::counterfactual::Estimate>| {
            v.map_or_else(String::new, |v| {
                format!(
                    "{:.3} [{:.3},{:.3}]",
                    v.estimate,
                    v.ci_low.unwrap_or(f64::NAN),
                    v.ci_high.unwrap_or(f64::NAN)
                )
            })
        };
        println!(
            "{:<46} {:>18} {:>18}  {} ({:+.3}, lower bound {:+.3})",
            name,
            show(get("dr")),
            show(get("snipw")),
            if e.candidate_is_better {
                "better"
            } else {
                "not proven better"
            },
            e.difference.estimate,
            e.difference.lower_one_sided
        );
    }
    let c = evaluator.compare(test, candidates[3].1.as_ref(), candidates[2].1.as_ref())?;
    println!(
        "learned vs always arm 3: {:+.3} [{:+.3}, {:+.3}] — {}",
        c.difference.estimate,
        c.difference.ci_low,
        c.difference.ci_high,
        if c.candidate_is_better {
            "proven better"
        } else {
            "not proven better"
        }
    );
    Ok(())
}
