//! Where a runbook's companions live: its folder (relative paths start
//! there), the name its state file, lock and cassette are called by, and
//! whether a path a file cell names stays inside that folder.
//!
//! A file cell's folder is reached by [`beneath`], one component at a time
//! from the runbook's folder held open, never through a path the kernel
//! resolves again later: a link swapped in between a check and the write
//! cannot lead the write out.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// The folder holding `path`; `.` for a bare file name.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A runbook's name without its extension (`lab.md` → `lab`).
pub fn name_of(runbook: &Path) -> String {
    runbook
        .file_stem()
        .map_or_else(|| "runbook".into(), |s| s.to_string_lossy().into_owned())
}

/// A runbook's file name with its extension (`lab.md`), so `lab.md` and
/// `lab.markdown` beside it keep apart.
pub fn file_name_of(runbook: &Path) -> String {
    runbook
        .file_name()
        .map_or_else(|| "runbook".into(), |s| s.to_string_lossy().into_owned())
}

/// Why a relative path may not be used as it is, if it may not: it is
/// absolute, or climbs out with `..`.
pub fn escapes(relative: &str) -> Option<&'static str> {
    let path = Path::new(relative);
    if path.is_absolute() {
        return Some("is absolute");
    }
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::ParentDir if depth == 0 => return Some("leads out of the runbook's folder"),
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    None
}

/// `relative` joined to `folder`, if it stays inside it once every link
/// that exists is followed.
pub fn inside(folder: &Path, relative: &str) -> Result<PathBuf, String> {
    if let Some(why) = escapes(relative) {
        return Err(format!(
            "file path {relative} {why}; file cells write inside the runbook's folder only"
        ));
    }
    let target = folder.join(relative);
    let root = folder
        .canonicalize()
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    // Resolve the longest part of the path that exists.
    let mut existing = target.clone();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break root.clone(),
            },
        }
    };
    let resolved = rest
        .iter()
        .rev()
        .fold(resolved, |path, name| path.join(name));
    if !resolved.starts_with(&root) {
        return Err(format!(
            "file path {relative} leads out of the runbook's folder through a link (to {}); nothing was written",
            resolved.display()
        ));
    }
    Ok(target)
}

/// Where a file cell writes: its folder, held open once reached beneath
/// the runbook's folder, and the file's name in it. Writing goes through
/// the folder's descriptor (see `crate::atomic::write_beneath`), so what
/// happens to the path meanwhile cannot move the write elsewhere.
#[derive(Debug)]
pub struct Beneath {
    pub folder: OwnedFd,
    pub name: OsString,
}

/// Links followed on the way to one file, as the kernel allows.
const MAX_LINKS: usize = 40;
/// Times a component is looked at again when it changed as it was read.
const MAX_RETRIES: usize = 100;

enum Step {
    Up,
    Into(OsString),
}

fn steps_of(path: &Path) -> impl Iterator<Item = Step> + '_ {
    path.components().filter_map(|component| match component {
        Component::ParentDir => Some(Step::Up),
        Component::Normal(name) => Some(Step::Into(name.to_os_string())),
        _ => None,
    })
}

/// Reaches the folder of `relative` beneath `folder` (the runbook's), making
/// the folders that are missing, and returns it open with the file's name.
///
/// Each component is opened from the one before with `O_NOFOLLOW`; a link
/// met on the way (the file's own name included) is read and walked the
/// same way, and is refused when it climbs above `folder` or names a place
/// outside it. `..` steps back to the folder the walk came from, never
/// above `folder`. Nothing is ever resolved from a path again, so a link
/// swapped in after a component was opened is never followed.
pub fn beneath(folder: &Path, relative: &str) -> Result<Beneath, String> {
    if let Some(why) = escapes(relative) {
        return Err(format!(
            "file path {relative} {why}; file cells write inside the runbook's folder only"
        ));
    }
    let io_error = |at: &str, e: io::Error| {
        let shown = if at.is_empty() {
            folder.to_path_buf()
        } else {
            folder.join(at)
        };
        format!("{}: {e}", shown.display())
    };
    let out = |link: &str, target: &Path| {
        format!(
            "file path {relative} leads out of the runbook's folder through a link ({link} -> {}); nothing was written",
            target.display()
        )
    };
    let root = open_folder(folder).map_err(|e| io_error("", e))?;
    // An absolute link may name a place inside the folder by its full path.
    let root_path = folder.canonicalize().ok();
    // The folders entered below the root, each with its name.
    let mut entered: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut steps: VecDeque<Step> = steps_of(Path::new(relative)).collect();
    // The link that brought the walk where it is, for messages.
    let mut via: Option<(String, PathBuf)> = None;
    let (mut links, mut retries) = (0, 0);
    loop {
        let here = entered.last().map_or(&root, |(fd, _)| fd);
        let at = |name: &OsStr| {
            let mut shown: Vec<&OsStr> = entered.iter().map(|(_, n)| n.as_os_str()).collect();
            shown.push(name);
            shown
                .iter()
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        };
        let name = match steps.pop_front() {
            None => return Err(format!("file path {relative} names a folder, not a file")),
            Some(Step::Up) => {
                if entered.pop().is_none() {
                    let (link, target) = via.clone().unwrap_or_default();
                    return Err(out(&link, &target));
                }
                continue;
            }
            Some(Step::Into(name)) => name,
        };
        let last = steps.is_empty();
        let found = if last {
            // The file itself: a link is followed, anything else is written.
            match read_link_at(here, &name) {
                Ok(target) => Some(target),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                    let folder = match entered.pop() {
                        Some((fd, _)) => fd,
                        None => root,
                    };
                    return Ok(Beneath { folder, name });
                }
                Err(e) => return Err(io_error(&at(&name), e)),
            }
        } else {
            match open_folder_at(here, &name) {
                Ok(fd) => {
                    entered.push((fd, name));
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    make_folder_at(here, &name).map_err(|e| io_error(&at(&name), e))?;
                    None
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    match read_link_at(here, &name) {
                        Ok(target) => Some(target),
                        // Not a link now: a file, or a folder (or a link
                        // again) swapped in as it was read.
                        Err(_) if may_be_walked_at(here, &name) => None,
                        Err(_) => {
                            return Err(format!(
                                "file path {relative}: {} is not a folder",
                                at(&name)
                            ))
                        }
                    }
                }
                Err(e) => return Err(io_error(&at(&name), e)),
            }
        };
        let Some(target) = found else {
            // Made the folder, or it changed as it was read: look again.
            retries += 1;
            if retries > MAX_RETRIES {
                return Err(format!(
                    "file path {relative}: {} kept changing while it was opened",
                    at(&name)
                ));
            }
            steps.push_front(Step::Into(name));
            continue;
        };
        links += 1;
        if links > MAX_LINKS {
            return Err(format!(
                "file path {relative}: too many levels of symbolic links"
            ));
        }
        let link = at(&name);
        let mut rest = target.as_path();
        if target.is_absolute() {
            match root_path
                .as_deref()
                .and_then(|root| target.strip_prefix(root).ok())
            {
                Some(inside) => {
                    entered.clear();
                    rest = inside;
                }
                None => return Err(out(&link, &target)),
            }
        }
        let mut expanded: VecDeque<Step> = steps_of(rest).collect();
        expanded.extend(steps.drain(..));
        steps = expanded;
        via = Some((link, target));
    }
}

/// `name` for a system call.
pub(crate) fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A descriptor a system call returned, or its error.
pub(crate) fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by the kernel, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_folder(path: &Path) -> io::Result<OwnedFd> {
    let path = c_name(path.as_os_str())?;
    // SAFETY: a valid NUL-terminated path.
    owned(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// Opens the folder `name` in `dir`, never through a link.
fn open_folder_at(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Makes the folder `name` in `dir`; one that is there already is fine.
fn make_folder_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        e => Err(e),
    }
}

/// What the link `name` in `dir` points to.
fn read_link_at(dir: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    let name = c_name(name)?;
    let mut buffer = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: a valid descriptor and name; the buffer holds its length.
    let len = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buffer.truncate(len as usize);
    Ok(PathBuf::from(OsString::from_vec(buffer)))
}

/// Whether `name` in `dir` is a folder or a link, as walking on needs.
fn may_be_walked_at(dir: &OwnedFd, name: &OsStr) -> bool {
    let Ok(name) = c_name(name) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid descriptor and name; stat is written on success.
    let result = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if result != 0 {
        return false;
    }
    // SAFETY: fstatat succeeded, so stat is filled in.
    let kind = unsafe { stat.assume_init() }.st_mode & libc::S_IFMT;
    kind == libc::S_IFDIR || kind == libc::S_IFLNK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_names() {
        assert_eq!(folder_of(Path::new("lab.md")), Path::new("."));
        assert_eq!(
            folder_of(Path::new("runbooks/lab.md")),
            Path::new("runbooks")
        );
        assert_eq!(name_of(Path::new("runbooks/lab.md")), "lab");
        assert_eq!(file_name_of(Path::new("runbooks/lab.md")), "lab.md");
    }

    #[test]
    fn paths_that_leave_the_folder() {
        assert_eq!(escapes("k8s/app.yaml"), None);
        assert_eq!(escapes("a/../b.yaml"), None);
        assert!(escapes("../x").is_some());
        assert!(escapes("a/../../x").is_some());
        assert!(escapes("/etc/x").is_some());
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        assert!(inside(dir.path(), "out/x.yaml").is_err());
        assert!(inside(dir.path(), "new/x.yaml").is_ok());
    }

    /// The path of the folder `found` holds, read back from the kernel.
    fn folder_path(found: &Beneath) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", found.folder.as_raw_fd())).unwrap()
    }

    #[test]
    fn the_walk_makes_missing_folders_and_follows_links_that_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let found = beneath(&root, "a/b/x.yaml").unwrap();
        assert_eq!(folder_path(&found), root.join("a/b"));
        assert_eq!(found.name, "x.yaml");
        // `..` inside the folder steps back the way the walk came.
        let found = beneath(&root, "a/b/../y.yaml").unwrap();
        assert_eq!(folder_path(&found), root.join("a"));
        // A link to a folder inside, relative or by its full path.
        std::os::unix::fs::symlink("a/b", root.join("short")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("full")).unwrap();
        assert_eq!(
            folder_path(&beneath(&root, "short/x.yaml").unwrap()),
            root.join("a/b")
        );
        assert_eq!(
            folder_path(&beneath(&root, "full/b/x.yaml").unwrap()),
            root.join("a/b")
        );
        // The file a link: the walk ends at the file it names.
        std::os::unix::fs::symlink("../real.yaml", root.join("a/b/x.yaml")).unwrap();
        let found = beneath(&root, "short/x.yaml").unwrap();
        assert_eq!(folder_path(&found), root.join("a"));
        assert_eq!(found.name, "real.yaml");
    }

    #[test]
    fn the_walk_refuses_links_and_dots_that_lead_out_and_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("book");
        std::fs::create_dir(&root).unwrap();
        let outside = tempfile::tempdir().unwrap();
        // A link component leading out, relative or absolute.
        std::os::unix::fs::symlink("..", root.join("up")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        // A link inside the folder whose target climbs out.
        std::fs::create_dir(root.join("a")).unwrap();
        std::os::unix::fs::symlink("../../x.yaml", root.join("a/file.yaml")).unwrap();
        for (path, why) in [
            ("up/x.yaml", "through a link (up -> ..)"),
            ("out/x.yaml", "through a link (out -> "),
            (
                "a/file.yaml",
                "through a link (a/file.yaml -> ../../x.yaml)",
            ),
            ("../x.yaml", "leads out of the runbook's folder"),
            ("a/../../x.yaml", "leads out of the runbook's folder"),
            ("/etc/x.yaml", "is absolute"),
        ] {
            let error = beneath(&root, path).unwrap_err();
            assert!(error.contains(why), "{path}: {error}");
        }
        // A file where a folder should be, and a link loop.
        std::fs::write(root.join("f"), "").unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(beneath(&root, "f/x.yaml")
            .unwrap_err()
            .contains("f is not a folder"));
        assert!(beneath(&root, "loop/x.yaml")
            .unwrap_err()
            .contains("too many levels"));
        assert!(beneath(&root, "loop")
            .unwrap_err()
            .contains("too many levels"));
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(!dir.path().join("x.yaml").exists());
    }
}
