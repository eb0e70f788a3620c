//! The decision log survives crashes and rotates; late outcomes join or
//! default; the offline evaluator's verdict follows the truth.

use chrono::{Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tuneloop_bandit::{Fixed, Uniform};
use tuneloop_core::{ArmSet, DecisionId, ErrorClass, Features, TaskOutcome};
use tuneloop_counterfactual::{
    DecisionLog, JoinError, JsonlLog, LoggedDecision, MemoryLog, OfflineEvaluator,
    PendingDecisions, Resolution, read_log, replay,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn arms() -> Result<ArmSet, tuneloop_core::Error> {
    ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0, 1.5])
        .build()
}

/// A uniformly logged decision in a 4-arm problem whose arm means are
/// `0.2, 0.5, 0.8, 0.3` (Bernoulli rewards), context [1, u].
fn logged(i: u64, rng: &mut ChaCha8Rng, arms: &ArmSet) -> LoggedDecision {
    let means = [0.2, 0.5, 0.8, 0.3];
    let a = (rng.next_u32() % 4) as usize;
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let context = vec![1.0, u];
    let fp = Features::new(context.clone())
        .map(|f| f.fingerprint())
        .unwrap_or(0);
    let arm = arms.get(a).cloned().unwrap_or_else(|| panic!("arm {a}"));
    LoggedDecision {
        schema_version: 1,
        decision_id: DecisionId::from_u128(u128::from(i)),
        request_id: None,
        episode_id: None,
        task_type: "code".into(),
        model: arm.params.model().into(),
        context_fingerprint: format!("{fp:016x}"),
        context,
        eligible: vec![0, 1, 2, 3],
        eligible_ids: arms.iter().map(|a| a.id).collect(),
        arm: a,
        arm_id: arm.id,
        params: arm.params,
        propensity: 0.25,
        propensity_estimated: false,
        policy_kind: "uniform".into(),
        policy_version: 0,
        cohort: None,
        phase: None,
        shadow_arm: None,
        timestamp: Utc
            .timestamp_opt(1_700_000_000 + i as i64, 0)
            .single()
            .unwrap_or_default(),
        resolution: Resolution::Recorded {
            outcome: None,
            reward: if v < means[a] { 1.0 } else { 0.0 },
        },
    }
}

fn log_of(n: u64, seed: u64) -> Result<Vec<LoggedDecision>, tuneloop_core::Error> {
    let arms = arms()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((0..n).map(|i| logged(i, &mut rng, &arms)).collect())
}

#[test]
fn jsonl_log_round_trips_rotates_and_survives_a_torn_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    let records = log_of(50, 1)?;
    {
        let log = JsonlLog::open(&path, 4_000, 3)?;
        for r in &records {
            log.append(r)?;
        }
    }
    // Rotation kept at most 3 older files besides the current one.
    assert!(dir.path().join("decisions.jsonl.1").exists());
    assert!(!dir.path().join("decisions.jsonl.4").exists());
    let mut all = Vec::new();
    for i in (1..=3).rev() {
        let p = dir.path().join(format!("decisions.jsonl.{i}"));
        if p.exists() {
            all.extend(read_log(&p)?.records);
        }
    }
    all.extend(read_log(&path)?.records);
    let tail = &records[records.len() - all.len()..];
    assert_eq!(all, tail, "the newest records survive rotation, in order");

    // A crash mid-write leaves a torn last line: skipped with a warning.
    let torn = dir.path().join("torn.jsonl");
    let mut text = String::new();
    for r in &records[..3] {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    let half = serde_json::to_string(&records[3])?;
    text.push_str(&half[..half.len() / 2]);
    std::fs::write(&torn, &text)?;
    let read = read_log(&torn)?;
    assert_eq!(read.records, records[..3].to_vec());
    assert_eq!(read.warnings.len(), 1);
    assert!(read.warnings[0].contains("line 4"), "{:?}", read.warnings);

    // A process that reopens the torn file starts a new line: its records
    // are read, the torn one is still skipped.
    {
        let log = JsonlLog::open(&torn, u64::MAX, 0)?;
        log.append(&records[4])?;
        log.append(&records[5])?;
    }
    let read = read_log(&torn)?;
    let expected: Vec<_> = [&records[..3], &records[4..6]].concat();
    assert_eq!(read.records, expected);
    assert!(read.warnings.len() == 1 && read.warnings[0].contains("line 4"));

    // A torn line in the middle (a full disk cut a record, the next one
    // began a new line): skipped with a warning too.
    let mid = dir.path().join("mid.jsonl");
    let first = serde_json::to_string(&records[0])?;
    let second = serde_json::to_string(&records[1])?;
    std::fs::write(
        &mid,
        format!("{first}\n{}\n{second}\n", &first[..first.len() / 3]),
    )?;
    let read = read_log(&mid)?;
    assert_eq!(read.records, records[..2].to_vec());
    assert!(read.warnings.len() == 1 && read.warnings[0].contains("line 2"));

    // A bad line in the middle is an error naming it.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{{\"oops\": 1}}\n{}\n",
            serde_json::to_string(&records[0])?,
            serde_json::to_string(&records[1])?
        ),
    )?;
    let err = read_log(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("line 2"), "{err}");
    Ok(())
}

#[test]
fn memory_log_keeps_records_in_order() -> TestResult {
    let log = MemoryLog::new();
    let records = log_of(5, 2)?;
    for r in &records {
        log.append(r)?;
    }
    assert_eq!(log.records(), records);
    Ok(())
}

#[test]
fn late_outcomes_join_within_the_window_else_default() -> TestResult {
    let mut records = log_of(3, 3)?;
    for r in &mut records {
        r.resolution = Resolution::Unresolved;
    }
    let t0 = records[0].timestamp;
    let mut pending = PendingDecisions::new(std::time::Duration::from_secs(60), 0.0)?;
    for r in &records {
        pending.insert(r.clone());
    }
    let outcome = TaskOutcome::success(0.9, 100.0);
    let joined = pending.join(
        records[0].decision_id,
        outcome.clone(),
        0.9,
        t0 + Duration::seconds(30),
    )?;
    assert_eq!(
        joined.resolution,
        Resolution::Recorded {
            outcome: Some(outcome.clone()),
            reward: 0.9
        }
    );
    assert_eq!(
        pending.join(records[0].decision_id, outcome.clone(), 0.9, t0),
        Err(JoinError::Unknown(records[0].decision_id)),
        "a second outcome for one decision is refused"
    );
    let late = t0 + Duration::seconds(200);
    assert_eq!(
        pending.join(
            records[1].decision_id,
            TaskOutcome::failure(ErrorClass::Timeout, 1.0),
            0.0,
            late
        ),
        Err(JoinError::Expired(records[1].decision_id))
    );
    let expired = pending.expire(late);
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|d| d.resolution
        == Resolution::Expired {
            default_reward: 0.0
        }));
    assert!(pending.is_empty());
    Ok(())
}

#[test]
fn a_wait_out_of_range_is_refused_and_the_longest_one_never_panics() -> TestResult {
    use std::time::Duration as StdDuration;
    assert!(PendingDecisions::new(StdDuration::MAX, 0.0).is_err());
    assert!(PendingDecisions::new(StdDuration::ZERO, 0.0).is_err());
    assert!(PendingDecisions::new(StdDuration::from_secs(1), f64::NAN).is_err());
    // The longest wait, joined and expired at the end of chrono's time:
    // the deadline cannot be represented, so the window never closes.
    let mut pending = PendingDecisions::new(PendingDecisions::MAX_WAIT, 0.0)?;
    let mut records = log_of(2, 3)?;
    records[1].timestamp = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    for r in &records {
        pending.insert(r.clone());
    }
    assert!(
        pending
            .expire(chrono::DateTime::<chrono::Utc>::MAX_UTC)
            .is_empty()
    );
    let joined = pending.join(
        records[1].decision_id,
        TaskOutcome::success(0.5, 10.0),
        0.5,
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
    )?;
    assert_eq!(joined.resolution.reward(), Some(0.5));
    Ok(())
}

#[test]
fn verdict_follows_the_truth() -> TestResult {
    let records = log_of(4_000, 4)?;
    let ev = OfflineEvaluator {
        settings: tuneloop_counterfactual::EstimatorSettings {
            bootstrap: 1_000,
            seed: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    // Arm 2 (mean 0.8) beats the uniform logger (mean 0.45): proven.
    let best = Fixed::new(2, 4, 2, 0.0)?;
    let e = ev.evaluate(&records, &best)?;
    assert!(e.candidate_is_better, "{:?}", e.difference);
    let dr = e
        .candidate
        .iter()
        .find(|(k, _)| k.name() == "dr")
        .map(|(_, v)| v.estimate)
        .unwrap_or(0.0);
    assert!((dr - 0.8).abs() < 0.05, "DR of arm 2: {dr}");
    assert!((e.baseline.estimate - 0.45).abs() < 0.03);
    // Arm 0 (mean 0.2) is worse: not better.
    let worst = Fixed::new(0, 4, 2, 0.0)?;
    assert!(!ev.evaluate(&records, &worst)?.candidate_is_better);
    // The logger against itself: no difference to prove.
    let same = Uniform::new(4, 2)?;
    let e = ev.evaluate(&records, &same)?;
    assert!(
        !e.candidate_is_better,
        "A/A must not be declared better: {:?}",
        e.difference
    );
    // Target = logger: every weight is 1, so IPW is exactly the logged mean;
    // DR differs from it only by mean(q̂_π − q̂_a), zero in expectation.
    let ipw = e
        .candidate
        .iter()
        .find(|(k, _)| k.name() == "ipw")
        .map(|(_, v)| v.estimate)
        .unwrap_or(f64::NAN);
    assert!((ipw - e.baseline.estimate).abs() < 1e-12);
    assert!(e.difference.estimate.abs() < 0.02, "{:?}", e.difference);
    assert_eq!(e.unsupported_rounds, 0);
    Ok(())
}

#[test]
fn replay_estimates_a_fixed_arm() -> TestResult {
    let records = log_of(8_000, 5)?;
    let (v, matched) = replay(&records, &Fixed::new(2, 4, 2, 0.0)?, 1)?;
    // About a quarter of the rounds match; their mean reward estimates 0.8.
    assert!((1_800..2_200).contains(&matched), "{matched}");
    assert!((v - 0.8).abs() < 0.04, "{v}");
    let mut skewed = records.clone();
    skewed[0].propensity = 0.5;
    assert!(replay(&skewed, &Fixed::new(2, 4, 2, 0.0)?, 1).is_err());
    Ok(())
}

#[test]
fn records_that_do_not_fit_the_candidate_are_named() -> TestResult {
    let mut records = log_of(10, 6)?;
    records[3].propensity = 0.0;
    let err = OfflineEvaluator::default()
        .evaluate(&records, &Uniform::new(4, 2)?)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("round 3") && err.contains("propensity"),
        "{err}"
    );
    let records = log_of(10, 6)?;
    let err = OfflineEvaluator::default()
        .evaluate(&records, &Uniform::new(3, 2)?)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("eligible"), "{err}");
    Ok(())
}

#[test]
fn two_policies_compare_on_one_log() -> TestResult {
    let records = log_of(4_000, 7)?;
    let ev = OfflineEvaluator {
        settings: tuneloop_counterfactual::EstimatorSettings {
            bootstrap: 1_000,
            seed: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let best = Fixed::new(2, 4, 2, 0.0)?;
    let worst = Fixed::new(0, 4, 2, 0.0)?;
    let c = ev.compare(&records, &best, &worst)?;
    // True values 0.8 and 0.2: a difference of 0.6.
    assert!((c.difference.estimate - 0.6).abs() < 0.05, "{c:?}");
    assert!(
        c.difference.ci_low <= c.difference.estimate
            && c.difference.estimate <= c.difference.ci_high
    );
    assert!(c.candidate_is_better);
    assert!(!ev.compare(&records, &worst, &best)?.candidate_is_better);
    // A policy against itself: every paired difference is exactly 0.
    let same = ev.compare(&records, &best, &best)?;
    assert!(same.difference.estimate.abs() < 1e-15 && same.difference.ci_high.abs() < 1e-15);
    Ok(())
}

#[test]
fn records_with_a_reward_outside_0_1_or_an_unknown_version_are_refused() -> TestResult {
    let mut r = log_of(1, 5)?.remove(0);
    assert!(r.validate().is_ok());
    r.resolution = Resolution::Recorded {
        outcome: None,
        reward: 5.0,
    };
    assert!(matches!(
        r.validate(),
        Err(tuneloop_counterfactual::Error::InvalidRound {
            field: "reward",
            ..
        })
    ));
    r.resolution = Resolution::Recorded {
        outcome: None,
        reward: 0.5,
    };
    r.schema_version = 99;
    assert!(matches!(
        r.validate(),
        Err(tuneloop_counterfactual::Error::InvalidRound {
            field: "schema_version",
            ..
        })
    ));
    Ok(())
}

/// A full disk: `TUNELOOP_TEST_SMALL_FS` names a directory on a small
/// filesystem (`.ci/run` mounts a 64 KiB tmpfs; as root: `mount -t tmpfs -o
/// size=64k tmpfs DIR`). Skipped without it.
#[test]
fn a_full_disk_loses_no_acknowledged_record_and_the_log_stays_readable() -> TestResult {
    let Some(dir) = std::env::var_os("TUNELOOP_TEST_SMALL_FS") else {
        eprintln!("skipped: set TUNELOOP_TEST_SMALL_FS to a directory on a small filesystem");
        return Ok(());
    };
    let dir = std::path::PathBuf::from(dir).join(format!("full-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0u8; 16 << 10])?;
    let path = dir.join("decisions.jsonl");
    let log = JsonlLog::open(&path, u64::MAX, 0)?;
    let records = log_of(400, 9)?;
    let mut acknowledged = Vec::new();
    let mut failures = 0;
    for r in &records[..300] {
        match log.append(r) {
            Ok(()) => acknowledged.push(r.clone()),
            Err(_) => failures += 1,
        }
    }
    assert!(failures > 0, "the filesystem never filled: make it smaller");
    // Space again: later records go on whole lines of their own.
    std::fs::remove_file(&filler)?;
    for r in &records[300..310] {
        log.append(r)?;
        acknowledged.push(r.clone());
    }
    drop(log);
    let read = read_log(&path)?;
    assert_eq!(
        read.records, acknowledged,
        "every acknowledged record, in order"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A two-step policy: at the first step (arms 0 = A, 1 = B) A with
/// probability `p`; at the second (2 = X, 3 = Y) X with probability `q`.
#[derive(Debug)]
struct TwoStep {
    p: f64,
    q: f64,
}

impl tuneloop_core::Policy for TwoStep {
    fn kind(&self) -> &'static str {
        "two-step"
    }
    fn version(&self) -> u64 {
        0
    }
    fn context_dim(&self) -> usize {
        2
    }
    fn num_arms(&self) -> usize {
        4
    }
    fn distribution(
        &self,
        _: &Features,
        eligible: &[usize],
    ) -> tuneloop_core::Result<tuneloop_core::ActionDistribution> {
        let (first, p) = if eligible.contains(&0) {
            (0, self.p)
        } else {
            (2, self.q)
        };
        tuneloop_core::ActionDistribution::new(vec![first, first + 1], vec![p, 1.0 - p], false)
    }
    fn update(&mut self, _: &Features, _: usize, _: f64) -> tuneloop_core::Result<()> {
        Ok(())
    }
    fn snapshot(&self) -> tuneloop_core::Result<tuneloop_core::PolicySnapshot> {
        Err(tuneloop_core::Error::InvalidConfig {
            field: "snapshot",
            reason: "a test policy".into(),
        })
    }
}

/// The episode reward of (first, second): A then X is best, but after Y
/// the better first step is B.
fn two_step_reward(first: usize, second: usize) -> f64 {
    match (first, second) {
        (0, 2) => 1.0,
        (0, _) => 0.0,
        (_, 2) => 0.4,
        _ => 0.6,
    }
}

/// The closed form of a [`TwoStep`] policy's mean episode reward.
fn two_step_value(p: f64, q: f64) -> f64 {
    p * q * 1.0 + p * (1.0 - q) * 0.0 + (1.0 - p) * q * 0.4 + (1.0 - p) * (1.0 - q) * 0.6
}

/// `n` episodes of two decisions, each step logged uniformly over its two
/// arms; each decision carries the episode's reward.
fn two_step_log(n: u64, seed: u64) -> Result<Vec<LoggedDecision>, Box<dyn std::error::Error>> {
    let arms = arms()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for e in 0..n {
        let first = (rng.next_u32() % 2) as usize;
        let second = 2 + (rng.next_u32() % 2) as usize;
        let reward = two_step_reward(first, second);
        for (step, (arm, eligible)) in [(first, vec![0, 1]), (second, vec![2, 3])]
            .into_iter()
            .enumerate()
        {
            let mut d = logged(2 * e + step as u64, &mut rng, &arms);
            d.episode_id = Some(DecisionId::from_u128(1_000_000 + u128::from(e)));
            d.context = vec![1.0, step as f64];
            d.eligible_ids = eligible
                .iter()
                .filter_map(|&a| arms.get(a).map(|a| a.id))
                .collect();
            d.eligible = eligible;
            d.arm = arm;
            d.arm_id = arms.get(arm).map(|a| a.id).ok_or("arm")?;
            d.propensity = 0.5;
            d.resolution = Resolution::Recorded {
                outcome: None,
                reward,
            };
            out.push(d);
        }
    }
    Ok(out)
}

#[test]
fn episodes_are_valued_by_their_trajectory_weight_to_the_closed_form() -> TestResult {
    let records = two_step_log(20_000, 11)?;
    let evaluator = OfflineEvaluator::default();
    for (p, q) in [(1.0, 1.0), (0.7, 0.2), (0.0, 0.0), (0.5, 0.5)] {
        let truth = two_step_value(p, q);
        let e = evaluator.evaluate_episodes(&records, &TwoStep { p, q })?;
        assert_eq!((e.episodes, e.decisions), (20_000, 40_000));
        for (kind, est) in &e.candidate {
            // Within four standard errors (the normal interval is ±1.96).
            let se = (est.normal_high - est.normal_low) / (2.0 * 1.96);
            let off = (est.estimate - truth).abs();
            assert!(
                off <= 4.0 * se + 1e-9,
                "{kind:?} at ({p}, {q}): {} vs {truth} (se {se})",
                est.estimate
            );
            assert!(se < 0.03, "{kind:?}: se {se}");
        }
        // The logging policy (uniform at both steps) is worth 0.5.
        assert!((e.baseline.estimate - two_step_value(0.5, 0.5)).abs() < 0.02);
        // The verdict follows the truth where it is clear.
        if (truth - 0.5).abs() > 0.05 {
            assert_eq!(
                e.candidate_is_better,
                truth > 0.5,
                "({p}, {q}): {:?}",
                e.difference
            );
        }
    }
    // Crediting each decision alone is biased: for "A then X" (worth 1.0)
    // it averages E[R | A] = 0.5 and E[R | X] = 0.7, giving 0.6.
    let naive = evaluator.evaluate(&records, &TwoStep { p: 1.0, q: 1.0 })?;
    let ipw = naive
        .candidate
        .iter()
        .find(|(k, _)| k.name() == "ipw")
        .ok_or("ipw")?
        .1
        .estimate;
    assert!((ipw - 0.6).abs() < 0.03, "per-decision IPW {ipw}");
    Ok(())
}

#[test]
fn an_episode_with_decisions_of_different_rewards_is_skipped_and_counted() -> TestResult {
    let mut records = two_step_log(10, 1)?;
    records[3].resolution = Resolution::Recorded {
        outcome: None,
        reward: 0.123,
    };
    let e = OfflineEvaluator::default().evaluate_episodes(&records, &TwoStep { p: 0.5, q: 0.5 })?;
    assert_eq!(
        (e.episodes, e.skipped_inconsistent, e.decisions),
        (9, 1, 18)
    );
    Ok(())
}
