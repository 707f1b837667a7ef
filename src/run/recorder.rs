//! The document sink: records each finished cell's output block and writes
//! the document atomically, a few times a second at most, and always on a
//! failure and at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::document::{OutputBlock, Runbook};
use crate::events::{Event, Sink};
use crate::snapshot::{has_wildcards, matches};
use crate::writer::{apply, Edit, Output};

/// Least time between two writes of the document.
const MIN_INTERVAL: Duration = Duration::from_millis(300);

pub struct Recorder {
    source: String,
    runbook: Runbook,
    target: PathBuf,
    /// The bytes the target should hold now; a difference means someone
    /// else changed it during the run. `None` when the target is a new file.
    expected_on_disk: Option<Vec<u8>>,
    edits: BTreeMap<usize, Option<Output>>,
    dirty: bool,
    last_write: Option<Instant>,
    /// Keep the document in memory only (`run --check`).
    dry: bool,
    pub error: Option<String>,
}

impl Recorder {
    /// Records into `target`: the runbook itself, or `--output FILE`.
    pub fn new(source: String, runbook: Runbook, target: PathBuf, in_place: bool) -> Recorder {
        let expected_on_disk = in_place.then(|| source.clone().into_bytes());
        Recorder {
            source,
            runbook,
            target,
            expected_on_disk,
            edits: BTreeMap::new(),
            dirty: true,
            last_write: None,
            dry: false,
            error: None,
        }
    }

    /// A recorder that writes nothing: the document stays in memory.
    pub fn dry(mut self) -> Recorder {
        self.dry = true;
        self
    }

    /// The document as it stands with the outputs recorded so far.
    pub fn document(&self) -> String {
        let edits: Vec<Edit> = self
            .edits
            .iter()
            .map(|(&cell, output)| Edit {
                cell,
                output: output.clone(),
            })
            .collect();
        apply(&self.source, &self.runbook, &edits)
    }

    pub fn flush(&mut self) {
        if !self.dirty || self.error.is_some() || self.dry {
            return;
        }
        let contents = self.document().into_bytes();
        let written = match &self.expected_on_disk {
            Some(expected) if *expected == contents => Ok(()),
            Some(expected) => {
                crate::atomic::replace_document(&self.target, expected, &contents).map_err(|e| {
                    match e {
                        crate::atomic::ReplaceError::Changed(conflict) => format!(
                            "{} changed on disk during the run; the edit is kept as it is, and the executed document was written to {}",
                            self.target.display(),
                            conflict.display()
                        ),
                        crate::atomic::ReplaceError::Io(e) => {
                            format!("{}: {e}", self.target.display())
                        }
                    }
                })
            }
            None => crate::atomic::write_if_changed(&self.target, &contents)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", self.target.display())),
        };
        match written {
            Ok(()) => {
                if self.expected_on_disk.is_some() {
                    self.expected_on_disk = Some(contents);
                }
                self.dirty = false;
                self.last_write = Some(Instant::now());
            }
            Err(message) => self.error = Some(message),
        }
    }

    fn flush_if_due(&mut self) {
        if self.dirty
            && self
                .last_write
                .is_none_or(|at| at.elapsed() >= MIN_INTERVAL)
        {
            self.flush();
        }
    }
}

/// The block a cell's output gets under the block recorded before: a block
/// a person wrote with wildcards that still match stays as written.
pub fn output_for(recorded: Option<&OutputBlock>, text: &str, exit: i32) -> Option<Output> {
    let still_matches = recorded.is_some_and(|old| {
        old.exit == exit && !old.literal && has_wildcards(&old.text) && matches(&old.text, text)
    });
    if still_matches {
        recorded.map(|old| Output {
            text: old.text.clone(),
            exit: old.exit,
            literal: false,
        })
    } else {
        Output::block(text.to_string(), exit)
    }
}

impl Sink for Recorder {
    fn event(&mut self, event: &Event) {
        match event {
            Event::CellFinished {
                index,
                status,
                exit,
                recorded: Some(text),
                ..
            } => {
                let output = output_for(self.runbook.cells[*index].output.as_ref(), text, *exit);
                if self.edits.get(index) != Some(&output) {
                    self.edits.insert(*index, output);
                    self.dirty = true;
                }
                if status.is_failure() {
                    self.flush();
                } else {
                    self.flush_if_due();
                }
            }
            Event::RunFinished { .. } => self.flush(),
            _ => {}
        }
    }

    fn tick(&mut self) {
        self.flush_if_due();
    }
}
