//! Against a real PostgreSQL: `TUNELOOP_DATABASE_URL=$(scripts/local-postgres
//! start) cargo test -p tuneloop-store`. Skipped, saying so, without it.
//! Each test works in a schema of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::DecisionLog;
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_store::{Error, PgDecisionLog, PgLogConfig, Store};

mod common;

use common::{TestResult, fresh, server, sql};

fn optimizer(log: Arc<PgDecisionLog>, seed: u64) -> Result<Optimizer, Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    Ok(Optimizer::builder()
        .task_type("t", TaskTypeConfig::new(arms))
        .decision_log(log)
        .seed(seed)
        .build()?)
}

#[test]
fn two_processes_write_one_log_and_every_decision_is_there_once() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "two")?;
    let log_a = Arc::new(PgDecisionLog::open(&url, PgLogConfig::default())?);
    let log_b = Arc::new(PgDecisionLog::open(&url, PgLogConfig::default())?);
    let (a, b) = (optimizer(log_a.clone(), 1)?, optimizer(log_b.clone(), 1)?);
    let mut ids = Vec::new();
    for i in 0..3_000 {
        let o = if i % 2 == 0 { &a } else { &b };
        let rec =
            o.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        o.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 100.0))?;
        ids.push(rec.decision_id);
    }
    // The same record twice (a batch retried after a lost acknowledgement)
    // is stored once.
    let store = Store::connect(&url)?;
    drop((a, b));
    assert!(log_a.flush(Duration::from_secs(30)) && log_b.flush(Duration::from_secs(30)));
    let first = store.decisions()?.remove(0);
    log_a.append(&first)?;
    assert!(log_a.flush(Duration::from_secs(30)));
    let mut stored: Vec<_> = store.decisions()?.iter().map(|d| d.decision_id).collect();
    assert_eq!(stored.len(), 3_000);
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids, "every decision exactly once");
    assert!(
        store
            .decisions()?
            .iter()
            .all(|d| d.resolution.reward().is_some()
                && d.resolution.outcome().map(|o| o.quality) == Some(0.5))
    );
    let s = log_a.stats();
    assert_eq!((s.written, s.dropped, s.pending), (1_501, 0, 0));
    Ok(())
}

#[test]
fn a_record_reads_back_exactly_as_written() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "exact")?;
    // The records an optimizer writes (contexts, propensities, outcomes
    // with every float), kept in memory, then through the database.
    let memory = Arc::new(tuneloop::counterfactual::MemoryLog::new());
    let arms = ArmSet::grid()
        .models(["m", "n"])
        .temperatures([0.1, 0.7])
        .max_tokens([128, 1024])
        .build()?;
    let o = Optimizer::builder()
        .task_type("t", TaskTypeConfig::new(arms))
        .decision_log(memory.clone())
        .seed(9)
        .build()?;
    for i in 0..200u32 {
        let task = TaskFeatures {
            description_length: u64::from(i) * 37,
            ..TaskFeatures::default()
        };
        let rec = o.recommend_parameters("t", &task, &RecommendOptions::default())?;
        let outcome = TaskOutcome::success(f64::from(i) / 199.0, 100.0 + f64::from(i) / 3.0)
            .with_tokens(400, u64::from(i))
            .with_cost(f64::from(i) * 1.7e-6);
        o.record_outcome(rec.decision_id, &outcome)?;
    }
    drop(o);
    let written = memory.records();
    let log = PgDecisionLog::open(&url, PgLogConfig::default())?;
    for r in &written {
        log.append(r)?;
    }
    assert!(log.flush(Duration::from_secs(30)));
    let mut read = Store::connect(&url)?.decisions()?;
    let mut want = written.clone();
    read.sort_by_key(|d| d.decision_id);
    want.sort_by_key(|d| d.decision_id);
    assert_eq!(read, want);
    Ok(())
}

#[test]
fn bad_urls_newer_schemas_and_edited_tables_are_named() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    // Nothing listens on port 1.
    let e = Store::connect("postgres://postgres@127.0.0.1:1/tuneloop").unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let e = Store::connect("postgres://postgres@127.0.0.1:99999/tuneloop").unwrap_err();
    assert!(matches!(e, Error::InvalidUrl { .. }), "{e}");

    let newer = fresh(&url, "newer")?;
    drop(Store::connect(&newer)?);
    sql(&newer, "INSERT INTO tuneloop_schema (version) VALUES (99)")?;
    let e = Store::connect(&newer).unwrap_err();
    let supported = tuneloop_store::schema_version();
    assert!(
        matches!(e, Error::SchemaVersion { found: 99, supported: s } if s == supported),
        "{e}"
    );
    assert!(PgDecisionLog::open(&newer, PgLogConfig::default()).is_err());

    let edited = fresh(&url, "edited")?;
    drop(Store::connect(&edited)?);
    sql(
        &edited,
        "ALTER TABLE tuneloop_decisions DROP COLUMN task_type",
    )?;
    let e = Store::connect(&edited).unwrap_err().to_string();
    assert!(
        e.contains("tuneloop_decisions") && e.contains("`task_type` is missing"),
        "{e}"
    );
    sql(
        &edited,
        "ALTER TABLE tuneloop_decisions ADD COLUMN task_type integer",
    )?;
    let e = Store::connect(&edited).unwrap_err().to_string();
    assert!(
        e.contains("`task_type` is `integer`, expected `text`"),
        "{e}"
    );

    // A record edited into something that is not a decision.
    let bad = fresh(&url, "badrecord")?;
    let log = Arc::new(PgDecisionLog::open(&bad, PgLogConfig::default())?);
    let o = optimizer(log.clone(), 2)?;
    let rec =
        o.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
    o.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 100.0))?;
    drop(o);
    assert!(log.flush(Duration::from_secs(30)));
    sql(
        &bad,
        "UPDATE tuneloop_decisions SET record = '{\"propensity\": 7}'",
    )?;
    let e = Store::connect(&bad)?.decisions().unwrap_err().to_string();
    assert!(e.contains(&rec.decision_id.to_string()), "{e}");
    Ok(())
}

/// A TCP relay to the server that can be cut and restored: an outage of
/// the database as the client sees it.
struct Relay {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: tokio::runtime::Runtime,
}

impl Relay {
    fn start(
        target: SocketAddr,
        addr: Option<SocketAddr>,
    ) -> Result<Relay, Box<dyn std::error::Error>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(
            addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        ))?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => return,
                    Ok((mut inbound, _)) = listener.accept() => {
                        tokio::spawn(async move {
                            if let Ok(mut out) = TcpStream::connect(target).await {
                                let _ = copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        });
                    }
                }
            }
        });
        Ok(Relay {
            addr,
            stop: Some(tx),
            rt,
        })
    }

    /// Cuts every connection and stops listening.
    fn cut(mut self) -> SocketAddr {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.rt.shutdown_timeout(Duration::from_secs(1));
        self.addr
    }
}

#[test]
fn an_outage_is_buffered_and_caught_up_and_only_records_past_the_bound_are_dropped() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "outage")?;
    let config: tokio_postgres::Config = url.parse()?;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let relay = Relay::start(target, None)?;
    let via = url.replacen(&format!(":{port}/"), &format!(":{}/", relay.addr.port()), 1);
    let log = Arc::new(PgDecisionLog::open(
        &via,
        PgLogConfig {
            buffer: 500,
            batch: 100,
            max_backoff: Duration::from_millis(200),
            ..PgLogConfig::default()
        },
    )?);
    let o = optimizer(log.clone(), 3)?;
    let decide = |n: usize| -> TestResult {
        for _ in 0..n {
            let rec = o.recommend_parameters(
                "t",
                &TaskFeatures::default(),
                &RecommendOptions::default(),
            )?;
            o.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 100.0))?;
        }
        o.flush_log();
        Ok(())
    };
    decide(200)?;
    assert!(log.flush(Duration::from_secs(30)));
    // The database goes away: decisions go on, the log buffers up to its
    // bound and drops (and counts) the rest.
    let addr = relay.cut();
    decide(700)?;
    let s = log.stats();
    assert_eq!(s.dropped, 200, "{s:?}");
    assert_eq!(s.pending, 500, "{s:?}");
    // The optimizer counts them too: nothing is lost silently.
    assert_eq!(o.counters().log_failed, 200);
    // It comes back on the same address: the buffer is written.
    let relay = Relay::start(target, Some(addr))?;
    assert!(log.flush(Duration::from_secs(30)), "{:?}", log.stats());
    let store = Store::connect(&url)?;
    assert_eq!(store.count()?, 700);
    let s = log.stats();
    assert_eq!((s.written, s.dropped, s.pending), (700, 200, 0), "{s:?}");
    assert!(s.failed_batches >= 1 && s.connected);
    drop(relay);
    Ok(())
}

#[test]
fn a_snapshot_saved_to_the_store_restores_the_optimizer() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "snapshot")?;
    let store = Store::connect(&url)?;
    assert!(
        store
            .load_snapshot::<tuneloop::OptimizerSnapshot>("agent")?
            .is_none()
    );
    let memory = Arc::new(tuneloop::counterfactual::MemoryLog::new());
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let build = |snapshot: Option<tuneloop::OptimizerSnapshot>| {
        let mut b = Optimizer::builder()
            .task_type("t", TaskTypeConfig::new(arms.clone()))
            .decision_log(memory.clone())
            .seed(4);
        if let Some(s) = snapshot {
            b = b.restore(s);
        }
        b.build()
    };
    let o = build(None)?;
    for _ in 0..100 {
        let rec =
            o.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        let q = if rec.arm == 2 { 0.9 } else { 0.2 };
        o.record_outcome(rec.decision_id, &TaskOutcome::success(q, 100.0))?;
    }
    let saved = o.snapshot()?;
    store.save_snapshot("agent", &saved)?;
    // Saved twice: the second replaces the first.
    store.save_snapshot("agent", &saved)?;
    let loaded: tuneloop::OptimizerSnapshot = store.load_snapshot("agent")?.ok_or("saved")?;
    assert_eq!(
        serde_json::to_value(&loaded)?,
        serde_json::to_value(&saved)?
    );
    // A restored optimizer decides as the saved one would.
    let (a, b) = (build(Some(saved))?, build(Some(loaded))?);
    for _ in 0..20 {
        let x =
            a.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        let y =
            b.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        assert_eq!(
            (x.arm, x.propensity.to_bits()),
            (y.arm, y.propensity.to_bits())
        );
    }
    // A snapshot edited into something else is named.
    sql(
        &url,
        "UPDATE tuneloop_snapshots SET snapshot = '{\"version\": \"x\"}'",
    )?;
    let e = store
        .load_snapshot::<tuneloop::OptimizerSnapshot>("agent")
        .unwrap_err()
        .to_string();
    assert!(e.contains("snapshot agent"), "{e}");
    Ok(())
}
