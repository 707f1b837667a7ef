//! Where a runbook's companions live: its folder (relative paths start
//! there), the name its state file, lock and cassette are called by, and
//! whether a path a file cell names stays inside that folder.

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
}
