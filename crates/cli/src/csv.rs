//! The supervised CSV format of `simulate --supervised`: a header, numeric
//! feature columns, the last column an integer label in `0..K`.
//!
//! Read with the `csv` crate (RFC 4180: quoted cells may hold commas,
//! quotes and line breaks); cells are trimmed of spaces, empty lines are
//! skipped, numbers are parsed by `fast-float2` (the value
//! `f64::from_str` gives). An error names the file, the line and, for a
//! bad cell, its column.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{CliError, CliResult};

/// Most classes a supervised file may have (the arm-set bound).
const MAX_LABELS: usize = tuneloop_core::MAX_ARMS;

/// A supervised file, read and checked.
#[derive(Debug)]
pub(crate) struct Supervised {
    /// Feature columns, then the label's.
    columns: Vec<String>,
    /// Row-major, `rows × width`.
    features: Vec<f64>,
    labels: Vec<usize>,
}

impl Supervised {
    /// Reads and checks the whole file.
    ///
    /// # Errors
    /// Exit-2 errors naming the file and, for a bad row, its line and column.
    pub(crate) fn read(path: &Path) -> CliResult<Self> {
        let name = path.display().to_string();
        let bad = |what: String| CliError::bad(format!("{name}: {what}"));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        check_header_line(&bytes).map_err(bad)?;
        // Cells are trimmed here rather than by the reader: its `Trim::All`
        // rebuilds every record and doubled the time of a 100k-row read.
        let mut reader = ::csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&bytes[..]);
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|c| c.trim().to_owned())
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(bad("the file is empty (expected a header row)".into()));
        }
        if columns.len() < 2 {
            return Err(bad(format!(
                "the header has {} column(s); expected at least one feature and a label",
                columns.len()
            )));
        }
        let header = reader.position().byte() as usize;
        let header_lines = reader.position().line() as usize - 1;
        let rows = parse_body(&bytes[header..], header_lines, &columns).map_err(bad)?;
        let mut data = Supervised {
            columns,
            features: Vec::new(),
            labels: Vec::new(),
        };
        for (features, labels) in rows {
            data.features.extend_from_slice(&features);
            data.labels.extend_from_slice(&labels);
        }
        match data.labels.iter().max() {
            None => Err(bad("no data rows after the header".into())),
            Some(0) => Err(bad(
                "every label is 0; a bandit needs at least two arms (labels 0 and 1)".into(),
            )),
            Some(_) => Ok(data),
        }
    }

    /// Number of feature columns.
    pub(crate) fn width(&self) -> usize {
        self.columns.len() - 1
    }

    /// Number of arms: the largest label plus one.
    pub(crate) fn num_labels(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| m + 1)
    }

    /// The rows: features and label.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (&[f64], usize)> {
        self.features
            .chunks_exact(self.width())
            .zip(self.labels.iter().copied())
    }
}

/// Rows of one piece: row-major features and labels.
type Rows = (Vec<f64>, Vec<usize>);

/// Bytes of rows parsed as one piece: large files are parsed in pieces on
/// every core.
const PIECE: usize = 1 << 20;

/// The rows of `body` (the file after its header, which took
/// `lines_before` lines) as `(features, labels)` pieces in file order.
/// Without a quote character in the body, rows end exactly at line ends,
/// so a large body is cut into pieces at line ends and the pieces are parsed
/// in parallel; otherwise (a quoted cell may hold a line break) in one piece.
fn parse_body(body: &[u8], lines_before: usize, columns: &[String]) -> Result<Vec<Rows>, String> {
    // (start, end, lines before the piece)
    let mut pieces = vec![(0, body.len(), lines_before)];
    if body.len() > 2 * PIECE && memchr::memchr(b'"', body).is_none() {
        pieces.clear();
        let (mut start, mut lines) = (0, lines_before);
        while start < body.len() {
            let from = (start + PIECE).min(body.len());
            let end = memchr::memchr(b'\n', &body[from..]).map_or(body.len(), |i| from + i + 1);
            pieces.push((start, end, lines));
            lines += memchr::memchr_iter(b'\n', &body[start..end]).count();
            start = end;
        }
    }
    let parsed: Vec<Result<Rows, String>> = pieces
        .par_iter()
        .map(|&(start, end, lines)| parse_rows(&body[start..end], lines, columns))
        .collect();
    parsed.into_iter().collect()
}

/// Parses `rows` (whole rows, after `lines_before` lines of the file).
fn parse_rows(rows: &[u8], lines_before: usize, columns: &[String]) -> Result<Rows, String> {
    let width = columns.len() - 1;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(rows);
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    let mut record = ::csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| e.to_string())?
    {
        let line = lines_before + record.position().map_or(0, |p| p.line() as usize);
        if record.len() != columns.len() {
            return Err(format!(
                "line {line}: {} cells, but the header has {} columns",
                record.len(),
                columns.len()
            ));
        }
        for (c, cell) in record.iter().take(width).enumerate() {
            let cell = cell.trim_ascii();
            match fast_float2::parse::<f64, _>(cell) {
                Ok(v) if v.is_finite() => features.push(v),
                _ => {
                    return Err(format!(
                        "line {line}, column {} (`{}`): `{}` is not a finite number",
                        c + 1,
                        columns[c],
                        shown(cell)
                    ));
                }
            }
        }
        let raw = record[width].trim_ascii();
        let label = label(raw).ok_or_else(|| {
            format!(
                "line {line}, column {} (`{}`): label `{}` is not an integer in 0..{MAX_LABELS}",
                width + 1,
                columns[width],
                shown(raw)
            )
        })?;
        labels.push(label);
    }
    Ok((features, labels))
}

/// The longest header line read: 1 MiB holds thousands of column names; a
/// longer one is refused before it is parsed (a 100 MB header took 4 GB).
pub(crate) const MAX_HEADER_BYTES: usize = 1 << 20;

/// Checks that the header line of `start` (the file's first bytes, at
/// least [`MAX_HEADER_BYTES`] + 1 of them when the file has that many)
/// ends within [`MAX_HEADER_BYTES`].
///
/// # Errors
/// The header's length, in words.
pub(crate) fn check_header_line(start: &[u8]) -> Result<(), String> {
    let within = &start[..start.len().min(MAX_HEADER_BYTES + 1)];
    if within.len() > MAX_HEADER_BYTES && !within.contains(&b'\n') {
        return Err(format!(
            "the header line is longer than {} MiB; at most {} MiB of column names are read",
            MAX_HEADER_BYTES >> 20,
            MAX_HEADER_BYTES >> 20
        ));
    }
    Ok(())
}

/// A cell as an error message shows it: bytes that are not printable ASCII
/// escaped (`\xff`), at most 64 of them.
pub(crate) fn shown(cell: &[u8]) -> String {
    let mut s: String = cell
        .iter()
        .take(64)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if cell.len() > 64 {
        s.push('…');
    }
    s
}

/// A label cell's value: an integer in `0..MAX_LABELS`.
fn label(cell: &[u8]) -> Option<usize> {
    fast_float2::parse::<f64, _>(cell)
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0 && *v < MAX_LABELS as f64)
        .map(|v| v as usize)
}

#[cfg(test)]
#[path = "../../../testsupport/proptest_config.rs"]
mod proptest_config;

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> CliResult<Supervised> {
        let dir = tempfile::tempdir().map_err(|e| CliError::bad(e.to_string()))?;
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).map_err(|e| CliError::bad(e.to_string()))?;
        Supervised::read(&path)
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "parsed decimals are exact values")]
    fn parses_quoted_spaced_and_crlf_rows() -> CliResult<()> {
        let mut text = String::from("\"a\", b ,label\r\n\r\n");
        for i in 0..2500 {
            text.push_str(&format!(" {i}.5 ,\"-1e-3\",{}\r\n", i % 3));
        }
        let data = read(&text)?;
        assert_eq!(data.num_labels(), 3);
        assert_eq!(data.columns, ["a", "b", "label"]);
        let rows: Vec<(&[f64], usize)> = data.rows().collect();
        assert_eq!(rows.len(), 2500);
        assert_eq!((rows[0].0, rows[0].1), (&[0.5, -0.001][..], 0));
        assert_eq!((rows[2499].0, rows[2499].1), (&[2499.5, -0.001][..], 0));
        assert_eq!(rows[1].1, 1);
        Ok(())
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "parsed decimals are exact values")]
    fn a_quoted_cell_with_a_comma_is_one_cell() -> CliResult<()> {
        // The header's quoted name holds a comma: two columns, not three.
        let data = read("\"x, scaled\",label\n\"1.5\",1\n2,0\n")?;
        assert_eq!(data.columns, ["x, scaled", "label"]);
        assert_eq!(data.rows().map(|r| r.0[0]).collect::<Vec<_>>(), [1.5, 2.0]);
        // And a quoted number with a comma is a bad number, not two cells.
        let e = error_of("a,b,label\n\"1,5\",2,1\n");
        assert!(e.contains("line 2, column 1 (`a`): `1,5`"), "{e}");
        Ok(())
    }

    fn error_of(text: &str) -> String {
        match read(text) {
            Ok(_) => String::from("no error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_large_file_is_read_in_pieces_with_the_lines_of_the_whole() -> CliResult<()> {
        let mut text = String::from("a,b,label\n");
        let mut rows = 0;
        while text.len() < 5 * PIECE {
            text.push_str(&format!("{rows}.25,-{rows},{}\n", rows % 4));
            rows += 1;
        }
        let data = read(&text)?;
        assert_eq!((data.labels.len(), data.num_labels()), (rows, 4));
        let last = data.rows().last().map(|(x, y)| (x.to_vec(), y));
        assert_eq!(
            last,
            Some((
                vec![(rows - 1) as f64 + 0.25, -((rows - 1) as f64)],
                (rows - 1) % 4
            ))
        );
        // A bad cell deep in the file names its line of the whole file.
        text.push_str("1,oops,0\n");
        let e = error_of(&text);
        assert!(e.contains(&format!("line {}, column 2", rows + 2)), "{e}");
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(super::proptest_config::proptest_config(512))]

        /// Arbitrary bytes: an error or rows, never a panic; large enough
        /// inputs take the parallel path too.
        #[test]
        fn arbitrary_bytes_never_panic(
            head in "[a-z,\"]{0,12}\n",
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b"1,2,3\n".to_vec()),
                    proptest::prelude::Just(b"\"1,5\",0\r\n".to_vec()),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
                ],
                0..40,
            ),
            repeat in 0usize..3,
        ) {
            let mut bytes = head.into_bytes();
            let body = body.concat();
            for _ in 0..(1 + repeat * 20_000) {
                bytes.extend_from_slice(&body);
            }
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("data.csv");
            std::fs::write(&path, &bytes)?;
            let _ = Supervised::read(&path);
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
        let e = error_of("a,label\n\u{ff}1,0\n");
        assert!(e.contains("line 2, column 1"), "{e}");
        // Binary garbage is escaped, and a long cell cut.
        let e = error_of(&format!("a,label\n\u{1b}[2J{},0\n", "9".repeat(100)));
        assert!(
            e.contains("\\x1b[2J") && e.contains('…') && !e.contains('\u{1b}'),
            "{e}"
        );
    }
}
