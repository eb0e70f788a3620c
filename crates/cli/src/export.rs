//! `tuneloop export --database-url URL --out FILE.jsonl`: a fleet's
//! decision log, from PostgreSQL to the JSON Lines every command reads;
//! and `--log postgres://…` of `evaluate` and `report`, which export to a
//! temporary file first.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{CliError, CliResult};

#[cfg(feature = "postgres")]
pub(crate) fn run(url: &str, out: &Path) -> CliResult<Value> {
    use serde_json::json;
    use std::io::Write as _;
    let store = tuneloop_store::Store::connect(url).map_err(|e| match e.kind() {
        tuneloop_core::ErrorKind::BadInput => CliError::bad(format!("--database-url: {e}")),
        kind => CliError::of_kind(kind, e),
    })?;
    let decisions = store
        .decisions()
        .map_err(|e| CliError::of_kind(e.kind(), e))?;
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
        "with_outcome": decisions.iter().filter(|d| d.resolution.outcome().is_some()).count(),
    }))
}

/// A decision log to read: the file given, or a fleet's log exported
/// from the database given as `postgres://…` into a temporary file,
/// removed when this is dropped.
#[derive(Debug)]
pub(crate) struct LocalLog {
    /// The file to read.
    pub(crate) path: PathBuf,
    /// What to call it in output (a database URL without its password).
    pub(crate) name: String,
    temporary: bool,
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `log` as a file to read (see [`LocalLog`]).
pub(crate) fn local_log(log: &Path) -> CliResult<LocalLog> {
    let Some(url) = log
        .to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
    else {
        return Ok(LocalLog {
            path: log.to_path_buf(),
            name: log.display().to_string(),
            temporary: false,
        });
    };
    from_database(url)
}

#[cfg(feature = "postgres")]
fn from_database(url: &str) -> CliResult<LocalLog> {
    let path = std::env::temp_dir().join(format!(
        "tuneloop-fleet-log-{}-{}.jsonl",
        std::process::id(),
        tuneloop_core::DecisionId::random()
    ));
    let local = LocalLog {
        path,
        name: tuneloop_store::redact(url),
        temporary: true,
    };
    let out = run(url, &local.path)?;
    eprintln!("read {} decisions from {}", out["decisions"], local.name);
    Ok(local)
}

#[cfg(not(feature = "postgres"))]
fn from_database(_: &str) -> CliResult<LocalLog> {
    Err(CliError::bad(
        "--log postgres://…: reading a fleet's log needs a tuneloop built with --features postgres",
    ))
}

/// Without the `postgres` feature, `export` is an error.
#[cfg(not(feature = "postgres"))]
pub(crate) fn run(_: &str, _: &Path) -> CliResult<Value> {
    Err(CliError::bad(
        "export needs a tuneloop built with --features postgres",
    ))
}
