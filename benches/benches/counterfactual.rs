//! Benchmarks of `tuneloop ope`'s two stages on the OBD "men" fixture
//! (10,000 rounds, 34 actions): reading the gzipped JSON Lines file, and
//! the IPW, DM and DR estimates with 10,000 bootstrap resamples (the
//! workload of the Open Bandit Pipeline comparison in `docs/benchmarks.md`).
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use tuneloop_counterfactual::{EstimatorKind, EstimatorSettings, estimate, read_jsonl};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/obd-men/obd-men.jsonl.gz")
}

fn counterfactual(c: &mut Criterion) {
    let path = fixture();
    let Ok(data) = read_jsonl(&path) else {
        eprintln!("{} not found: skipping the OPE benchmarks", path.display());
        return;
    };
    let mut group = c.benchmark_group("ope_obd_men");
    group.sample_size(10);
    group.bench_function("read_jsonl_gz", |b| b.iter(|| read_jsonl(black_box(&path))));
    let kinds = [EstimatorKind::Ipw, EstimatorKind::Dm, EstimatorKind::Dr];
    let settings = EstimatorSettings {
        bootstrap: 10_000,
        seed: 1,
        ..EstimatorSettings::default()
    };
    group.bench_function("ipw_dm_dr_bootstrap_10k", |b| {
        b.iter(|| estimate(black_box(&data), &kinds, &settings))
    });
    group.finish();
}

criterion_group!(benches, counterfactual);
criterion_main!(benches);
