//! The facade's contract: learning, typed errors, isolation, persistence,
//! thread safety, logging, budgets.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tuneloop::core::{ArmSet, Features, ManualClock, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::MemoryLog;
use tuneloop::gates::{BudgetConfig, Constraints, Parameter, Rule};
use tuneloop::rollout::{Phase, RolloutConfig};
use tuneloop::{Error, Optimizer, RecommendOptions, TaskTypeConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn arms() -> Result<ArmSet, tuneloop::core::Error> {
    ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.3, 0.6, 0.9, 1.2])
        .max_tokens([256, 1024, 4096])
        .build()
}

fn clock() -> ManualClock {
    ManualClock::new(
        Utc.timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default(),
    )
}

/// Quality peaks at temperature 0.3 and 1024 tokens; deterministic.
fn outcome(p: &ParameterSet) -> TaskOutcome {
    let dk = (f64::from(p.max_tokens()) / 1024.0).log2();
    let q = (0.9 - 0.8 * (p.temperature() - 0.3).powi(2) - 0.05 * dk * dk).clamp(0.0, 1.0);
    TaskOutcome::success(q, 500.0 + 0.2 * f64::from(p.max_tokens()))
}

fn optimizer(c: &ManualClock) -> Result<Optimizer, Error> {
    Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .task_type("chat", TaskTypeConfig::new(arms()?))
        .seed(3)
        .clock(Arc::new(c.clone()))
        .build()
}

#[test]
fn it_learns_the_best_parameters() -> TestResult {
    let c = clock();
    let opt = optimizer(&c)?;
    let task = TaskFeatures::default();
    let mut late = 0;
    // Noise-free rewards; 15 arms. (UCB can alternate between the two best
    // arms for several hundred rounds on some seeds before settling.)
    for i in 0..1500 {
        let rec = opt.recommend_parameters("code", &task, &RecommendOptions::default())?;
        assert!(rec.propensity > 0.0 && rec.propensity <= 1.0);
        if i >= 1400
            && (rec.params.temperature() - 0.3).abs() < 1e-9
            && rec.params.max_tokens() == 1024
        {
            late += 1;
        }

        opt.record_outcome(rec.decision_id, &outcome(&rec.params))?;
        c.advance(Duration::seconds(1));
    }
    assert!(
        late >= 90,
        "the best arm in {late} of the last 100 decisions"
    );
    let k = opt.counters();
    assert_eq!((k.recommendations, k.outcomes), (1500, 1500));
    Ok(())
}

#[test]
fn bad_calls_are_typed_errors_and_change_nothing() -> TestResult {
    let c = clock();
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .seed(1)
        .clock(Arc::new(c.clone()))
        .decision_ttl(std::time::Duration::from_secs(60), 0.0)
        .build()?;
    let task = TaskFeatures::default();
    assert!(matches!(
        opt.recommend_parameters("nope", &task, &RecommendOptions::default()),
        Err(Error::UnknownTaskType(_))
    ));
    let rec = opt.recommend_parameters("code", &task, &RecommendOptions::default())?;
    let before = serde_json::to_string(&opt.snapshot()?)?;
    // An invalid outcome: refused, the decision still pending.
    assert!(
        opt.record_outcome(rec.decision_id, &TaskOutcome::success(1.5, 10.0))
            .is_err()
    );
    assert_eq!(opt.pending(), 1);
    // Unknown id.
    let other = tuneloop::core::DecisionId::from_u128(12345);
    assert!(matches!(
        opt.record_outcome(other, &TaskOutcome::success(0.5, 10.0)),
        Err(Error::UnknownDecision(_))
    ));
    // After its time to live: expired, nothing learned.
    c.advance(Duration::seconds(61));
    assert!(matches!(
        opt.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 10.0)),
        Err(Error::Expired(_))
    ));
    assert_eq!(serde_json::to_string(&opt.snapshot()?)?, before);
    assert_eq!(opt.sweep_expired(), 1);
    assert_eq!(opt.counters().expired, 1);
    // A second outcome for one decision.
    let rec = opt.recommend_parameters("code", &task, &RecommendOptions::default())?;
    opt.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 10.0))?;
    assert!(matches!(
        opt.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 10.0)),
        Err(Error::UnknownDecision(_))
    ));
    // Configuration errors.
    assert!(matches!(
        Optimizer::builder().build(),
        Err(Error::NoTaskTypes)
    ));
    assert!(matches!(
        Optimizer::builder()
            .task_type("a", TaskTypeConfig::new(arms()?).incumbent(99))
            .build(),
        Err(Error::IncumbentOutOfRange {
            incumbent: 99,
            arms: 15,
            ..
        })
    ));
    assert!(matches!(
        Optimizer::builder()
            .task_type("a", TaskTypeConfig::new(arms()?))
            .task_type("a", TaskTypeConfig::new(arms()?))
            .build(),
        Err(Error::DuplicateTaskType { task_type }) if task_type == "a"
    ));
    assert!(matches!(
        opt.resume_rollout("code"),
        Err(Error::NoRollout { task_type }) if task_type == "code"
    ));
    assert!(matches!(
        opt.record_external(
            "code",
            &task,
            rec.arm_id,
            1.5,
            &TaskOutcome::success(0.5, 1.0)
        ),
        Err(Error::InvalidPropensity { .. })
    ));
    let wrong_dim = Features::new(vec![1.0, 2.0])?;
    assert!(
        opt.recommend_parameters("code", &wrong_dim, &RecommendOptions::default())
            .is_err()
    );
    Ok(())
}

#[test]
fn task_types_are_isolated() -> TestResult {
    let c = clock();
    let opt = optimizer(&c)?;
    for _ in 0..50 {
        let rec = opt.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        opt.record_outcome(rec.decision_id, &outcome(&rec.params))?;
    }
    let snap = opt.snapshot()?;
    assert_eq!(snap.task_types["code"].learner.version, 50);
    assert_eq!(snap.task_types["chat"].learner.version, 0);
    Ok(())
}

#[test]
fn a_restored_optimizer_continues_exactly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.json");
    let (c1, c2) = (clock(), clock());
    let build = |c: &ManualClock| -> Result<Optimizer, Error> {
        Optimizer::builder()
            .task_type(
                "code",
                TaskTypeConfig::new(arms()?).rollout(RolloutConfig {
                    min_dwell: [std::time::Duration::ZERO; 3],
                    shadow_min_baseline_samples: 50,
                    canary_min_samples: 10,
                    guarded_min_samples: 20,
                    ..RolloutConfig::default()
                }),
            )
            .seed(9)
            .clock(Arc::new(c.clone()))
            .build()
    };
    let live = build(&c1)?;
    let mut restored: Option<Optimizer> = None;
    let task = TaskFeatures {
        title_length: 12,
        ..TaskFeatures::default()
    };
    for i in 0..400 {
        if i == 200 {
            live.save_snapshot(&path)?;
            restored = Some(
                Optimizer::builder()
                    .task_type(
                        "code",
                        TaskTypeConfig::new(arms()?).rollout(RolloutConfig {
                            min_dwell: [std::time::Duration::ZERO; 3],
                            shadow_min_baseline_samples: 50,
                            canary_min_samples: 10,
                            guarded_min_samples: 20,
                            ..RolloutConfig::default()
                        }),
                    )
                    .seed(9)
                    .clock(Arc::new(c2.clone()))
                    .restore(tuneloop::OptimizerSnapshot::load(&path)?)
                    .build()?,
            );
        }
        let a = live.recommend_parameters(
            "code",
            &task,
            &RecommendOptions {
                key: Some(&format!("u{i}")),
                ..RecommendOptions::default()
            },
        )?;
        if let Some(r) = &restored {
            let b = r.recommend_parameters(
                "code",
                &task,
                &RecommendOptions {
                    key: Some(&format!("u{i}")),
                    ..RecommendOptions::default()
                },
            )?;
            // The same choices; the ids differ, as two processes' must.
            assert_eq!((a.arm, a.cohort), (b.arm, b.cohort), "round {i}");
            assert_ne!(a.decision_id, b.decision_id);
            assert!((a.propensity - b.propensity).abs() < 1e-15);
            r.record_outcome(b.decision_id, &outcome(&b.params))?;
        }
        live.record_outcome(a.decision_id, &outcome(&a.params))?;
        c1.advance(Duration::seconds(1));
        c2.advance(Duration::seconds(1));
    }
    assert_eq!(
        live.phase("code")?,
        restored.ok_or("restored")?.phase("code")?
    );
    Ok(())
}

#[test]
fn many_threads_lose_no_update() -> TestResult {
    let log = Arc::new(MemoryLog::new());
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .seed(5)
        .decision_log(log.clone())
        .build()?;
    let threads = 8;
    let per = 500;
    std::thread::scope(|s| {
        for t in 0..threads {
            let opt = opt.clone();
            s.spawn(move || {
                for i in 0..per {
                    let task = TaskFeatures {
                        title_length: (t * per + i) as u64 % 97,
                        ..TaskFeatures::default()
                    };
                    let rec = opt
                        .recommend_parameters("code", &task, &RecommendOptions::default())
                        .unwrap_or_else(|e| panic!("{e}"));
                    opt.record_outcome(rec.decision_id, &outcome(&rec.params))
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    let n = (threads * per) as u64;
    let k = opt.counters();
    assert_eq!((k.recommendations, k.outcomes, k.log_dropped), (n, n, 0));
    assert_eq!(
        opt.snapshot()?.task_types["code"].learner.version,
        n,
        "every update applied once"
    );
    assert_eq!(opt.pending(), 0);
    drop(opt); // flushes the log writer
    let records = log.records();
    assert_eq!(records.len() as u64, n);
    for r in &records {
        assert!(
            r.propensity > 0.0 && r.eligible.contains(&r.arm) && r.resolution.reward().is_some()
        );
    }
    let mut ids: Vec<_> = records.iter().map(|r| r.decision_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, n, "decision ids are unique");
    Ok(())
}

#[test]
fn budgets_and_request_constraints_restrict_the_choice() -> TestResult {
    let c = clock();
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .budget(BudgetConfig {
            token_limit: Some(5_000),
            ..BudgetConfig::default()
        })
        .seed(2)
        .clock(Arc::new(c.clone()))
        .build()?;
    let task = TaskFeatures {
        prompt_tokens: 500,
        ..TaskFeatures::default()
    };
    let cold = Constraints::new(vec![Rule::ParameterRange {
        task_type: None,
        parameter: Parameter::Temperature,
        min: None,
        max: Some(0.3),
    }]);
    let rec = opt.recommend_parameters(
        "code",
        &task,
        &RecommendOptions {
            key: None,
            constraints: Some(&cold),
        },
    )?;
    assert!(rec.params.temperature() <= 0.3 + 1e-12);
    assert!(rec.reasons.iter().any(|r| r.gate == "constraints"));
    opt.record_outcome(rec.decision_id, &outcome(&rec.params).with_tokens(500, 200))?;
    // Spend the budget down: arms that would pass it are excluded, then nothing fits.
    let mut refused = false;
    for _ in 0..20 {
        match opt.recommend_parameters("code", &task, &RecommendOptions::default()) {
            Ok(rec) => {
                assert!(500 + u64::from(rec.params.max_tokens()) <= 5_000);
                opt.record_outcome(
                    rec.decision_id,
                    &outcome(&rec.params).with_tokens(500, u64::from(rec.params.max_tokens())),
                )?;
            }
            Err(Error::Gates(_)) => {
                refused = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    assert!(refused, "an exhausted budget refuses, typed");
    // The spend survives a snapshot: a restored optimizer is just as short.
    let snap = opt.snapshot()?;
    assert!(snap.budget.as_ref().is_some_and(|b| b.spent_tokens > 0));
    let restored = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .budget(BudgetConfig {
            token_limit: Some(5_000),
            ..BudgetConfig::default()
        })
        .seed(2)
        .clock(Arc::new(c.clone()))
        .restore(snap)
        .build()?;
    assert!(matches!(
        restored.recommend_parameters("code", &task, &RecommendOptions::default()),
        Err(Error::Gates(_))
    ));
    Ok(())
}

#[test]
fn a_better_candidate_proves_itself_and_reaches_general() -> TestResult {
    let c = clock();
    let cfg = RolloutConfig {
        min_dwell: [10, 10, 10].map(std::time::Duration::from_secs),
        shadow_min_baseline_samples: 100,
        canary_min_samples: 50,
        guarded_min_samples: 100,
        ..RolloutConfig::default()
    };
    let chain = Arc::new(std::sync::Mutex::new(
        tuneloop::gates::Provenance::in_memory(),
    ));
    let opt = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms()?).incumbent(4).rollout(cfg),
        )
        .seed(4)
        .clock(Arc::new(c.clone()))
        .provenance(chain.clone())
        .build()?;
    assert_eq!(opt.phase("code")?, Some(Phase::Shadow));
    for i in 0..20_000 {
        let rec = opt.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions {
                key: Some(&format!("user-{i}")),
                ..RecommendOptions::default()
            },
        )?;
        if i < 50 {
            assert!(
                rec.shadow_arm.is_some(),
                "shadow: the learner's choice is computed"
            );
        }
        // The incumbent (arm 4) earns 0.6, every other arm 0.8.
        let quality = if rec.arm == 4 { 0.6 } else { 0.8 };
        opt.record_outcome(rec.decision_id, &TaskOutcome::success(quality, 700.0))?;
        c.advance(Duration::seconds(1));
        if opt.phase("code")? == Some(Phase::General) {
            assert_eq!(opt.counters().promotions, 3);
            // Shadow was left on two passing off-policy windows, canary
            // and guarded on on-policy verdicts.
            let status = opt.rollout_status("code")?.ok_or("a rollout")?;
            let verdict = status.last_verdict.ok_or("a verdict")?;
            assert!(verdict.passed, "{verdict:?}");
            // Every verdict and promotion is in the provenance chain, which
            // verifies.
            let chain = chain.lock().map_err(|_| "poisoned")?;
            let records = chain.records();
            tuneloop::gates::provenance::verify(records)?;
            let count = |actor: &str| records.iter().filter(|r| r.change.actor == actor).count();
            assert_eq!(count("rollout"), 3, "three promotions");
            assert!(
                count("rollout proof") >= 4,
                "two shadow windows, two on-policy verdicts"
            );
            let first = records
                .iter()
                .find(|r| r.change.actor == "rollout proof")
                .ok_or("a verdict record")?;
            assert_eq!(first.change.details["event"]["event"], "verdict");
            assert_eq!(first.change.details["task_type"], "code");
            return Ok(());
        }
    }
    Err("never reached general".into())
}

#[cfg(feature = "router")]
#[test]
fn the_scorecard_travels_with_snapshots() -> TestResult {
    use std::time::Duration as StdDuration;
    use tuneloop::providers::{Scorecard, ScorecardConfig};
    let sc = Arc::new(Scorecard::in_memory(ScorecardConfig::default()));
    sc.record(
        "cloud",
        "m",
        "code",
        true,
        StdDuration::from_millis(800),
        0.002,
    );
    sc.verify("cloud", "m", "code", true);
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .scorecard(sc.clone())
        .seed(1)
        .build()?;
    let json = serde_json::to_string(&opt.snapshot()?)?;
    let fresh = Arc::new(Scorecard::in_memory(ScorecardConfig::default()));
    Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .scorecard(fresh.clone())
        .restore(serde_json::from_str(&json)?)
        .build()?;
    assert_eq!(
        fresh.entry("cloud", "m", "code"),
        sc.entry("cloud", "m", "code")
    );
    Ok(())
}

#[test]
fn two_processes_with_one_seed_choose_alike_under_distinct_ids() -> TestResult {
    // Two optimizers built alike stand for two processes of one fleet.
    let build = || {
        Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms()?))
            .seed(7)
            .clock(Arc::new(clock()))
            .build()
    };
    let (a, b) = (build()?, build()?);
    let task = TaskFeatures::default();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let ra = a.recommend_parameters("code", &task, &RecommendOptions::default())?;
        let rb = b.recommend_parameters("code", &task, &RecommendOptions::default())?;
        assert_eq!(
            (ra.arm, ra.propensity.to_bits()),
            (rb.arm, rb.propensity.to_bits())
        );
        a.record_outcome(ra.decision_id, &outcome(&ra.params))?;
        b.record_outcome(rb.decision_id, &outcome(&rb.params))?;
        ids.extend([ra.decision_id, rb.decision_id]);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "no id is shared between the two processes");
    Ok(())
}

#[test]
fn decision_ttls_out_of_range_are_errors_and_the_longest_one_works() -> TestResult {
    use std::time::Duration as Std;
    let with_ttl = |ttl: Std, default: f64| {
        Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms()?))
            .seed(1)
            .clock(Arc::new(clock()))
            .decision_ttl(ttl, default)
            .build()
    };
    for (ttl, default) in [
        (Std::MAX, 0.0),
        (Std::ZERO, 0.0),
        (Std::from_secs(1), f64::NAN),
    ] {
        assert!(matches!(
            with_ttl(ttl, default),
            Err(Error::InvalidSetting { field, .. }) if field == "decision_ttl"
        ));
    }
    // 10^13 s: past chrono's range from now, so the deadline never comes.
    let opt = with_ttl(Std::from_secs(10_000_000_000_000), 0.0)?;
    let rec = opt.recommend_parameters(
        "code",
        &TaskFeatures::default(),
        &RecommendOptions::default(),
    )?;
    opt.record_outcome(rec.decision_id, &outcome(&rec.params))?;
    assert_eq!(opt.sweep_expired(), 0);
    Ok(())
}

#[test]
fn under_contention_the_budget_refuses_only_when_no_arm_fits() -> TestResult {
    // Eight threads reserve (never commit) until the budget is gone. An arm
    // the budget gate let through must still fit when it is reserved: the
    // only refusal is "nothing eligible", after which nothing fits.
    for round in 0..10 {
        let opt = Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms()?))
            .budget(BudgetConfig {
                token_limit: Some(150_000),
                ..BudgetConfig::default()
            })
            .seed(round)
            .clock(Arc::new(clock()))
            .build()?;
        std::thread::scope(|s| {
            for _ in 0..8 {
                let opt = &opt;
                s.spawn(move || {
                    loop {
                        match opt.recommend_parameters(
                            "code",
                            &TaskFeatures::default(),
                            &RecommendOptions::default(),
                        ) {
                            Ok(_) => {}
                            Err(Error::Gates(tuneloop::gates::Error::NothingEligible {
                                ..
                            })) => break,
                            Err(e) => panic!("refused although an arm fit: {e}"),
                        }
                    }
                });
            }
        });
        // 150,000 tokens hold at least 36 of the largest reservations.
        assert!(opt.pending() >= 36);
        assert!(matches!(
            opt.recommend_parameters(
                "code",
                &TaskFeatures::default(),
                &RecommendOptions::default()
            ),
            Err(Error::Gates(tuneloop::gates::Error::NothingEligible { .. }))
        ));
    }
    Ok(())
}

#[test]
fn rollout_dwells_out_of_range_are_refused_in_code_and_in_snapshots() -> TestResult {
    let with = |rollout: RolloutConfig| {
        Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms()?).rollout(rollout))
            .seed(1)
            .clock(Arc::new(clock()))
            .build()
    };
    let huge = RolloutConfig {
        min_dwell: [std::time::Duration::MAX; 3],
        ..RolloutConfig::default()
    };
    assert!(matches!(
        with(huge),
        Err(Error::Rollout(tuneloop::rollout::Error::InvalidSetting {
            field: "min_dwell",
            ..
        }))
    ));
    // In a snapshot file: negative, beyond 100 years, or not a number.
    let json = serde_json::to_value(with(RolloutConfig::default())?.snapshot()?)?;
    for bad in [
        serde_json::json!([-1, 0, 0]),
        serde_json::json!([4e9, 0, 0]),
        serde_json::json!([1e300, 0, 0]),
    ] {
        let mut j = json.clone();
        j["task_types"]["code"]["rollout"]["config"]["min_dwell_seconds"] = bad;
        assert!(serde_json::from_value::<tuneloop::OptimizerSnapshot>(j).is_err());
    }
    Ok(())
}

/// A sink that takes a millisecond a record, as a slow disk would.
#[derive(Debug, Default)]
struct SlowLog(MemoryLog);

impl tuneloop::counterfactual::DecisionLog for SlowLog {
    fn append(
        &self,
        record: &tuneloop::counterfactual::LoggedDecision,
    ) -> tuneloop::counterfactual::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        self.0.append(record)
    }
}

#[test]
fn flush_log_returns_when_every_earlier_record_is_in_the_sink() -> TestResult {
    let c = clock();
    let log = Arc::new(SlowLog::default());
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .seed(3)
        .clock(Arc::new(c.clone()))
        .decision_log(log.clone())
        .build()?;
    for round in 1..=3 {
        for _ in 0..40 {
            let rec = opt.recommend_parameters(
                "code",
                &TaskFeatures::default(),
                &RecommendOptions::default(),
            )?;
            opt.record_outcome(rec.decision_id, &outcome(&rec.params))?;
        }
        // The writer is 40 ms behind; the flush waits for it, the optimizer
        // stays alive.
        opt.flush_log();
        assert_eq!(log.0.records().len(), 40 * round);
    }
    assert_eq!(opt.counters().log_dropped, 0);
    Ok(())
}

/// What it learned, against the closed form: each arm's count, mean
/// reward and normal 95% interval `mean ± 1.959964·s/√n` of the rewards
/// recorded for it (reward = quality here), kept across a snapshot.
#[test]
fn what_it_learned_is_each_arms_tally_and_its_choice() -> TestResult {
    use tuneloop::core::RewardFunction;
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let ids: Vec<_> = arms.iter().map(|a| a.id).collect();
    let build = |snapshot: Option<tuneloop::OptimizerSnapshot>| -> Result<Optimizer, Error> {
        let mut b = Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms.clone()))
            .reward(
                RewardFunction::builder()
                    .quality_weight(1.0)
                    .latency_weight(0.0)
                    .cost_weight(0.0)
                    .build()?,
            )
            .seed(2);
        if let Some(s) = snapshot {
            b = b.restore(s);
        }
        b.build()
    };
    let opt = build(None)?;
    let task = TaskFeatures::default();
    for (arm, q) in [(0, 0.2), (0, 0.4), (0, 0.6), (1, 1.0), (1, 0.0), (2, 0.9)] {
        opt.record_external("code", &task, ids[arm], 0.5, &TaskOutcome::success(q, 10.0))?;
    }
    let check = |opt: &Optimizer| -> TestResult {
        let l = opt.learned("code", &task)?;
        let tol = 1e-12;
        let a0 = &l.arms[0];
        assert_eq!(a0.tally.outcomes, 3);
        assert!((a0.mean_reward.ok_or("mean")? - 0.4).abs() < tol);
        let half = 1.959_963_984_540_054 * 0.2 / 3f64.sqrt();
        let (lo, hi) = a0.interval_95.ok_or("interval")?;
        assert!((lo - (0.4 - half)).abs() < tol && (hi - (0.4 + half)).abs() < tol);
        // Arm 1: mean 0.5, s = √0.5, half-width 0.98: clamped to [0, 1].
        assert_eq!(l.arms[1].interval_95, Some((0.0, 1.0)));
        // Arm 2: one outcome, no interval.
        assert_eq!(l.arms[2].tally.outcomes, 1);
        assert_eq!(l.arms[2].interval_95, None);
        let total: f64 = l.arms.iter().map(|a| a.probability).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let most = l
            .arms
            .iter()
            .map(|a| a.probability)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!((l.arms[l.choice].probability - most).abs() < 1e-12);
        Ok(())
    };
    check(&opt)?;
    check(&build(Some(opt.snapshot()?))?)?;
    Ok(())
}
