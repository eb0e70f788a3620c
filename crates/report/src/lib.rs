//! One self-contained HTML page about a tuneloop decision log: reward over
//! time by cohort, the rollout's phases, each arm's quality against its
//! cost with the Pareto front, off-policy estimates of candidate against
//! baseline, drift, attribution of reward to parameters, episodes, and —
//! when given — the provenance chain (every rollout change and verdict of
//! the candidate's proof) and the live state of each rollout. Inline SVG,
//! inline CSS, and a few lines of script that check the page (read by the
//! headless-browser test, see `docs/report.md`).
//!
//! `tuneloop report` writes it from a log file; the admin endpoint of the
//! `tuneloop` facade (feature `admin`) serves it live at `GET /`.
//!
//! ```no_run
//! use tuneloop_report::{Options, read_log, render};
//! let log = read_log(std::path::Path::new("decisions.jsonl"), &|_| {})?;
//! let page = render(&log, &Options::new("decisions.jsonl"), &|_| {})?;
//! std::fs::write("report.html", page.html)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod analysis;
mod attribution;
mod charts;
mod html;
mod live;
mod load;
mod render;

use std::path::Path;

pub use live::LiveRollout;
pub use load::Data as Log;
pub use render::{CHARTS, Report, render, render_status};
use tuneloop_gates::ProvenanceRecord;

/// What went wrong making a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log is wrong: the message names the file, line and field.
    #[error("{0}")]
    BadInput(String),
    /// The log could not be read.
    #[error("{0}")]
    Io(String),
    /// A chart or an estimate failed.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// What kind of failure it is: the variant says it.
    pub fn kind(&self) -> tuneloop_core::ErrorKind {
        match self {
            Error::BadInput(_) => tuneloop_core::ErrorKind::BadInput,
            Error::Io(_) => tuneloop_core::ErrorKind::Io,
            Error::Internal(_) => tuneloop_core::ErrorKind::Internal,
        }
    }
}

impl From<tuneloop_counterfactual::Error> for Error {
    fn from(e: tuneloop_counterfactual::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the page shows besides the log.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// The page's title (the log's name).
    pub title: String,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Records of a provenance chain: a table of every change, and the
    /// chart of the candidate's proof drawn from its verdicts.
    pub provenance: &'a [ProvenanceRecord],
    /// The live state of each rollout (the dashboard): shown first.
    pub live: Option<Vec<LiveRollout>>,
}

impl Options<'_> {
    /// A report titled `title`, seed 0, nothing but the log.
    pub fn new(title: impl Into<String>) -> Self {
        Options {
            title: title.into(),
            ..Options::default()
        }
    }
}

/// Reads a decision log (gzip if the name ends in `.gz`), calling
/// `progress` with the number of lines read every million lines. A line
/// torn by a crash is skipped with a warning.
///
/// # Errors
/// [`Error::BadInput`] naming the file and line of a record that is not a
/// decision, or a log without any; [`Error::Io`].
pub fn read_log(path: &Path, progress: &dyn Fn(usize)) -> Result<Log> {
    load::load(path, progress)
}
