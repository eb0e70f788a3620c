//! `tuneloop report --log DECISIONS.jsonl --out report.html [--provenance
//! CHAIN.jsonl]`: the page of [`tuneloop_report`], written atomically.

use std::path::Path;

use serde_json::Value;
use tuneloop_report::{Error, Options};

use crate::error::{CliError, CliResult};

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

/// The output must be a file, and not the log it is made from (writing it
/// would replace the log with the page).
fn check_output(log: &Path, out: &Path) -> CliResult<()> {
    if out.is_dir() {
        return Err(CliError::bad(format!(
            "--out {}: is a directory; name the HTML file to write",
            out.display()
        )));
    }
    let same = match (std::fs::canonicalize(log), std::fs::canonicalize(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(CliError::bad(format!(
            "--out {} is the log itself: it would be replaced by the report",
            out.display()
        )));
    }
    Ok(())
}

pub(crate) fn run(
    log: &Path,
    out: &Path,
    seed: u64,
    provenance: Option<&Path>,
) -> CliResult<Value> {
    check_output(log, out)?;
    let local = crate::export::local_log(log)?;
    let log = local.path.as_path();
    let chain = match provenance {
        Some(p) => tuneloop_gates::provenance::read(p)
            .map_err(|e| CliError::bad(format!("--provenance {}: {e}", p.display())))?,
        None => Vec::new(),
    };
    let data = tuneloop_report::read_log(log, &|n| eprintln!("report: read {n} lines"))?;
    for w in data.warnings() {
        eprintln!("report: warning: {w}");
    }
    eprintln!("report: read {} decisions", data.len());
    let options = Options {
        title: local.name.clone(),
        seed,
        provenance: &chain,
        live: None,
    };
    let page = tuneloop_report::render(&data, &options, &|s| eprintln!("report: {s}"))?;
    tuneloop_core::fs::write_atomic(out, page.html.as_bytes())
        .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", out.display())))?;
    eprintln!("report: wrote {}", out.display());
    let mut summary = page.summary;
    summary["out"] = Value::String(out.display().to_string());
    Ok(summary)
}
