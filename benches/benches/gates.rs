//! A chain of every gate over 32 arms: the per-decision cost of gating.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use tuneloop_core::{ArmSet, RiskTier};
use tuneloop_gates::{
    Budget, BudgetConfig, BudgetGate, Condition, Constraints, GateChain, GateContext, Parameter,
    Price, QualityFloor, QualityFloorConfig, Rule, TrustRegion,
};

fn gates(c: &mut Criterion) {
    let arms = ArmSet::grid()
        .models(["small", "large"])
        .temperatures([0.0, 0.2, 0.4, 0.6])
        .max_tokens([256, 512, 768, 1024])
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(arms.len(), 32);
    let floor = QualityFloor::new(QualityFloorConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    for a in arms.iter() {
        for i in 0..20 {
            floor
                .observe("code", a.id, 0.6 + 0.01 * f64::from(i % 5))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let mut prices = HashMap::new();
    prices.insert(
        "small".to_owned(),
        Price {
            prompt_per_1k_usd: 0.15,
            completion_per_1k_usd: 0.6,
        },
    );
    prices.insert(
        "large".to_owned(),
        Price {
            prompt_per_1k_usd: 2.5,
            completion_per_1k_usd: 10.0,
        },
    );
    let budget = Arc::new(
        Budget::new(BudgetConfig {
            token_limit: Some(10_000_000),
            cost_limit_usd: Some(100.0),
            prices,
            ..BudgetConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let chain = GateChain::new()
        .with(Constraints::new(vec![
            Rule::AllowedModels {
                risk_tier: Some(RiskTier::Critical),
                models: vec!["large".into()],
            },
            Rule::ParameterRange {
                task_type: Some("code".into()),
                parameter: Parameter::Temperature,
                min: None,
                max: Some(0.6),
            },
            Rule::Forbidden {
                task_type: None,
                when: vec![
                    Condition::ModelIs {
                        model: "small".into(),
                    },
                    Condition::Above {
                        parameter: Parameter::MaxTokens,
                        value: 900.0,
                    },
                ],
            },
        ]))
        .with(BudgetGate::new(budget))
        .with(TrustRegion {
            models: vec!["large".into()],
            ..TrustRegion::default()
        })
        .with(floor);
    let ctx = GateContext {
        task_type: "code",
        risk_tier: RiskTier::Medium,
        incumbent: Some(5),
        prompt_tokens: 800,
        now: Utc::now(),
    };
    let all = arms.all_indices();
    c.bench_function("gate_chain_all_gates_32_arms", |b| {
        b.iter(|| chain.evaluate(black_box(&ctx), &arms, &all))
    });
}

criterion_group!(benches, gates);
criterion_main!(benches);
