//! What cells define and use: the static facts `list`, the undefined
//! variable check and dependency resolution share.

use std::collections::BTreeSet;

use crate::diagnostic::Diagnostic;
use crate::document::{Cell, Runbook};
use crate::lines::LineIndex;
use crate::template::{line_of_use, shell_references, template_variables};

/// Names the runbook itself can define: parameters, secrets and captures.
pub fn known_names(runbook: &Runbook) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = runbook
        .settings
        .params
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(runbook.settings.secrets.iter().cloned());
    names.extend(captures(runbook));
    names
}

fn captures(runbook: &Runbook) -> impl Iterator<Item = String> + '_ {
    runbook
        .cells
        .iter()
        .filter_map(|c| c.options.capture.as_ref().map(|cap| cap.name.clone()))
}

/// Variables a cell uses: every name its template reads (except `env`),
/// plus `$NAME` references in shell cells to names in `known`.
pub fn uses(cell: &Cell, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = template_variables(&cell.body).unwrap_or_default();
    used.remove("env");
    if cell.interpreter().is_some_and(|i| i.is_posix_shell()) {
        used.extend(
            shell_references(&cell.body)
                .into_iter()
                .filter(|n| known.contains(n)),
        );
    }
    used
}

/// Template variables used before anything defines them, in the order the
/// cells would run. `defined` holds what exists before the first cell;
/// each cell's capture is added after it. Template syntax errors are
/// reported too.
pub fn undefined_variables(
    source: &str,
    runbook: &Runbook,
    cells: &[usize],
    defined: &BTreeSet<String>,
) -> Vec<Diagnostic> {
    let index = LineIndex::new(source);
    let mut defined = defined.clone();
    let mut diagnostics = Vec::new();
    for &i in cells {
        let cell = &runbook.cells[i];
        if cell.options.skip {
            continue;
        }
        match template_variables(&cell.body) {
            Ok(used) => {
                for name in used.iter().filter(|n| *n != "env" && !defined.contains(*n)) {
                    let line = cell.line + line_of_use(&cell.body, name).unwrap_or(1);
                    let span = span_in_line(source, &index, line, name);
                    let so_far: Vec<&str> = defined.iter().map(String::as_str).collect();
                    let so_far = if so_far.is_empty() {
                        "none".to_string()
                    } else {
                        so_far.join(", ")
                    };
                    let mut diagnostic = Diagnostic::error(
                        format!("undefined variable {name} (defined so far: {so_far})"),
                        span,
                    )
                    .label("used here");
                    if let Some(definer) = runbook.cells.iter().find(|c| {
                        c.options
                            .capture
                            .as_ref()
                            .is_some_and(|cap| &cap.name == name)
                    }) {
                        diagnostic = diagnostic.help(format!(
                            "{name} is captured by cell {} on line {}, which runs later",
                            definer.name(),
                            definer.line
                        ));
                    } else {
                        diagnostic = diagnostic
                            .help(format!("define it as a param, or pass --set {name}=VALUE"));
                    }
                    diagnostics.push(diagnostic);
                }
            }
            Err(error) => {
                let line = cell.line + error.line.unwrap_or(1);
                let start = index.offset_of_line(line);
                diagnostics.push(Diagnostic::error(
                    format!("template error: {}", error.message),
                    start..crate::lines::line_end(source, start),
                ));
            }
        }
        if let Some(capture) = &cell.options.capture {
            defined.insert(capture.name.clone());
        }
    }
    diagnostics
}

/// The span of `name` on a 1-based line, or of the whole line.
fn span_in_line(
    source: &str,
    index: &LineIndex,
    line: usize,
    name: &str,
) -> std::ops::Range<usize> {
    let start = index.offset_of_line(line);
    let end = crate::lines::line_end(source, start);
    match source[start..end].find(name) {
        Some(at) => start + at..start + at + name.len(),
        None => start..end,
    }
}
