//! Benchmarks of the policy hot paths at d = 16, K = 32 (the issue's
//! reference point): select and update of LinUCB and Thompson sampling.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tuneloop_bandit::{LinUcbParams, ThompsonParams};
use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};

const D: usize = 16;
const K: usize = 32;

fn contexts() -> Vec<Features> {
    (0..64)
        .map(|i| {
            let x: Vec<f64> = (0..D)
                .map(|j| {
                    if j == 0 {
                        1.0
                    } else {
                        ((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5
                    }
                })
                .collect();
            Features::new(x).unwrap_or_else(|e| panic!("bench context: {e}"))
        })
        .collect()
}

fn warm(p: &mut dyn Policy, xs: &[Features]) {
    for i in 0..20 * K {
        p.update(&xs[i % xs.len()], i % K, (i % 7) as f64 / 7.0)
            .unwrap_or_else(|e| panic!("warm-up: {e}"));
    }
}

fn policies(c: &mut Criterion) {
    let xs = contexts();
    let all: Vec<usize> = (0..K).collect();
    let mut lin = LinUcbParams::default()
        .build(K, D)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ts = ThompsonParams::default()
        .build(K, D)
        .unwrap_or_else(|e| panic!("{e}"));
    warm(&mut lin, &xs);
    warm(&mut ts, &xs);
    let mut n = 0u128;
    c.bench_function("linucb_select_d16_k32", |b| {
        b.iter(|| {
            n += 1;
            let key = SelectionKey::new(1, DecisionId::from_u128(n));
            lin.select(black_box(&xs[(n % 64) as usize]), &all, &key)
        })
    });
    c.bench_function("thompson_select_d16_k32", |b| {
        b.iter(|| {
            n += 1;
            let key = SelectionKey::new(1, DecisionId::from_u128(n));
            ts.select(black_box(&xs[(n % 64) as usize]), &all, &key)
        })
    });
    // A learned state: 200 observations per arm of rewards whose mean
    // grows with the arm index (0.3 to 0.7) plus noise, so the posteriors
    // have separated, as they do once a deployment has run for a while.
    let mut learned = ThompsonParams::default()
        .build(K, D)
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..200 * K {
        let arm = i % K;
        let noise = ((i * 7919) % 101) as f64 / 101.0 - 0.5;
        let r = 0.3 + 0.4 * arm as f64 / K as f64 + 0.2 * noise;
        learned
            .update(&xs[(i / K) % xs.len()], arm, r)
            .unwrap_or_else(|e| panic!("warm-up: {e}"));
    }
    c.bench_function("thompson_select_d16_k32_learned", |b| {
        b.iter(|| {
            n += 1;
            let key = SelectionKey::new(1, DecisionId::from_u128(n));
            learned.select(black_box(&xs[(n % 64) as usize]), &all, &key)
        })
    });
    c.bench_function("linucb_update_d16", |b| {
        b.iter(|| {
            n += 1;
            lin.update(black_box(&xs[(n % 64) as usize]), (n % 32) as usize, 0.5)
        })
    });
}

criterion_group!(benches, policies);
criterion_main!(benches);
