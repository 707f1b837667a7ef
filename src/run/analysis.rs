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
    let mut used = template_variables(cell.template_text()).unwrap_or_default();
    used.remove("env");
    if cell.interpreter().is_some_and(|i| i.is_posix_shell()) {
        used.extend(
            shell_references(&cell.body)
                .into_iter()
                .filter(|n| known.contains(n)),
        );
    }
    if cell.interpreter() == Some(crate::document::Interpreter::Pwsh) {
        used.extend(
            crate::pwsh::variables(&cell.body)
                .env
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
        match template_variables(cell.template_text()) {
            Ok(used) => {
                // In the order the cell uses them, not alphabetical.
                let mut undefined: Vec<&String> = used
                    .iter()
                    .filter(|n| *n != "env" && !defined.contains(*n))
                    .collect();
                undefined.sort_by_key(|n| {
                    crate::template::offset_of_use(&cell.body, n).unwrap_or(usize::MAX)
                });
                for name in undefined {
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
                        let hint =
                            crate::suggest::did_you_mean(name, defined.iter().map(String::as_str));
                        diagnostic = diagnostic.help(format!(
                            "{hint}define it as a param, or pass --set {name}=VALUE"
                        ));
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
pub fn span_in_line(
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

/// Something a cell can define for later cells.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Symbol {
    Var(String),
    Function(String),
}

fn assignment_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?m)(?:^|[;&|{(])[ \t]*(?:export[ \t]+|declare[ \t]+(?:-[A-Za-z]+[ \t]+)*|readonly[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")
            .expect("valid regex")
    })
}

fn loop_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\bfor[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]+in\b").expect("valid regex")
    })
}

fn read_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\bread((?:[ \t]+[^ \t;|&<>\n]+)+)").expect("valid regex"))
}

fn function_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?m)(?:^|[;&|{(])[ \t]*(?:function[ \t]+([A-Za-z_][A-Za-z0-9_-]*)|([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\(\))")
            .expect("valid regex")
    })
}

/// What a cell defines: its capture, and for shell cells the variables it
/// assigns and the functions it declares.
pub fn defines(cell: &Cell) -> BTreeSet<Symbol> {
    let mut symbols = BTreeSet::new();
    if let Some(capture) = &cell.options.capture {
        symbols.insert(Symbol::Var(capture.name.clone()));
    }
    if cell.interpreter().is_some_and(|i| i.is_posix_shell()) {
        for c in assignment_re().captures_iter(&cell.body) {
            symbols.insert(Symbol::Var(c[1].to_string()));
        }
        for c in loop_re().captures_iter(&cell.body) {
            symbols.insert(Symbol::Var(c[1].to_string()));
        }
        for c in read_re().captures_iter(&cell.body) {
            let mut words = c[1].split_whitespace().peekable();
            while let Some(word) = words.next() {
                if matches!(word, "-p" | "-d" | "-t" | "-n" | "-N" | "-u") {
                    words.next();
                } else if crate::parser::is_variable_name(word) {
                    symbols.insert(Symbol::Var(word.to_string()));
                }
            }
        }
        for c in function_re().captures_iter(&cell.body) {
            let name = c.get(1).or_else(|| c.get(2)).expect("one group matches");
            symbols.insert(Symbol::Function(name.as_str().to_string()));
        }
    }
    symbols
}

/// What a cell reads from earlier cells: template variables, `$NAME`
/// references and calls of `functions` (in shell cells).
pub fn needs(cell: &Cell, functions: &BTreeSet<String>) -> BTreeSet<Symbol> {
    let mut symbols: BTreeSet<Symbol> = template_variables(cell.template_text())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n != "env")
        .map(Symbol::Var)
        .collect();
    if cell.interpreter().is_some_and(|i| i.is_posix_shell()) {
        symbols.extend(shell_references(&cell.body).into_iter().map(Symbol::Var));
        for name in functions {
            let call = regex::Regex::new(&format!(
                r"(^|[^A-Za-z0-9_-]){}([^A-Za-z0-9_-]|$)",
                regex::escape(name)
            ))
            .expect("valid regex");
            if call.is_match(&cell.body) {
                symbols.insert(Symbol::Function(name.clone()));
            }
        }
    }
    let own = defines(cell);
    symbols.retain(|s| !own.contains(s));
    symbols
}

/// The names of the shell functions among cells' definitions.
pub fn function_names(definitions: &[BTreeSet<Symbol>]) -> BTreeSet<String> {
    definitions
        .iter()
        .flatten()
        .filter_map(|s| match s {
            Symbol::Function(name) => Some(name.clone()),
            Symbol::Var(_) => None,
        })
        .collect()
}

/// `chosen` plus, transitively, the nearest earlier cell defining each
/// symbol a chosen cell needs. Returned in document order.
pub fn with_dependencies(runbook: &Runbook, chosen: &BTreeSet<usize>) -> Vec<usize> {
    let definitions: Vec<BTreeSet<Symbol>> = runbook.cells.iter().map(defines).collect();
    let functions = function_names(&definitions);
    let mut selected = chosen.clone();
    let mut queue: Vec<usize> = chosen.iter().copied().collect();
    while let Some(index) = queue.pop() {
        for symbol in needs(&runbook.cells[index], &functions) {
            let definer = (0..index)
                .rev()
                .find(|&d| !runbook.cells[d].options.skip && definitions[d].contains(&symbol));
            if let Some(definer) = definer {
                if selected.insert(definer) {
                    queue.push(definer);
                }
            }
        }
    }
    selected.into_iter().collect()
}
