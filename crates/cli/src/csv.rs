//! The supervised CSV format of `simulate --supervised`: a header, numeric
//! feature columns, the last column an integer label in `0..K`.
//!
//! Cells are trimmed of spaces and of surrounding double quotes. Numbers go
//! through [`parse_prefix`] (one pass, the same value `f64::from_str`
//! gives) and, for anything else (`NaN`, text, more than 19 significant
//! digits), `from_str`.
//! Blank lines are skipped; line numbers in errors count them.
//!
//! A run needs the number of labels before its first round, and its rounds
//! need nothing but the rows before them. So [`Source::open`] reads the
//! file and checks its header and labels (one quick pass over each line's
//! last cell), and [`Source::for_each_chunk`] parses the features on a
//! second thread while the caller works through the rows already parsed.
//! Either way, an error names the first bad line of the file.

use std::borrow::Cow;
use std::path::Path;
use std::sync::mpsc;

use tuneloop_core::decimal::parse_prefix;

use crate::error::{CliError, CliResult};

/// Most classes a supervised file may have (the arm-set bound).
const MAX_LABELS: usize = tuneloop_core::MAX_ARMS;

/// Rows per chunk handed from the parser thread to the caller.
const CHUNK_ROWS: usize = 1024;

/// `cell` without surrounding ASCII whitespace and double quotes.
fn trim(cell: &[u8]) -> &[u8] {
    let cell = cell.trim_ascii();
    let cell = cell.strip_prefix(b"\"").unwrap_or(cell);
    cell.strip_suffix(b"\"").unwrap_or(cell)
}

/// The number in a (trimmed) cell, if it is one.
#[inline]
fn number(cell: &[u8]) -> Option<f64> {
    match parse_prefix(cell) {
        Some((v, len)) if len == cell.len() => Some(v),
        _ => std::str::from_utf8(cell).ok()?.parse().ok(),
    }
}

fn text(cell: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(cell)
}

/// Non-blank lines of `bytes` with their 1-based numbers, without line
/// terminators.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    let mut number = 1;
    std::iter::from_fn(move || {
        while start <= bytes.len() {
            let end = ends.next()?;
            let line = &bytes[start..end];
            start = end + 1;
            number += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.trim_ascii().is_empty() {
                return Some((number - 1, line));
            }
        }
        None
    })
}

/// A supervised file, read and checked up to its features.
#[derive(Debug)]
pub(crate) struct Source {
    name: String,
    bytes: Vec<u8>,
    columns: Vec<String>,
    num_labels: usize,
}

impl Source {
    /// Reads the file and checks its header and every label.
    ///
    /// # Errors
    /// Exit-2 errors naming the file and, for a bad row, its line and column.
    pub(crate) fn open(path: &Path) -> CliResult<Self> {
        let name = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| CliError::bad(format!("{name}: cannot read: {e}")))?;
        let Some((header_line, header)) = lines(&bytes).next() else {
            return Err(CliError::bad(format!(
                "{name}: the file is empty (expected a header row)"
            )));
        };
        let columns: Vec<String> = header
            .split(|&b| b == b',')
            .map(|c| text(trim(c)).into_owned())
            .collect();
        if columns.len() < 2 {
            return Err(CliError::bad(format!(
                "{name}: line {header_line}: the header has {} column(s); expected at least one feature and a label",
                columns.len()
            )));
        }
        let mut source = Source {
            name,
            bytes,
            columns,
            num_labels: 0,
        };
        source.num_labels = source.check_labels()?;
        Ok(source)
    }

    /// Number of feature columns.
    pub(crate) fn width(&self) -> usize {
        self.columns.len() - 1
    }

    /// Number of arms: the largest label plus one.
    pub(crate) fn num_labels(&self) -> usize {
        self.num_labels
    }

    /// The rows: every non-blank line after the header (the first one).
    fn body(&self) -> impl Iterator<Item = (usize, &[u8])> {
        lines(&self.bytes).skip(1)
    }

    /// The label pass: every row's last cell. On any problem, the full
    /// parse finds the first bad line of the file (which may be a bad
    /// feature before the bad label) and reports it.
    fn check_labels(&self) -> CliResult<usize> {
        let mut max = None;
        for (_, line) in self.body() {
            let last = line.rsplit(|&b| b == b',').next().unwrap_or(line);
            match label(trim(last)) {
                Some(l) => max = max.max(Some(l)),
                None => {
                    self.for_each_chunk(|_, _| Ok(()))?;
                    return Err(CliError::bad(format!(
                        "{}: a label is bad, but no line could be blamed",
                        self.name
                    )));
                }
            }
        }
        let Some(max) = max else {
            return Err(CliError::bad(format!(
                "{}: no data rows after the header",
                self.name
            )));
        };
        if max == 0 {
            return Err(CliError::bad(format!(
                "{}: every label is 0; a bandit needs at least two arms (labels 0 and 1)",
                self.name
            )));
        }
        Ok(max + 1)
    }

    /// Parses the rows on a second thread and calls `f` on each chunk of
    /// them in file order: row-major features (`rows × width`) and labels.
    /// Stops at the first error, `f`'s or the file's.
    ///
    /// # Errors
    /// The first bad row (exit 2, naming line and column), or `f`'s error.
    pub(crate) fn for_each_chunk(
        &self,
        mut f: impl FnMut(&[f64], &[usize]) -> CliResult<()>,
    ) -> CliResult<()> {
        let (tx, rx) = mpsc::sync_channel::<CliResult<(Vec<f64>, Vec<usize>)>>(8);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let width = self.width();
                let mut features = Vec::with_capacity(CHUNK_ROWS * width);
                let mut labels = Vec::with_capacity(CHUNK_ROWS);
                for (lineno, line) in self.body() {
                    match self.row(lineno, line, &mut features) {
                        Ok(l) => labels.push(l),
                        Err(e) => {
                            // The receiver may be gone already (`f` failed).
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    if labels.len() == CHUNK_ROWS {
                        let full = (
                            std::mem::replace(
                                &mut features,
                                Vec::with_capacity(CHUNK_ROWS * width),
                            ),
                            std::mem::replace(&mut labels, Vec::with_capacity(CHUNK_ROWS)),
                        );
                        if tx.send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                if !labels.is_empty() {
                    let _ = tx.send(Ok((features, labels)));
                }
            });
            // Dropping the receiver on an early return stops the parser.
            for chunk in rx {
                let (features, labels) = chunk?;
                f(&features, &labels)?;
            }
            Ok(())
        })
    }

    /// Parses one row's features onto `features` and returns its label.
    fn row(&self, lineno: usize, line: &[u8], features: &mut Vec<f64>) -> CliResult<usize> {
        let (name, columns, width) = (&self.name, &self.columns, self.width());
        let wrong_width = || {
            let cells = memchr::memchr_iter(b',', line).count() + 1;
            CliError::bad(format!(
                "{name}: line {lineno}: {cells} cells, but the header has {} columns",
                columns.len()
            ))
        };
        let mut cells = line.split(|&b| b == b',');
        for (c, column) in columns[..width].iter().enumerate() {
            let cell = trim(cells.next().ok_or_else(wrong_width)?);
            match number(cell) {
                Some(v) if v.is_finite() => features.push(v),
                _ => {
                    return Err(CliError::bad(format!(
                        "{name}: line {lineno}, column {} (`{column}`): `{}` is not a finite number",
                        c + 1,
                        text(cell)
                    )));
                }
            }
        }
        let (Some(raw), None) = (cells.next(), cells.next()) else {
            return Err(wrong_width());
        };
        let raw = trim(raw);
        label(raw).ok_or_else(|| {
            CliError::bad(format!(
                "{name}: line {lineno}, column {} (`{}`): label `{}` is not an integer in 0..{MAX_LABELS}",
                width + 1,
                columns[width],
                text(raw)
            ))
        })
    }
}

/// A label cell's value: an integer in `0..MAX_LABELS`.
fn label(cell: &[u8]) -> Option<usize> {
    number(cell)
        .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0 && *v < MAX_LABELS as f64)
        .map(|v| v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> CliResult<(tempfile::TempDir, std::path::PathBuf)> {
        let dir = tempfile::tempdir().map_err(|e| CliError::bad(e.to_string()))?;
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).map_err(|e| CliError::bad(e.to_string()))?;
        Ok((dir, path))
    }

    fn collect(text: &str) -> CliResult<(usize, Vec<f64>, Vec<usize>)> {
        let (_dir, path) = write(text)?;
        let source = Source::open(&path)?;
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        source.for_each_chunk(|x, y| {
            xs.extend_from_slice(x);
            ys.extend_from_slice(y);
            Ok(())
        })?;
        Ok((source.num_labels(), xs, ys))
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "parsed decimals are exact values")]
    fn parses_quoted_spaced_and_crlf_rows_across_chunks() -> CliResult<()> {
        let mut text = String::from("\"a\", b ,label\r\n\r\n");
        for i in 0..2500 {
            text.push_str(&format!(" {i}.5 ,\"-1e-3\",{}\r\n", i % 3));
        }
        let (k, xs, ys) = collect(&text)?;
        assert_eq!(k, 3);
        assert_eq!(ys.len(), 2500);
        assert_eq!(xs.len(), 5000);
        assert_eq!(
            (xs[0], xs[1], xs[4998], xs[4999]),
            (0.5, -0.001, 2499.5, -0.001)
        );
        assert_eq!(&ys[..4], &[0, 1, 2, 0]);
        Ok(())
    }

    fn error_of(text: &str) -> String {
        match collect(text) {
            Ok(_) => String::from("no error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_first_bad_line_is_blamed() {
        // A bad feature on line 3 comes before the bad label on line 4.
        let e = error_of("a,b,label\n1,2,0\n3,oops,1\n4,5,1.5\n");
        assert!(
            e.contains("line 3, column 2 (`b`)") && e.contains("oops"),
            "{e}"
        );
        let e = error_of("a,label\n1,0\n2,1.5\n");
        assert!(
            e.contains("line 3, column 2") && e.contains("label `1.5`"),
            "{e}"
        );
        // Blank lines count.
        let e = error_of("a,label\n\n1,0\n2,1,3\n");
        assert!(e.contains("line 4: 3 cells"), "{e}");
        let e = error_of("a,label\n1,0\nNaN,1\n");
        assert!(e.contains("line 3, column 1"), "{e}");
        assert!(error_of("").contains("empty"));
        assert!(error_of("a,label\n").contains("no data rows"));
        assert!(error_of("a,label\n1,0\n2,0\n").contains("every label is 0"));
        assert!(error_of("label\n1\n").contains("at least one feature"));
    }
}
