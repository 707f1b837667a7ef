//! Reading runbooks from disk: the only place a document is loaded.

use std::path::{Path, PathBuf};

use crate::document::Runbook;
use crate::error::{Error, Result};
use crate::parser::parse;

/// A runbook with its path and the exact text it was parsed from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub source: String,
    pub runbook: Runbook,
}

impl Loaded {
    /// The path as given, for messages (`lab.md:12:3`).
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// The span of `key:` in the front matter (the whole front matter if
    /// the key is not found), for messages about settings.
    pub fn front_matter_key(&self, key: &str) -> std::ops::Range<usize> {
        let front = self.runbook.front_matter.clone().unwrap_or(0..0);
        let needle = format!("{key}:");
        match self.source[front.clone()].find(&needle) {
            Some(at) => front.start + at..front.start + at + key.len(),
            None => front,
        }
    }

    /// The folder the runbook lives in; relative paths in it start here.
    pub fn folder(&self) -> PathBuf {
        crate::paths::folder_of(&self.path).to_path_buf()
    }
}

pub fn load(path: &Path) -> Result<Loaded> {
    if crate::notebooks::notebook::is_notebook(path) {
        return Err(Error::Usage(format!(
            "{0} is a notebook, not a runbook: `runbook run {0}` runs it; for this command, import it first: `runbook import {0} -o FILE.md`",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let source = String::from_utf8(bytes).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text ({e})"),
            ),
        )
    })?;
    match parse(&source) {
        Ok(runbook) => Ok(Loaded {
            path: path.to_path_buf(),
            source,
            runbook,
        }),
        Err(diagnostics) => Err(Error::Document {
            path: path.display().to_string(),
            source_text: source,
            diagnostics,
        }),
    }
}
