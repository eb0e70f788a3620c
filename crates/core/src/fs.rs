//! Durable files.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Temporary files of [`write_atomic`] older than this are a crashed
/// writer's (no write takes this long) and are removed by the next write of
/// the same file.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(600);

/// Replaces `path` with `bytes` atomically: writes a temporary file of a
/// unique name beside it (`.NAME.tuneloop-XXXXXX.tmp`), fsyncs it, renames
/// it over `path` and fsyncs the directory, so a crash leaves the old file
/// or the new one, never half of one, and writers of one path at once
/// never rename each other's half-written file (the last rename wins,
/// whole). The temporary files a killed writer left beside `path` (older
/// than [`STALE_TEMPORARY`]) are removed first.
///
/// # Errors
/// Any I/O error; `path` is then unchanged and no temporary file is left.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.tuneloop-");
    remove_stale(dir, &prefix);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
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

/// Removes the temporary files in `dir` named `PREFIX….tmp` (or
/// `.tuneloop-….tmp`, as releases before named them) older than
/// [`STALE_TEMPORARY`]. Best effort: a file that cannot be read or removed
/// is left.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if !(n.ends_with(".tmp") && (n.starts_with(prefix) || n.starts_with(".tuneloop-"))) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMPORARY);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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

    #[test]
    fn a_killed_writers_temporaries_are_removed_by_the_next_write() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("snapshot.json");
        let old = SystemTime::now() - STALE_TEMPORARY - Duration::from_secs(60);
        let left = |name: &str, modified: SystemTime| -> std::io::Result<std::path::PathBuf> {
            let p = dir.path().join(name);
            std::fs::write(&p, b"half a snapshot")?;
            std::fs::File::options()
                .write(true)
                .open(&p)?
                .set_modified(modified)?;
            Ok(p)
        };
        let stale = left(".snapshot.json.tuneloop-AbC123.tmp", old)?;
        let stale_old_name = left(".tuneloop-XyZ789.tmp", old)?;
        // A write in progress in another process: recent, kept.
        let live = left(".snapshot.json.tuneloop-Live01.tmp", SystemTime::now())?;
        // Another file's temporary and a file of the user's: not ours.
        let other = left(".other.json.tuneloop-Qq1234.tmp", old)?;
        let users = left("notes.tmp", old)?;
        write_atomic(&path, b"whole")?;
        assert!(!stale.exists() && !stale_old_name.exists());
        assert!(live.exists() && other.exists() && users.exists());
        assert_eq!(std::fs::read(&path)?, b"whole");
        Ok(())
    }
}
