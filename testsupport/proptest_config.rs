// The arbitrary-input tests' configuration, shared by `#[path]` include:
// CI runs a fixed number of cases from a fixed seed, so that it repeats;
// `TUNELOOP_PROPTEST_CASES` and `TUNELOOP_PROPTEST_SEED` explore further
// locally (a failure's seed goes to the test's .proptest-regressions file).

/// The configuration for `cases` cases, unless the environment says more.
pub(crate) fn proptest_config(cases: u32) -> proptest::prelude::ProptestConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    proptest::prelude::ProptestConfig {
        cases: env("TUNELOOP_PROPTEST_CASES")
            .map_or(cases, |c| u32::try_from(c).unwrap_or(u32::MAX)),
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            env("TUNELOOP_PROPTEST_SEED").unwrap_or(20_261_201),
        ),
        ..proptest::prelude::ProptestConfig::default()
    }
}
