//! An agent that asks tuneloop for parameters and reports outcomes, through
//! the public API alone.

use tuneloop::core::{ArmSet, RiskTier, TaskFeatures, TaskOutcome};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

fn main() -> Result<(), tuneloop::Error> {
    let arms = ArmSet::grid()
        .models(["small-model", "large-model"])
        .temperatures([0.0, 0.4, 0.8])
        .max_tokens([512, 2048])
        .build()?;
    let optimizer = Optimizer::builder()
        .task_type("plan", TaskTypeConfig::new(arms.clone()))
        .task_type("code", TaskTypeConfig::new(arms))
        .seed(1)
        .build()?;
    for i in 0..200u64 {
        let task = TaskFeatures {
            risk_tier: if i % 3 == 0 {
                RiskTier::High
            } else {
                RiskTier::Low
            },
            description_length: 50 + i,
            ..TaskFeatures::default()
        };
        let task_type = if i % 2 == 0 { "plan" } else { "code" };
        let rec = optimizer.recommend_parameters(task_type, &task, &RecommendOptions::default())?;
        let quality = if rec.params.model() == "large-model" {
            0.9
        } else {
            0.7
        };
        optimizer.record_outcome(rec.decision_id, &TaskOutcome::success(quality, 800.0))?;
    }
    let c = optimizer.counters();
    println!(
        "consumer: {} recommendations, {} outcomes",
        c.recommendations, c.outcomes
    );
    Ok(())
}
