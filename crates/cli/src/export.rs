//! `tuneloop export --database-url URL --out FILE.jsonl`: a fleet's
//! decision log, from PostgreSQL to the JSON Lines every command reads.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{CliError, CliResult};

#[cfg(feature = "postgres")]
pub(crate) fn run(url: &str, out: &Path) -> CliResult<Value> {
    use std::io::Write as _;
    use tuneloop_store::Error;
    let store = tuneloop_store::Store::connect(url).map_err(|e| match e {
        Error::InvalidUrl { .. } | Error::SchemaVersion { .. } | Error::Schema { .. } => {
            CliError::bad(format!("--database-url: {e}"))
        }
        other => CliError::Other(other.into()),
    })?;
    let decisions = store.decisions().map_err(|e| match e {
        Error::BadRecord { .. } => CliError::bad(e.to_string()),
        other => CliError::Other(other.into()),
    })?;
    let mut text = Vec::with_capacity(decisions.len() * 1024);
    for d in &decisions {
        serde_json::to_writer(&mut text, d)?;
        text.write_all(b"\n")
            .map_err(|e| CliError::Other(e.into()))?;
    }
    tuneloop_core::fs::write_atomic(out, &text)
        .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", out.display())))?;
    Ok(json!({
        "out": out.display().to_string(),
        "decisions": decisions.len(),
        "bytes": text.len(),
        "with_outcome": decisions.iter().filter(|d| d.outcome.is_some()).count(),
    }))
}

/// Without the `postgres` feature, `export` is an error.
#[cfg(not(feature = "postgres"))]
pub(crate) fn run(_: &str, _: &Path) -> CliResult<Value> {
    Err(CliError::bad(
        "export needs a tuneloop built with --features postgres",
    ))
}
