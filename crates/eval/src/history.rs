//! The history of benchmark rounds: one JSON line of headline figures per
//! round.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::BenchmarkRun;
use crate::summary::ConfigKey;

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
    /// Appends the summaries of `runs` in one write. A file whose last
    /// line was cut short (a crash, a full disk) gets a line break first,
    /// and a write that fails is cut back, so a torn line is never
    /// continued.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn append(path: &Path, runs: &[BenchmarkRun]) -> Result<()> {
        let io = |e| Error::io(path, e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let mut text = Vec::new();
        if tuneloop_core::jsonl::ends_inside_line(path).map_err(io)? {
            text.push(b'\n');
        }
        for r in runs {
            serde_json::to_writer(&mut text, &RoundSummary::of(r)).map_err(|e| io(e.into()))?;
            text.push(b'\n');
        }
        if let Err(e) = f.write_all(&text).and_then(|()| f.flush()) {
            let _ = f.set_len(size);
            return Err(io(e));
        }
        Ok(())
    }

    /// Reads the history; a missing file is an empty history. A torn line
    /// (a round whose JSON ends early: a crash or a full disk cut it) is
    /// skipped wherever it stands; lines are at most
    /// [`MAX_LINE_BYTES`](tuneloop_core::jsonl::MAX_LINE_BYTES).
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::File`] naming any other bad line.
    pub fn read(path: &Path) -> Result<Vec<RoundSummary>> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut reader = std::io::BufReader::new(f);
        let (mut out, mut buf, mut line) = (Vec::new(), Vec::new(), 0usize);
        while tuneloop_core::jsonl::read_line(&mut reader, &mut buf)
            .map_err(|e| Error::io(path, e))?
            > 0
        {
            line += 1;
            if buf.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice(&buf) {
                Ok(r) => out.push(r),
                Err(_) if tuneloop_core::jsonl::is_torn(&buf) => {}
                Err(e) => {
                    return Err(Error::File {
                        path: path.to_owned(),
                        message: format!("line {line}: {e}"),
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
