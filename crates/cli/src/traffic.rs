//! `simulate --scenario traffic --log FILE`: a day of simulated agent
//! traffic through the `Optimizer`, written as a decision log — three task
//! types, two models, rollouts (one of which breaches its latency SLO and
//! rolls back), and a drift (both models get worse part-way). It is
//! what `tuneloop report` is demonstrated and checked on.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use tuneloop::core::{ArmSet, ManualClock, ParameterSet, TaskFeatures, TaskOutcome};

use tuneloop::counterfactual::{DecisionLog, JsonlLog, LoggedDecision};
use tuneloop::rollout::{Cohort, RolloutConfig, SloConfig};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

use crate::error::{CliError, CliResult};

/// The log file, counting what it wrote and what it could not: the command
/// fails when a record is lost (a full disk), instead of reporting success.
#[derive(Debug)]
struct Counted {
    log: JsonlLog,
    written: AtomicU64,
    failed: AtomicU64,
}

impl DecisionLog for Counted {
    fn append(&self, record: &LoggedDecision) -> tuneloop::counterfactual::Result<()> {
        let result = self.log.append(record);
        let counter = if result.is_ok() {
            &self.written
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// Uniform draws in `[0, 1)` for the simulated traffic.
struct Noise(fastrand::Rng);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0.f64()
    }
}

const TASKS: [(&str, f64, f64); 3] = [
    // (task type, best temperature, best max_tokens)
    ("code", 0.2, 2048.0),
    ("summarize", 0.5, 512.0),
    ("chat", 0.9, 512.0),
];

/// The simulated backend: quality peaks at the task's best temperature and
/// length; the large model is better, slower and dearer; after `drift_at`
/// (a provider update) the large model loses 0.06 of quality and the small
/// one 0.15.
fn call(
    task: usize,
    p: &ParameterSet,
    drifted: bool,
    slow: bool,
    noise: &mut Noise,
) -> TaskOutcome {
    let (_, best_t, best_k) = TASKS[task];
    let large = p.model() == "large";
    let dk = (f64::from(p.max_tokens()) / best_k).log2();
    let peak = match (large, drifted) {
        (true, false) => 0.9,
        (true, true) => 0.84,
        (false, false) => 0.77,
        (false, true) => 0.62,
    };
    let q = peak - 0.5 * (p.temperature() - best_t).powi(2) - 0.03 * dk * dk;
    let q = (q + 0.2 * (noise.next() - 0.5)).clamp(0.0, 1.0);
    let used = f64::from(p.max_tokens()) * (0.3 + 0.5 * noise.next());
    let per_token = if large { 1.2 } else { 0.4 };
    let mut latency = (if large { 400.0 } else { 150.0 }) + per_token * used;
    if slow {
        latency *= 1.6;
    }
    let price = if large { 10e-6 } else { 1e-6 };
    if noise.next() < 0.01 {
        return TaskOutcome::failure(tuneloop::core::ErrorClass::Transient, latency);
    }
    TaskOutcome::success(q, latency)
        .with_tokens(400, used as u64)
        .with_cost((400.0 + 3.0 * used) * price)
}

pub(crate) fn run(
    log: &Path,
    provenance: Option<&Path>,
    rounds: usize,
    seed: u64,
) -> CliResult<Value> {
    if rounds == 0 {
        return Err(CliError::bad("--rounds must be at least 1"));
    }
    let arms = ArmSet::grid()
        .models(["large", "small"])
        .temperatures([0.2, 0.5, 0.9])
        .max_tokens([512, 2048])
        .build()?;
    let incumbent = arms
        .iter()
        .position(|a| {
            a.params.model() == "large"
                && (a.params.temperature() - 0.5).abs() < 1e-9
                && a.params.max_tokens() == 512
        })
        .ok_or_else(|| CliError::Other(anyhow::anyhow!("no incumbent arm")))?;
    let scale = (rounds as f64 / 30_000.0).clamp(0.02, 10.0);
    let n = |x: f64| ((x * scale) as u64).max(20);
    let rollout = RolloutConfig {
        shadow_min_baseline_samples: n(600.0),
        canary_min_samples: n(300.0),
        guarded_min_samples: n(900.0),
        min_dwell: [std::time::Duration::ZERO; 3],
        slo: SloConfig {
            min_baseline_samples: n(300.0),
            min_samples: n(100.0),
            ..SloConfig::default()
        },
        ..RolloutConfig::default()
    };
    let start = Utc
        .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .ok_or_else(|| CliError::Other(anyhow::anyhow!("bad start time")))?;
    let clock = Arc::new(ManualClock::new(start));
    let sink = Arc::new(Counted {
        log: JsonlLog::open(log, u64::MAX, 1)
            .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", log.display())))?,
        written: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let mut builder = Optimizer::builder()
        .decision_log(sink.clone())
        .log_queue(1 << 18)
        .clock(clock.clone())
        .seed(seed);
    if let Some(path) = provenance {
        let chain = tuneloop::gates::Provenance::open(path)
            .map_err(|e| CliError::bad(format!("--provenance {}: {e}", path.display())))?;
        builder = builder.provenance(Arc::new(std::sync::Mutex::new(chain)));
    }
    for (name, _, _) in TASKS {
        builder = builder.task_type(
            name,
            TaskTypeConfig::new(arms.clone())
                .incumbent(incumbent)
                .rollout(rollout.clone()),
        );
    }
    let optimizer = builder.build()?;
    let mut noise = Noise(fastrand::Rng::with_seed(seed ^ 0x7261_6666));
    // A day: 86 400 s over the rounds.
    let step = chrono::Duration::microseconds((86_400e6 / rounds as f64) as i64);
    let (slow_from, slow_to) = (rounds * 35 / 100, rounds * 60 / 100);
    let drift_at = rounds * 65 / 100;
    let mut events = 0usize;
    for t in 0..rounds {
        clock.advance(step);
        let task = (noise.next() * 3.0) as usize % 3;
        let (name, _, _) = TASKS[task];
        let user = format!("user-{}", (noise.next() * 5000.0) as u64);
        let features = TaskFeatures {
            description_length: (100.0 + 2000.0 * noise.next()) as u64,
            ..TaskFeatures::default()
        };
        let rec = optimizer.recommend_parameters(
            name,
            &features,
            &RecommendOptions {
                key: Some(&user),
                ..RecommendOptions::default()
            },
        )?;
        // The code task's candidate gets slow for a while: its SLO breaks.
        let slow =
            task == 0 && rec.cohort == Cohort::Candidate && (slow_from..slow_to).contains(&t);
        let outcome = call(task, &rec.params, t >= drift_at, slow, &mut noise);
        events += optimizer
            .record_outcome(rec.decision_id, &outcome)?
            .events
            .len();
        if rounds >= 10 && (t + 1) % (rounds / 10) == 0 {
            eprintln!("simulate traffic: {}/{rounds}", t + 1);
        }
    }
    let counters = optimizer.counters();
    let phases: serde_json::Map<String, Value> = TASKS
        .iter()
        .map(|(name, _, _)| {
            let p = optimizer.phase(name).ok().flatten();
            ((*name).to_owned(), json!(p))
        })
        .collect();
    drop(optimizer); // flushes the log
    let (written, failed) = (
        sink.written.load(Ordering::Relaxed),
        sink.failed.load(Ordering::Relaxed),
    );
    if failed > 0 || counters.log_dropped > 0 {
        return Err(CliError::Other(anyhow::anyhow!(
            "{}: {failed} records could not be written and {} were dropped; {written} were",
            log.display(),
            counters.log_dropped
        )));
    }
    Ok(json!({
        "scenario": "traffic",
        "rounds": rounds,
        "log": log.display().to_string(),
        "recommendations": counters.recommendations,
        "outcomes": counters.outcomes,
        "log_written": written,
        "log_dropped": counters.log_dropped,
        "promotions": counters.promotions,
        "rollbacks": counters.rollbacks,
        "rollout_events": events,
        "phases": phases,
    }))
}
