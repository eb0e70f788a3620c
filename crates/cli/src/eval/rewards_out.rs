//! `eval run --rewards-out FILE.csv`: a benchmark's per-case results as
//! a replay file for `simulate --rewards`.

use crate::error::{CliError, CliResult};

/// The calls of `runs` as a replay file (see `RunOptions::rewards_out`):
/// only the rows every configuration answered or failed are written.
pub(super) fn write_rewards(
    runs: &[tuneloop_eval::BenchmarkRun],
    path: &std::path::Path,
) -> CliResult<()> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut arms = BTreeSet::new();
    let mut types = BTreeSet::new();
    /// A row's task type and each configuration's quality on it.
    type Row<'a> = (&'a str, BTreeMap<String, f64>);
    // (round, case, repetition) → row
    let mut rows: BTreeMap<(u32, &str, u32), Row<'_>> = BTreeMap::new();
    for run in runs {
        for c in &run.calls {
            let arm = format!("{}:{}:{}", c.provider, c.model, c.arm);
            arms.insert(arm.clone());
            types.insert(c.task_type.as_str());
            let quality = if c.success { c.quality } else { 0.0 };
            rows.entry((c.round, &c.case_id, c.repetition))
                .or_insert_with(|| (&c.task_type, BTreeMap::new()))
                .1
                .insert(arm, quality.clamp(0.0, 1.0));
        }
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let bad = |e: ::csv::Error| CliError::Other(anyhow::anyhow!("{}: {e}", path.display()));
    let header = types
        .iter()
        .map(|t| format!("task_{t}"))
        .chain(arms.iter().map(|a| format!("reward_{a}")));
    w.write_record(header).map_err(bad)?;
    let mut written = 0usize;
    for (task_type, rewards) in rows.values() {
        if rewards.len() != arms.len() {
            continue;
        }
        let cells = types
            .iter()
            .map(|t| {
                if t == task_type {
                    "1".to_owned()
                } else {
                    "0".to_owned()
                }
            })
            .chain(rewards.values().map(|r| format!("{r}")));
        w.write_record(cells).map_err(bad)?;
        written += 1;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", path.display())))?;
    tuneloop_core::fs::write_atomic(path, &bytes)
        .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", path.display())))?;
    if written == 0 {
        return Err(CliError::bad(format!(
            "{}: no case was run by every configuration; the file has a header only",
            path.display()
        )));
    }
    Ok(())
}
