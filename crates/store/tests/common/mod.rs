//! What the tests against a real PostgreSQL share: the server's URL, a
//! schema of each test's own, SQL run on the side.

#![allow(dead_code)] // each test binary uses its own part

use tokio_postgres::NoTls;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The server's URL, or `None` (and a note on how to start one).
pub(crate) fn server() -> Option<String> {
    match std::env::var("TUNELOOP_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "skipped: no PostgreSQL (TUNELOOP_DATABASE_URL=$(scripts/local-postgres start))"
            );
            None
        }
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `sql` on the server.
pub(crate) fn sql(url: &str, sql: &str) -> TestResult {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(conn);
        client.batch_execute(sql).await?;
        Ok(())
    })
}

/// A fresh schema of its own: the URL that works in it.
pub(crate) fn fresh(url: &str, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    let schema = format!("t_{name}_{}", std::process::id());
    sql(
        url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-csearch_path%3D{schema}"))
}
