//! Problems found in a runbook, located by byte span, and their rustc-style
//! rendering (`file:line:col`, the source line, a caret, a help line).

use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor, Chars};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a runbook's source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range in the document the problem points at.
    pub span: Range<usize>,
    /// Short text printed beside the caret.
    pub label: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Range<usize>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::new(),
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>, span: Range<usize>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The full report with the source line and a caret under the span.
    pub fn render(&self, path: &str, source: &str, color: bool) -> String {
        // A lone CR ends a line (CommonMark); the reporter counts LF only.
        let lines = crate::lines::lone_cr_as_lf(source);
        let file = SimpleFile::new(path, lines.as_ref());
        let end = self.span.end.max(self.span.start).min(source.len());
        let start = self.span.start.min(end);
        let report = match self.severity {
            Severity::Error => Report::error(),
            Severity::Warning => Report::warning(),
        }
        .with_message(&self.message)
        .with_labels(vec![
            Label::primary((), start..end).with_message(&self.label)
        ])
        .with_notes(self.help.iter().map(|h| format!("help: {h}")).collect());
        let config = term::Config {
            chars: Chars::ascii(),
            ..term::Config::default()
        };
        let mut buffer = if color {
            termcolor::Buffer::ansi()
        } else {
            termcolor::Buffer::no_color()
        };
        term::emit(&mut buffer, &config, &file, &report).expect("writing to memory");
        // One line end: callers put one blank line between diagnostics.
        let text = String::from_utf8_lossy(buffer.as_slice());
        format!("{}\n", text.trim_end_matches('\n'))
    }
}

/// A parser's message without its own ` at line N column M`, for messages
/// that give the position themselves (in document terms).
pub fn without_location(mut message: String) -> String {
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    message
}

/// Renders every diagnostic of a file, one after the other.
pub fn render_all(diagnostics: &[Diagnostic], path: &str, source: &str, color: bool) -> String {
    diagnostics
        .iter()
        .map(|d| d.render(path, source, color))
        .collect::<Vec<_>>()
        .join("\n")
}
