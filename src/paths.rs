//! Where a runbook's companions live: its folder (relative paths start
//! there) and the name its state file, lock and cassette are called by.

use std::path::Path;

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
    }
}
