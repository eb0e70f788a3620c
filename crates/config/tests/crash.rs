//! A writer killed at random points: after each SIGKILL every file reloads
//! and nothing acknowledged is lost.
//!
//! The test runs its own binary again as the writer (the `writer` test
//! below, which does nothing unless `TUNELOOP_CRASH_DIR` is set). The
//! writer learns with a decision log, a snapshot and a runtime
//! configuration in one folder, restoring from the snapshot at start, and
//! prints what it has acknowledged:
//!
//! - `log ID` once [`Optimizer::flush_log`] returned after the outcome of
//!   decision `ID`: the record is in the log;
//! - `snapshot N` once `save_snapshot` returned after `N` decisions: the
//!   file holds that snapshot or a later one;
//! - `config X` once [`RuntimeConfigStore::flush`] returned with
//!   exploration rate `X`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::{JsonlLog, read_log};
use tuneloop::{Optimizer, OptimizerSnapshot, RecommendOptions, TaskTypeConfig};
use tuneloop_config::RuntimeConfigStore;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KILLS: u64 = 50;

fn build(dir: &Path) -> Result<(Optimizer, Arc<RuntimeConfigStore>), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .max_tokens([256, 1024])
        .build()?;
    let store = Arc::new(RuntimeConfigStore::open(dir.join("runtime.json"))?);
    let mut b = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms))
        .seed(7) // the same seed at every start, as a deployment would have
        .decision_log(Arc::new(JsonlLog::open(
            dir.join("decisions.jsonl"),
            u64::MAX,
            0,
        )?));
    let snapshot = dir.join("snapshot.json");
    if snapshot.exists() {
        b = b.restore(OptimizerSnapshot::load(&snapshot)?);
    }
    let optimizer = b.build()?;
    store.attach(&optimizer)?;
    Ok((optimizer, store))
}

/// The writer: runs until killed.
#[test]
fn writer() -> TestResult {
    let Some(dir) = std::env::var_os("TUNELOOP_CRASH_DIR") else {
        return Ok(());
    };
    let dir = Path::new(&dir);
    let (opt, store) = build(dir)?;
    // Each decision gets its outcome at once: decisions made = outcomes.
    let mut outcomes = opt.snapshot()?.decision_counter;
    loop {
        let rec = opt.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        let quality = 1.0 - rec.params.temperature() / 2.0;
        opt.record_outcome(rec.decision_id, &TaskOutcome::success(quality, 300.0))?;
        outcomes += 1;
        match outcomes % 16 {
            0 => {
                opt.save_snapshot(&dir.join("snapshot.json"))?;
                println!("snapshot {outcomes}");
            }
            5 => {
                // Grows with every update, so an older file is told apart.
                let rate = outcomes as f64 / 1e9;
                store.update(|c| c.exploration_rate = rate)?;
                store.flush()?;
                println!("config {rate}");
            }
            _ if outcomes % 3 == 0 => {
                opt.flush_log();
                println!("log {}", rec.decision_id);
            }
            _ => {}
        }
    }
}

#[test]
fn a_writer_killed_fifty_times_loses_nothing_it_acknowledged() -> TestResult {
    if std::env::var_os("TUNELOOP_CRASH_DIR").is_some() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut rng = fastrand::Rng::with_seed(20261201);
    let mut acked_ids = HashSet::new();
    let (mut last_snapshot, mut torn_total) = (0u64, 0usize);
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer", "--nocapture", "--test-threads=1"])
            .env("TUNELOOP_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Let it start (restore, open the files) and write for a while.
        std::thread::sleep(Duration::from_millis(rng.u64(30..250)));
        child.kill()?; // SIGKILL
        child.wait()?;
        let mut last_config = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match line.split_once(' ') {
                Some(("log", id)) => {
                    acked_ids.insert(id.to_owned());
                }
                Some(("snapshot", n)) => last_snapshot = n.parse()?,
                Some(("config", rate)) => last_config = Some(rate.parse::<f64>()?),
                _ => {} // the harness's own lines
            }
        }

        // Every file reloads.
        let log = read_log(&dir.path().join("decisions.jsonl"))?;
        torn_total += log.warnings.len();
        assert!(
            log.warnings.len() <= 1 + kill as usize,
            "kill {kill}: {:?}",
            log.warnings
        );
        let ids: Vec<String> = log
            .records
            .iter()
            .map(|r| r.decision_id.to_string())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "kill {kill}: a decision id was issued twice"
        );
        for id in &acked_ids {
            assert!(
                unique.contains(id),
                "kill {kill}: acknowledged record {id} lost"
            );
        }
        if last_snapshot > 0 {
            let snapshot = OptimizerSnapshot::load(&dir.path().join("snapshot.json"))?;
            let outcomes = snapshot.decision_counter;
            assert!(
                outcomes >= last_snapshot,
                "kill {kill}: snapshot of {outcomes} outcomes, {last_snapshot} acknowledged"
            );
        }
        let store = RuntimeConfigStore::open(dir.path().join("runtime.json"))?;
        if let Some(rate) = last_config {
            // A later update may be on disk too, never an earlier one.
            let on_disk = store.get().exploration_rate;
            assert!(
                on_disk >= rate,
                "kill {kill}: {on_disk} on disk, {rate} acknowledged"
            );
        }
        drop(store);
        // And the optimizer restarts from them.
        build(dir.path())?;
    }
    // The writers got somewhere, and were killed mid-way often enough to
    // matter (a torn last line, or none: both are fine).
    assert!(
        acked_ids.len() > KILLS as usize,
        "only {} records acknowledged",
        acked_ids.len()
    );
    eprintln!(
        "{KILLS} kills, {} acknowledged records, {torn_total} torn lines skipped, last snapshot at {last_snapshot} outcomes",
        acked_ids.len()
    );
    Ok(())
}
