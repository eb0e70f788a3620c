//! JSON Lines files that survive crashes and full disks: the rules every
//! reader and appender of tuneloop's `.jsonl` files follows.
//!
//! - A reader takes lines of at most [`MAX_LINE_BYTES`] ([`read_line`]).
//! - A line whose JSON ends early ([`is_torn`]) is a record a crash or a
//!   full disk cut short: readers skip it, wherever it stands, with a
//!   warning; any other bad line is an error naming it.
//! - An appender never continues a torn line: a file that does not end
//!   with a line break gets one first ([`ends_inside_line`]), and a write
//!   that fails is cut back to where it began when it can be.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::Path;

/// The longest line a reader of tuneloop's files takes (64 MiB): beyond it,
/// reading stops with an error instead of growing a buffer without bound
/// (a small gzip file can inflate to gigabytes of one line).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The most blank input (line breaks, spaces) a reader of tuneloop's files
/// reads without meeting a record (64 MiB): beyond it, reading stops with
/// an error, so that a small gzip file that inflates to gigabytes of line
/// breaks costs a fraction of a second, not minutes.
pub const MAX_BLANK_BYTES: u64 = 64 << 20;

/// Whether a line that did not parse is a record torn by a crash or a full
/// disk: its JSON ends early.
pub fn is_torn(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line.trim_ascii_end())
        .is_err_and(|e| e.is_eof())
}

/// Reads the next line of `reader` into `buf` (cleared first, the `\n`
/// kept), as [`BufRead::read_until`] does, but never more than
/// [`MAX_LINE_BYTES`]. Returns the bytes read (0 at the end).
///
/// # Errors
/// The reader's errors, and [`io::ErrorKind::InvalidData`] for a longer
/// line.
pub fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    let n = reader
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)?;
    if n > MAX_LINE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE_BYTES} bytes (jsonl::MAX_LINE_BYTES)"),
        ));
    }
    Ok(n)
}

/// Whether the file at `path` is non-empty and does not end with a line
/// break: its last record was cut short (a full disk, or a process killed
/// mid-write: the kernel may stop a write at a page boundary), and the
/// next record must start a line of its own.
///
/// # Errors
/// The file's I/O errors.
pub fn ends_inside_line(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(size - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_json_that_ends_early() {
        assert!(is_torn(br#"{"a": [1, 2"#));
        assert!(is_torn(b"{\"a\": \"x\n"));
        assert!(!is_torn(br#"{"a": 1}"#));
        assert!(!is_torn(br#"{"a": 1} x"#));
        assert!(!is_torn(br#"{"a" 1}"#));
    }

    #[test]
    fn a_file_ends_inside_a_line_unless_empty_or_ended() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, b"")?;
        assert!(!ends_inside_line(&path)?);
        std::fs::write(&path, b"{}\n")?;
        assert!(!ends_inside_line(&path)?);
        std::fs::write(&path, b"{}\n{\"a")?;
        assert!(ends_inside_line(&path)?);
        Ok(())
    }

    #[test]
    fn read_line_stops_at_its_bound() -> io::Result<()> {
        let mut buf = Vec::new();
        let mut r = io::Cursor::new(b"ab\ncd".to_vec());
        assert_eq!(read_line(&mut r, &mut buf)?, 3);
        assert_eq!(buf, b"ab\n");
        assert_eq!(read_line(&mut r, &mut buf)?, 2);
        assert_eq!(read_line(&mut r, &mut buf)?, 0);
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let err = read_line(&mut io::Cursor::new(long), &mut buf).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        Ok(())
    }
}
