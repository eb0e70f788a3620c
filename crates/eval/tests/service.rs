//! The benchmark service on tokio's paused clock: rounds on a schedule, a
//! regression keeps what the last passing round applied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tuneloop_core::ParameterSet;
use tuneloop_eval::{
    BenchmarkConfig, BenchmarkService, Scorer, Suite, Supervisor, SupervisorConfig,
};
use tuneloop_gates::Provenance;
use tuneloop_providers::{
    Capabilities, GenerationRequest, GenerationResponse, Provider, ProviderError, Scorecard,
    ScorecardConfig, SimulatedConfig, SimulatedProvider, Tier,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One provider id whose backend the test switches: `good` or `bad`.
#[derive(Debug)]
struct Switch {
    backends: [SimulatedProvider; 2],
    bad: Arc<AtomicUsize>,
}

#[async_trait]
impl Provider for Switch {
    fn id(&self) -> &str {
        self.backends[0].id()
    }
    fn tier(&self) -> Tier {
        self.backends[0].tier()
    }
    fn capabilities(&self) -> &Capabilities {
        self.backends[0].capabilities()
    }
    async fn generate(
        &self,
        request: &GenerationRequest,
    ) -> Result<GenerationResponse, ProviderError> {
        self.backends[self.bad.load(Ordering::SeqCst).min(1)]
            .generate(request)
            .await
    }
}

fn suite() -> Suite {
    let mut s = Suite::standard();
    s.cases.retain(|c| {
        matches!(
            c.scorer,
            Scorer::Exact { .. } | Scorer::Numeric { .. } | Scorer::Regex { .. }
        )
    });
    s
}

#[tokio::test(start_paused = true)]
async fn three_rounds_where_the_second_regresses_keep_the_first_rounds_plan() -> TestResult {
    let suite = suite();
    let backend = |peak: f64| {
        SimulatedProvider::new(SimulatedConfig {
            id: "p".into(),
            models: vec!["m".into()],
            peak_quality: peak,
            answers: suite.simulated_answers(|_| Vec::new()),
            seed: 7,
            ..SimulatedConfig::default()
        })
    };
    let bad = Arc::new(AtomicUsize::new(0));
    let provider = Arc::new(Switch {
        backends: [backend(0.9), backend(0.4)],
        bad: bad.clone(),
    });
    let params = ParameterSet::builder("m")
        .temperature(0.3)
        .max_tokens(1024)
        .build()?;
    let mut bench = BenchmarkConfig::new(vec![provider as Arc<dyn Provider>], vec![params]);
    bench.repetitions = 60;
    let supervisor = Supervisor::new(SupervisorConfig {
        runs: 1,
        ..SupervisorConfig::default()
    })?;
    let dir = tempfile::tempdir()?;
    let scorecard = Arc::new(Scorecard::open(None, ScorecardConfig::default())?);
    let provenance = Arc::new(Mutex::new(Provenance::in_memory()));
    let applied = Arc::new(Mutex::new(Vec::new()));
    let sink = applied.clone();
    let service = BenchmarkService::new(suite, bench, supervisor)
        .with_history(dir.path().join("history.jsonl"))?
        .with_scorecard(scorecard.clone())
        .with_provenance(provenance.clone())
        .on_pass(Box::new(move |report| {
            sink.lock().map(|mut v| v.push(report.plan.score)).ok();
        }));
    let mut outcomes = Vec::new();
    let started = tokio::time::Instant::now();
    // Round 0 at once (good), round 1 an hour later (bad), round 2 two
    // hours later (good again).
    service
        .run_every(Duration::from_secs(3_600), Some(3), |o| {
            outcomes.push(o.map(|o| (o.round, o.passed, o.reasons, started.elapsed())));
            bad.store(usize::from(outcomes.len() == 1), Ordering::SeqCst);
        })
        .await;
    let outcomes: Vec<_> = outcomes.into_iter().collect::<Result<_, _>>()?;
    let rounds: Vec<(u32, bool)> = outcomes.iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(rounds, [(0, true), (1, false), (2, true)], "{outcomes:?}");
    assert!(
        outcomes[1].2.iter().any(|r| r.starts_with("regressed")),
        "{:?}",
        outcomes[1].2
    );
    // On the schedule: the rounds start at 0, 1 h and 2 h of virtual time.
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.3 >= Duration::from_secs(3_600 * i as u64), "{:?}", o.3);
    }
    // Only the passing rounds were applied and recorded, and the history
    // has all three.
    let applied = applied.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(applied.len(), 2);
    let records = provenance
        .lock()
        .map(|p| p.records().to_vec())
        .unwrap_or_default();
    let versions: Vec<&str> = records.iter().map(|r| r.change.version.as_str()).collect();
    assert_eq!(versions, ["standard-round-0", "standard-round-2"]);
    assert_eq!(
        tuneloop_eval::History::read(&dir.path().join("history.jsonl"))?.len(),
        3
    );
    // The scorecard saw the calls of the passing rounds only: 2 rounds of
    // 60 repetitions of every case.
    let calls: u64 = scorecard.export().values().map(|e| e.calls).sum();
    assert_eq!(calls, 2 * 60 * suite_len());
    Ok(())
}

fn suite_len() -> u64 {
    suite().cases.len() as u64
}
