//! Quickstart: the pieces of tuneloop's loop that exist today.
//!
//! Run with `cargo run --release --example quickstart`.
//!
//! It builds a grid of generation parameters (the arms), turns two task
//! descriptions into feature vectors, scores a few outcomes with the reward
//! function, and draws reproducible choices from a uniform distribution over
//! the arms with the propensity that would be logged. Learning policies, the
//! optimizer facade and offline evaluation arrive with their issues; this
//! example grows with them.

use tuneloop::core::{
    ActionDistribution, ArmSet, DecisionId, DefaultFeaturizer, ErrorClass, Featurizer,
    RewardFunction, RiskTier, SelectionKey, TaskFeatures, TaskOutcome,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["gpt-4o-mini", "llama3.1:8b"])
        .temperatures([0.0, 0.3, 0.7, 1.0])
        .max_tokens([256, 1024, 4096])
        .build()?;
    println!(
        "{} arms; arm features: {:?}",
        arms.len(),
        arms.arm_feature_names()
    );
    for arm in arms.iter().take(3) {
        println!(
            "  arm {}  model={} temperature={} max_tokens={}",
            arm.id,
            arm.params.model(),
            arm.params.temperature(),
            arm.params.max_tokens()
        );
    }

    let featurizer = DefaultFeaturizer::default();
    let tasks = [
        (
            "fix-typo",
            TaskFeatures {
                risk_tier: RiskTier::Low,
                title_length: 18,
                description_length: 120,
                scope_files_count: 1,
                ..TaskFeatures::default()
            },
        ),
        (
            "migrate-db",
            TaskFeatures {
                risk_tier: RiskTier::High,
                title_length: 64,
                description_length: 4_800,
                acceptance_criteria_count: 9,
                scope_files_count: 37,
                has_external_deps: true,
                complexity_indicators: vec!["schema".into(), "concurrency".into()],
                model_name: "gpt-4o-mini".into(),
                prompt_tokens: 12_000,
                prior_failures: 2,
                ..TaskFeatures::default()
            },
        ),
    ];
    for (name, task) in &tasks {
        let x = featurizer.featurize(task)?;
        let shown: Vec<String> = x.as_slice().iter().map(|v| format!("{v:.2}")).collect();
        println!("features of {name} (d={}): [{}]", x.len(), shown.join(", "));
    }

    let reward = RewardFunction::default();
    let outcomes = [
        (
            "good, fast, cheap",
            TaskOutcome::success(0.92, 800.0).with_cost(0.001),
        ),
        (
            "good, slow, costly",
            TaskOutcome::success(0.95, 9_000.0).with_cost(0.05),
        ),
        (
            "timed out",
            TaskOutcome::failure(ErrorClass::Timeout, 30_000.0),
        ),
    ];
    for (what, o) in &outcomes {
        println!("reward of a {what} call: {:.3}", reward.reward(o)?);
    }

    // A uniform policy with reproducible, logged propensities: the same seed
    // and decision id always give the same arm.
    let uniform = ActionDistribution::uniform(&arms.all_indices())?;
    for n in 0..3u128 {
        let key = SelectionKey::new(7, DecisionId::from_u128(n));
        let s = uniform.sample(key.uniform());
        let arm = arms.arm(s.arm)?;
        println!(
            "decision {n}: arm {} (temperature {}, max_tokens {}) with propensity {:.4}",
            arm.id,
            arm.params.temperature(),
            arm.params.max_tokens(),
            s.propensity
        );
    }
    println!("learning policies, the optimizer and offline evaluation are not implemented yet");
    Ok(())
}
