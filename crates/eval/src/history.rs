//! The history of benchmark rounds: one JSON line of headline figures per
//! round.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::BenchmarkRun;
use crate::supervisor::ConfigKey;

/// One line of the run history: a round's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// The round.
    pub round: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The suite.
    pub suite: String,
    /// Calls.
    pub calls: u64,
    /// Share of calls answered and scored.
    pub success_rate: f64,
    /// Mean quality over every call.
    pub mean_quality: f64,
    /// Mean quality per configuration key.
    pub configs: BTreeMap<String, f64>,
}

impl RoundSummary {
    /// The summary of a run.
    pub fn of(run: &BenchmarkRun) -> Self {
        let n = run.calls.len().max(1) as f64;
        let mut configs: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for c in &run.calls {
            let e = configs.entry(ConfigKey::of(c).to_string()).or_default();
            e.0 += c.quality;
            e.1 += 1;
        }
        RoundSummary {
            round: run.round,
            started_at: run.started_at,
            suite: run.suite.clone(),
            calls: run.calls.len() as u64,
            success_rate: run.calls.iter().filter(|c| c.success).count() as f64 / n,
            mean_quality: run.calls.iter().map(|c| c.quality).sum::<f64>() / n,
            configs: configs
                .into_iter()
                .map(|(k, (s, n))| (k, s / n as f64))
                .collect(),
        }
    }
}

/// The history of rounds: a JSON Lines file, one [`RoundSummary`] a line,
/// appended and flushed per round.
#[derive(Debug, Clone, Copy)]
pub struct History;

impl History {
    /// Appends the summaries of `runs`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn append(path: &Path, runs: &[BenchmarkRun]) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        for r in runs {
            let mut line =
                serde_json::to_vec(&RoundSummary::of(r)).map_err(|e| Error::io(path, e.into()))?;
            line.push(b'\n');
            f.write_all(&line).map_err(|e| Error::io(path, e))?;
        }
        f.flush().map_err(|e| Error::io(path, e))
    }

    /// Reads the history; a missing file is an empty history, and a torn
    /// last line (a crash mid-write) is skipped.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::File`] naming a bad line other than the
    /// last.
    pub fn read(path: &Path) -> Result<Vec<RoundSummary>> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(path, e))?;
        let mut out = Vec::with_capacity(lines.len());
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(_) if i == last => {}
                Err(e) => {
                    return Err(Error::File {
                        path: path.to_owned(),
                        message: format!("line {}: {e}", i + 1),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The round after the last one recorded (0 for no history).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn next_round(path: &Path) -> Result<u32> {
        Ok(History::read(path)?
            .iter()
            .map(|r| r.round + 1)
            .max()
            .unwrap_or(0))
    }
}
