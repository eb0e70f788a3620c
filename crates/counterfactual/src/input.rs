//! Opening an input file: plain, or gzip by its `.gz` suffix (feature
//! `gzip`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

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
