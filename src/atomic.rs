//! Replacing a file's contents atomically: a temp file in the same folder,
//! fsync, rename. A reader sees the old file or the new one, never a mix.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` unless it already holds exactly those bytes.
/// Returns whether the file was written; an unchanged file keeps its mtime.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<bool> {
    match fs::read(path) {
        Ok(existing) if existing == contents => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    write(path, contents)?;
    Ok(true)
}

/// Atomically replaces `path` with `contents`, keeping its permissions.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let folder = crate::paths::folder_of(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".runbook-")
        .suffix(".tmp")
        .tempfile_in(folder)?;
    temp.write_all(contents)?;
    // Keep an existing file's permissions; a new one gets the usual 0644
    // rather than the temp file's private 0600.
    let permissions = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o644),
    };
    temp.as_file().set_permissions(permissions)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    if let Ok(dir) = fs::File::open(folder) {
        // Make the rename itself durable; not all file systems allow it.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_identical_files_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.md");
        assert!(write_if_changed(&path, b"one").unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!write_if_changed(&path, b"one").unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_if_changed(&path, b"two").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
