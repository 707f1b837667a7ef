//! Problems found before a run starts, beyond the parse and the template
//! check: interpreters and tools that are missing, `confirm` cells with no
//! one to ask, secrets bound for a file, and what a partial run lacks.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use crate::analysis::{defines, function_names, needs, Symbol};
use crate::diagnostic::Diagnostic;
use crate::document::CellKind;
use crate::loader::Loaded;
use crate::template::template_variables;
use crate::tools::find_on_path;

/// Problems that would stop the run part way: missing interpreters and
/// tools, `confirm` cells with nobody to ask, secrets bound for a file.
pub fn preflight(
    loaded: &Loaded,
    cells: &[usize],
    yes: bool,
    intercepted: &[String],
) -> Vec<Diagnostic> {
    let runbook = &loaded.runbook;
    let mut diagnostics = Vec::new();
    let mut reported = BTreeSet::new();
    let secrets: BTreeSet<&str> = runbook
        .settings
        .secrets
        .iter()
        .map(String::as_str)
        .chain(runbook.cells.iter().filter_map(|c| {
            c.options
                .capture
                .as_ref()
                .filter(|cap| cap.secret)
                .map(|cap| cap.name.as_str())
        }))
        .collect();
    for &i in cells {
        let cell = &runbook.cells[i];
        if cell.options.skip {
            continue;
        }
        let span = cell.info_span.clone();
        match &cell.kind {
            CellKind::Code { .. } => {
                for program in cell
                    .programs()
                    .into_iter()
                    .filter(|p| !intercepted.contains(p))
                {
                    if reported.insert(program.clone()) && find_on_path(&program, None).is_none() {
                        diagnostics.push(
                            Diagnostic::error(
                                format!(
                                    "`{program}` is not on PATH; cell {} needs it",
                                    cell.name()
                                ),
                                span.clone(),
                            )
                            .help(format!(
                                "install {program}, or replay recorded calls with --replay DIR"
                            )),
                        );
                    }
                }
                if cell.options.confirm && !yes && !std::io::stdin().is_terminal() {
                    diagnostics.push(
                        Diagnostic::error(
                            format!(
                                "cell {} asks for confirmation, but there is no terminal to ask on",
                                cell.name()
                            ),
                            span.clone(),
                        )
                        .help("pass --yes to answer yes"),
                    );
                }
            }
            CellKind::File { path, .. } => {
                let used = template_variables(cell.template_text()).unwrap_or_default();
                for name in used.iter().filter(|n| secrets.contains(n.as_str())) {
                    diagnostics.push(
                        Diagnostic::error(format!("file cell would write secret {name} to {path}"), span.clone())
                            .help("secrets are never written to disk: pass it from a shell cell instead, e.g. `kubectl create secret ... --from-literal`"),
                    );
                }
            }
        }
    }
    for tool in runbook
        .settings
        .requires
        .iter()
        .filter(|t| !intercepted.contains(t))
    {
        if reported.insert(tool.clone()) && find_on_path(tool, None).is_none() {
            diagnostics.push(
                Diagnostic::error(
                    format!("required tool `{tool}` is not on PATH"),
                    loaded.front_matter_key("requires"),
                )
                .help("install it, or replay recorded calls with --replay DIR"),
            );
        }
    }
    diagnostics
}

/// For a run of some cells: variables the chosen cells read that a cell
/// left out captures, and that neither the last run nor the command line
/// provides. Secrets are never kept, so they must be given again.
pub fn missing_for_partial_run(
    loaded: &Loaded,
    cells: &[usize],
    defined: &BTreeSet<String>,
) -> Vec<Diagnostic> {
    let runbook = &loaded.runbook;
    let definitions: Vec<BTreeSet<Symbol>> = runbook.cells.iter().map(defines).collect();
    let functions = function_names(&definitions);
    let mut available = defined.clone();
    let mut diagnostics = Vec::new();
    for &index in cells {
        let cell = &runbook.cells[index];
        for symbol in needs(cell, &functions) {
            let name = match symbol {
                Symbol::Var(name) => name,
                Symbol::Function(name) => {
                    let function = Symbol::Function(name.clone());
                    let planned_before = cells
                        .iter()
                        .take_while(|&&i| i < index)
                        .any(|&i| definitions[i].contains(&function));
                    let definer = (0..index)
                        .rev()
                        .find(|&d| definitions[d].contains(&function))
                        .map(|d| &runbook.cells[d]);
                    if let (false, Some(definer)) = (planned_before, definer) {
                        diagnostics.push(
                            Diagnostic::warning(
                                format!("cell {} calls {name}, a shell function cell {} defines, which this run does not include", cell.name(), definer.name()),
                                cell.info_span.clone(),
                            )
                            .help("shell functions are not kept between runs: add --deps to run that cell too"),
                        );
                    }
                    continue;
                }
            };
            if available.contains(&name) {
                continue;
            }
            let definer = runbook.cells[..index].iter().rev().find(|c| {
                c.options
                    .capture
                    .as_ref()
                    .is_some_and(|cap| cap.name == name)
            });
            let Some(definer) = definer else { continue };
            let secret = definer.options.capture.as_ref().is_some_and(|c| c.secret)
                || runbook.settings.secrets.contains(&name);
            let help = if secret {
                format!(
                    "{name} is a secret, and secrets are not kept between runs: pass --secret {name}=VALUE, or add --deps to run cell {} too",
                    definer.name()
                )
            } else {
                format!(
                    "run cell {} first (it captures {name}), pass --set {name}=VALUE, or add --deps",
                    definer.name()
                )
            };
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "cell {} needs {name}, which cell {} captures and this run does not have",
                        cell.name(),
                        definer.name()
                    ),
                    cell.info_span.clone(),
                )
                .help(help),
            );
            available.insert(name);
        }
        if let Some(capture) = &cell.options.capture {
            available.insert(capture.name.clone());
        }
    }
    diagnostics
}

/// Templates a run would refuse whatever the values, among `cells`: a
/// secret transformed or put where none may stand, and with `budget` a
/// rendering over its budget (a run leaves that to the cell, whose
/// `timeout` covers its rendering). Found before anything runs, so a run
/// stops with nothing done.
pub fn refused_templates(
    loaded: &Loaded,
    vars: &crate::run::vars::Vars,
    cells: &[usize],
    budget: bool,
) -> Vec<Diagnostic> {
    let env = crate::run::template::environment();
    let values = vars.with_placeholders(&loaded.runbook);
    let index = crate::document::lines::LineIndex::new(&loaded.source);
    let mut secrets = vars.secret_names();
    secrets.extend(
        loaded
            .runbook
            .cells
            .iter()
            .filter_map(|c| c.options.capture.as_ref().filter(|c| c.secret))
            .map(|capture| capture.name.clone()),
    );
    // Without a budget to check, only a template that names a secret (or
    // `env`, which holds them) can be refused.
    let may_be_refused = |text: &str| {
        budget || text.contains("env") || secrets.iter().any(|name| text.contains(name.as_str()))
    };
    crate::run::template::with_document_budget(|| {
        let mut diagnostics = Vec::new();
        for &i in cells {
            let cell = &loaded.runbook.cells[i];
            if !may_be_refused(cell.template_text()) {
                continue;
            }
            let Err(error) = crate::run::template::render_cell(&env, cell, &values) else {
                continue;
            };
            if error.secret.is_none() && !(budget && error.budget) {
                continue;
            }
            let start = index.offset_of_line(cell.line + error.line.unwrap_or(1));
            diagnostics.push(Diagnostic::error(
                format!("template error: {}", error.message),
                start..crate::document::lines::line_end(&loaded.source, start),
            ));
        }
        diagnostics
    })
}
