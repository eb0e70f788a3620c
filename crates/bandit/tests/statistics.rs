//! Sufficient statistics of the linear policies: learning split between two
//! learners and merged equals one learner fed everything, and a policy
//! given merged statistics decides as that learner does.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tuneloop_bandit::{EpsilonGreedyParams, LinUcbParams, PolicyConfig, ThompsonParams};
use tuneloop_core::{ArmSet, Features, SufficientStatistics};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn arms() -> Result<ArmSet, tuneloop_core::Error> {
    ArmSet::grid()
        .models(["a", "b"])
        .temperatures([0.0, 0.5, 1.0])
        .max_tokens([256, 1024])
        .build()
}

fn configs() -> Vec<PolicyConfig> {
    vec![
        PolicyConfig::LinUcb(LinUcbParams::default()),
        PolicyConfig::Thompson(ThompsonParams::default()),
        PolicyConfig::EpsilonGreedy(EpsilonGreedyParams::default()),
        PolicyConfig::LinucbShared(LinUcbParams::default()),
        PolicyConfig::ThompsonShared(ThompsonParams::default()),
    ]
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn observations(n: usize, k: usize) -> Result<Vec<(Features, usize, f64)>, tuneloop_core::Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    (0..n)
        .map(|_| {
            let x = Features::new(vec![1.0, unit(&mut rng), 2.0 * unit(&mut rng) - 1.0])?;
            let arm = (rng.next_u64() % k as u64) as usize;
            Ok((x, arm, unit(&mut rng)))
        })
        .collect()
}

#[test]
fn two_learners_merged_decide_as_one_learner_fed_everything() -> TestResult {
    let arms = arms()?;
    let obs = observations(2_000, arms.len())?;
    let all = arms.all_indices();
    for cfg in configs() {
        let build = || cfg.build_for_arms(&arms, 3);
        let mut single = build()?;
        let mut halves = [build()?, build()?];
        for (i, (x, a, r)) in obs.iter().enumerate() {
            single.update(x, *a, *r)?;
            halves[i % 2].update(x, *a, *r)?;
        }
        let zero = build()?.statistics().ok_or("no statistics")?;
        let mut merged = zero.clone();
        for h in &halves {
            merged.merge(&h.statistics().ok_or("no statistics")?.delta_since(&zero)?)?;
        }
        let expected = single.statistics().ok_or("no statistics")?;
        assert_eq!(merged.updates(), 2_000);
        let diff = merged.max_difference(&expected);
        assert!(
            diff < 1e-9,
            "{}: statistics differ by {diff}",
            single.kind()
        );

        let mut fleet = build()?;
        fleet.replace_statistics(&merged)?;
        assert!(
            fleet.version() > 0,
            "{}: replacing is a change",
            single.kind()
        );
        for (x, _, _) in obs.iter().take(50) {
            let p = fleet.distribution(x, &all)?;
            let q = single.distribution(x, &all)?;
            for arm in 0..arms.len() {
                let (a, b) = (p.probability_of(arm), q.probability_of(arm));
                assert!(
                    (a - b).abs() < 1e-9,
                    "{}: arm {arm}: {a} vs {b}",
                    single.kind()
                );
            }
        }
    }
    Ok(())
}

#[test]
fn statistics_that_do_not_fit_are_refused_and_change_nothing() -> TestResult {
    let arms = arms()?;
    let mut p = PolicyConfig::LinUcb(LinUcbParams::default()).build_for_arms(&arms, 3)?;
    let obs = observations(10, arms.len())?;
    for (x, a, r) in &obs {
        p.update(x, *a, *r)?;
    }
    let before = p.snapshot()?;
    for (bad, what) in [
        (
            SufficientStatistics::zeros(arms.len() + 1, 3, None),
            "blocks",
        ),
        (
            SufficientStatistics::zeros(arms.len(), 4, None),
            "dimensions",
        ),
        (
            SufficientStatistics::zeros(arms.len(), 3, Some(0.9)),
            "discount",
        ),
    ] {
        let Err(e) = p.replace_statistics(&bad) else {
            return Err(format!("statistics with other {what} were taken").into());
        };
        assert!(e.to_string().contains(what), "{e}");
    }
    let mut nan = p.statistics().ok_or("no statistics")?;
    nan.blocks[0].xx[0] = f64::NAN;
    assert!(p.replace_statistics(&nan).is_err());
    assert_eq!(p.snapshot()?, before);

    let mut uniform = PolicyConfig::Uniform.build(3, 3)?;
    assert!(uniform.statistics().is_none());
    let Err(e) = uniform.replace_statistics(&SufficientStatistics::zeros(3, 3, None)) else {
        return Err("the uniform policy took statistics".into());
    };
    assert!(e.to_string().contains("uniform"), "{e}");
    Ok(())
}

/// With a discount the rule is the one `tuneloop_core::sufficient`
/// documents: merged statistics equal one discounted learner fed the
/// deltas' updates in the order the deltas were merged.
#[test]
fn discounted_learners_merge_in_the_order_of_their_deltas() -> TestResult {
    let arms = arms()?;
    let obs = observations(600, arms.len())?;
    let cfg = PolicyConfig::LinUcb(LinUcbParams {
        discount: Some(0.995),
        ..LinUcbParams::default()
    });
    let build = || cfg.build_for_arms(&arms, 3);
    let zero = build()?.statistics().ok_or("no statistics")?;
    let (mut first, mut second) = (build()?, build()?);
    for (i, (x, a, r)) in obs.iter().enumerate() {
        if i % 2 == 0 {
            first.update(x, *a, *r)?;
        } else {
            second.update(x, *a, *r)?;
        }
    }
    let mut merged = zero.clone();
    merged.merge(&first.statistics().ok_or("none")?.delta_since(&zero)?)?;
    merged.merge(&second.statistics().ok_or("none")?.delta_since(&zero)?)?;
    let mut single = build()?;
    for (x, a, r) in obs.iter().step_by(2).chain(obs.iter().skip(1).step_by(2)) {
        single.update(x, *a, *r)?;
    }
    let diff = merged.max_difference(&single.statistics().ok_or("none")?);
    assert!(diff < 1e-9, "{diff}");
    Ok(())
}
