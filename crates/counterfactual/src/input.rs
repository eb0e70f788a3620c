//! Opening an input file (plain, or gzip by its `.gz` suffix with the
//! feature `gzip`) and reading its lines within a bound.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub use tuneloop_core::jsonl::{MAX_BLANK_BYTES, MAX_LINE_BYTES, is_torn, read_line};

/// Opens `path` for reading, inflating it when its name ends in `.gz`.
///
/// # Errors
/// The file's open error; for a `.gz` file in a build without the `gzip`
/// feature, an [`io::ErrorKind::Unsupported`] error that says so.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let gzip = path.extension().is_some_and(|e| e == "gz");
    let file = File::open(path)?;
    if !gzip {
        return Ok(Box::new(file));
    }
    #[cfg(feature = "gzip")]
    {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::new(file),
        )))
    }
    #[cfg(not(feature = "gzip"))]
    {
        drop(file);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a gzip file, and this build has no gzip support (feature `gzip`)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_up_to_the_bound_and_no_further() -> io::Result<()> {
        let text = b"first\nsecond";
        let mut r = io::BufReader::new(&text[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf)?, 6);
        assert_eq!(buf, b"first\n");
        assert_eq!(read_line(&mut r, &mut buf)?, 6);
        assert_eq!(read_line(&mut r, &mut buf)?, 0);
        // One line of zeros, as a gzip bomb inflates to: refused at the bound.
        let mut zeros = io::BufReader::new(io::repeat(0).take(MAX_LINE_BYTES as u64 + 10));
        let e = read_line(&mut zeros, &mut buf).err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::InvalidData));
        assert!(buf.capacity() <= 2 * MAX_LINE_BYTES);
        Ok(())
    }
}
