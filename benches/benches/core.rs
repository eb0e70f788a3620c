//! Benchmarks of `tuneloop-core`'s per-decision work.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tuneloop_core::{
    DefaultFeaturizer, Featurizer, ParameterSet, RewardFunction, TaskFeatures, TaskOutcome,
};

fn core(c: &mut Criterion) {
    let f = DefaultFeaturizer::default();
    let task = TaskFeatures {
        title_length: 48,
        description_length: 1200,
        complexity_indicators: vec!["refactor".into(), "async".into()],
        model_name: "gpt-4o-mini".into(),
        ..TaskFeatures::default()
    };
    c.bench_function("featurize_default", |b| {
        b.iter(|| f.featurize(black_box(&task)))
    });
    let p = ParameterSet::builder("gpt-4o-mini")
        .temperature(0.3)
        .stop(["\n\n"])
        .build();
    if let Ok(p) = p {
        c.bench_function("arm_id", |b| b.iter(|| black_box(&p).arm_id()));
    }
    let r = RewardFunction::default();
    let o = TaskOutcome::success(0.8, 900.0).with_cost(0.002);
    c.bench_function("reward", |b| b.iter(|| r.reward(black_box(&o))));
}

criterion_group!(benches, core);
criterion_main!(benches);
