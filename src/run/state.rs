//! The state file `.runbook/FILE.json` (`lab.md.json`) beside a runbook: per cell the last
//! result and a hash of the script it ran, plus the variables captured and
//! the environment exported in the last run. It never holds a secret.

use std::collections::BTreeMap;
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

impl State {
    /// Reads a state file; a missing one is an empty state.
    pub fn load(path: &Path) -> Result<State, String> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "{} is a symbolic link; runbook does not use a state file through one (delete it to start afresh)",
                path.display()
            ));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: not a valid state file ({e}); delete it to start afresh",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the state atomically, with every string passed through
    /// `masker` and any value it would change left out.
    pub fn save(&self, path: &Path, masker: &Masker) -> std::io::Result<()> {
        let mut clean = self.clone();
        clean.version = VERSION;
        clean.captured.retain(|_, v| {
            let text = v.to_string();
            masker.mask(&text) == text
        });
        clean.env.retain(|_, v| masker.mask(v) == *v);
        if let Some(parent) = path.parent() {
            make_folder(parent)?;
            refuse_link(parent)?;
        }
        // Unlike the document, the state file is runbook's own: a link in
        // its place (or its folder's) is never followed.
        refuse_link(path)?;
        let text = serde_json::to_string_pretty(&clean).expect("state serialises") + "\n";
        crate::atomic::write_if_changed(path, text.as_bytes()).map(|_| ())
    }
}

/// Makes the `.runbook/` folder, with a `.gitignore` holding `*` in it (as
/// pytest does for its cache), so state and locks stay out of version
/// control without anyone having to say so.
pub fn make_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let ignore = folder.join(".gitignore");
    if std::fs::symlink_metadata(&ignore).is_err() {
        std::fs::write(
            &ignore,
            "# Made by runbook: its state and locks stay out of version control.\n*\n",
        )?;
    }
    Ok(())
}

fn refuse_link(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(std::io::Error::other(format!(
            "{} is a symbolic link; runbook does not write its state through one",
            path.display()
        ))),
        _ => Ok(()),
    }
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
