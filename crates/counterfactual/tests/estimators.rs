//! Estimators against reference values: Open Bandit Pipeline's estimates
//! on the Open Bandit Dataset fixture, closed forms, and interval coverage.

use std::path::PathBuf;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tuneloop_counterfactual::{
    Error, EstimatorKind, EstimatorSettings, OpeData, OpeRound, estimate, read_jsonl,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/obd-men")
}

#[test]
fn open_bandit_pipeline_estimates_are_reproduced() -> TestResult {
    let dir = fixture_dir();
    let data = read_jsonl(&dir.join("obd-men.jsonl.gz"))?;
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("obd-men.reference.json"),
    )?)?;
    assert_eq!(data.len(), 10_000);
    assert_eq!(data.num_actions(), 34);
    let settings = EstimatorSettings {
        switch_tau: 5.0,
        dros_lambda: 100.0,
        bootstrap: 10_000,
        alpha: 0.05,
        seed: 1,
        clip: None,
    };
    let out = estimate(&data, &EstimatorKind::ALL, &settings)?;
    for (kind, est) in out {
        let r = &reference["estimators"][kind.name()];
        let want = r["estimate"].as_f64().ok_or("reference estimate")?;
        let rel = (est.estimate - want).abs() / want.abs();
        assert!(
            rel < 1e-9,
            "{}: {} vs OBP {want} (relative {rel:e})",
            kind.name(),
            est.estimate
        );
        // Bootstrap bounds: within Monte-Carlo error of OBP's (10,000
        // resamples each; a percentile's MC error is about 1-2% of the
        // interval's width; allow 6%).
        let (lo, hi) = (
            r["ci_low"].as_f64().ok_or("ci_low")?,
            r["ci_high"].as_f64().ok_or("ci_high")?,
        );
        let width = hi - lo;
        let (Some(ours_lo), Some(ours_hi)) = (est.ci_low, est.ci_high) else {
            return Err("bootstrap bounds missing".into());
        };
        assert!(
            (ours_lo - lo).abs() < 0.06 * width,
            "{} low: {ours_lo} vs OBP {lo}",
            kind.name()
        );
        assert!(
            (ours_hi - hi).abs() < 0.06 * width,
            "{} high: {ours_hi} vs OBP {hi}",
            kind.name()
        );
        assert!(ours_lo <= est.estimate && est.estimate <= ours_hi);
    }
    Ok(())
}

fn round(
    action: usize,
    reward: f64,
    propensity: f64,
    target: Vec<f64>,
    q: Option<Vec<f64>>,
) -> OpeRound {
    OpeRound {
        action,
        reward,
        propensity,
        target,
        reward_hat: q,
    }
}

/// Logged rounds of a 4-action problem with context-free Bernoulli rewards.
fn simulate(
    n: usize,
    seed: u64,
    logging: &[f64],
    target: &[f64],
    means: &[f64],
    q: Option<&[f64]>,
) -> Result<OpeData, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rounds = Vec::with_capacity(n);
    for _ in 0..n {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        let mut a = logging.len() - 1;
        for (i, p) in logging.iter().enumerate() {
            acc += p;
            if u < acc {
                a = i;
                break;
            }
        }
        let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = if v < means[a] { 1.0 } else { 0.0 };
        rounds.push(round(
            a,
            r,
            logging[a],
            target.to_vec(),
            q.map(<[f64]>::to_vec),
        ));
    }
    OpeData::new(rounds)
}

#[test]
fn target_equal_to_logging_makes_ips_the_mean_reward() -> TestResult {
    let p = [0.1, 0.2, 0.3, 0.4];
    let data = simulate(5_000, 3, &p, &p, &[0.2, 0.4, 0.6, 0.8], None)?;
    let mean = (0..data.len()).map(|i| data.reward(i)).sum::<f64>() / data.len() as f64;
    let s = EstimatorSettings {
        bootstrap: 0,
        ..Default::default()
    };
    let out = estimate(&data, &[EstimatorKind::Ipw, EstimatorKind::Snipw], &s)?;
    for (k, e) in out {
        assert!(
            (e.estimate - mean).abs() < 1e-12,
            "{}: {} vs {mean}",
            k.name(),
            e.estimate
        );
        assert!(
            (e.ess - data.len() as f64).abs() < 1e-6,
            "all weights 1: ESS = n"
        );
    }
    Ok(())
}

#[test]
fn a_perfect_reward_model_makes_dr_equal_the_truth() -> TestResult {
    let means = [0.2, 0.4, 0.6, 0.8];
    let target = [0.0, 0.1, 0.2, 0.7];
    let truth: f64 = means.iter().zip(&target).map(|(m, p)| m * p).sum();
    // Rewards equal to their means (noise-free): DR's correction vanishes.
    let rounds: Vec<OpeRound> = (0..400)
        .map(|i| {
            round(
                i % 4,
                means[i % 4],
                0.25,
                target.to_vec(),
                Some(means.to_vec()),
            )
        })
        .collect();
    let data = OpeData::new(rounds)?;
    let s = EstimatorSettings {
        bootstrap: 0,
        ..Default::default()
    };
    for (k, e) in estimate(
        &data,
        &[
            EstimatorKind::Dm,
            EstimatorKind::Dr,
            EstimatorKind::Sndr,
            EstimatorKind::SwitchDr,
            EstimatorKind::Dros,
        ],
        &s,
    )? {
        assert!(
            (e.estimate - truth).abs() < 1e-12,
            "{}: {} vs {truth}",
            k.name(),
            e.estimate
        );
    }
    Ok(())
}

#[test]
fn intervals_cover_the_truth() -> TestResult {
    // 200 seeded replications; 95% intervals of IPS and DR must cover the
    // known policy value in at least 90% of them.
    let logging = [0.4, 0.3, 0.2, 0.1];
    let target = [0.1, 0.1, 0.3, 0.5];
    let means = [0.5, 0.3, 0.6, 0.7];
    let truth: f64 = means.iter().zip(&target).map(|(m, p)| m * p).sum();
    let q = [0.45, 0.35, 0.5, 0.6]; // a biased reward model
    let s = EstimatorSettings {
        bootstrap: 400,
        ..Default::default()
    };
    let mut covered = [[0u32; 2]; 2]; // [estimator][bootstrap, normal]
    for rep in 0..200u64 {
        let data = simulate(1_000, 100 + rep, &logging, &target, &means, Some(&q))?;
        let s = EstimatorSettings {
            seed: rep,
            ..s.clone()
        };
        let out = estimate(&data, &[EstimatorKind::Ipw, EstimatorKind::Dr], &s)?;
        for (e, (_, est)) in out.iter().enumerate() {
            if let (Some(lo), Some(hi)) = (est.ci_low, est.ci_high) {
                covered[e][0] += u32::from(lo <= truth && truth <= hi);
            }
            covered[e][1] += u32::from(est.normal_low <= truth && truth <= est.normal_high);
        }
    }
    for (e, name) in ["ipw", "dr"].iter().enumerate() {
        for (m, method) in ["bootstrap", "normal"].iter().enumerate() {
            assert!(
                covered[e][m] >= 180,
                "{name} {method} covered {}/200",
                covered[e][m]
            );
        }
    }
    Ok(())
}

#[test]
fn bad_rounds_name_the_round_and_field() {
    let ok = || round(0, 1.0, 0.5, vec![0.5, 0.5], None);
    let cases: Vec<(OpeRound, &str)> = vec![
        (round(0, 1.0, 0.0, vec![0.5, 0.5], None), "propensity"),
        (round(0, 1.0, 1.5, vec![0.5, 0.5], None), "propensity"),
        (round(0, 1.0, f64::NAN, vec![0.5, 0.5], None), "propensity"),
        (round(0, 1.0, 0.5, vec![0.5, 0.6], None), "target"),
        (round(0, 1.0, 0.5, vec![1.0], None), "target"),
        (round(2, 1.0, 0.5, vec![0.5, 0.5], None), "action"),
        (round(0, f64::INFINITY, 0.5, vec![0.5, 0.5], None), "reward"),
        (
            round(0, 1.0, 0.5, vec![0.5, 0.5], Some(vec![0.1, 0.2])),
            "reward_hat",
        ),
    ];
    for (bad, field) in cases {
        match OpeData::new(vec![ok(), bad]) {
            Err(Error::InvalidRound {
                round: 1, field: f, ..
            }) => assert_eq!(f, field),
            other => panic!("expected round 1 field {field}, got {other:?}"),
        }
    }
    assert!(matches!(OpeData::new(Vec::new()), Err(Error::Empty)));
    let data = OpeData::new(vec![ok()]).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        estimate(&data, &[EstimatorKind::Dr], &EstimatorSettings::default()),
        Err(Error::NeedsRewardModel { estimator: "dr" })
    ));
    assert!(matches!(
        estimate(
            &data,
            &[EstimatorKind::Ipw],
            &EstimatorSettings {
                alpha: 1.5,
                ..Default::default()
            }
        ),
        Err(Error::InvalidSetting { field: "alpha", .. })
    ));
}

#[test]
fn clipping_bounds_ipw_weights() -> TestResult {
    let data = simulate(
        2_000,
        9,
        &[0.7, 0.1, 0.1, 0.1],
        &[0.0, 0.0, 0.0, 1.0],
        &[0.5; 4],
        None,
    )?;
    let s = EstimatorSettings {
        bootstrap: 0,
        clip: Some(3.0),
        ..Default::default()
    };
    let out = estimate(&data, &[EstimatorKind::Ipw], &s)?;
    assert!(
        (out[0].1.max_weight - 3.0).abs() < 1e-12,
        "weights of 10 are clipped to 3"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn interval_bounds_bracket_the_ips_estimate(seed in any::<u64>(), n in 20usize..300) {
        let data = simulate(n, seed, &[0.25; 4], &[0.1, 0.2, 0.3, 0.4], &[0.3, 0.5, 0.2, 0.9], Some(&[0.3, 0.5, 0.2, 0.9]))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let s = EstimatorSettings { bootstrap: 200, seed, ..Default::default() };
        let out = estimate(&data, &EstimatorKind::ALL, &s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (k, e) in out {
            let (lo, hi) = (e.ci_low.unwrap_or(f64::NAN), e.ci_high.unwrap_or(f64::NAN));
            prop_assert!(lo <= hi, "{}: {} > {}", k.name(), lo, hi);
            prop_assert!(e.normal_low <= e.estimate && e.estimate <= e.normal_high);
            if k == EstimatorKind::Ipw {
                prop_assert!(lo <= e.estimate + 1e-12 && e.estimate <= hi + 1e-12, "ipw {} not in [{}, {}]", e.estimate, lo, hi);
            }
        }
    }
}

#[test]
fn unsupported_rounds_are_counted() -> TestResult {
    // A deterministic logger (propensity 1) on 3 of 5 rounds; the target
    // puts mass on another action in 2 of those.
    let rounds = vec![
        round(0, 1.0, 1.0, vec![1.0, 0.0], None),
        round(0, 1.0, 1.0, vec![0.5, 0.5], None),
        round(1, 0.0, 1.0, vec![0.0, 1.0], None),
        round(1, 0.0, 1.0, vec![0.9, 0.1], None),
        round(0, 1.0, 0.5, vec![0.0, 1.0], None),
    ];
    let data = OpeData::new(rounds)?;
    let s = EstimatorSettings {
        bootstrap: 0,
        ..Default::default()
    };
    let out = estimate(&data, &[EstimatorKind::Ipw], &s)?;
    assert_eq!(out[0].1.unsupported_rounds, 2);
    Ok(())
}

#[test]
fn line_numbers_survive_chunked_reading() -> TestResult {
    // 20,000 lines (~2 MB, several read chunks) with blank lines sprinkled
    // in and a bad propensity on line 15,003.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.jsonl");
    let good = r#"{"action": 1, "reward": 0.5, "propensity": 0.5, "target": [0.25, 0.75], "reward_hat": [0.125, 0.25]}"#;
    let mut text = String::new();
    for line in 1..=20_000 {
        if line % 5_000 == 0 {
            text.push('\n');
        } else if line == 15_003 {
            text.push_str(&good.replace("\"propensity\": 0.5", "\"propensity\": 2.0"));
            text.push('\n');
        } else {
            text.push_str(good);
            text.push('\n');
        }
    }
    std::fs::write(&path, &text)?;
    let err = read_jsonl(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("line 15003") && err.contains("propensity"),
        "{err}"
    );
    let fine = text.replace("\"propensity\": 2.0", "\"propensity\": 0.5");
    std::fs::write(&path, fine)?;
    assert_eq!(read_jsonl(&path)?.len(), 19_996);
    Ok(())
}

#[test]
fn lines_longer_than_a_read_chunk_are_read_whole() -> TestResult {
    // 40,000 actions: each line is about 1.1 MB, twice a read chunk, so a
    // line spans chunks and a chunk may hold no line end at all.
    let k = 40_000;
    let uniform = format!("{}", 1.0 / k as f64);
    let target = vec![uniform.as_str(); k].join(", ");
    let hats: Vec<String> = (0..k).map(|a| format!("0.{:019}", a + 1)).collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("wide.jsonl");
    let mut text = String::new();
    for action in [7, 39_999, 0] {
        text.push_str(&format!(
            r#"{{"action": {action}, "reward": 1.0, "propensity": {uniform}, "target": [{target}], "reward_hat": [{}]}}"#,
            hats.join(", ")
        ));
        text.push('\n');
    }
    std::fs::write(&path, &text)?;
    let data = read_jsonl(&path)?;
    assert_eq!((data.len(), data.num_actions()), (3, k));
    assert_eq!(
        (data.action(0), data.action(1), data.action(2)),
        (7, 39_999, 0)
    );
    let hat = data.reward_hat(2).ok_or("reward_hat missing")?;
    // 0.0000000000000000001 · (a + 1), as `from_str` reads it.
    let want = "0.0000000000000040000".parse::<f64>()?;
    assert_eq!(hat[39_999].to_bits(), want.to_bits());
    assert_eq!(hat[0].to_bits(), 1e-19f64.to_bits());
    Ok(())
}

#[test]
fn a_later_chunk_of_another_shape_is_refused_with_its_line() -> TestResult {
    // ~2 MB, several read chunks; the shape changes deep in the file.
    let good = r#"{"action": 1, "reward": 0.5, "propensity": 0.5, "target": [0.25, 0.75], "reward_hat": [0.125, 0.25]}"#;
    let wide = r#"{"action": 1, "reward": 0.5, "propensity": 0.5, "target": [0.25, 0.25, 0.5], "reward_hat": [0.1, 0.2, 0.3]}"#;
    let no_hat = r#"{"action": 1, "reward": 0.5, "propensity": 0.5, "target": [0.25, 0.75]}"#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shapes.jsonl");
    for (odd, field) in [(wide, "target"), (no_hat, "reward_hat")] {
        let text: String = (1..=20_000)
            .map(|line| format!("{}\n", if line == 17_001 { odd } else { good }))
            .collect();
        std::fs::write(&path, text)?;
        let err = read_jsonl(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 17001") && err.contains(field), "{err}");
    }
    Ok(())
}

#[test]
fn a_truncated_gzip_file_is_an_io_error_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bytes = std::fs::read(fixture_dir().join("obd-men.jsonl.gz"))?;
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2])?;
    match read_jsonl(&path) {
        Err(Error::Io { path: p, .. }) => assert!(p.ends_with("cut.jsonl.gz"), "{p}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    Ok(())
}
