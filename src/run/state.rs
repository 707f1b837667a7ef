//! The state file `.runbook/FILE.json` (`lab.md.json`) beside a runbook: per cell the last
//! result and a hash of the script it ran, plus the variables captured and
//! the environment exported in the last run. It never holds a secret.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::Status;
use crate::secrets::Masker;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Per cell, keyed by id or number.
    pub cells: BTreeMap<String, CellRecord>,
    /// Variables cells captured (secrets left out).
    pub captured: BTreeMap<String, serde_json::Value>,
    /// Environment variables cells exported (secrets left out).
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub number: usize,
    pub status: Status,
    pub exit: i32,
    pub duration_ms: u64,
    /// When the cell finished, RFC 3339 in UTC.
    pub finished_at: String,
    /// SHA-256 of the script as rendered (secrets masked), to spot changes.
    pub script_hash: String,
}

/// Where the state of the runbook at `path` lives: named by the whole file
/// name, so `lab.md` and `lab.markdown` keep apart.
pub fn path_for(runbook: &Path) -> PathBuf {
    let name = crate::paths::file_name_of(runbook);
    crate::paths::folder_of(runbook)
        .join(".runbook")
        .join(format!("{name}.json"))
}

/// The state of the runbook at `runbook`; a state file of the older name
/// (`.runbook/lab.json`) is read when there is no newer one.
pub fn load_for(runbook: &Path) -> Result<State, String> {
    let path = path_for(runbook);
    let older = crate::paths::folder_of(runbook)
        .join(".runbook")
        .join(format!("{}.json", crate::paths::name_of(runbook)));
    if !path.exists() && older.exists() {
        return State::load(&older);
    }
    State::load(&path)
}

pub fn hash(script: &str) -> String {
    let digest = Sha256::digest(script.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The longest value an environment variable can hold on Linux
/// (`MAX_ARG_STRLEN`, name and `=` included).
const MAX_ENV_VALUE: usize = 128 * 1024;

/// The largest state file read: four times the largest capture.
const MAX_STATE: u64 = 4 * crate::executor::MAX_CAPTURE as u64;

impl State {
    /// Reads a state file; a missing one is an empty state. Only a regular
    /// file in a real `.runbook/` folder is read (never a link, a FIFO or a
    /// device), and only names a shell can hold come out of it: a name
    /// that is not one makes the file invalid, and a captured or exported
    /// value for a name that would choose what runs (`PATH`, `LD_PRELOAD`,
    /// `BASH_ENV`...; see [`crate::kernel::reserved`]) is left out, with a
    /// warning.
    pub fn load(path: &Path) -> Result<State, String> {
        let invalid = |why: String| {
            format!(
                "{}: not a valid state file ({why}); delete it to start afresh",
                path.display()
            )
        };
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if is_link(folder) {
                return Err(format!(
                    "{} is a symbolic link; runbook keeps its state only in a real folder beside the runbook (delete the link to start afresh)",
                    folder.display()
                ));
            }
        }
        if is_link(path) {
            return Err(format!(
                "{} is a symbolic link; runbook does not use a state file through one (delete it to start afresh)",
                path.display()
            ));
        }
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let meta = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!(
                "{} is not a regular file; runbook keeps its state only in one (delete it to start afresh)",
                path.display()
            ));
        }
        if meta.len() > MAX_STATE {
            return Err(invalid(format!(
                "it is over {}",
                crate::output::human_bytes(MAX_STATE as usize)
            )));
        }
        let mut text = String::new();
        file.take(MAX_STATE)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut state: State = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let names = state.captured.keys().chain(state.env.keys());
        if let Some(name) = names
            .clone()
            .find(|name| !crate::parser::is_variable_name(name))
        {
            return Err(invalid(format!("{name:?} is not a variable name")));
        }
        let with_nul = state.env.iter().map(|(n, v)| (n, v.contains('\0'))).chain(
            state
                .captured
                .iter()
                .map(|(n, v)| (n, v.to_string().contains("\\u0000"))),
        );
        if let Some((name, _)) = with_nul.into_iter().find(|(_, nul)| *nul) {
            return Err(invalid(format!("the value of {name} holds a NUL byte")));
        }
        let mut left_out: Vec<String> = names
            .filter(|name| crate::kernel::reserved(name).is_some())
            .cloned()
            .collect();
        if !left_out.is_empty() {
            left_out.sort();
            left_out.dedup();
            state
                .captured
                .retain(|name, _| crate::kernel::reserved(name).is_none());
            state
                .env
                .retain(|name, _| crate::kernel::reserved(name).is_none());
            crate::say_line!(
                "warning: {}: {} not restored from the last run (a value read back from a state file never chooses which programs, libraries or shell code run)",
                path.display(),
                left_out.join(", ")
            );
        }
        // No environment holds a variable this long (execve refuses it, and
        // every program a cell started would fail): such a value is left
        // out, and a cell that needs it says which cell captures it.
        let too_long = |text: &str| text.len() >= MAX_ENV_VALUE;
        let mut long: Vec<String> = state
            .env
            .iter()
            .filter(|(_, v)| too_long(v))
            .map(|(n, _)| n.clone())
            .chain(
                state
                    .captured
                    .iter()
                    .filter(|(_, v)| too_long(&v.to_string()))
                    .map(|(n, _)| n.clone()),
            )
            .collect();
        if !long.is_empty() {
            long.sort();
            long.dedup();
            state.env.retain(|_, v| !too_long(v));
            state.captured.retain(|_, v| !too_long(&v.to_string()));
            crate::say_line!(
                "warning: {}: {} not restored from the last run (over {}, more than an environment variable can hold)",
                path.display(),
                long.join(", "),
                crate::output::human_bytes(MAX_ENV_VALUE)
            );
        }
        Ok(state)
    }

    /// Writes the state atomically, with every string passed through
    /// `masker` and any value it would change left out, as are names no
    /// later run would restore. Only into a real `.runbook/` folder, and
    /// only over a regular file.
    pub fn save(&self, path: &Path, masker: &Masker) -> std::io::Result<()> {
        let mut clean = self.clone();
        clean.version = VERSION;
        clean.captured.retain(|name, v| {
            let text = v.to_string();
            masker.mask(&text) == text && crate::kernel::reserved(name).is_none()
        });
        clean
            .env
            .retain(|name, v| masker.mask(v) == *v && crate::kernel::reserved(name).is_none());
        if let Some(parent) = path.parent() {
            make_folder(parent)?;
        }
        // Unlike the document, the state file is runbook's own: a link in
        // its place (or its folder's) is never followed, and nothing but a
        // regular file is replaced.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link; runbook does not write its state through one",
                    path.display()
                )))
            }
            Ok(meta) if !meta.is_file() => {
                return Err(std::io::Error::other(format!(
                    "{} is not a regular file; runbook writes its state only over one",
                    path.display()
                )))
            }
            _ => {}
        }
        let text = serde_json::to_string_pretty(&clean).expect("state serialises") + "\n";
        crate::atomic::write_if_changed(path, text.as_bytes()).map(|_| ())
    }
}

/// Makes the `.runbook/` folder, with a `.gitignore` holding `*` in it (as
/// pytest does for its cache), so state and locks stay out of version
/// control without anyone having to say so. The folder must be a real one:
/// a link in its place (to a folder elsewhere) is refused, never followed.
pub fn make_folder(folder: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(folder)?;
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{} is a symbolic link; runbook keeps its state and locks only in a real folder beside the runbook",
            folder.display()
        )));
    }
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a folder",
            folder.display()
        )));
    }
    let ignore = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(folder.join(".gitignore"));
    match ignore {
        Ok(mut file) => file
            .write_all(b"# Made by runbook: its state and locks stay out of version control.\n*\n"),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A sink that turns a run's events into cell records.
#[derive(Debug, Default)]
pub struct Tracker {
    hashes: BTreeMap<usize, String>,
    pub records: BTreeMap<String, CellRecord>,
}

impl crate::events::Sink for Tracker {
    fn event(&mut self, event: &crate::events::Event) {
        use crate::events::Event;
        match event {
            Event::CellStarted {
                index, rendered, ..
            } => {
                self.hashes.insert(*index, hash(rendered));
            }
            Event::CellFinished {
                index,
                number,
                name,
                status,
                exit,
                duration_ms,
                ..
            } => {
                self.records.insert(
                    name.clone(),
                    CellRecord {
                        number: *number,
                        status: *status,
                        exit: *exit,
                        duration_ms: *duration_ms,
                        finished_at: now_rfc3339(),
                        script_hash: self.hashes.get(index).cloned().unwrap_or_default(),
                    },
                );
            }
            _ => {}
        }
    }
}
