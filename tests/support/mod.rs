//! A small builder for driving the real `runbook` binary on real files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Test {
    pub dir: tempfile::TempDir,
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read file")
    }

    /// A `runbook` command running in the test's folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Exports `runbook` to `format` into the file `name` of the test's
    /// folder, which it returns; the export must succeed.
    pub fn export(&self, runbook: &Path, format: &str, name: &str) -> PathBuf {
        let out = self.path(name);
        self.run(&[
            "export",
            runbook.to_str().expect("a UTF-8 path"),
            "--to",
            format,
            "-o",
            out.to_str().expect("a UTF-8 path"),
        ])
        .code(0);
        out
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `runbook` with some environment variables set (PATH among them).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        Run::from(command.output().expect("runbook starts"))
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The project's `tests/data` folder.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Processes whose command line holds `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains(needle) {
                    found.push(cmdline);
                }
            }
        }
    }
    found
}

/// Waits up to a few seconds for processes matching `needle` to vanish.
#[track_caller]
pub fn assert_no_process(needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if processes_with(needle).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("processes outlived the run: {:?}", processes_with(needle));
}

/// Every file below `dir`, dot-files and folders included.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Makes a file executable.
pub fn executable(path: &Path) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A program of the real tools `.ci/run` installs into `target/lab-tools`
/// (or the folder `RUNBOOK_LAB_TOOLS` names); `None`, saying so, when it
/// is not there.
pub fn lab_tool(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = std::env::var_os("RUNBOOK_LAB_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/lab-tools"));
    let path = folder.join("bin").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is not installed (.ci/run installs it into target/lab-tools)",
            path.display()
        );
        None
    }
}

/// Every runbook in the repository's `runbooks/`: (file name, text).
pub fn repository_runbooks() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<(String, String)> = std::fs::read_dir(root.join("runbooks"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    docs.sort();
    docs
}
