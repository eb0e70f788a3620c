//! Durable files.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically: writes a temporary file of a
/// unique name beside it, fsyncs it, renames it over `path` and fsyncs the
/// directory, so a crash leaves the old file or the new one, never half of
/// one, and writers of one path at once never rename each other's
/// half-written file (the last rename wins, whole).
///
/// # Errors
/// Any I/O error; `path` is then unchanged and no temporary file is left.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tuneloop-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old")?;
        write_atomic(&path, b"new")?;
        assert_eq!(std::fs::read(&path)?, b"new");
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn concurrent_writers_of_one_path_each_leave_a_whole_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("snapshot.json");
        let bodies: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 200_000]).collect();
        let all: &[Vec<u8>] = &bodies;
        std::thread::scope(|s| {
            let handles: Vec<_> = all
                .iter()
                .map(|body| {
                    let path = &path;
                    s.spawn(move || -> std::io::Result<()> {
                        for _ in 0..20 {
                            write_atomic(path, body)?;
                            let read = std::fs::read(path)?;
                            assert!(all.contains(&read), "a torn or mixed file was read");
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        })?;
        assert_eq!(
            std::fs::read_dir(dir.path())?.count(),
            1,
            "no temporary left"
        );
        Ok(())
    }
}
