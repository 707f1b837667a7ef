//! Finding programs on the PATH. A lookup takes a plain program name
//! (`kubectl`, never `./kubectl` or `/tmp/x`) and searches the PATH's
//! absolute folders only: a document can name a tool, never a file to run.

use std::path::PathBuf;

/// The first executable named `program` in `path` (the PATH format), or
/// in the PATH. `None` for a name that is not a plain program name, so a
/// name with a folder in it finds nothing, and relative PATH entries
/// (`.`, an empty entry) are passed over.
pub fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if !crate::frontmatter::is_program_name(program) {
        return None;
    }
    let path = path
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_on_absolute_folders_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let folder = dir.path().to_str().unwrap();
        assert_eq!(find_on_path("tool", Some(folder)), Some(tool.clone()));
        let absolute = tool.to_str().unwrap();
        for name in [absolute, "./tool", "../tool", "a b", "", "-tool"] {
            assert_eq!(find_on_path(name, Some(folder)), None, "{name}");
        }
        let escape = format!("../..{absolute}");
        assert_eq!(find_on_path(&escape, Some("/usr/bin")), None);
        // The same folder, named relative to the current one.
        let depth = std::env::current_dir().unwrap().components().count() - 1;
        let relative = format!("{}{}", "../".repeat(depth), &folder[1..]);
        assert!(std::path::Path::new(&relative).join("tool").exists());
        assert_eq!(find_on_path("tool", Some(&relative)), None);
    }
}
