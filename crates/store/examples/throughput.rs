//! Records per second from one process into PostgreSQL through
//! [`PgDecisionLog`]: `cargo run --release -p tuneloop-store --example
//! throughput -- URL [RECORDS]` (URL from `scripts/local-postgres start`).
//! The records are an optimizer's, captured in memory first, so only the
//! log is timed: append (serialize and buffer) until the last batch is
//! committed. Prints JSON. Works in a schema of its own, dropped after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::{DecisionLog, MemoryLog};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_store::{PgDecisionLog, PgLogConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: throughput URL [RECORDS]")?;
    let n: usize = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let memory = Arc::new(MemoryLog::new());
    let arms = ArmSet::grid()
        .models(["small", "large"])
        .temperatures([0.2, 0.5, 0.9])
        .max_tokens([512, 2048])
        .build()?;
    let o = Optimizer::builder()
        .task_type("bench", TaskTypeConfig::new(arms))
        .decision_log(memory.clone())
        .seed(1)
        .build()?;
    for i in 0..n {
        let rec = o.recommend_parameters(
            "bench",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        o.record_outcome(
            rec.decision_id,
            &TaskOutcome::success(0.5 + (i % 7) as f64 / 20.0, 800.0).with_tokens(500, 300),
        )?;
    }
    drop(o);
    let records = memory.records();
    let schema = format!("bench_{}", std::process::id());
    let admin = |sql: String| -> Result<(), Box<dyn std::error::Error>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(conn);
            c.batch_execute(&sql).await?;
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    };
    admin(format!("CREATE SCHEMA {schema}"))?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let in_schema = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let log = PgDecisionLog::open(
        &in_schema,
        PgLogConfig {
            buffer: n.max(1),
            ..PgLogConfig::default()
        },
    )?;
    let bytes: usize = records
        .iter()
        .map(|r| serde_json::to_string(r).map_or(0, |s| s.len()))
        .sum();
    let t = Instant::now();
    for r in &records {
        log.append(r)?;
    }
    let appended = t.elapsed();
    let done = log.flush(Duration::from_secs(600));
    let secs = t.elapsed().as_secs_f64();
    let stats = log.stats();
    drop(log);
    admin(format!("DROP SCHEMA {schema} CASCADE"))?;
    println!(
        "{}",
        serde_json::json!({
            "records": records.len(),
            "mean_record_bytes": bytes / records.len().max(1),
            "all_written": done,
            "written": stats.written,
            "seconds": secs,
            "records_per_second": records.len() as f64 / secs,
            "append_ns_per_record": appended.as_nanos() as f64 / records.len().max(1) as f64,
        })
    );
    Ok(())
}
