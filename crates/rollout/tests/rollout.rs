//! Rollout scenarios: sticky cohorts, the false-alarm rate under A/A,
//! detection of injected breaches, approvals, holds, bad input, and the
//! candidate's proof.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tuneloop_rollout::simulation::{ProofSimulation, SimulationConfig, simulate, simulate_proof};
use tuneloop_rollout::{
    Cohort, Error, Metric, Observation, Phase, ProofConfig, ProofEstimator, RollbackTarget,
    RolloutConfig, RolloutEvent, RolloutManager, ShadowRound, VerdictKind,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default()
}

/// The default rules without the proof: these tests are about samples,
/// dwell times, approvals and breaches (the proof has tests of its own).
fn sample_rules() -> RolloutConfig {
    RolloutConfig {
        proof: ProofConfig {
            required: false,
            ..ProofConfig::default()
        },
        ..RolloutConfig::default()
    }
}

fn ok_obs() -> Observation {
    Observation {
        latency_ms: 800.0,
        quality: 0.8,
        error: false,
    }
}

/// Drives a manager to `phase` with identical traffic.
fn advance_to(r: &mut RolloutManager, phase: Phase, t: &mut DateTime<Utc>) -> TestResult {
    let mut i = 0u64;
    while r.phase() != phase {
        let a = r.assign(&format!("k{i}"));
        r.observe(a.cohort, ok_obs(), *t)?;
        *t += Duration::seconds(1);
        i += 1;
        if i > 1_000_000 {
            return Err("never reached the phase".into());
        }
    }
    Ok(())
}

#[test]
fn cohorts_are_sticky_and_split_at_the_fraction() -> TestResult {
    let mut r = RolloutManager::new(sample_rules(), t0())?;
    let mut t = t0();
    advance_to(&mut r, Phase::Canary, &mut t)?;
    let n = 100_000;
    let canary: Vec<bool> = (0..n)
        .map(|i| r.assign(&format!("user-{i}")).cohort == Cohort::Candidate)
        .collect();
    let count = canary.iter().filter(|&&c| c).count() as f64;
    // Binomial(100000, 0.05): mean 5000, sd 68.9; allow 5 sd.
    assert!((count - 5000.0).abs() < 5.0 * 68.9, "{count}");
    // The same key, asked again, lands in the same cohort.
    assert!(
        (0..1000)
            .all(|i| (r.assign(&format!("user-{i}")).cohort == Cohort::Candidate) == canary[i])
    );
    advance_to(&mut r, Phase::Guarded, &mut t)?;
    let guarded: Vec<bool> = (0..n)
        .map(|i| r.assign(&format!("user-{i}")).cohort == Cohort::Candidate)
        .collect();
    let count = guarded.iter().filter(|&&c| c).count() as f64;
    // Binomial(100000, 0.25): sd 136.9.
    assert!((count - 25_000.0).abs() < 5.0 * 136.9, "{count}");
    // Growing the share keeps every canary user in the candidate cohort.
    assert!(canary.iter().zip(&guarded).all(|(c, g)| !c || *g));
    Ok(())
}

#[test]
fn a_a_rollouts_rarely_roll_back() -> TestResult {
    let report = simulate(
        &sample_rules(),
        &SimulationConfig {
            runs: 100,
            seed: 11,
            ..SimulationConfig::default()
        },
    )?;
    // Target: at most 5% false rollbacks over full shadow → general rollouts.
    assert!(report.rollback_rate <= 0.05, "{report:?}");
    assert_eq!(
        report.completed + report.rolled_back,
        100,
        "every run finishes"
    );
    Ok(())
}

#[test]
fn injected_breaches_are_detected_quickly() -> TestResult {
    let both = SimulationConfig {
        runs: 100,
        seed: 12,
        latency_factor: 1.3,
        quality_factor: 0.9,
        ..SimulationConfig::default()
    };
    let report = simulate(&sample_rules(), &both)?;
    assert!(report.rollback_rate >= 0.99, "{report:?}");
    let median = report
        .median_candidate_observations_to_rollback
        .ok_or("no rollback")?;
    assert!(median <= 500, "median {median} candidate observations");
    // Each breach alone is caught too.
    let latency = SimulationConfig {
        latency_factor: 1.3,
        quality_factor: 1.0,
        seed: 13,
        runs: 50,
        ..both.clone()
    };
    let r = simulate(&sample_rules(), &latency)?;
    assert!(
        r.rollback_rate >= 0.9 && r.rollbacks_by_metric[Metric::Latency as usize] >= 45,
        "{r:?}"
    );
    let quality = SimulationConfig {
        latency_factor: 1.0,
        quality_factor: 0.9,
        seed: 14,
        runs: 50,
        ..both
    };
    let r = simulate(&sample_rules(), &quality)?;
    assert!(
        r.rollback_rate >= 0.9 && r.rollbacks_by_metric[Metric::Quality as usize] >= 45,
        "{r:?}"
    );
    Ok(())
}

#[test]
fn a_breach_rolls_back_at_once_with_evidence_and_holds() -> TestResult {
    let cfg = RolloutConfig {
        rollback_to: RollbackTarget::Shadow,
        ..sample_rules()
    };
    let mut r = RolloutManager::new(cfg, t0())?;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    r.subscribe(std::sync::Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let mut t = t0();
    advance_to(&mut r, Phase::Guarded, &mut t)?;
    let mut rolled = None;
    for i in 0..100_000u64 {
        let a = r.assign(&format!("b{i}"));
        let o = if a.cohort == Cohort::Candidate {
            Observation {
                latency_ms: 800.0,
                quality: 0.5,
                error: false,
            }
        } else {
            ok_obs()
        };
        let events = r.observe(a.cohort, o, t)?;
        t += Duration::seconds(1);
        if let Some(e) = events
            .into_iter()
            .find(|e| matches!(e, RolloutEvent::RolledBack { .. }))
        {
            rolled = Some(e);
            break;
        }
    }
    let Some(RolloutEvent::RolledBack {
        from, to, breach, ..
    }) = rolled
    else {
        return Err("no rollback".into());
    };
    assert_eq!((from, to), (Phase::Guarded, Phase::Shadow));
    assert_eq!(breach.metric, Metric::Quality);
    // The evidence: the candidate's quality (over canary and guarded, the
    // monitor's whole life) is below the baseline's.
    let (c, b) = (
        breach.candidate.quality_mean.unwrap_or(1.0),
        breach.baseline.quality_mean.unwrap_or(0.0),
    );
    assert!(c < b - 0.05, "candidate {c} vs baseline {b}");
    assert!(r.is_held());
    // The evidence that caused the rollback causes no second one.
    for i in 0..2_000u64 {
        let a = r.assign(&format!("c{i}"));
        let o = if a.cohort == Cohort::Candidate {
            Observation {
                latency_ms: 800.0,
                quality: 0.5,
                error: false,
            }
        } else {
            ok_obs()
        };
        let events = r.observe(a.cohort, o, t)?;
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, RolloutEvent::RolledBack { .. })),
            "cascaded rollback"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        r.history().len(),
        "listeners saw every event"
    );
    // Held: no promotion however long it waits.
    for _ in 0..5 {
        t += Duration::hours(1);
        assert!(r.tick(t).is_empty());
    }
    // Resume: a new candidate starts from no evidence.
    r.resume(t);
    assert_eq!(r.monitor().summary(Cohort::Candidate).observations, 0);
    advance_to(&mut r, Phase::Canary, &mut t)?;
    Ok(())
}

#[test]
fn approval_gates_promotion() -> TestResult {
    let cfg = RolloutConfig {
        approval_required: vec![Phase::Shadow],
        ..sample_rules()
    };
    let mut r = RolloutManager::new(cfg, t0())?;
    assert!(matches!(
        r.approve("alice", t0()),
        Err(Error::NotAllowed(_))
    ));
    let mut t = t0();
    let mut awaiting = false;
    for i in 0..5_000u64 {
        let a = r.assign(&format!("k{i}"));
        let events = r.observe(a.cohort, ok_obs(), t)?;
        t += Duration::seconds(1);
        awaiting |= events.iter().any(|e| {
            matches!(
                e,
                RolloutEvent::AwaitingApproval {
                    phase: Phase::Shadow,
                    ..
                }
            )
        });
    }
    assert!(awaiting);
    assert_eq!(r.phase(), Phase::Shadow, "no promotion without approval");
    let events = r.approve("alice", t)?;
    assert!(events.iter().any(|e| matches!(
        e,
        RolloutEvent::Promoted {
            from: Phase::Shadow,
            to: Phase::Canary,
            ..
        }
    )));
    Ok(())
}

#[test]
fn bad_input_and_a_clock_going_backwards() -> TestResult {
    let mut r = RolloutManager::new(sample_rules(), t0())?;
    for (o, field) in [
        (
            Observation {
                latency_ms: f64::NAN,
                ..ok_obs()
            },
            "latency_ms",
        ),
        (
            Observation {
                latency_ms: -1.0,
                ..ok_obs()
            },
            "latency_ms",
        ),
        (
            Observation {
                quality: 1.5,
                ..ok_obs()
            },
            "quality",
        ),
        (
            Observation {
                quality: f64::NAN,
                ..ok_obs()
            },
            "quality",
        ),
    ] {
        assert!(
            matches!(r.observe(Cohort::Baseline, o, t0()), Err(Error::InvalidObservation { field: f, .. }) if f == field)
        );
    }
    assert_eq!(
        r.monitor().summary(Cohort::Baseline).observations,
        0,
        "nothing recorded"
    );
    // The clock jumps back a day: treated as standing still, no panic, no promotion by it.
    r.observe(Cohort::Baseline, ok_obs(), t0() + Duration::seconds(10))?;
    r.observe(Cohort::Baseline, ok_obs(), t0() - Duration::days(1))?;
    assert_eq!(r.phase(), Phase::Shadow);
    assert!(
        RolloutManager::new(
            RolloutConfig {
                canary_fraction: 1.5,
                ..sample_rules()
            },
            t0()
        )
        .is_err()
    );
    assert!(
        RolloutManager::new(
            RolloutConfig {
                guarded_fraction: 0.01,
                ..sample_rules()
            },
            t0()
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn state_survives_serialization() -> TestResult {
    let mut r = RolloutManager::new(sample_rules(), t0())?;
    let mut t = t0();
    advance_to(&mut r, Phase::Canary, &mut t)?;
    let json = serde_json::to_string(&r)?;
    let mut back: RolloutManager = serde_json::from_str(&json)?;
    assert_eq!(back.phase(), Phase::Canary);
    assert_eq!(back.history(), r.history());
    assert_eq!(back.assign("user-7"), r.assign("user-7"));
    advance_to(&mut back, Phase::Guarded, &mut t)?;
    Ok(())
}

/// `json` with the value at `pointer` replaced.
fn with(json: &serde_json::Value, pointer: &str, value: serde_json::Value) -> String {
    let mut v = json.clone();
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = value;
    }
    v.to_string()
}

#[test]
fn tampered_monitor_statistics_are_refused_on_load() -> TestResult {
    let mut r = RolloutManager::new(sample_rules(), t0())?;
    let mut t = t0();
    advance_to(&mut r, Phase::Canary, &mut t)?;
    let json = serde_json::to_value(&r)?;
    // The state as saved loads.
    serde_json::from_str::<RolloutManager>(&json.to_string())?;
    let monitor = "/monitor";
    let observations = json
        .pointer(&format!("{monitor}/baseline/observations"))
        .and_then(serde_json::Value::as_u64)
        .ok_or("no baseline observations")?;
    assert!(observations > 0);
    for (pointer, value, expected) in [
        (
            "/baseline/quality_sum",
            serde_json::json!(-1.0),
            "quality sum",
        ),
        (
            "/baseline/quality_sum",
            serde_json::json!(observations + 1),
            "quality sum",
        ),
        (
            "/baseline/errors",
            serde_json::json!(observations + 1),
            "errors",
        ),
        (
            "/baseline/observations",
            serde_json::json!(observations + 1),
            "latencies",
        ),
        (
            "/quality/log_wealth/0",
            serde_json::json!(1.0),
            "log-wealth",
        ),
        (
            "/latency/log_wealth/5",
            serde_json::json!(-1e12),
            "log-wealth",
        ),
    ] {
        let text = with(&json, &format!("{monitor}{pointer}"), value.clone());
        let err = serde_json::from_str::<RolloutManager>(&text)
            .err()
            .map(|e| e.to_string())
            .ok_or(format!("{pointer} = {value} was accepted"))?;
        assert!(err.contains(expected), "{pointer} = {value}: {err}");
    }
    Ok(())
}

/// A shadow round of a candidate that always chooses arm 1 against the
/// incumbent's arm 0, logged with propensity `mu`.
fn shadow_round(arm: usize, reward: f64, mu: f64) -> ShadowRound {
    ShadowRound {
        reward,
        arm,
        propensity: mu,
        candidate_arm: 1,
        incumbent_arm: 0,
    }
}

#[test]
fn shadow_is_left_after_consecutive_passing_windows_only() -> TestResult {
    let cfg = RolloutConfig {
        shadow_min_baseline_samples: 0,
        min_dwell: [std::time::Duration::ZERO; 3],
        proof: ProofConfig {
            window: 40,
            consecutive: 2,
            estimator: ProofEstimator::Ipw,
            ..ProofConfig::default()
        },
        ..RolloutConfig::default()
    };
    let mut r = RolloutManager::new(cfg, t0())?;
    // A window where the candidate's arm (logged with probability 1/2)
    // always earns 1 and the incumbent's 0: paired IPW values 2 and 0,
    // mean 1, lower bound > 0.
    let good = |r: &mut RolloutManager| -> Result<Vec<RolloutEvent>, Error> {
        let mut events = Vec::new();
        for i in 0..40 {
            let round = if i % 2 == 0 {
                shadow_round(1, 1.0, 0.5)
            } else {
                shadow_round(0, 0.0, 0.5)
            };
            events.extend(r.observe_shadow(round, t0())?);
        }
        Ok(events)
    };
    // The reverse: mean −1, fails.
    let bad = |r: &mut RolloutManager| -> Result<Vec<RolloutEvent>, Error> {
        let mut events = Vec::new();
        for i in 0..40 {
            let round = if i % 2 == 0 {
                shadow_round(1, 0.0, 0.5)
            } else {
                shadow_round(0, 1.0, 0.5)
            };
            events.extend(r.observe_shadow(round, t0())?);
        }
        Ok(events)
    };
    let verdicts = |events: &[RolloutEvent]| -> Vec<(bool, u32)> {
        events
            .iter()
            .filter_map(|e| match e {
                RolloutEvent::Verdict(v) => Some((v.passed, v.consecutive)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(verdicts(&good(&mut r)?), [(true, 1)]);
    assert_eq!(r.phase(), Phase::Shadow);
    // A failing window resets the run.
    assert_eq!(verdicts(&bad(&mut r)?), [(false, 0)]);
    assert_eq!(verdicts(&good(&mut r)?), [(true, 1)]);
    assert_eq!(r.phase(), Phase::Shadow);
    let events = good(&mut r)?;
    assert_eq!(verdicts(&events), [(true, 2)]);
    assert!(events.iter().any(|e| matches!(
        e,
        RolloutEvent::Promoted {
            from: Phase::Shadow,
            to: Phase::Canary,
            ..
        }
    )));
    let v = r.last_verdict().ok_or("a verdict")?;
    assert!((v.estimate - 1.0).abs() < 1e-12 && v.rounds == 40 && v.window == 4);
    // Shadow rounds arriving after the promotion are ignored.
    assert!(
        r.observe_shadow(shadow_round(1, 1.0, 0.5), t0())?
            .is_empty()
    );
    Ok(())
}

#[test]
fn canary_is_left_only_when_the_candidate_cohort_is_not_inferior() -> TestResult {
    let cfg = RolloutConfig {
        shadow_min_baseline_samples: 0,
        canary_min_samples: 50,
        min_dwell: [std::time::Duration::ZERO; 3],
        proof: ProofConfig {
            window: 30,
            consecutive: 1,
            non_inferiority_margin: 0.02,
            ..ProofConfig::default()
        },
        slo: tuneloop_rollout::SloConfig {
            min_baseline_samples: 1_000_000,
            ..tuneloop_rollout::SloConfig::default()
        },
        ..RolloutConfig::default()
    };
    let mut r = RolloutManager::new(cfg, t0())?;
    for i in 0..30 {
        r.observe_shadow(shadow_round(i % 2, (i % 2) as f64, 0.5), t0())?;
    }
    assert_eq!(r.phase(), Phase::Canary);
    // The candidate cohort earns 0.5 on average, the baseline 0.8.
    let mut verdicts = Vec::new();
    for i in 0..2_000u64 {
        let a = r.assign(&format!("c{i}"));
        let reward = match a.cohort {
            Cohort::Candidate => (i % 2) as f64,
            Cohort::Baseline => 0.8,
        };
        r.observe_reward(a.cohort, reward)?;
        for e in r.observe(a.cohort, ok_obs(), t0())? {
            if let RolloutEvent::Verdict(v) = e {
                verdicts.push(*v);
            }
        }
    }
    assert_eq!(r.phase(), Phase::Canary, "an inferior candidate stays");
    let first = verdicts.first().ok_or("a verdict")?;
    assert_eq!(first.kind, VerdictKind::OnPolicy);
    assert!(!first.passed && first.estimate < -0.2, "{first:?}");
    // Re-evaluated once per window of new candidate observations, not on
    // every request.
    let candidates = r.monitor().summary(Cohort::Candidate).observations;
    assert!(
        verdicts.len() as u64 <= (candidates - 50) / 30 + 1,
        "{}",
        verdicts.len()
    );
    assert!(r.observe_reward(Cohort::Candidate, f64::NAN).is_err());
    Ok(())
}

#[test]
fn a_worse_candidate_stays_in_shadow_and_a_better_one_leaves() -> TestResult {
    let cfg = RolloutConfig::default();
    // Truly worse by 0.05 (0.45 against 0.5): 200 shadows of 50,000 rounds.
    let worse = simulate_proof(
        &cfg,
        &ProofSimulation {
            runs: 200,
            seed: 21,
            candidate_reward: 0.45,
            ..ProofSimulation::default()
        },
    )?;
    // Target: at most 5% exits (each window passes with probability
    // below 1%, two in a row are needed).
    assert!(worse.exits <= 10, "{worse:?}");
    let better = simulate_proof(
        &cfg,
        &ProofSimulation {
            runs: 200,
            seed: 22,
            candidate_reward: 0.6,
            ..ProofSimulation::default()
        },
    )?;
    assert!(better.exits >= 190, "{better:?}");
    println!("worse: {worse:?}\nbetter: {better:?}");
    Ok(())
}
