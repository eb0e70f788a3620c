//! The runtime configuration: validated updates, listeners, debounced
//! atomic writes, loading at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tuneloop_config::{Error, RuntimeConfig, RuntimeConfigStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn updates_are_validated_and_announced() -> TestResult {
    let store = RuntimeConfigStore::in_memory(RuntimeConfig::default())?;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    store.subscribe(Box::new(move |c| {
        assert!((0.0..=1.0).contains(&c.exploration_rate));
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    store.update(|c| c.exploration_rate = 0.1)?;
    store.update(|c| {
        c.feature_flags.insert("shadow-eval".into(), true);
    })?;
    for bad in [
        (|c: &mut RuntimeConfig| c.exploration_rate = 1.5) as fn(&mut RuntimeConfig),
        |c| c.provider_weights.latency = f64::NAN,
        |c| {
            c.provider_weights.latency = 0.0;
            c.provider_weights.cost = 0.0;
            c.provider_weights.reliability = 0.0;
        },
        |c| c.metadata.score = Some(f64::INFINITY),
    ] {
        assert!(matches!(
            store.update(bad),
            Err(Error::InvalidSetting { .. })
        ));
    }
    let c = store.get();
    assert!((c.exploration_rate - 0.1).abs() < 1e-15 && c.feature_flags["shadow-eval"]);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "listeners hear valid changes only"
    );
    Ok(())
}

#[test]
fn writes_are_debounced_atomic_and_loaded_at_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("runtime.json");
    {
        let store = RuntimeConfigStore::open(&path)?;
        for i in 0..50 {
            store.update(|c| c.metadata.iterations = i)?;
        }
        // A burst of 50 updates within well under a second: at most two writes
        // (the first at once, the rest coalesced after the interval).
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(store.writes() <= 2, "{} writes", store.writes());
    } // drop writes the last value
    let again = RuntimeConfigStore::open(&path)?;
    assert_eq!(again.get().metadata.iterations, 49);
    assert!(
        !dir.path().join("runtime.tmp").exists(),
        "no temporary file left behind"
    );
    // A corrupt or invalid file is refused with its name.
    std::fs::write(&path, br#"{"exploration_rate": 7}"#)?;
    let err = RuntimeConfigStore::open(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("runtime.json") && err.contains("exploration_rate"),
        "{err}"
    );
    std::fs::write(&path, b"{not json")?;
    assert!(RuntimeConfigStore::open(&path).is_err());
    Ok(())
}

#[test]
fn a_write_that_fails_is_reported_not_acknowledged_silently()
-> Result<(), Box<dyn std::error::Error>> {
    // A file in a directory that does not exist: every write fails.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("missing").join("runtime.json");
    let store = RuntimeConfigStore::open(&path)?;
    store.update(|c| c.exploration_rate = 0.2)?;
    assert!(matches!(store.flush(), Err(Error::ConfigIo { .. })));
    assert!(store.write_errors() >= 1);
    assert!(!path.exists());
    // Once the directory exists, the next flush writes it.
    std::fs::create_dir_all(path.parent().ok_or("parent")?)?;
    store.flush()?;
    let written: RuntimeConfig = serde_json::from_slice(&std::fs::read(&path)?)?;
    assert!((written.exploration_rate - 0.2).abs() < 1e-15);
    Ok(())
}

#[test]
fn closures_and_listeners_that_call_back_into_the_store_do_not_deadlock() -> TestResult {
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let run = || -> Result<(bool, f64, usize), Error> {
            let store = Arc::new(RuntimeConfigStore::in_memory(RuntimeConfig::default())?);
            // An update closure that reads the store (it held its lock).
            let inside = store.clone();
            store.update(|c| c.exploration_rate = inside.get().exploration_rate + 0.1)?;
            // A listener that updates (refused, not a deadlock) and one that
            // subscribes another (it held the listeners' lock).
            let nested = Arc::new(std::sync::Mutex::new(None));
            let (s, n) = (Arc::downgrade(&store), nested.clone());
            store.subscribe(Box::new(move |_| {
                if let Some(s) = s.upgrade() {
                    let refused = matches!(
                        s.update(|c| c.exploration_rate = 0.9),
                        Err(Error::ReentrantUpdate)
                    );
                    *n.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refused);
                    s.subscribe(Box::new(|_| {}));
                }
            }));
            let calls = Arc::new(AtomicUsize::new(0));
            let counter = calls.clone();
            store.subscribe(Box::new(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            }));
            store.update(|c| c.exploration_rate = 0.3)?;
            store.update(|c| c.exploration_rate = 0.4)?;
            let refused = nested
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or(false);
            Ok((
                refused,
                store.get().exploration_rate,
                calls.load(Ordering::SeqCst),
            ))
        };
        let _ = done.send(run().map_err(|e| e.to_string()));
    });
    let (refused, rate, calls) = wait
        .recv_timeout(std::time::Duration::from_secs(30))
        .map_err(|_| "the store deadlocked")??;
    assert!(refused, "a nested update is refused with ReentrantUpdate");
    assert!(
        (rate - 0.4).abs() < 1e-12,
        "{rate}: the nested update changed nothing"
    );
    assert_eq!(calls, 2);
    Ok(())
}

#[test]
fn the_runtime_configuration_takes_effect_on_the_next_decision() -> TestResult {
    use tuneloop::core::{ArmSet, ManualClock, TaskFeatures, TaskOutcome};
    use tuneloop::rollout::{RolloutConfig, RolloutEvent};
    use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    use tuneloop_config::TaskOverride;
    let store = Arc::new(RuntimeConfigStore::in_memory(RuntimeConfig {
        exploration_rate: 0.0,
        ..RuntimeConfig::default()
    })?);
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0, 1.5])
        .build()?;
    let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
    // In shadow, the incumbent (arm 0) serves with the exploration floor,
    // mixed with the candidate's choice on a 5% probe.
    let o = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms).rollout(RolloutConfig::default()),
        )
        .clock(Arc::new(clock))
        .seed(4)
        .build()?;
    store.attach(&o)?;
    let ask = || {
        o.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )
    };
    let propensity = |rate: f64, rec: &tuneloop::Recommendation| {
        let incumbent = if rec.arm == 0 { 1.0 - rate } else { 0.0 };
        let probe = if Some(rec.arm) == rec.shadow_arm {
            0.05
        } else {
            0.0
        };
        0.95 * (incumbent + rate / 4.0) + probe
    };
    let rec = ask()?;
    assert!((rec.propensity - propensity(0.0, &rec)).abs() < 1e-12);
    // The rate, then a task type's own rate, on the very next decision.
    store.update(|c| c.exploration_rate = 1.0)?;
    let rec = ask()?;
    assert!(
        (rec.propensity - propensity(1.0, &rec)).abs() < 1e-12,
        "uniform: {}",
        rec.propensity
    );
    store.update(|c| {
        c.task_types.insert(
            "code".into(),
            TaskOverride {
                exploration_rate: Some(0.5),
                ..TaskOverride::default()
            },
        );
    })?;
    let rec = ask()?;
    assert!((rec.propensity - propensity(0.5, &rec)).abs() < 1e-12);
    let err = store
        .update(|c| {
            c.task_types.insert(
                "code".into(),
                TaskOverride {
                    exploration_rate: Some(2.0),
                    ..TaskOverride::default()
                },
            );
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("task_types.code.exploration_rate"), "{err}");
    // Learning off: outcomes leave the learner as it was.
    let learner = |o: &Optimizer| -> Result<String, Box<dyn std::error::Error>> {
        Ok(serde_json::to_string(
            &o.snapshot()?.task_types["code"].learner,
        )?)
    };
    store.update(|c| c.learning = false)?;
    let before = learner(&o)?;
    for _ in 0..5 {
        let r = ask()?;
        o.record_outcome(r.decision_id, &TaskOutcome::success(0.9, 100.0))?;
    }
    assert_eq!(
        learner(&o)?,
        before,
        "nothing learned while learning is off"
    );
    store.update(|c| c.learning = true)?;
    let r = ask()?;
    o.record_outcome(r.decision_id, &TaskOutcome::success(0.9, 100.0))?;
    assert_ne!(learner(&o)?, before);
    // A hold, and its release, with the next outcome.
    store.update(|c| c.rollout_hold = true)?;
    let r = ask()?;
    let events = o
        .record_outcome(r.decision_id, &TaskOutcome::success(0.9, 100.0))?
        .events;
    assert!(
        matches!(events.first(), Some(RolloutEvent::Held { reason, .. }) if reason.contains("rollout_hold")),
        "{events:?}"
    );
    store.update(|c| c.rollout_hold = false)?;
    let r = ask()?;
    let events = o
        .record_outcome(r.decision_id, &TaskOutcome::success(0.9, 100.0))?
        .events;
    assert!(
        matches!(events.first(), Some(RolloutEvent::Resumed { .. })),
        "{events:?}"
    );
    Ok(())
}

#[cfg(feature = "router")]
#[test]
fn provider_weights_reorder_the_router_on_its_next_call() -> TestResult {
    use std::time::Duration;
    use tuneloop::core::ParameterSet;
    use tuneloop::providers::{
        GenerationRequest, Message, Provider, Router, RouterConfig, Scorecard, ScorecardConfig,
        SimulatedConfig, SimulatedProvider, Tier,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    rt.block_on(async {
        let scorecard = Arc::new(Scorecard::open(None, ScorecardConfig::default())?);
        // "fast" answers quickly and fails often; "steady" is slow and sure.
        for i in 0..20 {
            scorecard.record("fast", "m", "", i % 2 == 0, Duration::from_millis(100), 0.0);
            scorecard.record("steady", "m", "", true, Duration::from_millis(3_000), 0.0);
        }
        let sim = |id: &str| -> Arc<dyn Provider> {
            Arc::new(SimulatedProvider::new(SimulatedConfig {
                id: id.into(),
                tier: Tier::Online,
                ..SimulatedConfig::default()
            }))
        };
        let router = Arc::new(
            Router::new(
                vec![sim("fast"), sim("steady")],
                RouterConfig {
                    exploration: 0.0,
                    ..RouterConfig::default()
                },
            )?
            .with_scorecard(scorecard),
        );
        let store = RuntimeConfigStore::in_memory(RuntimeConfig::default())?;
        store.update(|c| {
            c.provider_weights.latency = 1.0;
            c.provider_weights.cost = 0.0;
            c.provider_weights.reliability = 0.0;
        })?;
        store.drive_router(&router);
        let params = ParameterSet::builder("m").max_tokens(100).build()?;
        let request = GenerationRequest::new("r", vec![Message::user("2 + 2?")], &params);
        let first = |r: &tuneloop::providers::Routed| r.record.order.first().cloned();
        let routed = router.generate(&request).await?;
        assert_eq!(
            first(&routed).as_deref(),
            Some("fast"),
            "latency first: {:?}",
            routed.record
        );
        store.update(|c| {
            c.provider_weights.latency = 0.0;
            c.provider_weights.reliability = 1.0;
        })?;
        let routed = router.generate(&request).await?;
        assert_eq!(
            first(&routed).as_deref(),
            Some("steady"),
            "reliability first: {:?}",
            routed.record
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

proptest::proptest! {
    /// A configuration file of arbitrary content: an error or a value,
    /// never a panic.
    #[test]
    fn arbitrary_runtime_config_files_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runtime.json");
        std::fs::write(&path, &bytes)?;
        let _ = RuntimeConfigStore::open(&path);
    }
}
