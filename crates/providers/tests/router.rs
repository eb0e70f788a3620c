//! The router against simulated providers, on tokio's paused clock (time
//! advances only when every task waits, so timings are exact).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tuneloop_core::ParameterSet;
use tuneloop_providers::{
    Attempt, BreakerConfig, BreakerState, GenerationRequest, Message, Provider, ProviderError,
    Router, RouterConfig, RouterError, ScoreWeights, Scorecard, ScorecardConfig, SimulatedConfig,
    SimulatedProvider, Standing, Tier,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sim(id: &str, tier: Tier, f: impl FnOnce(&mut SimulatedConfig)) -> Arc<SimulatedProvider> {
    let mut c = SimulatedConfig {
        id: id.into(),
        tier,
        ..SimulatedConfig::default()
    };
    f(&mut c);
    Arc::new(SimulatedProvider::new(c))
}

fn request(id: &str) -> Result<GenerationRequest, tuneloop_core::Error> {
    let p = ParameterSet::builder("m").max_tokens(100).build()?;
    Ok(GenerationRequest::new(
        id,
        vec![Message::user("What is 2 + 2?")],
        &p,
    ))
}

#[tokio::test(start_paused = true)]
async fn falls_back_to_local_after_retries() -> TestResult {
    let cloud = sim("cloud", Tier::Online, |c| c.failure_rate = 1.0);
    let local = sim("local", Tier::Local, |_| {});
    // Listed local first: tiers, not list order, decide.
    let router = Router::new(
        vec![local.clone() as Arc<dyn Provider>, cloud.clone()],
        RouterConfig::default(),
    )?;
    let routed = router.generate(&request("r1")?).await?;
    assert_eq!(routed.response.provider, "local");
    assert_eq!(routed.record.order, vec!["cloud", "local"]);
    assert_eq!(cloud.calls(), 3, "three attempts at the online provider");
    let failed = routed
        .record
        .attempts
        .iter()
        .filter(|a| {
            matches!(
                a,
                Attempt::Failed {
                    error: ProviderError::Transient { .. }
                }
            )
        })
        .count();
    assert_eq!(failed, 3);
    assert_eq!(router.audit().len(), 1);
    assert_eq!(router.audit()[0].answered_by.as_deref(), Some("local"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_any_size_ends_the_retries_without_a_panic() -> TestResult {
    // As a server or proxy may send: `Retry-After: 18446744073709551615`.
    let limited = sim("limited", Tier::Online, |c| {
        c.rate_limit_rate = 1.0;
        c.retry_after = Duration::from_secs(u64::MAX);
    });
    let config = RouterConfig {
        max_attempts: 3,
        ..RouterConfig::default()
    };
    let router = Router::new(vec![limited as Arc<dyn Provider>], config)?;
    let err = router.generate(&request("r-max")?).await.err();
    assert!(
        matches!(err, Some(RouterError::Exhausted { attempts: 1, .. })),
        "{err:?}"
    );
    let too_long = RouterConfig {
        deadline: Duration::MAX,
        ..RouterConfig::default()
    };
    let p = sim("p", Tier::Online, |_| {});
    assert!(Router::new(vec![p as Arc<dyn Provider>], too_long).is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() -> TestResult {
    let limited = sim("limited", Tier::Online, |c| {
        c.rate_limit_rate = 1.0;
        c.retry_after = Duration::from_secs(2);
    });
    let config = RouterConfig {
        max_attempts: 2,
        ..RouterConfig::default()
    };
    let router = Router::new(vec![limited.clone() as Arc<dyn Provider>], config)?;
    let start = Instant::now();
    let err = router.generate(&request("r2")?).await.err();
    assert!(
        matches!(
            err,
            Some(RouterError::Exhausted {
                attempts: 2,
                last: Some(ProviderError::RateLimited { .. })
            })
        ),
        "{err:?}"
    );
    // The base backoff is 100 ms; the provider asked for 2 s, and got them.
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_never_blocks_past_the_deadline() -> TestResult {
    let hang = sim("hang", Tier::Online, |c| c.hang = true);
    let local = sim("local", Tier::Local, |_| {});
    let config = RouterConfig {
        deadline: Duration::from_secs(3),
        max_attempts: 1,
        ..RouterConfig::default()
    };
    let router = Router::new(vec![hang as Arc<dyn Provider>, local.clone()], config)?;
    let start = Instant::now();
    let err = router.generate(&request("r3")?).await.err();
    assert!(matches!(err, Some(RouterError::Deadline(_))), "{err:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3_100),
        "{waited:?}"
    );
    let rec = router.audit().pop().ok_or("audit")?;
    assert!(matches!(
        rec.attempts[0],
        Attempt::Failed {
            error: ProviderError::Timeout { .. }
        }
    ));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_half_opens_and_closes() -> TestResult {
    let cloud = sim("cloud", Tier::Online, |c| c.failure_rate = 1.0);
    let local = sim("local", Tier::Local, |_| {});
    let config = RouterConfig {
        max_attempts: 1,
        breaker: BreakerConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(10),
        },
        ..RouterConfig::default()
    };
    let router = Router::new(vec![cloud.clone() as Arc<dyn Provider>, local], config)?;
    for i in 0..2 {
        router.generate(&request(&format!("a{i}"))?).await?;
    }
    assert_eq!(router.breaker_state("cloud"), Some(BreakerState::Open));
    let routed = router.generate(&request("a2")?).await?;
    assert!(matches!(
        routed.record.attempts[0],
        Attempt::SkippedOpenCircuit { .. }
    ));
    assert_eq!(cloud.calls(), 2, "an open circuit sends nothing");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(router.breaker_state("cloud"), Some(BreakerState::HalfOpen));
    router.generate(&request("a3")?).await?; // the probe fails: open again
    assert_eq!(cloud.calls(), 3);
    assert_eq!(router.breaker_state("cloud"), Some(BreakerState::Open));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn errors_are_classified_and_steer_the_fallback() -> TestResult {
    let small = sim("small-window", Tier::Online, |c| c.context_window = 50);
    let denied = sim("denied", Tier::Online, |c| c.reject_credentials = true);
    let other_model = sim("other", Tier::Online, |c| c.models = vec!["x".into()]);
    let local = sim("local", Tier::Local, |_| {});
    let router = Router::new(
        vec![
            small.clone() as Arc<dyn Provider>,
            denied.clone(),
            other_model.clone(),
            local,
        ],
        RouterConfig::default(),
    )?;
    let routed = router.generate(&request("c1")?).await?;
    assert_eq!(routed.response.provider, "local");
    let a = &routed.record.attempts;
    assert!(matches!(
        a[0],
        Attempt::Failed {
            error: ProviderError::ContextLength { .. }
        }
    ));
    assert!(matches!(
        a[1],
        Attempt::Failed {
            error: ProviderError::Authentication { .. }
        }
    ));
    assert!(matches!(a[2], Attempt::SkippedModel { .. }));
    assert_eq!(
        (small.calls(), denied.calls(), other_model.calls()),
        (1, 1, 0),
        "non-retryable errors are not retried"
    );
    // The authentication error names no secret, only the provider.
    assert_eq!(
        format!(
            "{}",
            ProviderError::Authentication {
                provider: "denied".into()
            }
        ),
        "denied: authentication failed"
    );
    assert!(Router::new(Vec::new(), RouterConfig::default()).is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_scorecard_orders_and_drops_and_persists() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("scorecard.json");
    let scorecard = Arc::new(Scorecard::open(Some(&path), ScorecardConfig::default())?);
    let slow = sim("slow", Tier::Online, |c| c.slowdown = 5.0);
    let fast = sim("fast", Tier::Online, |_| {});
    let config = RouterConfig {
        weights: Some(ScoreWeights::default()),
        exploration: 0.0,
        ..RouterConfig::default()
    };
    let router = Router::new(
        vec![slow.clone() as Arc<dyn Provider>, fast.clone()],
        config,
    )?
    .with_scorecard(scorecard.clone());
    // Let both be measured once, then the faster one leads.
    for i in 0..6 {
        router.generate(&request(&format!("s{i}"))?).await?;
    }
    scorecard.record("slow", "m", "", true, Duration::from_secs(3), 0.0);
    let routed = router.generate(&request("s-last")?).await?;
    assert_eq!(routed.record.order[0], "fast", "{:?}", routed.record);
    // Verified accuracy below 0.3 after 10 samples drops a model.
    for i in 0..10 {
        scorecard.verify("fast", "m", "", i < 2);
    }
    assert_eq!(scorecard.standing("fast", "m", ""), Standing::Dropped);
    let routed = router.generate(&request("s-dropped")?).await?;
    assert_eq!(routed.response.provider, "slow");
    assert!(
        routed
            .record
            .attempts
            .iter()
            .any(|a| matches!(a, Attempt::SkippedLowAccuracy { .. }))
    );
    for _ in 0..10 {
        scorecard.verify("slow", "m", "", true);
    }
    assert_eq!(scorecard.standing("slow", "m", ""), Standing::Favoured);
    scorecard.save()?;
    let again = Scorecard::open(Some(&path), ScorecardConfig::default())?;
    assert_eq!(
        again.entry("fast", "m", ""),
        scorecard.entry("fast", "m", "")
    );
    assert!(
        again
            .entry("fast", "m", "")
            .is_some_and(|e| e.calls >= 1 && e.latencies_ms.len() <= 100)
    );
    std::fs::write(&path, b"{broken")?;
    assert!(Scorecard::open(Some(&path), ScorecardConfig::default()).is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn simulated_quality_depends_on_task_type_and_parameters() -> TestResult {
    use tuneloop_providers::QualityProfile;
    let mut profiles = std::collections::BTreeMap::new();
    profiles.insert(
        "code".to_owned(),
        QualityProfile {
            best_temperature: 0.0,
            best_max_tokens: 2048.0,
            peak_quality: 0.95,
        },
    );
    let p = SimulatedProvider::new(SimulatedConfig {
        profiles,
        ..SimulatedConfig::default()
    });
    let at = |t: f64, k: u32, task: Option<&str>| -> Result<f64, tuneloop_core::Error> {
        let params = ParameterSet::builder("m")
            .temperature(t)
            .max_tokens(k)
            .build()?;
        let mut r = GenerationRequest::new("q", vec![Message::user("x")], &params);
        r.task_type = task.map(str::to_owned);
        Ok(p.expected_quality(&r))
    };
    // Closed form: peak − 0.6·dt² − 0.04·log2(k/k*)².
    assert!((at(0.0, 2048, Some("code"))? - 0.95).abs() < 1e-12);
    assert!((at(0.5, 1024, Some("code"))? - (0.95 - 0.15 - 0.04)).abs() < 1e-12);
    assert!(
        (at(0.3, 1024, None)? - 0.9).abs() < 1e-12,
        "default profile"
    );
    // The same request replays the same answer.
    let a = SimulatedProvider::new(SimulatedConfig::default());
    let b = SimulatedProvider::new(SimulatedConfig::default());
    let r = request("same")?;
    assert_eq!(a.generate(&r).await?, b.generate(&r).await?);
    Ok(())
}
