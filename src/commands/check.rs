//! `runbook check`: everything that can be found wrong without running a
//! cell. Parse errors, unknown attributes, duplicate ids, variables used
//! before anything defines them (an error in templates, a warning for
//! `$NAME` in shell cells), the shell syntax of each rendered cell, and the
//! tools the runbook needs, with their versions.
//!
//! It runs nothing a document names: tools are looked up by plain name on
//! PATH, and only `bash -n` (or `sh -n`, `zsh -n`), ShellCheck and the
//! `--version` of runbook's own interpreters and tool tags are executed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::analysis::{defines, span_in_line, undefined_variables, Symbol};
use crate::diagnostic::Diagnostic;
use crate::document::Interpreter;
use crate::error::Error;
use crate::lines::LineIndex;
use crate::loader::{load, Loaded};
use crate::run::template::{environment, render_cell, shell_references};
use crate::tools::find_on_path;
use crate::vars::{initial, Overrides};

/// Variables a shell sets for itself, never reported as undefined.
const SHELL_VARIABLES: &[&str] = &[
    "BASH",
    "BASHPID",
    "BASH_SOURCE",
    "BASH_VERSION",
    "BASH_REMATCH",
    "BASH_LINENO",
    "EUID",
    "FUNCNAME",
    "GROUPS",
    "HOME",
    "HOSTNAME",
    "HOSTTYPE",
    "IFS",
    "LINENO",
    "OLDPWD",
    "OPTARG",
    "OPTIND",
    "OSTYPE",
    "PATH",
    "PIPESTATUS",
    "PPID",
    "PWD",
    "RANDOM",
    "REPLY",
    "SECONDS",
    "SHELL",
    "SHELLOPTS",
    "SHLVL",
    "TMPDIR",
    "UID",
    "USER",
    "LANG",
    "TERM",
];

/// A tool the runbook needs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub path: Option<PathBuf>,
    pub version: Option<String>,
    /// Calls to it are answered from fixtures (`replay:`), so it may be absent.
    pub replayed: bool,
}

/// What `check` found in one file.
#[derive(Debug)]
pub struct Report {
    pub loaded: Option<Loaded>,
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    pub tools: Vec<Tool>,
    /// A failure that is not located in the text (unreadable file).
    pub error: Option<String>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count() + usize::from(self.error.is_some())
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.iter().filter(|d| !d.is_error()).count()
    }
}

pub fn check(path: &Path) -> Report {
    crate::run::template::with_document_budget(|| check_within_budget(path))
}

/// [`check`], with every template rendering in one document budget.
fn check_within_budget(path: &Path) -> Report {
    let mut report = Report {
        loaded: None,
        path: path.to_path_buf(),
        diagnostics: Vec::new(),
        tools: Vec::new(),
        error: None,
    };
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(Error::Document {
            diagnostics,
            source_text,
            ..
        }) => {
            report.diagnostics = diagnostics;
            report.loaded = Some(Loaded {
                path: path.to_path_buf(),
                source: source_text,
                runbook: Default::default(),
            });
            return report;
        }
        Err(other) => {
            report.error = Some(other.to_string());
            return report;
        }
    };
    let runbook = &loaded.runbook;
    let vars = match initial(&runbook.settings, &Overrides::default()) {
        Ok(vars) => vars,
        Err(e) => {
            let span = loaded.front_matter_key(&e.name);
            report.diagnostics.push(Diagnostic::error(
                format!("param {}: {}", e.name, e.message),
                span,
            ));
            Default::default()
        }
    };
    let mut vars = vars;
    // Declared secrets, from the environment where it has them: rendered
    // only as `[masked:NAME]`, and masked in whatever a shell says back.
    for name in &runbook.settings.secrets {
        if !vars.contains(name) {
            let value = std::env::var(name).unwrap_or_default();
            vars.set(name, serde_json::Value::String(value), true);
        }
    }
    let mut defined: BTreeSet<String> = vars.names().into_iter().collect();
    defined.extend(runbook.settings.secrets.iter().cloned());
    let cells: Vec<usize> = (0..runbook.cells.len()).collect();
    report.diagnostics.extend(undefined_variables(
        &loaded.source,
        runbook,
        &cells,
        &defined,
    ));
    report
        .diagnostics
        .extend(shell_variable_warnings(&loaded, &defined));
    if !runbook
        .cells
        .iter()
        .any(|cell| cell.interpreter().is_some() && !cell.options.skip)
    {
        let first_line = 0..crate::lines::line_end(&loaded.source, 0);
        report.diagnostics.push(
            Diagnostic::warning("no cell runs: nothing in this document is tested or run", first_line)
                .help("a fenced block runs when its info string starts with a cell language: bash, sh, zsh, pwsh, python, az, kubectl, helm, azurecli..."),
        );
    }
    let mut known = crate::analysis::known_names(runbook);
    known.extend(defined.iter().cloned());
    report
        .diagnostics
        .extend(crate::pwsh::warnings(&loaded.source, runbook, &known));
    let unskipped: Vec<usize> = (0..runbook.cells.len())
        .filter(|&i| !runbook.cells[i].options.skip)
        .collect();
    report
        .diagnostics
        .extend(crate::run::preflight::refused_templates(
            &loaded, &vars, &unskipped, true,
        ));
    let shell_cells = rendered_shell_cells(&loaded, &vars);
    let masker = vars.masker();
    let (syntax, rejected) = syntax_errors(&loaded, &shell_cells, &masker);
    report.diagnostics.extend(syntax);
    report.diagnostics.extend(shellcheck_warnings(
        &loaded,
        &shell_cells,
        &rejected,
        &masker,
    ));
    report.tools = tools(&loaded);
    for tool in report
        .tools
        .iter()
        .filter(|t| t.path.is_none() && !t.replayed)
    {
        let span = runbook
            .cells
            .iter()
            .find(|c| {
                c.lang == tool.name || c.interpreter().is_some_and(|i| i.program() == tool.name)
            })
            .map(|c| c.info_span.clone())
            .unwrap_or_else(|| loaded.front_matter_key("requires"));
        report.diagnostics.push(
            Diagnostic::error(format!("`{}` is not on PATH", tool.name), span).help(
                "install it, or answer its calls from fixtures with `replay:` or --replay DIR",
            ),
        );
    }
    report.diagnostics.sort_by_key(|d| d.span.start);
    report.loaded = Some(loaded);
    report
}

/// `$NAME` in shell cells that no param, capture, earlier assignment or
/// the environment provides.
fn shell_variable_warnings(loaded: &Loaded, defined: &BTreeSet<String>) -> Vec<Diagnostic> {
    let index = LineIndex::new(&loaded.source);
    let mut known = defined.clone();
    let mut diagnostics = Vec::new();
    for cell in &loaded.runbook.cells {
        let own: BTreeSet<String> = defines(cell)
            .into_iter()
            .filter_map(|s| match s {
                Symbol::Var(name) => Some(name),
                Symbol::Function(_) => None,
            })
            .collect();
        if !cell.options.skip && cell.interpreter().is_some_and(Interpreter::is_posix_shell) {
            for name in shell_references(&cell.body) {
                if known.contains(&name)
                    || own.contains(&name)
                    || SHELL_VARIABLES.contains(&name.as_str())
                    || std::env::var_os(&name).is_some()
                    || handles_unset(&cell.body, &name)
                {
                    continue;
                }
                let needle = format!("${name}");
                let braced = format!("${{{name}");
                let at = cell
                    .body
                    .find(&needle)
                    .or_else(|| cell.body.find(&braced))
                    .unwrap_or(0);
                let line = cell.line + 1 + cell.body[..at].matches('\n').count();
                let span = span_in_line(&loaded.source, &index, line, &name);
                diagnostics.push(
                    Diagnostic::warning(
                        format!("${name} is not set by any param, capture or earlier cell"),
                        span,
                    )
                    .label("read here")
                    .help(format!(
                        "it will be empty unless the caller's environment has {name}"
                    )),
                );
                known.insert(name);
            }
        }
        known.extend(own);
    }
    diagnostics
}

/// Whether every use of `$NAME` says what happens when it is unset:
/// `${NAME:-default}`, `${NAME:=value}`, `${NAME-default}`, `${NAME:?msg}`
/// and the like.
fn handles_unset(code: &str, name: &str) -> bool {
    let Ok(uses) = regex::Regex::new(&format!(r"\$(\{{)?{}\b(:?[-=?+])?", regex::escape(name)))
    else {
        return false;
    };
    let all = uses
        .captures_iter(code)
        .all(|c| c.get(1).is_some() && c.get(2).is_some());
    all
}

/// Each shell cell that is not skipped and whose interpreter is on PATH,
/// as it would render (captures as `<NAME>`, secrets as `[masked:NAME]`).
fn rendered_shell_cells<'a>(
    loaded: &'a Loaded,
    vars: &crate::vars::Vars,
) -> Vec<(&'a crate::document::Cell, Interpreter, String)> {
    let env = environment();
    let values = vars.with_placeholders(&loaded.runbook);
    loaded
        .runbook
        .cells
        .iter()
        .filter(|cell| !cell.options.skip)
        .filter_map(|cell| {
            let interpreter = cell.interpreter().filter(|i| i.is_posix_shell())?;
            find_on_path(interpreter.program(), None)?;
            let script = render_cell(&env, cell, &values).ok()?;
            Some((cell, interpreter, script))
        })
        .collect()
}

/// `bash -n` (or `sh -n`, `zsh -n`) on each shell cell as it would render;
/// also the numbers of the cells it rejects.
fn syntax_errors(
    loaded: &Loaded,
    cells: &[(&crate::document::Cell, Interpreter, String)],
    masker: &crate::secrets::Masker,
) -> (Vec<Diagnostic>, BTreeSet<usize>) {
    let index = LineIndex::new(&loaded.source);
    let mut diagnostics = Vec::new();
    let mut rejected = BTreeSet::new();
    for (cell, interpreter, script) in cells {
        let (cell, interpreter) = (*cell, *interpreter);
        let Some(message) = syntax_check(interpreter.program(), script) else {
            continue;
        };
        rejected.insert(cell.number);
        let message = masker.mask(&message);
        // "bash: line 3: syntax error near unexpected token `fi'"
        let line_in_cell = message
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let line = cell.line + line_in_cell.min(cell.body.lines().count().max(1));
        let start = index.offset_of_line(line);
        let text = message
            .lines()
            .next()
            .unwrap_or("")
            .split_once(": line ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map_or(message.trim().to_string(), |(_, m)| m.to_string());
        // The caret goes on the token bash names ("unexpected token `fi'"),
        // or on the whole line when it names none.
        let end = crate::lines::line_end(&loaded.source, start);
        let span = text
            .split_once("token `")
            .and_then(|(_, rest)| rest.split_once('\''))
            .and_then(|(token, _)| {
                // bash gives no column: the last such token on the line is
                // the likelier culprit.
                loaded.source[start..end]
                    .rfind(token)
                    .map(|at| start + at..start + at + token.len())
            })
            .unwrap_or(start..end);
        if let Some(placeholder) = placeholder_in(&loaded.source, start..end) {
            let name = loaded.source[placeholder.start + 1..placeholder.end - 1]
                .to_ascii_uppercase()
                .replace('-', "_");
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "`{}` looks like a placeholder: make it a param",
                        &loaded.source[placeholder.clone()]
                    ),
                    placeholder,
                )
                .help(format!(
                    "declare `{name}` under `params:` in the front matter (or pass --set {name}=...), and write \"${name}\" here; `{} -n` rejects the cell as it is",
                    interpreter.program()
                )),
            );
            continue;
        }
        diagnostics.push(
            Diagnostic::error(format!("{} syntax: {text}", interpreter.program()), span).help(
                format!(
                    "`{} -n` rejects this cell as rendered",
                    interpreter.program()
                ),
            ),
        );
    }
    (diagnostics, rejected)
}

/// A `<name>` placeholder (as docs write `<cluster-name>`) in `range` of
/// `source`, outside quotes: the shell reads it as redirections.
fn placeholder_in(source: &str, range: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    static PLACEHOLDER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PLACEHOLDER
        .get_or_init(|| regex::Regex::new(r"<[A-Za-z][A-Za-z0-9_.-]*>").expect("valid pattern"));
    let line = &source[range.clone()];
    pattern.find_iter(line).find_map(|found| {
        let before = &line[..found.start()];
        let quoted = before.matches('\'').count() % 2 == 1 || before.matches('"').count() % 2 == 1;
        (!quoted).then(|| range.start + found.start()..range.start + found.end())
    })
}

/// ShellCheck's findings (warnings and errors) on each shell cell as it
/// would render, at the runbook's file and line, when `shellcheck` is on
/// PATH. Left out: SC2154 (a variable not assigned here: runbook passes
/// params and captures in the environment) and SC2034 (assigned but not
/// used here: a later cell may use it).
fn shellcheck_warnings(
    loaded: &Loaded,
    cells: &[(&crate::document::Cell, Interpreter, String)],
    rejected: &BTreeSet<usize>,
    masker: &crate::secrets::Masker,
) -> Vec<Diagnostic> {
    let Some(shellcheck) = find_on_path("shellcheck", None) else {
        return Vec::new();
    };
    let index = LineIndex::new(&loaded.source);
    let mut diagnostics = Vec::new();
    for (cell, interpreter, script) in cells {
        let (cell, interpreter) = (*cell, *interpreter);
        // ShellCheck knows no zsh, and a cell `bash -n` rejects is
        // reported once, by that check.
        if interpreter == Interpreter::Zsh || rejected.contains(&cell.number) {
            continue;
        }
        let Some(output) = run_with_input(
            Command::new(&shellcheck).args([
                "--shell",
                interpreter.program(),
                "--severity=warning",
                "--exclude=SC2154,SC2034",
                "--format=gcc",
                "-",
            ]),
            script,
        ) else {
            continue;
        };
        // -:LINE:COLUMN: warning: message [SCnnnn]
        for finding in output.lines() {
            let mut parts = finding.splitn(4, ':');
            let (Some(_), Some(line), Some(column), Some(rest)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>()) else {
                continue;
            };
            let line = cell.line + line.min(cell.body.lines().count().max(1));
            let start = index.offset_of_line(line);
            let end = crate::lines::line_end(&loaded.source, start);
            let at = (start + cell.prefix.len() + column.saturating_sub(1)).min(end);
            let message = masker.mask(
                rest.trim()
                    .trim_start_matches("warning: ")
                    .trim_start_matches("error: "),
            );
            diagnostics.push(
                Diagnostic::warning(
                    format!("shellcheck: {message}"),
                    at..(at + 1).min(end).max(at),
                )
                .help("ShellCheck's finding on this cell as rendered"),
            );
        }
    }
    diagnostics
}

/// Runs `command` with `input` on its stdin; returns its stdout.
fn run_with_input(command: &mut Command, input: &str) -> Option<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let _ = child.stdin.take()?.write_all(input.as_bytes());
    let output = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn syntax_check(program: &str, script: &str) -> Option<String> {
    let mut child = Command::new(find_on_path(program, None)?)
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let _ = child.stdin.take()?.write_all(script.as_bytes());
    let output = child.wait_with_output().ok()?;
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Interpreters, tool tags and `requires:`, each looked up with its version.
fn tools(loaded: &Loaded) -> Vec<Tool> {
    let runbook = &loaded.runbook;
    let mut names: Vec<String> = Vec::new();
    for cell in runbook.cells.iter().filter(|c| !c.options.skip) {
        names.extend(cell.programs());
    }
    names.extend(runbook.settings.requires.iter().cloned());
    let mut seen = BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let intercepted: Vec<String> = runbook.settings.intercept.clone().unwrap_or_else(|| {
        crate::interceptor::DEFAULT_TOOLS
            .iter()
            .map(|t| t.to_string())
            .collect()
    });
    names
        .into_iter()
        .map(|name| {
            let path = find_on_path(&name, None);
            let version = path.as_ref().and_then(|p| version_of(&name, p));
            Tool {
                replayed: runbook.settings.replay.is_some() && intercepted.contains(&name),
                name,
                path,
                version,
            }
        })
        .collect()
}

/// The programs whose version `check` asks for: runbook's own
/// interpreters and tool tags, whose `--version` is known to only print
/// one. Any other tool a document requires is looked up, never run.
const VERSIONED: &[&str] = &["bash", "zsh", "pwsh", "python3", "az", "kubectl", "helm"];

/// How long a tool may take to say its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

fn version_of(name: &str, path: &Path) -> Option<String> {
    let args: &[&str] = match name {
        "kubectl" => &["version", "--client"],
        "helm" => &["version", "--short"],
        known if VERSIONED.contains(&known) => &["--version"],
        _ => return None,
    };
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().ok()?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// A diagnostic for editors: one JSON object per line.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: crate::diagnostic::Severity,
    pub message: &'a str,
    pub help: Option<&'a str>,
}

/// Prints the reports; returns the exit status: 2 when a file cannot be
/// read at all (the command line names something that is not a runbook),
/// else 1 on any error.
pub fn print(reports: &[Report], json: bool, color: bool) -> i32 {
    let mut failed = false;
    let mut unreadable = false;
    for report in reports {
        let name = report.path.display().to_string();
        failed |= report.errors() > 0;
        if let Some(error) = &report.error {
            unreadable = true;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": name, "severity": "error", "message": error})
                );
            } else {
                eprintln!("error: {error}");
            }
            continue;
        }
        let source = report
            .loaded
            .as_ref()
            .map(|l| l.source.as_str())
            .unwrap_or("");
        let index = LineIndex::new(source);
        for diagnostic in &report.diagnostics {
            if json {
                let (line, column) = index.line_col(source, diagnostic.span.start);
                let entry = JsonDiagnostic {
                    file: name.clone(),
                    line,
                    column,
                    severity: diagnostic.severity,
                    message: &diagnostic.message,
                    help: diagnostic.help.as_deref(),
                };
                println!("{}", serde_json::to_string(&entry).expect("serialises"));
            } else {
                eprintln!("{}", diagnostic.render(&name, source, color));
            }
        }
        for tool in &report.tools {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": name, "tool": tool.name, "path": tool.path, "version": tool.version, "replayed": tool.replayed})
                );
            } else {
                let state = match (&tool.path, &tool.version) {
                    (Some(_), Some(version)) => version.clone(),
                    (Some(path), None) => format!("found at {}", path.display()),
                    (None, _) if tool.replayed => {
                        "not installed (answered from fixtures)".to_string()
                    }
                    (None, _) => "NOT FOUND".to_string(),
                };
                println!("{name}: {}: {state}", tool.name);
            }
        }
        if !json {
            // A file that does not parse still has its cells counted.
            let cells = report.loaded.as_ref().map_or(0, |l| {
                l.runbook
                    .cells
                    .len()
                    .max(crate::parser::count_cells(&l.source))
            });
            println!(
                "{name}: {} cell{}, {} error{}, {} warning{}",
                cells,
                if cells == 1 { "" } else { "s" },
                report.errors(),
                if report.errors() == 1 { "" } else { "s" },
                report.warnings(),
                if report.warnings() == 1 { "" } else { "s" },
            );
        }
    }
    if unreadable {
        2
    } else {
        i32::from(failed)
    }
}
