//! The one error type, and the one place errors become exit codes.

use std::io;
use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// Exit status: a cell failed or a test mismatched.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: the runbook or the command line is wrong; nothing ran.
pub const EXIT_INVALID: i32 = 2;
/// Exit status: interrupted (Ctrl-C, SIGTERM, SIGHUP).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems located in a runbook's text (exit 2).
    #[error("{path}: invalid runbook")]
    Document {
        path: String,
        source_text: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// A wrong command line or setting (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file that could not be read or written (exit 2).
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Document { .. } | Error::Usage(_) | Error::Io { .. } => EXIT_INVALID,
        }
    }

    /// The full message for a terminal.
    pub fn render(&self, color: bool) -> String {
        match self {
            Error::Document {
                path,
                source_text,
                diagnostics,
            } => crate::diagnostic::render_all(diagnostics, path, source_text, color),
            other => format!("error: {other}\n"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
