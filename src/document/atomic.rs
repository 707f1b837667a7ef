//! Replacing a file's contents atomically: a temp file in the same folder,
//! fsync, rename. A reader sees the old file or the new one, never a mix.
//!
//! The file keeps what it was: a symlink is written through to its target
//! (the link stays a link), the owner, group and mode are kept, and a file
//! with hard links is rewritten in place so every link sees the new text
//! (that one case is not atomic). Temp files are named after their target
//! and the writing process (`.lab.md.runbook-PID-XXXX.tmp`), and one left
//! by a process that is gone is removed on the next write beside it.
//!
//! Two kinds of writes live here and stay apart. The document, its state
//! and its cassette are written by path ([`write`], [`write_if_changed`],
//! [`replace_document`]), through links by design. A file cell is written by
//! [`write_beneath`] into a folder already held open (see
//! `crate::paths::beneath`): every step after that (the temp file, the
//! rename, the clean-up) names the folder by its descriptor, never by a path,
//! so the file lands in that folder whatever is renamed or linked meanwhile.

use crate::document::paths::{c_name, owned};
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` unless it already holds exactly those bytes.
/// Returns whether the file was written; an unchanged file keeps its mtime.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<bool> {
    write_if_changed_with_mode(path, contents, None)
}

/// As [`write_if_changed`], giving the file `mode` (from its first byte on).
pub fn write_if_changed_with_mode(
    path: &Path,
    contents: &[u8],
    mode: Option<u32>,
) -> io::Result<bool> {
    refuse_special(path)?;
    match fs::read(path) {
        Ok(existing) if existing == contents => {
            if let Some(mode) = mode {
                fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            }
            return Ok(false);
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    write_with_mode(path, contents, mode)?;
    Ok(true)
}

/// Atomically replaces `path` with `contents`, keeping what the file was.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    refuse_special(path)?;
    write_with_mode(path, contents, None)
}

/// Only a regular file (or nothing) is replaced: reading a FIFO or a
/// device to compare would wait for ever, and a folder is no file.
fn refuse_special(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(io::Error::other(format!(
            "{} is not a regular file; runbook writes only over one",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// The file a write to `path` lands in: links followed to the end.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&path)?;
                path = crate::paths::folder_of(&path).join(link);
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

fn write_with_mode(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let target = resolve(path)?;
    let existing = fs::metadata(&target).ok();
    if let Some(meta) = existing.as_ref().filter(|m| m.nlink() > 1) {
        return write_in_place(&target, contents, mode.unwrap_or(meta.mode() & 0o7777));
    }
    let temp = prepare(&target, contents, existing.as_ref(), mode)?;
    if let Some(meta) = &existing {
        if let Err(e) = keep_owner(temp.as_file(), meta) {
            // Not allowed to give the file back to its owner: rewrite it in
            // place rather than take it over.
            if e.raw_os_error() == Some(libc::EPERM) {
                drop(temp);
                return write_in_place(&target, contents, meta.mode() & 0o7777);
            }
            return Err(e);
        }
    }
    temp.persist(&target).map_err(|e| e.error)?;
    sync_folder(&target);
    Ok(())
}

/// A synced temp file beside `target` holding `contents`, with the mode
/// the file should end with.
fn prepare(
    target: &Path,
    contents: &[u8],
    existing: Option<&fs::Metadata>,
    mode: Option<u32>,
) -> io::Result<tempfile::NamedTempFile> {
    let folder = crate::paths::folder_of(target);
    remove_stale_temps(target);
    let mut temp = tempfile::Builder::new()
        .prefix(&temp_prefix(target, std::process::id()))
        .suffix(".tmp")
        .tempfile_in(folder)?;
    // The mode is set before a byte is written; a new file gets the usual
    // 0644 rather than the temp file's private 0600.
    let mode = mode
        .or(existing.map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

fn keep_owner(file: &fs::File, meta: &fs::Metadata) -> io::Result<()> {
    let mine = file.metadata()?;
    if mine.uid() == meta.uid() && mine.gid() == meta.gid() {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
    // chown clears set-id bits; put the mode back.
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
}

fn write_in_place(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let file = fs::OpenOptions::new().write(true).open(target)?;
    fill_in_place(file, contents, mode)
}

fn fill_in_place(mut file: fs::File, contents: &[u8], mode: u32) -> io::Result<()> {
    file.write_all(contents)?;
    file.set_len(contents.len() as u64)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()
}

/// Writes a file cell's `contents` to `target` unless it already holds
/// exactly those bytes, giving it `mode` from its first byte on. Returns
/// whether the file was written.
///
/// Only the folder `target` holds open is written: the temp file is made
/// there with `O_CREAT | O_EXCL | O_NOFOLLOW`, renamed over the name there,
/// and removed from there on an error. A link found at the name now (it
/// was swapped in after the walk) is replaced, not followed. Otherwise the
/// file keeps what it was, as with [`write`]: owner, group and mode, and a
/// file with hard links is rewritten in place.
pub fn write_beneath(
    target: &crate::paths::Beneath,
    contents: &[u8],
    mode: Option<u32>,
) -> io::Result<bool> {
    let dir = &target.folder;
    let name = target.name.as_os_str();
    let existing = match open_at(dir, name, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(probe) => Some(probe.metadata()?).filter(|meta| !meta.file_type().is_symlink()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(meta) = &existing {
        if !meta.is_file() {
            return Err(io::Error::other(
                "not a regular file; runbook writes only over one",
            ));
        }
        let mut file = regular_at(dir, name, libc::O_RDONLY, meta)?;
        let mut held = Vec::new();
        file.read_to_end(&mut held)?;
        if held == contents {
            if let Some(mode) = mode {
                file.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            return Ok(false);
        }
        if meta.nlink() > 1 {
            let file = regular_at(dir, name, libc::O_WRONLY, meta)?;
            fill_in_place(file, contents, mode.unwrap_or(meta.mode() & 0o7777))?;
            return Ok(true);
        }
    }
    remove_stale_temps_in(dir, name);
    let mode = mode
        .or(existing.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    let temp = TempAt::create(dir, name, mode)?;
    if let Some(meta) = &existing {
        if let Err(e) = keep_owner(&temp.file, meta) {
            drop(temp);
            // Not allowed to give the file back to its owner: rewrite it in
            // place rather than take it over.
            if e.raw_os_error() == Some(libc::EPERM) {
                let file = regular_at(dir, name, libc::O_WRONLY, meta)?;
                fill_in_place(file, contents, meta.mode() & 0o7777)?;
                return Ok(true);
            }
            return Err(e);
        }
    }
    temp.persist(contents)?;
    Ok(true)
}

/// A temp file made in a folder held open, removed from that folder unless
/// it was renamed over its target.
struct TempAt<'a> {
    dir: &'a OwnedFd,
    name: CString,
    target: CString,
    file: fs::File,
}

impl<'a> TempAt<'a> {
    /// A new temp file beside `target` in `dir`, with `mode` before its
    /// first byte.
    fn create(dir: &'a OwnedFd, target: &OsStr, mode: u32) -> io::Result<TempAt<'a>> {
        let prefix = format!(
            ".{}.runbook-{}-",
            target.to_string_lossy(),
            std::process::id()
        );
        let mut tries = 0;
        loop {
            let name = c_name(OsStr::new(&format!("{prefix}{}.tmp", temp_suffix())))?;
            // SAFETY: a valid descriptor and NUL-terminated name.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    // No more than `mode` from the start; the umask may take
                    // some away, which the chmod below gives back.
                    mode as libc::c_uint,
                )
            };
            let file = match owned(fd) {
                Ok(fd) => fs::File::from(fd),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < 100 => {
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let temp = TempAt {
                dir,
                name,
                target: c_name(target)?,
                file,
            };
            temp.file
                .set_permissions(fs::Permissions::from_mode(mode))?;
            return Ok(temp);
        }
    }

    /// Fills the temp file with `contents`, syncs it and renames it over its
    /// target, in the same folder; then syncs the folder.
    fn persist(mut self, contents: &[u8]) -> io::Result<()> {
        self.file.write_all(contents)?;
        self.file.sync_all()?;
        let fd = self.dir.as_raw_fd();
        // SAFETY: a valid descriptor and NUL-terminated names.
        if unsafe { libc::renameat(fd, self.name.as_ptr(), fd, self.target.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Renamed: nothing left to remove.
        self.name = CString::default();
        // Make the rename itself durable; not all file systems allow it.
        // SAFETY: a valid descriptor.
        let _ = unsafe { libc::fsync(fd) };
        Ok(())
    }
}

impl Drop for TempAt<'_> {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            // SAFETY: a valid descriptor and NUL-terminated name.
            let _ = unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
        }
    }
}

/// Six letters or digits, different on each call.
fn temp_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut bits = hasher.finish();
    (0..6)
        .map(|_| {
            let digit = (bits % 36) as u32;
            bits /= 36;
            char::from_digit(digit, 36).unwrap_or('0')
        })
        .collect()
}

/// Opens `name` in `dir`, never through a link.
fn open_at(dir: &OwnedFd, name: &OsStr, flags: libc::c_int) -> io::Result<fs::File> {
    let name = c_name(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    owned(fd).map(fs::File::from)
}

/// Opens the regular file `name` in `dir`, never through a link, and only
/// if it is still the file `meta` describes.
fn regular_at(
    dir: &OwnedFd,
    name: &OsStr,
    flags: libc::c_int,
    meta: &fs::Metadata,
) -> io::Result<fs::File> {
    // Non-blocking: a FIFO swapped in must not stall the open.
    let file = open_at(dir, name, flags | libc::O_NONBLOCK)?;
    let now = file.metadata()?;
    if !now.is_file() || now.ino() != meta.ino() || now.dev() != meta.dev() {
        return Err(io::Error::other("changed while it was being written"));
    }
    // SAFETY: a valid descriptor; clears O_NONBLOCK for the reads and
    // writes that follow.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) };
    Ok(file)
}

fn sync_folder(target: &Path) {
    if let Ok(dir) = fs::File::open(crate::paths::folder_of(target)) {
        // Make the rename itself durable; not all file systems allow it.
        let _ = dir.sync_all();
    }
}

fn temp_prefix(target: &Path, pid: u32) -> String {
    format!(".{}.runbook-{pid}-", crate::paths::file_name_of(target))
}

/// Removes temp files of `target` left by processes that no longer run
/// (a run killed with SIGKILL leaves its temp file behind).
pub fn remove_stale_temps(target: &Path) {
    let folder = crate::paths::folder_of(target);
    let target = crate::paths::file_name_of(target);
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        if is_stale_temp(&entry.file_name(), &target) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// As [`remove_stale_temps`], in a folder held open: it is listed and the
/// temp files removed through its descriptor.
fn remove_stale_temps_in(dir: &OwnedFd, target: &OsStr) {
    let target = target.to_string_lossy();
    // The descriptor's own folder, whatever its path is now.
    let Ok(entries) = fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if is_stale_temp(&name, &target) {
            if let Ok(name) = c_name(&name) {
                // SAFETY: a valid descriptor and NUL-terminated name.
                let _ = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
            }
        }
    }
}

/// Whether `name` is a temp file of `target` left by a process that is gone.
fn is_stale_temp(name: &OsStr, target: &str) -> bool {
    let stem = format!(".{target}.runbook-");
    let Some(rest) = name
        .to_str()
        .and_then(|n| n.strip_prefix(&stem))
        .filter(|_| name.as_bytes().ends_with(b".tmp"))
    else {
        return false;
    };
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Why a document was not replaced.
#[derive(Debug)]
pub enum ReplaceError {
    /// Someone changed the file since it was read; their version stays,
    /// and ours was saved at the path given.
    Changed(PathBuf),
    Io(io::Error),
}

/// Replaces the document at `path`, which should still hold `expected`,
/// with `contents`. The check and the swap are one step (the two files are
/// exchanged, then what came out is compared), so an edit saved at any
/// moment is never lost: on a difference the edit is put back and
/// `contents` goes to a `.conflict` file beside it.
pub fn replace_document(path: &Path, expected: &[u8], contents: &[u8]) -> Result<(), ReplaceError> {
    let target = resolve(path).map_err(ReplaceError::Io)?;
    let meta = fs::metadata(&target).map_err(ReplaceError::Io)?;
    let changed = |target: &Path| -> Result<(), ReplaceError> {
        let conflict = conflict_path(target);
        write(&conflict, contents).map_err(ReplaceError::Io)?;
        Err(ReplaceError::Changed(conflict))
    };
    if meta.nlink() > 1 {
        if fs::read(&target).map_err(ReplaceError::Io)? != expected {
            return changed(&target);
        }
        return write_in_place(&target, contents, meta.mode() & 0o7777).map_err(ReplaceError::Io);
    }
    let temp = prepare(&target, contents, Some(&meta), None).map_err(ReplaceError::Io)?;
    if let Err(e) = keep_owner(temp.as_file(), &meta) {
        drop(temp);
        if e.raw_os_error() == Some(libc::EPERM) {
            if fs::read(&target).map_err(ReplaceError::Io)? != expected {
                return changed(&target);
            }
            return write_in_place(&target, contents, meta.mode() & 0o7777)
                .map_err(ReplaceError::Io);
        }
        return Err(ReplaceError::Io(e));
    }
    let temp_path = temp.into_temp_path();
    match exchange(&temp_path, &target) {
        Ok(()) => {
            // The temp path now holds what the document held a moment ago.
            let was = fs::read(&temp_path).map_err(ReplaceError::Io)?;
            if was == expected {
                drop(temp_path);
                sync_folder(&target);
                return Ok(());
            }
            // An edit came in: put it back, keep ours beside it.
            exchange(&temp_path, &target).map_err(ReplaceError::Io)?;
            let conflict = conflict_path(&target);
            fs::rename(&temp_path, &conflict).map_err(ReplaceError::Io)?;
            std::mem::forget(temp_path);
            sync_folder(&target);
            Err(ReplaceError::Changed(conflict))
        }
        Err(_) => {
            // No atomic exchange on this file system: check, then rename.
            if fs::read(&target).map_err(ReplaceError::Io)? != expected {
                return changed(&target);
            }
            temp_path
                .persist(&target)
                .map_err(|e| ReplaceError::Io(e.error))?;
            sync_folder(&target);
            Ok(())
        }
    }
}

/// Where the executed document goes when the original changed meanwhile:
/// `lab.md` → `lab.conflict.md`.
pub fn conflict_path(target: &Path) -> PathBuf {
    let name = crate::paths::name_of(target);
    let file = match target.extension() {
        Some(ext) => format!("{name}.conflict.{}", ext.to_string_lossy()),
        None => format!("{name}.conflict"),
    };
    target.with_file_name(file)
}

/// Swaps two paths in one step (renameat2 with RENAME_EXCHANGE).
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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

    #[test]
    fn writes_through_links_and_keeps_mode_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.md");
        fs::write(&real, "old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.md");
        std::os::unix::fs::symlink("real.md", &link).unwrap();
        write(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
        let hard = dir.path().join("hard.md");
        fs::hard_link(&real, &hard).unwrap();
        write(&real, b"newer").unwrap();
        assert_eq!(fs::read(&hard).unwrap(), b"newer");
    }

    #[test]
    fn new_files_have_their_mode_from_the_start_and_stale_temps_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        // A temp file of a process that is gone.
        let stale = dir.path().join(".key.txt.runbook-999999999-abc.tmp");
        fs::write(&stale, "x").unwrap();
        write_if_changed_with_mode(&path, b"k", Some(0o600)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert!(!stale.exists());
    }

    #[test]
    fn an_edit_made_meanwhile_is_kept_and_ours_goes_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.md");
        fs::write(&path, "edited by hand").unwrap();
        match replace_document(&path, b"as read", b"with outputs") {
            Err(ReplaceError::Changed(conflict)) => {
                assert_eq!(fs::read(&conflict).unwrap(), b"with outputs");
                assert_eq!(conflict, dir.path().join("doc.conflict.md"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), b"edited by hand");
        replace_document(&path, b"edited by hand", b"with outputs").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"with outputs");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_cell_lands_in_the_folder_it_reached_whatever_is_swapped_in_later() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        let target = crate::paths::beneath(root, "a/x.yaml").unwrap();
        // The folder moved away and a link out put in its place; then the
        // file's own name a link out.
        fs::rename(root.join("a"), root.join("b")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), root.join("b/x.yaml")).unwrap();
        fs::write(outside.path().join("victim"), "precious").unwrap();
        assert!(write_beneath(&target, b"x: 1\n", Some(0o600)).unwrap());
        assert_eq!(fs::read(root.join("b/x.yaml")).unwrap(), b"x: 1\n");
        // The link was replaced, not followed.
        let meta = fs::symlink_metadata(root.join("b/x.yaml")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(names(outside.path()), ["victim"]);
        assert_eq!(
            fs::read(outside.path().join("victim")).unwrap(),
            b"precious"
        );
        assert_eq!(names(&root.join("b")), ["x.yaml"]);
    }

    #[test]
    fn a_file_cell_keeps_an_unchanged_file_and_refuses_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let target = crate::paths::beneath(root, "k.yaml").unwrap();
        // A stale temp file of a process that is gone goes on the next write.
        fs::write(root.join(".k.yaml.runbook-999999999-abc.tmp"), "x").unwrap();
        assert!(write_beneath(&target, b"k", None).unwrap());
        assert_eq!(names(root), ["k.yaml"]);
        assert_eq!(
            fs::metadata(root.join("k.yaml")).unwrap().mode() & 0o7777,
            0o644
        );
        let before = fs::metadata(root.join("k.yaml"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The same bytes: not written again, but given the mode asked for.
        assert!(!write_beneath(&target, b"k", Some(0o600)).unwrap());
        let meta = fs::metadata(root.join("k.yaml")).unwrap();
        assert_eq!(meta.modified().unwrap(), before);
        assert_eq!(meta.mode() & 0o7777, 0o600);
        // A new text keeps the mode the file has.
        assert!(write_beneath(&target, b"k2", None).unwrap());
        assert_eq!(
            fs::metadata(root.join("k.yaml")).unwrap().mode() & 0o7777,
            0o600
        );
        // A FIFO or a folder at the name is never written.
        let fifo = std::ffi::CString::new(root.join("pipe").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        fs::create_dir(root.join("sub")).unwrap();
        for name in ["pipe", "sub"] {
            let target = crate::paths::beneath(root, name).unwrap();
            let error = write_beneath(&target, b"x", None).unwrap_err();
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
        assert_eq!(names(root), ["k.yaml", "pipe", "sub"]);
    }

    #[test]
    fn a_temp_file_that_is_not_renamed_is_removed_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let target = crate::paths::beneath(root, "a/x.yaml").unwrap();
        // The folder moved meanwhile: the temp file is removed from it all
        // the same, by its descriptor.
        fs::rename(root.join("a"), root.join("b")).unwrap();
        drop(TempAt::create(&target.folder, &target.name, 0o600).unwrap());
        assert!(names(&root.join("b")).is_empty());
        // A rename that fails (a folder, not empty, at the name) leaves
        // nothing behind either.
        fs::create_dir_all(root.join("b/x.yaml/full")).unwrap();
        let temp = TempAt::create(&target.folder, &target.name, 0o600).unwrap();
        assert!(temp.persist(b"x").is_err());
        assert_eq!(names(&root.join("b")), ["x.yaml"]);
    }
}
