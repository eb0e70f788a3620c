//! Quickstart: learn an LLM's temperature and max_tokens from outcomes,
//! then prove offline that the learned policy beats the incumbent.
//!
//! Run with `cargo run --release --example quickstart`.
//!
//! 1. A grid of 35 parameter sets (7 temperatures × 5 max_tokens).
//! 2. A simulated backend: quality peaks at a task-dependent temperature and
//!    length, with noise; latency and cost grow with the tokens generated.
//! 3. The incumbent (uniform exploration) serves 3,000 calls, each decision
//!    written to a JSON Lines decision log in a temporary folder.
//! 4. A shared-parameter LinUCB learns online from 3,000 calls.
//! 5. The learned policy is evaluated offline on the incumbent's log with
//!    doubly robust estimates and a paired bootstrap: the verdict says
//!    whether it is proven better.
//!
//! The `Optimizer` facade (`recommend_parameters` / `record_outcome`) is not
//! built yet; this example drives the policy, the log and the evaluator
//! directly.

use tuneloop::bandit::LinUcbParams;
use tuneloop::core::hash::splitmix64;
use tuneloop::core::{
    ArmSet, DecisionId, Features, Policy, RewardFunction, SelectionKey, TaskOutcome,
};
use tuneloop::counterfactual::{
    DecisionLog, EstimatorSettings, JsonlLog, LoggedDecision, OfflineEvaluator, read_log,
};

/// Seeded uniform numbers in [0, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = splitmix64(self.0);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The simulated backend. Context: [1, s] with s in [-1, 1] the task's
/// size; bigger tasks want more tokens and a lower temperature.
fn call(arms: &ArmSet, arm: usize, s: f64, noise: &mut Noise) -> TaskOutcome {
    let p = &arms.iter().nth(arm).map(|a| a.params.clone());
    let Some(p) = p else {
        return TaskOutcome::success(0.0, 0.0);
    };
    let best_t = 0.5 - 0.3 * s;
    let best_k = 1024.0 * 2f64.powf(s);
    let dk = (f64::from(p.max_tokens()) / best_k).log2();
    let q = 0.9 - 0.6 * (p.temperature() - best_t).powi(2) - 0.05 * dk * dk;
    let q = (q + 0.2 * (noise.next() - 0.5)).clamp(0.0, 1.0);
    let used = f64::from(p.max_tokens()) * (0.5 + 0.5 * noise.next());
    TaskOutcome::success(q, 300.0 + 0.8 * used)
        .with_tokens(800, used as u64)
        .with_cost((800.0 + 3.0 * used) * 1e-6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["sim-model"])
        .temperatures([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
        .max_tokens([256, 512, 1024, 2048, 4096])
        .build()?;
    let all = arms.all_indices();
    let reward_fn = RewardFunction::default();
    let mut noise = Noise(42);
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("decisions.jsonl");
    println!(
        "{} arms; decision log at {}",
        arms.len(),
        log_path.display()
    );

    // 3. The incumbent explores uniformly and logs every decision.
    let log = JsonlLog::open(&log_path, 64 << 20, 2)?;
    let mut incumbent_total = 0.0;
    let rounds = 3_000u64;
    for t in 0..rounds {
        let s = 2.0 * noise.next() - 1.0;
        let x = Features::new(vec![1.0, s])?;
        let arm = (noise.next() * arms.len() as f64) as usize % arms.len();
        let outcome = call(&arms, arm, s, &mut noise);
        let reward = reward_fn.reward(&outcome)?;
        incumbent_total += reward;
        let chosen = arms.arm(arm)?;
        log.append(&LoggedDecision {
            schema_version: 1,
            decision_id: DecisionId::from_u128(u128::from(t)),
            request_id: None,
            task_type: "answer".into(),
            model: chosen.params.model().into(),
            context_fingerprint: format!("{:016x}", x.fingerprint()),
            context: x.into_vec(),
            eligible: all.clone(),
            eligible_ids: arms.iter().map(|a| a.id).collect(),
            arm,
            arm_id: chosen.id,
            params: chosen.params.clone(),
            propensity: 1.0 / arms.len() as f64,
            propensity_estimated: false,
            policy_kind: "uniform".into(),
            policy_version: 0,
            cohort: None,
            timestamp: chrono::Utc::now(),
            outcome: Some(outcome),
            reward: Some(reward),
            reward_defaulted: false,
        })?;
    }
    println!(
        "incumbent (uniform) average reward: {:.3}",
        incumbent_total / rounds as f64
    );

    // 4. LinUCB over context × arm features learns online.
    let mut policy = LinUcbParams::default().build_shared(&arms, 2)?;
    let mut window = 0.0;
    println!("learning:");
    for t in 0..rounds {
        let s = 2.0 * noise.next() - 1.0;
        let x = Features::new(vec![1.0, s])?;
        let choice = policy.select(
            &x,
            &all,
            &SelectionKey::new(7, DecisionId::from_u128(u128::from(t))),
        )?;
        let reward = reward_fn.reward(&call(&arms, choice.arm, s, &mut noise))?;
        policy.update(&x, choice.arm, reward)?;
        window += reward;
        if (t + 1) % 500 == 0 {
            println!(
                "  rounds {:>4}-{:>4}: average reward {:.3}",
                t - 498,
                t + 1,
                window / 500.0
            );
            window = 0.0;
        }
    }

    // 5. Offline: is the learned policy proven better on the incumbent's log?
    let records = read_log(&log_path)?.records;
    let evaluator = OfflineEvaluator {
        settings: EstimatorSettings {
            bootstrap: 2_000,
            seed: 1,
            ..EstimatorSettings::default()
        },
        ..OfflineEvaluator::default()
    };
    let e = evaluator.evaluate(&records, &policy)?;
    let dr = e
        .candidate
        .iter()
        .find(|(k, _)| k.name() == "dr")
        .map(|(_, v)| v.clone());
    if let Some(dr) = dr {
        println!(
            "offline, on {} logged rounds: learned policy {:.3} [{:.3}, {:.3}] (DR, 95% bootstrap) vs incumbent {:.3}",
            e.rounds,
            dr.estimate,
            dr.ci_low.unwrap_or(f64::NAN),
            dr.ci_high.unwrap_or(f64::NAN),
            e.baseline.estimate
        );
    }
    println!(
        "gain {:+.3}, 95% interval [{:+.3}, {:+.3}], one-sided lower bound {:+.3}: {}",
        e.difference.estimate,
        e.difference.ci_low,
        e.difference.ci_high,
        e.difference.lower_one_sided,
        if e.candidate_is_better {
            "proven better"
        } else {
            "not proven better"
        }
    );
    Ok(())
}
