//! The one reader of the decision log ([`LogReader`], [`read_log`]) and
//! the one way a record is read ([`LoggedDecision::from_json`]).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::log::LoggedDecision;
use crate::resolution::Wire;

/// What [`read_log`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LogContents {
    /// The records, in file order.
    pub records: Vec<LoggedDecision>,
    /// Problems that were skipped (a torn last line), for the user to see.
    pub warnings: Vec<String>,
}

/// Reads a JSON Lines decision log whole (gzip if its name ends in `.gz`,
/// with the `gzip` feature), through [`LogReader`].
///
/// # Errors
/// As [`LogReader`]: [`Error::Io`], or [`Error::InvalidLine`].
pub fn read_log(path: &Path) -> Result<LogContents> {
    let mut reader = LogReader::open(path)?;
    let mut records = Vec::new();
    for record in &mut reader {
        records.push(record?);
    }
    Ok(LogContents {
        records,
        warnings: reader.into_warnings(),
    })
}

/// The one reader of the decision log: every tool that reads a log (the
/// evaluator, the report, the dashboard, the export) reads it through
/// this, so what one refuses, all refuse, with the same message.
///
/// Streams records in file order, each checked by
/// [`LoggedDecision::validate`]. A torn line, anywhere (a record whose
/// JSON ends early: a crash or a full disk cut it), is skipped with a
/// warning ([`warnings`](Self::warnings)); any other bad line is an
/// [`Error::InvalidLine`] naming the file and the line, after which the
/// reader ends. Lines are read within
/// [`MAX_LINE_BYTES`](crate::input::MAX_LINE_BYTES).
///
/// ```no_run
/// use tuneloop_counterfactual::LogReader;
/// let mut log = LogReader::open(std::path::Path::new("decisions.jsonl"))?;
/// for record in &mut log {
///     let record = record?;
///     println!("{} {}", record.task_type, record.propensity);
/// }
/// for w in log.warnings() {
///     eprintln!("{w}");
/// }
/// # Ok::<(), tuneloop_counterfactual::Error>(())
/// ```
pub struct LogReader {
    name: String,
    reader: BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    line: usize,
    /// Blank bytes read since the last record.
    blank: u64,
    warnings: Vec<String>,
    done: bool,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("path", &self.name)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens `path` (inflating it when its name ends in `.gz`).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let inner = crate::input::open(path).map_err(|source| Error::Io {
            path: name.clone(),
            source,
        })?;
        Ok(LogReader {
            name,
            reader: BufReader::with_capacity(1 << 20, inner),
            buf: Vec::new(),
            line: 0,
            blank: 0,
            warnings: Vec::new(),
            done: false,
        })
    }

    /// The number of the line read last (1-based; 0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }

    /// What was skipped so far (torn lines), one message each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The warnings, once the reader is done with.
    pub fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidLine {
            path: self.name.clone(),
            line: self.line,
            reason,
        }
    }

    /// Skips blank bytes (line breaks, spaces) in bulk, counting lines,
    /// up to [`MAX_BLANK_BYTES`](crate::input::MAX_BLANK_BYTES) since the
    /// last record.
    fn skip_blank(&mut self) -> Result<()> {
        loop {
            let buf = self.reader.fill_buf().map_err(|source| Error::Io {
                path: format!("{}: line {}", self.name, self.line + 1),
                source,
            })?;
            let k = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            if k == 0 {
                return Ok(());
            }
            // Whole lines only: a record's leading spaces stay with it.
            let Some(last) = buf[..k].iter().rposition(|&b| b == b'\n') else {
                return Ok(());
            };
            self.line += buf[..=last].iter().filter(|&&b| b == b'\n').count();
            self.blank += last as u64 + 1;
            self.reader.consume(last + 1);
            if self.blank > crate::input::MAX_BLANK_BYTES {
                return Err(self.invalid(format!(
                    "more than {} MiB of blank lines without a record (input::MAX_BLANK_BYTES): stopped",
                    crate::input::MAX_BLANK_BYTES >> 20
                )));
            }
        }
    }

    fn next_record(&mut self) -> Result<Option<LoggedDecision>> {
        loop {
            self.skip_blank()?;
            let n = crate::input::read_line(&mut self.reader, &mut self.buf).map_err(|source| {
                Error::Io {
                    path: format!("{}: line {}", self.name, self.line + 1),
                    source,
                }
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let complete = self.buf.last() == Some(&b'\n');
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                self.blank += n as u64;
                if self.blank > crate::input::MAX_BLANK_BYTES {
                    return Err(self.invalid(format!(
                        "more than {} MiB of blank lines without a record (input::MAX_BLANK_BYTES): stopped",
                        crate::input::MAX_BLANK_BYTES >> 20
                    )));
                }
                continue;
            }
            self.blank = 0;
            // Without its line break, so that a record cut inside a string
            // ends early (an EOF error) rather than on a control character.
            match LoggedDecision::from_json(self.buf.trim_ascii_end()) {
                Ok(r) => return Ok(Some(r)),
                // A record whose JSON ends early was torn by a crash or a
                // full disk, wherever it stands; anything else is an error.
                Err(RecordError::Syntax(_)) if !complete || crate::input::is_torn(&self.buf) => {
                    let w = format!(
                        "{}: line {}: torn line (the record ends early) skipped",
                        self.name, self.line
                    );
                    self.warnings.push(w);
                }
                Err(e) => return Err(self.invalid(e.to_string())),
            }
        }
    }
}

/// Why a record was refused by [`LoggedDecision::from_json`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a record's JSON (the message names the field where it can).
    #[error("{0}")]
    Syntax(String),
    /// A record whose values break its rules ([`LoggedDecision::validate`]).
    #[error("{0}")]
    Invalid(String),
}

impl LoggedDecision {
    /// Reads one record from its JSON (a line of a log, a row of a
    /// store) and checks it: the way every reader of the decision log
    /// reads a record, so that what one refuses, all refuse, with the
    /// same message.
    ///
    /// # Errors
    /// [`RecordError`] saying what is wrong and where.
    pub fn from_json(text: &[u8]) -> std::result::Result<Self, RecordError> {
        let wire: Wire =
            serde_json::from_slice(text).map_err(|e| RecordError::Syntax(field_error(text, e)))?;
        let record =
            LoggedDecision::try_from(wire).map_err(|e| RecordError::Invalid(e.to_string()))?;
        record
            .validate()
            .map_err(|e| RecordError::Invalid(e.to_string()))?;
        Ok(record)
    }
}

/// A record's parse error with the path of the field it failed on (the
/// line is read again with the path tracked only when it failed, so
/// records that parse pay nothing for it).
fn field_error(line: &[u8], e: serde_json::Error) -> String {
    let mut de = serde_json::Deserializer::from_slice(line);
    match serde_path_to_error::deserialize::<_, Wire>(&mut de) {
        Err(tracked) if tracked.path().iter().next().is_some() => {
            format!("{}: {}", tracked.path(), tracked.inner())
        }
        _ => e.to_string(),
    }
}

impl Iterator for LogReader {
    type Item = Result<LoggedDecision>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}
