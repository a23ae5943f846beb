//! The few filesystem moves that make the store crash-safe: write aside, fsync, rename, fsync the
//! directory. A reader sees the old file or the whole new one, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::IoContext;
use crate::Result;

/// Writes `bytes` to `path` atomically, staging in `tmp_dir` (which must be on the same filesystem).
pub fn write_atomic(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<()> {
    let parent = path.parent().expect("store paths have parents");
    std::fs::create_dir_all(parent).io("cannot create", parent)?;
    let tmp = tmp_dir.join(format!("write-{}", uuid::Uuid::new_v4()));
    let mut file = File::create(&tmp).io("cannot create", &tmp)?;
    file.write_all(bytes).io("cannot write", &tmp)?;
    file.sync_all().io("cannot sync", &tmp)?;
    drop(file);
    std::fs::rename(&tmp, path).io("cannot move into place", path)?;
    sync_dir(parent)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io("cannot sync directory", dir)
}

/// Removes a file, treating "already gone" as done.
pub fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).io("cannot remove", path),
        _ => Ok(()),
    }
}

/// Removes a directory tree, treating "already gone" as done.
pub fn remove_dir_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).io("cannot remove", path),
        _ => Ok(()),
    }
}

/// Removes empty directories from `dir` up to (not including) `stop`.
pub fn prune_empty_parents(dir: &Path, stop: &Path) {
    let mut current = Some(dir);
    while let Some(d) = current {
        if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
            break;
        }
        current = d.parent();
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Blobs are never written after they are stored; a read-only mode keeps tools from trying.
pub(crate) fn read_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444));
}
