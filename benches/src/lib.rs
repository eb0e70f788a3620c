//! Criterion benchmarks of tuneloop; see `benches/`.
