//! Scenario tests of the gates.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use tuneloop_core::{ArmSet, DecisionId, RiskTier};
use tuneloop_gates::{
    Allowance, Budget, BudgetConfig, BudgetGate, Change, ChangeKind, Condition, Constraints, Error,
    GateChain, GateContext, Parameter, Price, Provenance, QualityFloor, QualityFloorConfig, Reason,
    Rule, TrustRegion, Window,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default()
}

fn ctx(incumbent: Option<usize>) -> GateContext<'static> {
    GateContext {
        task_type: "code",
        risk_tier: RiskTier::Low,
        incumbent,
        prompt_tokens: 1000,
        now: t0(),
    }
}

fn grid() -> Result<ArmSet, tuneloop_core::Error> {
    ArmSet::grid()
        .models(["small", "large"])
        .temperatures([0.0, 0.2, 0.5, 1.0])
        .max_tokens([256, 512, 2048])
        .build()
}

#[test]
fn trust_region_caps_each_parameter_and_model_switches() -> TestResult {
    let arms = grid()?;
    // Incumbent: small, temperature 0.2, 512 tokens.
    let inc = arms
        .iter()
        .position(|a| {
            a.params.model() == "small"
                && (a.params.temperature() - 0.2).abs() < 1e-9
                && a.params.max_tokens() == 512
        })
        .ok_or("incumbent")?;
    let chain = GateChain::new().with(TrustRegion::default());
    let e = chain.evaluate(&ctx(Some(inc)), &arms, &arms.all_indices())?;
    for &a in &e.eligible {
        let p = &arms.arm(a)?.params;
        assert_eq!(p.model(), "small");
        assert!((p.temperature() - 0.2).abs() <= 0.2 + 1e-9);
        assert!((f64::from(p.max_tokens()) - 512.0).abs() <= 200.0);
    }
    // small × {0.0, 0.2} × {512}: 2 arms; the rest excluded with reasons.
    assert_eq!(e.eligible.len(), 2);
    assert!(e.excluded.iter().any(|x| x.reason == Reason::ModelSwitch));
    assert!(e.excluded.iter().any(|x| matches!(
        x.reason,
        Reason::TrustRegion {
            parameter: Parameter::MaxTokens,
            ..
        }
    )));
    // With the large model configured, switching is allowed.
    let chain = GateChain::new().with(TrustRegion {
        models: vec!["large".into()],
        ..TrustRegion::default()
    });
    assert_eq!(
        chain
            .evaluate(&ctx(Some(inc)), &arms, &arms.all_indices())?
            .eligible
            .len(),
        4
    );
    // No incumbent: the region has nothing to be relative to.
    assert_eq!(
        chain
            .evaluate(&ctx(None), &arms, &arms.all_indices())?
            .eligible
            .len(),
        arms.len()
    );
    assert!(
        TrustRegion {
            temperature: f64::NAN,
            ..TrustRegion::default()
        }
        .check()
        .is_err()
    );
    Ok(())
}

#[test]
fn quality_floor_excludes_bad_arms_and_falls_back_to_the_incumbent() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let floor = QualityFloor::new(QualityFloorConfig {
        default_floor: 0.6,
        ..QualityFloorConfig::default()
    })?;
    let ids: Vec<_> = arms.iter().map(|a| a.id).collect();
    // Arm 0 is good, arm 1 bad, arm 2 bad but still exploring (5 < 10 samples).
    for i in 0..30 {
        floor.observe("code", ids[0], 0.8 + 0.01 * f64::from(i % 3))?;
        floor.observe("code", ids[1], 0.3)?;
    }
    for _ in 0..5 {
        floor.observe("code", ids[2], 0.1)?;
    }
    let floor = Arc::new(floor);
    let chain = GateChain::new().with(floor.clone());
    let e = chain.evaluate(&ctx(Some(0)), &arms, &arms.all_indices())?;
    assert_eq!(e.eligible, vec![0, 2]);
    assert!(matches!(
        e.excluded[0].reason,
        Reason::BelowQualityFloor { samples: 30, .. }
    ));
    // Everything below the floor: the incumbent alone, flagged.
    for _ in 0..30 {
        floor.observe("code", ids[0], 0.2)?;
        floor.observe("code", ids[2], 0.1)?;
    }
    let e = chain.evaluate(&ctx(Some(0)), &arms, &arms.all_indices())?;
    assert_eq!(e.eligible, vec![0]);
    assert!(e.fell_back_to_incumbent);
    // No incumbent: a typed error, never an empty set.
    match chain.evaluate(&ctx(None), &arms, &arms.all_indices()) {
        Err(e @ Error::NothingEligible { excluded: 3, .. }) => {
            // The refusal names the gate and its reason.
            let message = e.to_string();
            assert!(
                message.contains("quality_floor: quality lower bound"),
                "{message}"
            );
        }
        other => return Err(format!("{other:?}").into()),
    }
    // Bad input.
    assert!(floor.observe("code", ids[0], 1.5).is_err());
    assert!(
        QualityFloor::new(QualityFloorConfig {
            default_floor: f64::NAN,
            ..Default::default()
        })
        .is_err()
    );
    let strict = QualityFloor::new(QualityFloorConfig {
        allow_unknown_task_types: false,
        ..Default::default()
    })?;
    assert!(matches!(
        strict.floor("nope"),
        Err(Error::UnknownTaskType(_))
    ));
    Ok(())
}

#[test]
fn hard_gates_are_never_crossed_by_the_fallback() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    // Every arm breaks a hard rule; the incumbent too.
    let chain = GateChain::new().with(Constraints::new(vec![Rule::ParameterRange {
        task_type: None,
        parameter: Parameter::Temperature,
        min: Some(0.1),
        max: Some(0.9),
    }]));
    assert!(matches!(
        chain.evaluate(&ctx(Some(0)), &arms, &arms.all_indices()),
        Err(Error::NothingEligible { .. })
    ));
    Ok(())
}

#[test]
fn budget_restricts_to_arms_that_fit() -> TestResult {
    let arms = grid()?;
    let mut prices = std::collections::HashMap::new();
    prices.insert(
        "small".to_owned(),
        Price {
            prompt_per_1k_usd: 0.1,
            completion_per_1k_usd: 0.2,
        },
    );
    prices.insert(
        "large".to_owned(),
        Price {
            prompt_per_1k_usd: 1.0,
            completion_per_1k_usd: 2.0,
        },
    );
    let budget = Arc::new(Budget::new(BudgetConfig {
        cost_limit_usd: Some(1.0),
        prices,
        ..BudgetConfig::default()
    })?);
    // Spend $0.99: only arms costing ≤ $0.01 remain... none; $0.7 spent leaves $0.3.
    budget.reserve(DecisionId::from_u128(1), 0, 0.7, t0())?;
    budget.commit(DecisionId::from_u128(1), 0, 0.7, t0())?;
    let chain = GateChain::new().with(BudgetGate::new(budget.clone()));
    let e = chain.evaluate(&ctx(None), &arms, &arms.all_indices())?;
    // small: 1000 prompt tokens $0.1 + completion ≤ 2048 × $0.2/1k ≤ $0.41 → 256 ($0.15), 512 ($0.20) fit, 2048 ($0.51) does not.
    // large: prompt alone costs $1.0: nothing fits.
    for &a in &e.eligible {
        let p = &arms.arm(a)?.params;
        assert!(p.model() == "small" && p.max_tokens() <= 512, "{p:?}");
    }
    assert_eq!(e.eligible.len(), 8);
    assert!(
        e.excluded
            .iter()
            .all(|x| matches!(x.reason, Reason::OverBudget { tokens: false, .. }))
    );
    // A model without a price is an error when cost is limited.
    let unpriced = ArmSet::grid().models(["other"]).build()?;
    assert!(matches!(
        chain.evaluate(&ctx(None), &unpriced, &[0]),
        Err(Error::UnknownModel(_))
    ));
    Ok(())
}

#[test]
fn budget_is_never_overspent_under_concurrency() -> TestResult {
    let budget = Arc::new(Budget::new(BudgetConfig {
        token_limit: Some(1_000_000),
        cost_limit_usd: Some(50.0),
        ..BudgetConfig::default()
    })?);
    let threads = 8;
    let per_thread = 5_000u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            let budget = budget.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    let id = DecisionId::from_u128(u128::from(t * per_thread + i));
                    let tokens = 100 + (i * 37 + t) % 400;
                    let cost = tokens as f64 * 1e-4;
                    if budget.reserve(id, tokens, cost, t0()).is_ok() {
                        // Actual usage at most the reservation; sometimes released.
                        if i % 5 == 0 {
                            let _ = budget.release(id, t0());
                        } else {
                            let _ = budget.commit(id, tokens * 9 / 10, cost * 0.9, t0());
                        }
                    }
                    let u = budget.usage(t0());
                    assert!(u.spent_cost_usd >= 0.0 && u.reserved_cost_usd >= -1e-9);
                }
            });
        }
    });
    let u = budget.usage(t0());
    assert!(u.spent_tokens + u.reserved_tokens <= 1_000_000, "{u:?}");
    assert!(
        u.spent_cost_usd + u.reserved_cost_usd <= 50.0 + 1e-9,
        "{u:?}"
    );
    assert_eq!(
        u.reserved_tokens, 0,
        "every reservation was committed or released"
    );
    // The demand (8 × 5000 × ~300 tokens ≈ 12M) far exceeds the limit: it
    // was reached, within one reservation's size.
    assert!(
        u.remaining_tokens.unwrap_or(0) < 500 || u.remaining_cost_usd.unwrap_or(0.0) < 0.05,
        "{u:?}"
    );
    Ok(())
}

#[test]
fn budget_windows_reservations_and_bad_input() -> TestResult {
    let cfg = BudgetConfig {
        token_limit: Some(1000),
        window: Window::Calendar {
            length: std::time::Duration::from_secs(86_400),
        },
        reservation_ttl: std::time::Duration::from_secs(60),
        ..BudgetConfig::default()
    };
    let b = Budget::new(cfg.clone())?;
    b.reserve(DecisionId::from_u128(1), 800, 0.0, t0())?;
    assert!(b.usage(t0()).soft_limit_reached, "80% reserved");
    assert!(matches!(
        b.reserve(DecisionId::from_u128(2), 300, 0.0, t0()),
        Err(Error::OverBudget {
            resource: "tokens",
            ..
        })
    ));
    assert!(matches!(
        b.reserve(DecisionId::from_u128(1), 1, 0.0, t0()),
        Err(Error::DuplicateReservation(_))
    ));
    // The reservation expires after 60 s and is released, not spent.
    let later = t0() + Duration::seconds(61);
    assert_eq!(b.usage(later).remaining_tokens, Some(1000));
    assert!(matches!(
        b.commit(DecisionId::from_u128(1), 10, 0.0, later),
        Err(Error::UnknownReservation(_))
    ));
    // Spend, then a new calendar day starts from zero; a clock going back
    // does not reopen the old day.
    b.reserve(DecisionId::from_u128(3), 900, 0.0, later)?;
    b.commit(DecisionId::from_u128(3), 1200, 0.0, later)?; // actual beyond the reservation
    assert_eq!(b.usage(later).remaining_tokens, Some(0), "never negative");
    let tomorrow = t0() + Duration::days(1);
    assert_eq!(b.usage(tomorrow).remaining_tokens, Some(1000));
    assert_eq!(b.usage(t0()).remaining_tokens, Some(1000));
    // Rolling window: spend leaves the window after its length.
    let r = Budget::new(BudgetConfig {
        token_limit: Some(100),
        window: Window::Rolling {
            length: std::time::Duration::from_secs(3600),
        },
        ..BudgetConfig::default()
    })?;
    r.reserve(DecisionId::from_u128(9), 100, 0.0, t0())?;
    r.commit(DecisionId::from_u128(9), 100, 0.0, t0())?;
    assert_eq!(
        r.usage(t0() + Duration::minutes(59)).remaining_tokens,
        Some(0)
    );
    assert_eq!(
        r.usage(t0() + Duration::minutes(61)).remaining_tokens,
        Some(100)
    );
    // Bad settings are named.
    for (bad, field) in [
        (
            BudgetConfig {
                cost_limit_usd: Some(f64::NAN),
                ..cfg.clone()
            },
            "cost_limit_usd",
        ),
        (
            BudgetConfig {
                cost_limit_usd: Some(-1.0),
                ..cfg.clone()
            },
            "cost_limit_usd",
        ),
        (
            BudgetConfig {
                soft_fraction: 1.5,
                ..cfg.clone()
            },
            "soft_fraction",
        ),
        (
            BudgetConfig {
                window: Window::Rolling {
                    length: std::time::Duration::ZERO,
                },
                ..cfg.clone()
            },
            "window.seconds",
        ),
    ] {
        assert!(
            matches!(Budget::new(bad), Err(Error::InvalidSetting { field: f, .. }) if f == field),
            "{field}"
        );
    }
    assert!(matches!(
        b.reserve(DecisionId::from_u128(4), 1, f64::NAN, t0()),
        Err(Error::InvalidSetting { field: "cost", .. })
    ));
    Ok(())
}

#[test]
fn provenance_detects_edits_drops_and_reordering() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("provenance.jsonl");
    let mut p = Provenance::open(&path)?;
    for i in 0..5 {
        p.record(
            Change {
                actor: "optimizer".into(),
                kind: ChangeKind::PolicyVersion,
                reason: format!("promotion {i}"),
                version: format!("v{i}"),
                approval: None,
                details: serde_json::json!({"gain": 0.01 * f64::from(i)}),
            },
            t0() + Duration::seconds(i64::from(i)),
        )?;
    }
    let records = p.records().to_vec();
    tuneloop_gates::provenance::verify(&records)?;
    // Reopen: the persisted chain verifies and continues.
    drop(p);
    let mut again = Provenance::open(&path)?;
    assert_eq!(again.records(), records.as_slice());
    again.record(
        Change {
            actor: "alice".into(),
            kind: ChangeKind::Configuration,
            reason: "raise floor".into(),
            version: "c2".into(),
            approval: None,
            details: serde_json::Value::Null,
        },
        t0(),
    )?;
    let mut edited = records.clone();
    edited[2].change.reason = "nothing to see".into();
    let mut dropped = records.clone();
    dropped.remove(3);
    let mut reordered = records.clone();
    reordered.swap(1, 2);
    let mut relinked = records.clone();
    relinked[4].prev_hash = records[2].hash.clone();
    for (name, chain, seq) in [
        ("edited", edited, 2),
        ("dropped", dropped, 4),
        ("reordered", reordered, 2),
        ("relinked", relinked, 4),
    ] {
        match tuneloop_gates::provenance::verify(&chain) {
            Err(Error::Tampered { seq: s, .. }) => assert_eq!(s, seq, "{name}"),
            other => panic!("{name}: expected tampering to be found, got {other:?}"),
        }
    }
    // A tampered file refuses to open.
    let text = std::fs::read_to_string(&path)?.replace("promotion 1", "promotion 9");
    std::fs::write(&path, text)?;
    assert!(matches!(
        Provenance::open(&path),
        Err(Error::Tampered { seq: 1, .. })
    ));
    Ok(())
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    let model = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned())
    ];
    let param = prop_oneof![
        Just(Parameter::Temperature),
        Just(Parameter::MaxTokens),
        Just(Parameter::TopP)
    ];
    let task = prop_oneof![
        Just(None),
        Just(Some("code".to_owned())),
        Just(Some("chat".to_owned()))
    ];
    let tier = prop_oneof![
        Just(None),
        Just(Some(RiskTier::Low)),
        Just(Some(RiskTier::High))
    ];
    prop_oneof![
        (tier, proptest::collection::vec(model.clone(), 1..3))
            .prop_map(|(risk_tier, models)| Rule::AllowedModels { risk_tier, models }),
        (
            task.clone(),
            param.clone(),
            proptest::option::of(0.0f64..2.0),
            proptest::option::of(0.0f64..2000.0)
        )
            .prop_map(|(task_type, parameter, min, max)| {
                let (min, max) = match (min, max) {
                    (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                    other => other,
                };
                Rule::ParameterRange {
                    task_type,
                    parameter,
                    min,
                    max,
                }
            }),
        (task, model, param, 0.0f64..1500.0).prop_map(|(task_type, model, parameter, value)| {
            Rule::Forbidden {
                task_type,
                when: vec![
                    Condition::ModelIs { model },
                    Condition::Above { parameter, value },
                ],
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn every_arm_that_passes_satisfies_every_hard_rule(
        rules in proptest::collection::vec(arb_rule(), 0..5),
        temps in proptest::collection::vec(0.0f64..2.0, 1..4),
        tokens in proptest::collection::vec(1u32..3000, 1..3),
        models in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..3),
        incumbent in 0usize..40,
        high in any::<bool>(),
    ) {
        let arms = ArmSet::grid().models(models).temperatures(temps).max_tokens(tokens).build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let constraints = Constraints::new(rules.clone());
        let chain = GateChain::new().with(constraints).with(TrustRegion::default());
        let c = GateContext {
            task_type: "code",
            risk_tier: if high { RiskTier::High } else { RiskTier::Low },
            incumbent: Some(incumbent % arms.len()),
            prompt_tokens: 0,
            now: t0(),
        };
        match chain.evaluate(&c, &arms, &arms.all_indices()) {
            Ok(e) => {
                prop_assert!(!e.eligible.is_empty());
                for &a in &e.eligible {
                    let p = &arms.arm(a).map_err(|e| TestCaseError::fail(e.to_string()))?.params;
                    for r in &rules {
                        prop_assert!(r.allows("code", c.risk_tier, p), "{:?} breaks {:?}", p, r);
                    }
                }
            }
            Err(Error::NothingEligible { .. }) => {
                // Then every arm really breaks a rule or (for the incumbent)
                // a rule too.
                let inc = &arms.arm(incumbent % arms.len()).map_err(|e| TestCaseError::fail(e.to_string()))?.params;
                prop_assert!(rules.iter().any(|r| !r.allows("code", c.risk_tier, inc)));
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn remembered_verdicts_stay_per_task_type_and_risk_tier() -> TestResult {
    let arms = ArmSet::grid()
        .models(["a", "b"])
        .temperatures([0.2, 0.8])
        .build()?;
    let chain = GateChain::new().with(Constraints::new(vec![
        Rule::ParameterRange {
            task_type: Some("code".into()),
            parameter: Parameter::Temperature,
            min: None,
            max: Some(0.5),
        },
        Rule::AllowedModels {
            risk_tier: Some(RiskTier::High),
            models: vec!["a".into()],
        },
    ]));
    let at = |task: &'static str, tier: RiskTier| GateContext {
        task_type: task,
        risk_tier: tier,
        incumbent: None,
        prompt_tokens: 0,
        now: t0(),
    };
    // Asked twice each, in an interleaved order: the memo must not mix them.
    for _ in 0..2 {
        assert_eq!(
            chain
                .evaluate(&at("code", RiskTier::Low), &arms, &arms.all_indices())?
                .eligible
                .len(),
            2
        );
        assert_eq!(
            chain
                .evaluate(&at("chat", RiskTier::Low), &arms, &arms.all_indices())?
                .eligible
                .len(),
            4
        );
        assert_eq!(
            chain
                .evaluate(&at("chat", RiskTier::High), &arms, &arms.all_indices())?
                .eligible
                .len(),
            2
        );
        assert_eq!(
            chain
                .evaluate(&at("code", RiskTier::High), &arms, &arms.all_indices())?
                .eligible
                .len(),
            1
        );
    }
    Ok(())
}

#[test]
fn provenance_refuses_details_it_could_not_read_back_and_survives_a_torn_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("provenance.jsonl");
    let change = |details: serde_json::Value| Change {
        actor: "optimizer".into(),
        kind: ChangeKind::Configuration,
        reason: "test".into(),
        version: "v1".into(),
        approval: None,
        details,
    };
    let mut p = Provenance::open(&path)?;
    p.record(change(serde_json::json!({"a": 1})), t0())?;
    // Details nested 200 deep: refused, and the chain still reopens.
    let mut deep = serde_json::json!(1);
    for _ in 0..200 {
        deep = serde_json::json!([deep]);
    }
    assert!(matches!(
        p.record(change(deep), t0()),
        Err(Error::InvalidSetting {
            field: "details",
            ..
        })
    ));
    p.record(change(serde_json::json!({"b": 2})), t0())?;
    drop(p);
    assert_eq!(Provenance::open(&path)?.records().len(), 2);
    // A crash mid-write: half a record without a line break at the end.
    let good = std::fs::read(&path)?;
    let mut torn = good.clone();
    torn.extend_from_slice(&good[..good.len() / 3]);
    std::fs::write(&path, &torn)?;
    let mut p = Provenance::open(&path)?;
    assert_eq!(p.records().len(), 2);
    p.record(change(serde_json::json!({"c": 3})), t0())?;
    drop(p);
    let again = Provenance::open(&path)?;
    assert_eq!(
        again.records().len(),
        3,
        "the torn tail was cut, not continued"
    );
    Ok(())
}

#[test]
fn an_allowance_limits_reservations_to_what_the_fleet_granted() -> TestResult {
    let budget = Budget::new(BudgetConfig {
        token_limit: Some(10_000),
        ..Default::default()
    })?;
    let now = t0();
    let (window, usage) = budget.window_usage(now);
    let window = window.ok_or("a calendar window")?;
    assert_eq!(usage.remaining_tokens, Some(10_000));
    budget.set_allowance(Allowance {
        window_start: window,
        tokens: Some(1_000),
        cost_usd: None,
    })?;
    // 1,000 granted: 600 fits, another 600 does not.
    budget.reserve(DecisionId::from_u128(1), 600, 0.0, now)?;
    assert!(
        budget
            .reserve(DecisionId::from_u128(2), 600, 0.0, now)
            .is_err()
    );
    budget.commit(DecisionId::from_u128(1), 500, 0.0, now)?;
    assert_eq!(budget.usage(now).remaining_tokens, Some(500));
    // A grant larger than the limit is held to the limit.
    budget.set_allowance(Allowance {
        window_start: window,
        tokens: Some(50_000),
        cost_usd: None,
    })?;
    assert_eq!(budget.usage(now).remaining_tokens, Some(9_500));
    // The next day nothing is granted yet.
    let tomorrow = now + Duration::days(1);
    assert_eq!(budget.usage(tomorrow).remaining_tokens, Some(0));
    assert!(
        budget
            .reserve(DecisionId::from_u128(3), 1, 0.0, tomorrow)
            .is_err()
    );
    // A fleet cannot share a rolling window.
    let rolling = Budget::new(BudgetConfig {
        token_limit: Some(10),
        window: Window::Rolling {
            length: std::time::Duration::from_secs(60),
        },
        ..Default::default()
    })?;
    let Err(e) = rolling.set_allowance(Allowance {
        window_start: window,
        tokens: Some(1),
        cost_usd: None,
    }) else {
        return Err("a rolling budget took an allowance".into());
    };
    assert!(e.to_string().contains("rolling"), "{e}");
    Ok(())
}
