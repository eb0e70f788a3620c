//! Benchmark runs and the supervisor, driven through `SimulatedProvider` on
//! tokio's paused clock. The simulated provider answers a case correctly
//! with probability q = peak − 0.6·(t − 0.3)² − 0.04·log2(max_tokens/1024)²
//! and "I am not sure." otherwise, so every expected value below is a
//! closed form of q.

// Scores here are exact: 0, 1 or ratios of small integers.
#![allow(clippy::float_cmp)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tuneloop_core::ParameterSet;
use tuneloop_eval::{
    Baseline, BenchmarkConfig, Error, Gates, History, Judge, Scorer, Suite, Supervisor,
    SupervisorConfig, aa_false_positive_rate, detect_regressions, run_benchmark, summarize,
};
use tuneloop_providers::{
    Capabilities, FinishReason, GenerationRequest, GenerationResponse, Provider, ProviderError,
    Scorecard, ScorecardConfig, SimulatedConfig, SimulatedProvider, SimulatedRole, Tier, Usage,
};
use tuneloop_rollout::Phase;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The standard suite's cases whose wrong answer scores exactly 0.
fn binary_suite() -> Suite {
    let mut s = Suite::standard();
    s.cases.retain(|c| {
        matches!(
            c.scorer,
            Scorer::Exact { .. } | Scorer::Numeric { .. } | Scorer::Regex { .. }
        )
    });
    s
}

fn sim(id: &str, tier: Tier, model: &str, peak: f64, suite: &Suite) -> Arc<dyn Provider> {
    Arc::new(SimulatedProvider::new(SimulatedConfig {
        id: id.into(),
        tier,
        models: vec![model.into()],
        peak_quality: peak,
        answers: suite.simulated_answers(|_| Vec::new()),
        seed: 7,
        ..SimulatedConfig::default()
    }))
}

fn params(model: &str, t: f64) -> Result<ParameterSet, tuneloop_core::Error> {
    ParameterSet::builder(model)
        .temperature(t)
        .max_tokens(1024)
        .build()
}

#[tokio::test(start_paused = true)]
async fn mean_quality_and_latency_match_the_simulators_closed_form() -> TestResult {
    let suite = binary_suite();
    let p = sim("s", Tier::Online, "m", 0.8, &suite);
    let mut bench = BenchmarkConfig::new(vec![p], vec![params("m", 0.3)?, params("m", 0.8)?]);
    bench.repetitions = 400;
    bench.concurrency = 16;
    let run = run_benchmark(&suite, &bench, 0, None).await?;
    assert_eq!(run.calls.len(), suite.cases.len() * 2 * 400);
    let summaries = summarize(&[run], 0.05);
    for s in &summaries {
        let arm = &s.key.arm;
        // q = 0.8 at t = 0.3, 0.8 − 0.6·0.25 = 0.65 at t = 0.8.
        let q = if *arm == params("m", 0.3)?.arm_id().to_string() {
            0.8
        } else {
            0.65
        };
        let n = s.calls as f64;
        let se = (q * (1.0 - q) / n).sqrt();
        assert!(
            (s.quality.mean - q).abs() < 4.0 * se,
            "{}: mean {} vs q {q}",
            s.key,
            s.quality.mean
        );
        // Bernoulli scores: the sd of answers to one case is sqrt(q(1−q)).
        assert!(
            (s.within_case_sd - (q * (1.0 - q)).sqrt()).abs() < 0.03,
            "{}: sd {}",
            s.key,
            s.within_case_sd
        );
        assert!(s.ci.0 < s.quality.mean && s.quality.mean < s.ci.1);
        // Latency = 300 ms + 0.8 ms · tokens, tokens uniform in
        // [0.4, 0.9]·1024: the median is 300 + 0.8 · 0.65 · 1024 = 832.5 ms;
        // the sample median's standard error is 409.6 / (2·sqrt(400)) ≈ 10 ms.
        assert!(
            (s.latency_p50_ms - 832.5).abs() < 40.0,
            "{}: p50 {}",
            s.key,
            s.latency_p50_ms
        );
        assert_eq!(s.successes, s.calls);
    }
    Ok(())
}

/// Counts calls in flight; each takes 100 ms.
#[derive(Debug)]
struct Gauge {
    caps: Capabilities,
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl Provider for Gauge {
    fn id(&self) -> &str {
        "gauge"
    }
    fn tier(&self) -> Tier {
        Tier::Local
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn generate(&self, r: &GenerationRequest) -> Result<GenerationResponse, ProviderError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(GenerationResponse {
            text: "Canberra".into(),
            usage: Usage {
                prompt_tokens: 1,
                completion_tokens: 1,
            },
            latency: Duration::from_millis(100),
            time_to_first_token: None,
            finish_reason: FinishReason::Stop,
            provider: "gauge".into(),
            model: r.model.clone(),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_used() -> TestResult {
    let suite = binary_suite();
    let gauge = Arc::new(Gauge {
        caps: Capabilities {
            models: Vec::new(),
            context_window: 100_000,
        },
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let mut bench = BenchmarkConfig::new(vec![gauge.clone()], vec![params("m", 0.3)?]);
    bench.repetitions = 10;
    bench.concurrency = 4;
    let start = tokio::time::Instant::now();
    let run = run_benchmark(&suite, &bench, 0, None).await?;
    let calls = run.calls.len();
    assert_eq!(gauge.max.load(Ordering::SeqCst), 4);
    // ceil(calls / 4) waves of 100 ms each.
    let expected = calls.div_ceil(4) as f64 * 100.0;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    assert!((took - expected).abs() < 5.0, "{took} vs {expected}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_failures_score_zero_and_are_named() -> TestResult {
    let suite = binary_suite();
    let hang: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(SimulatedConfig {
        id: "hang".into(),
        hang: true,
        ..SimulatedConfig::default()
    }));
    let mut bench = BenchmarkConfig::new(vec![hang], vec![params("m", 0.3)?]);
    bench.repetitions = 1;
    bench.timeout = Duration::from_secs(2);
    let run = run_benchmark(&suite, &bench, 0, None).await?;
    for c in &run.calls {
        assert!(!c.success);
        assert_eq!(c.quality, 0.0);
        assert!(
            c.error.as_deref().is_some_and(|e| e.contains("hang")),
            "{c:?}"
        );
        assert!((c.latency_ms - 2000.0).abs() < 1.0);
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn bad_configurations_are_refused_with_the_setting_named() -> TestResult {
    let suite = binary_suite();
    let p = sim("s", Tier::Online, "m", 0.8, &suite);
    let mut bench = BenchmarkConfig::new(vec![p.clone()], vec![params("m", 0.3)?]);
    bench.concurrency = 0;
    let e = run_benchmark(&suite, &bench, 0, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Setting {
                name: "concurrency",
                ..
            }
        ),
        "{e}"
    );
    // A model no provider serves.
    let bench = BenchmarkConfig::new(vec![p.clone()], vec![params("other", 0.3)?]);
    let e = run_benchmark(&suite, &bench, 0, None).await.unwrap_err();
    assert!(e.to_string().contains("no provider serves"), "{e}");
    // A judge-scored case without a judge.
    let mut judged = suite.clone();
    judged.cases[0].scorer = Scorer::Judge {
        rubric: "correct city".into(),
    };
    let bench = BenchmarkConfig::new(vec![p], vec![params("m", 0.3)?]);
    let e = run_benchmark(&judged, &bench, 0, None).await.unwrap_err();
    assert!(e.to_string().contains("judge"), "{e}");
    assert!(
        Supervisor::new(SupervisorConfig {
            runs: 0,
            ..SupervisorConfig::default()
        })
        .is_err()
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_judge_grades_against_the_reference() -> TestResult {
    let mut suite = binary_suite();
    suite.cases.retain(|c| c.id == "capital");
    suite.cases[0].scorer = Scorer::Judge {
        rubric: "names the right city".into(),
    };
    let judge = Judge {
        provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
            id: "judge".into(),
            role: SimulatedRole::Judge,
            ..SimulatedConfig::default()
        })),
        parameters: params("j", 0.0)?,
    };
    // peak 1 at t = 0.3: always right; peak 0: always "I am not sure.".
    let right = sim("right", Tier::Online, "m", 1.0, &suite);
    let wrong = sim("wrong", Tier::Online, "m", 0.0, &suite);
    let mut bench = BenchmarkConfig::new(vec![right, wrong], vec![params("m", 0.3)?]);
    bench.repetitions = 3;
    bench.judge = Some(judge);
    let run = run_benchmark(&suite, &bench, 0, None).await?;
    for c in &run.calls {
        // Word overlap with "Canberra": 1 for the right answer, 0 for
        // "I am not sure.".
        let expected = if c.provider == "right" { 1.0 } else { 0.0 };
        assert_eq!(c.quality, expected, "{c:?}");
        assert!(c.success);
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn aa_runs_rarely_flag_a_regression_and_a_real_drop_is_flagged() -> TestResult {
    let suite = binary_suite();
    let p = sim("s", Tier::Online, "m", 0.85, &suite);
    let mut bench = BenchmarkConfig::new(vec![p], vec![params("m", 0.3)?, params("m", 0.8)?]);
    bench.repetitions = 10;
    let gates = Gates::default();
    let trials = 200;
    let aa = aa_false_positive_rate(&suite, &bench, &gates, trials, None).await?;
    assert_eq!(aa.config_tests, suite.task_types().len() * 2);
    assert_eq!(aa.model_tests, 2);
    // Holm at alpha/2 in each of the two families keeps the family-wise
    // rate at or below alpha = 0.05; allow three binomial standard errors
    // of sampling slack over 200 trials.
    let slack = 3.0 * (0.05f64 * 0.95 / f64::from(trials)).sqrt();
    assert!(
        aa.any_flag_rate <= 0.05 + slack,
        "A/A false-positive rate {}",
        aa.any_flag_rate
    );

    // The same provider id and parameters, with quality down from 0.85 to
    // 0.55: a drop of 0.3, 7.6 standard errors at 240 calls a case, so that
    // every configuration is flagged whatever the seed (at 60 calls, 3.8
    // standard errors, a Holm-corrected test misses one of eight about
    // every other seed).
    bench.repetitions = 240;
    let before = run_benchmark(&suite, &bench, 0, None).await?;
    let worse = sim("s", Tier::Online, "m", 0.55, &suite);
    bench.providers = vec![worse];
    let after = run_benchmark(&suite, &bench, 1, None).await?;
    let baseline = Baseline::from_summaries(&suite.name, &summarize(&[before], 0.05));
    let found = detect_regressions(&baseline, &summarize(&[after], 0.05), 0.05, 0.02);
    assert_eq!(found.configs.len(), suite.task_types().len() * 2);
    // A configuration's drop estimate has a standard error of
    // sqrt(0.85·0.15/240 + 0.55·0.45/240) = 0.040 (at 60 calls, measured
    // over 160 estimates: mean 0.309, sd 0.080, as the formula says); the
    // model-level test pools every task type, four times the calls: 0.020.
    // Each must be within four standard errors of 0.3 (one estimate in
    // 16,000 is not, by chance).
    for (k, r) in found.configs.iter().chain(&found.models) {
        assert!(r.regressed, "{k}: drop {} p {}", r.drop, r.p_value);
        assert!((r.drop - 0.3).abs() < 4.0 * 0.040, "{k}: drop {}", r.drop);
    }
    for (k, r) in &found.models {
        assert!((r.drop - 0.3).abs() < 4.0 * 0.020, "{k}: drop {}", r.drop);
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_gates_recommends_and_writes_a_plan_the_router_loads() -> TestResult {
    let suite = Suite::standard();
    let cloud = sim("cloud", Tier::Online, "big", 0.97, &suite);
    let local = sim("local", Tier::Local, "small", 0.93, &suite);
    // Best on every case but it "knows" who walked on Mars: no restraint.
    let reckless: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(SimulatedConfig {
        id: "reckless".into(),
        models: vec!["big".into()],
        peak_quality: 1.0,
        answers: suite
            .simulated_answers(|_| Vec::new())
            .into_iter()
            .map(|mut a| {
                if a.correct == "unknown" {
                    a.correct = "Neil Armstrong".into();
                }
                a
            })
            .collect(),
        ..SimulatedConfig::default()
    }));
    let mut bench = BenchmarkConfig::new(
        vec![cloud, local, reckless],
        vec![params("big", 0.3)?, params("small", 0.3)?],
    );
    bench.repetitions = 20;
    let supervisor = Supervisor::new(SupervisorConfig {
        runs: 3,
        gates: Gates {
            variance_threshold: 0.4,
            ..Gates::default()
        },
        ..SupervisorConfig::default()
    })?;
    let (runs, report) = supervisor.run(&suite, &bench, 0, None, None).await?;
    assert_eq!(runs.len(), 3);
    // Restraint: reckless always answers "Neil Armstrong".
    let reckless_key = format!("reckless/big/{}", params("big", 0.3)?.arm_id());
    assert_eq!(report.restraint.get(&reckless_key), Some(&0.0));
    for c in report
        .configs
        .iter()
        .filter(|c| c.summary.key.provider == "reckless")
    {
        assert!(!c.gates.restraint.passed && !c.gates.passed);
    }
    assert_eq!(report.plan.recommendations.len(), 10);
    for (task, rec) in &report.plan.recommendations {
        let choice = rec.choice.as_ref().ok_or(format!("{task}: no choice"))?;
        assert_ne!(choice.provider, "reckless", "{task}");
        assert!(choice.max_phase >= Some(Phase::Canary), "{task}");
        if let Some(f) = &rec.fallback {
            assert_ne!(f.provider, choice.provider);
            assert_ne!(f.provider, "reckless");
        }
    }
    assert!(
        report
            .plan
            .disabled_providers
            .contains(&"reckless".to_owned())
    );
    // Online providers come before local ones.
    let order = &report.plan.provider_order;
    if let (Some(c), Some(l)) = (
        order.iter().position(|p| p == "cloud"),
        order.iter().position(|p| p == "local"),
    ) {
        assert!(c < l, "{order:?}");
    }

    // The plan orders providers for a router and leaves out the disabled.
    let all: Vec<Arc<dyn Provider>> = bench.providers.iter().rev().cloned().collect();
    let ordered = report.plan.order_providers(all);
    let ids: Vec<&str> = ordered.iter().map(|p| p.id()).collect();
    assert_eq!(
        ids,
        report
            .plan
            .provider_order
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(!ids.contains(&"reckless"));
    let router =
        tuneloop_providers::Router::new(ordered, tuneloop_providers::RouterConfig::default())?;

    // The plan's scorecard is what the router and the optimizer load.
    let dir = tempfile::tempdir()?;
    report.plan.write(dir.path())?;
    let card = Scorecard::open(
        Some(&dir.path().join("scorecard.json")),
        ScorecardConfig::default(),
    )?;
    let e = card.entry("cloud", "big", "factual_qa").ok_or("no entry")?;
    let _router = router.with_scorecard(Arc::new(card));
    // Two factual cases × 20 repetitions × 3 runs.
    assert_eq!(e.calls, 2 * 20 * 3);
    assert_eq!(e.successes, e.calls);
    let routing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("routing.json"))?)?;
    assert_eq!(routing["schema_version"], 1);

    // Against its own baseline, nothing regressed.
    let baseline = Baseline::from_summaries(&suite.name, &summarize(&runs, 0.05));
    let path = dir.path().join("baseline.json");
    baseline.save(&path)?;
    let again = supervisor.analyze(&suite, &runs, Some(&Baseline::load(&path)?));
    assert!(again.regressions.is_empty(), "{:?}", again.regressions);
    std::fs::write(&path, b"{\"schema_version\": 1}")?;
    let e = Baseline::load(&path).unwrap_err().to_string();
    assert!(e.contains("baseline.json"), "{e}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn unstable_configurations_are_flagged() -> TestResult {
    let suite = binary_suite();
    let steady = sim("steady", Tier::Online, "m", 1.0, &suite);
    let coin = sim("coin", Tier::Online, "m", 0.5, &suite);
    let mut bench = BenchmarkConfig::new(vec![steady, coin], vec![params("m", 0.3)?]);
    bench.repetitions = 40;
    let supervisor = Supervisor::new(SupervisorConfig::default())?;
    let (_, report) = supervisor.run(&suite, &bench, 0, None, None).await?;
    for c in &report.configs {
        let unstable = report.unstable.contains(&c.summary.key.to_string());
        match c.summary.key.provider.as_str() {
            // q = 1: the same answer every time.
            "steady" => assert!(!unstable && c.summary.within_case_sd == 0.0),
            // q = 0.5: sd sqrt(0.25) = 0.5 > 0.3.
            _ => assert!(unstable && (c.summary.within_case_sd - 0.5).abs() < 0.05),
        }
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_history_keeps_rounds_and_survives_a_torn_line() -> TestResult {
    let suite = binary_suite();
    let p = sim("s", Tier::Online, "m", 1.0, &suite);
    let mut bench = BenchmarkConfig::new(vec![p], vec![params("m", 0.3)?]);
    bench.repetitions = 2;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("history.jsonl");
    assert_eq!(History::next_round(&path)?, 0);
    let a = run_benchmark(&suite, &bench, 0, None).await?;
    let b = run_benchmark(&suite, &bench, 1, None).await?;
    History::append(&path, &[a, b])?;
    // A crash mid-write leaves half a line.
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str("{\"round\": 2, \"sta");
    std::fs::write(&path, text)?;
    let h = History::read(&path)?;
    assert_eq!(h.iter().map(|r| r.round).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(h[0].mean_quality, 1.0);
    assert_eq!(History::next_round(&path)?, 2);
    // The next round starts a line of its own: both it and the earlier
    // rounds read, the torn line is skipped in the middle too.
    let c = run_benchmark(&suite, &bench, 2, None).await?;
    History::append(&path, &[c])?;
    let h = History::read(&path)?;
    assert_eq!(h.iter().map(|r| r.round).collect::<Vec<_>>(), vec![0, 1, 2]);
    Ok(())
}
