//! `runbook run`: checks a runbook, then executes it with the terminal,
//! JSON and document sinks attached.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

use crate::analysis::undefined_variables;
use crate::cassette;
use crate::cli::RunArgs;
use crate::diagnostic::Diagnostic;
use crate::document::{CellKind, Runbook};
use crate::error::{Error, Result, EXIT_FAILED, EXIT_INTERRUPTED};
use crate::events::{JsonSink, RunStatus, Sink, Status};
use crate::executor::{execute, Emitter, MissLog, Options, Plan, SecretLog};
use crate::interceptor::{Interceptor, Mode, DEFAULT_TOOLS};
use crate::loader::{load, Loaded};
use crate::lock::{self, Lock, LockError};
use crate::output::Limits;
use crate::preflight::{missing_for_partial_run, preflight};
use crate::recorder::Recorder;
use crate::run::template::{environment, render_cell};
use crate::selection::{select, Selection};
use crate::state::{self, State, Tracker};
use crate::terminal::Terminal;
use crate::vars::{initial, parse_assignment, read_params_file, Overrides, Vars};

pub fn run(args: &RunArgs) -> Result<i32> {
    crate::procs::ensure_system().map_err(Error::Usage)?;
    if crate::notebook::is_notebook(&args.file) {
        return run_notebook(args);
    }
    let loaded = load(&args.file)?;
    run_loaded(loaded, args)
}

/// Runs a notebook (`.ipynb`, `.dib`) directly: imported in memory, and
/// the executed runbook written to `--output`, or beside the notebook as
/// `NAME.ipynb.md` (never over the notebook or a runbook of the same name).
fn run_notebook(args: &RunArgs) -> Result<i32> {
    let read = crate::notebook::read(&args.file)?;
    for note in &read.notes {
        crate::say_line!("{}: {note}", args.file.display());
    }
    let markdown = read.markdown;
    let runbook = crate::parser::parse(&markdown).map_err(|diagnostics| Error::Document {
        path: args.file.display().to_string(),
        source_text: markdown.clone(),
        diagnostics,
    })?;
    let mut args = args.clone();
    let writes = !args.dry_run && !args.check;
    if args.output.is_none() && !args.no_write {
        let mut beside = args.file.clone().into_os_string();
        beside.push(".md");
        let beside = std::path::PathBuf::from(beside);
        if writes {
            beside_is_ours(&beside, &runbook)?;
        }
        args.output = Some(beside);
    }
    if let (Some(output), true) = (&args.output, writes) {
        crate::notebook::write_files(&read.files, crate::paths::folder_of(output), false)?;
    }
    let loaded = Loaded {
        path: args.file.clone(),
        source: markdown,
        runbook,
    };
    run_loaded(loaded, &args)
}

/// Whether `NAME.ipynb.md` beside a notebook may be written: absent, or
/// an earlier run of the same cells, in the notebook's folder (never
/// through a link that leaves it).
fn beside_is_ours(beside: &std::path::Path, runbook: &crate::document::Runbook) -> Result<()> {
    if std::fs::symlink_metadata(beside).is_err() {
        return Ok(());
    }
    let folder = crate::paths::folder_of(beside);
    if !crate::notebook::stays_in(beside, folder) {
        return Err(Error::Usage(format!(
            "{} links outside {}; pass --output FILE",
            beside.display(),
            folder.display()
        )));
    }
    let cells = |r: &crate::document::Runbook| {
        r.cells
            .iter()
            .map(|c| (c.lang.clone(), c.body.clone()))
            .collect::<Vec<_>>()
    };
    let earlier = std::fs::read_to_string(beside)
        .ok()
        .and_then(|text| crate::parser::parse(&text).ok());
    match earlier {
        Some(earlier) if cells(&earlier) == cells(runbook) => Ok(()),
        _ => Err(Error::Usage(format!(
            "{} exists and is not an earlier run of this notebook; remove it or pass --output FILE",
            beside.display()
        ))),
    }
}

fn run_loaded(loaded: Loaded, args: &RunArgs) -> Result<i32> {
    check_targets(&loaded, args)?;
    let state_path = state::path_for(&loaded.path);
    let mut state = state::load_for(&loaded.path).map_err(Error::Usage)?;
    let selection = Selection {
        cells: args.cell.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        resume: args.resume,
        deps: args.deps,
    };
    let cells = select(&loaded.runbook, &selection, &state).map_err(Error::Usage)?;
    let mut vars = starting_vars(&loaded, args)?;
    let mut restored_env = BTreeMap::new();
    if selection.is_partial() {
        seed_from_last_run(&mut vars, &state);
        restored_env = state.env.clone();
    }
    let defined: BTreeSet<String> = vars.names().into_iter().collect();
    // A dry run writes nothing at all, not even the shim folder.
    let interceptor = if args.dry_run {
        None
    } else {
        interceptor(&loaded, args)?
    };
    let intercepted = replayed_tools(interceptor.as_ref());
    let diagnostics = problems(
        &loaded,
        &cells,
        &defined,
        Checks {
            partial: selection.is_partial(),
            // A dry run starts nothing, so it needs no interpreter or tool.
            runs: !args.dry_run,
            yes: args.yes,
            intercepted: &intercepted,
        },
    );
    let (mut errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        diagnostics.into_iter().partition(Diagnostic::is_error);
    if errors.is_empty() {
        // A template the run would refuse at its cell stops it now, before
        // any cell has run.
        errors = crate::run::preflight::refused_templates(&loaded, &vars, &cells, false);
    }
    if !errors.is_empty() {
        return Err(document_error(&loaded, errors));
    }
    let color = crate::terminal::color(std::io::stderr().is_terminal());
    crate::terminal::say(&crate::diagnostic::render_all(
        &warnings,
        &loaded.display(),
        &loaded.source,
        color,
    ));
    if args.dry_run {
        crate::terminal::out(&dry_run(&loaded, &cells, &vars));
        return Ok(0);
    }
    if cells.is_empty() {
        if loaded.runbook.cells.is_empty() {
            crate::say_line!("{}: no cells to run", loaded.display());
        } else {
            crate::say_line!("nothing to run: every cell passed in the last run");
        }
        return Ok(0);
    }
    // `--check` writes nothing, so it needs no lock (and makes no folder).
    let lock = if args.check {
        Err(LockError::Unavailable(String::new()))
    } else {
        Lock::acquire(&lock::path_for(&loaded.path), &loaded.display())
    };
    let _lock = match lock {
        Ok(lock) => Some(lock),
        Err(LockError::Unavailable(reason)) if reason.is_empty() => None,
        Err(LockError::Busy(message)) => return Err(Error::Usage(message)),
        Err(LockError::Unavailable(reason)) => {
            crate::say_line!("warning: running without a lock ({reason})");
            None
        }
    };
    // What a run killed with SIGKILL left beside the document goes now.
    if let Ok(target) = crate::atomic::resolve(args.output.as_ref().unwrap_or(&loaded.path)) {
        crate::atomic::remove_stale_temps(&target);
    }
    let options = run_options(&loaded, args, restored_env, interceptor.as_ref())?;
    let plan = Plan {
        file: loaded.display(),
        runbook: &loaded.runbook,
        folder: loaded.folder(),
        cells,
    };
    let live =
        !args.json && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut terminal = Terminal::new(live, color);
    let mut json = JsonSink;
    let mut tracker = Tracker::default();
    let mut recorder = recorder(&loaded, args);
    let mut sinks: Vec<&mut dyn Sink> = vec![&mut tracker];
    if args.json {
        sinks.push(&mut json);
    } else {
        sinks.push(&mut terminal);
    }
    if let Some(recorder) = recorder.as_mut() {
        sinks.push(recorder);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        if let Some(interceptor) = &interceptor {
            interceptor
                .serve()
                .map_err(|e| Error::Usage(format!("cannot listen for intercepted calls: {e}")))?;
        }
        Ok::<_, Error>(execute(&plan, vars, &options, Emitter { sinks }).await)
    })?;
    let masker = &outcome.masker;
    if let Some(interceptor) = interceptor.as_ref().filter(|i| i.mode == Mode::Record) {
        if let Err(e) = interceptor.save(masker) {
            crate::say_line!("error: {e}");
            return Ok(EXIT_FAILED);
        }
    }
    record_state(&mut state, &loaded, &tracker, &outcome);
    // `--check` writes nothing at all, the state file included.
    let mut state_lost = false;
    if !args.check {
        if let Err(e) = state.save(&state_path, masker) {
            crate::say_line!(
                "error: could not save {}: {e} (--resume and --cell will not know this run)",
                state_path.display()
            );
            state_lost = true;
        }
    }
    if let Some(error) = recorder.as_ref().and_then(|r| r.error.clone()) {
        crate::say_line!("error: {error}");
        return Ok(EXIT_FAILED);
    }
    if state_lost && outcome.status == RunStatus::Passed {
        return Ok(EXIT_FAILED);
    }
    let changed = recorder
        .as_ref()
        .is_some_and(|r| report_changes(&loaded, args, r));
    if changed {
        crate::say_line!(
            "{}: the document would change (run without --check to record it)",
            loaded.display()
        );
        return Ok(EXIT_FAILED);
    }
    if let (Some(output), false) = (&args.output, args.json) {
        crate::say_line!("executed document written to {}", output.display());
    }
    Ok(match outcome.status {
        RunStatus::Passed => 0,
        RunStatus::Failed => EXIT_FAILED,
        RunStatus::Interrupted => EXIT_INTERRUPTED,
    })
}

/// How to run, from the command line, the runbook's settings and the
/// interceptor that answers replayed calls.
pub fn run_options(
    loaded: &Loaded,
    args: &RunArgs,
    restored_env: BTreeMap<String, String>,
    interceptor: Option<&Interceptor>,
) -> Result<Options> {
    Ok(Options {
        limits: match &args.max_output {
            Some(text) => Limits::parse(text).map_err(Error::Usage)?,
            None => Limits::default(),
        },
        yes: args.yes,
        redactions: redactions(loaded)?,
        restored_env,
        path: interceptor.map(Interceptor::path),
        extra_env: interceptor.map(Interceptor::env).unwrap_or_default(),
        misses: interceptor.map(|i| Arc::new(i.shared.clone()) as Arc<dyn MissLog>),
        secrets: interceptor.map(|i| Arc::new(i.shared.clone()) as Arc<dyn SecretLog>),
        ..Options::default()
    })
}

/// Gives the values the last run captured to the variables nothing else
/// set, standing in for cells that do not run now (the command line wins).
/// Returns the names given.
pub fn seed_from_last_run(vars: &mut Vars, state: &State) -> Vec<String> {
    let mut given = Vec::new();
    for (name, value) in &state.captured {
        if !vars.contains(name) {
            vars.set(name, value.clone(), false);
            given.push(name.clone());
        }
    }
    given
}

/// What the problems found before a run depend on.
pub struct Checks<'a> {
    /// Only some cells run: what the others define must come from the state.
    pub partial: bool,
    /// Cells will really run (not a dry run), so interpreters, tools and
    /// secrets must be there.
    pub runs: bool,
    /// `confirm` cells are answered yes.
    pub yes: bool,
    /// Tools answered from recordings, which need not be installed.
    pub intercepted: &'a [String],
}

/// What stands in the way of running `cells` with `defined` variables:
/// errors, which stop the run, and warnings.
pub fn problems(
    loaded: &Loaded,
    cells: &[usize],
    defined: &BTreeSet<String>,
    checks: Checks,
) -> Vec<Diagnostic> {
    let mut diagnostics = if checks.partial {
        missing_for_partial_run(loaded, cells, defined)
    } else {
        Vec::new()
    };
    if checks.runs {
        diagnostics.extend(secrets_nobody_gives(loaded, defined));
    }
    diagnostics.extend(reserved_captures(loaded, cells));
    if !diagnostics.iter().any(Diagnostic::is_error) {
        diagnostics.extend(undefined_variables(
            &loaded.source,
            &loaded.runbook,
            cells,
            defined,
        ));
    }
    if checks.runs {
        diagnostics.extend(preflight(loaded, cells, checks.yes, checks.intercepted));
    }
    diagnostics
}

/// Captures into names that would let captured output choose what runs
/// (`capture=PATH`, `capture=LD_PRELOAD`, `capture=BASH_ENV`): errors,
/// since a captured value never runs as code.
fn reserved_captures(loaded: &Loaded, cells: &[usize]) -> Vec<Diagnostic> {
    cells
        .iter()
        .map(|&i| &loaded.runbook.cells[i])
        .filter_map(|cell| {
            let capture = cell.options.capture.as_ref()?;
            let why = crate::kernel::reserved(&capture.name)?;
            Some(
                Diagnostic::error(
                    format!(
                        "capture={} cannot set {}: {why}, and a captured value never runs as code",
                        capture.name, capture.name
                    ),
                    cell.info_span.clone(),
                )
                .help(format!(
                    "capture into another name and set {} in a cell, where a reader sees it",
                    capture.name
                )),
            )
        })
        .collect()
}

/// The tools a replaying interceptor answers for.
pub fn replayed_tools(interceptor: Option<&Interceptor>) -> Vec<String> {
    match interceptor {
        Some(i) if i.mode == Mode::Replay => i.tools.clone(),
        _ => Vec::new(),
    }
}

/// Folds a finished run into the state: cell records, captured values of
/// cells that passed (secrets left out), exported environment.
pub fn record_state(
    state: &mut State,
    loaded: &Loaded,
    tracker: &Tracker,
    outcome: &crate::executor::Outcome,
) {
    state.cells.extend(tracker.records.clone());
    for cell in &loaded.runbook.cells {
        let (Some(capture), Some(record)) =
            (&cell.options.capture, tracker.records.get(&cell.name()))
        else {
            continue;
        };
        if record.status != Status::Passed {
            continue;
        }
        match outcome.vars.get(&capture.name) {
            Some(var) if !var.secret => {
                state
                    .captured
                    .insert(capture.name.clone(), var.value.clone());
            }
            _ => {
                state.captured.remove(&capture.name);
            }
        }
    }
    if outcome.status != RunStatus::Interrupted {
        state.env.extend(outcome.exported.clone());
    }
}

/// Refuses, before anything runs, a document that cannot be written back
/// (read-only) and an `--output` that is a folder or in a missing one.
pub fn check_targets(loaded: &Loaded, args: &RunArgs) -> Result<()> {
    if args.no_write || args.dry_run || args.check {
        return Ok(());
    }
    let target = args.output.as_ref().unwrap_or(&loaded.path);
    if target.is_dir() {
        return Err(Error::Usage(format!(
            "--output {} is a folder; name a file",
            target.display()
        )));
    }
    let folder = crate::paths::folder_of(target);
    if !folder.is_dir() {
        return Err(Error::Usage(format!(
            "cannot write {}: the folder {} does not exist",
            target.display(),
            folder.display()
        )));
    }
    if let Ok(meta) = std::fs::metadata(target) {
        if meta.permissions().readonly() {
            let what = if args.output.is_some() {
                "--output"
            } else {
                "the runbook"
            };
            return Err(Error::Usage(format!(
                "{} is read-only, so {what} cannot be written; make it writable, or pass --no-write or --output FILE",
                target.display()
            )));
        }
    }
    Ok(())
}

/// Replay or record, from the command line or the front matter's `replay:`.
pub fn interceptor(loaded: &Loaded, args: &RunArgs) -> Result<Option<Interceptor>> {
    let settings = &loaded.runbook.settings;
    let (mode, dir) = match (&args.replay, &args.record, &settings.replay) {
        (Some(dir), _, _) => (Mode::Replay, dir.clone()),
        (None, Some(dir), _) => (Mode::Record, dir.clone()),
        (None, None, Some(dir)) if !args.no_replay => (Mode::Replay, loaded.folder().join(dir)),
        (None, None, _) => return Ok(None),
    };
    let tools = settings
        .intercept
        .clone()
        .unwrap_or_else(|| DEFAULT_TOOLS.iter().map(|t| t.to_string()).collect());
    let folder = loaded
        .folder()
        .canonicalize()
        .unwrap_or_else(|_| loaded.folder());
    let cassette = cassette::path_in(&dir, &loaded.path);
    Interceptor::new(mode, cassette, &loaded.path, &folder, tools)
        .map(Some)
        .map_err(Error::Usage)
}

fn recorder(loaded: &Loaded, args: &RunArgs) -> Option<Recorder> {
    if args.no_write {
        return None;
    }
    let (target, in_place): (PathBuf, bool) = match &args.output {
        Some(path) => (path.clone(), false),
        None => (loaded.path.clone(), true),
    };
    let recorder = Recorder::new(
        loaded.source.clone(),
        loaded.runbook.clone(),
        target,
        in_place,
    );
    Some(if args.check { recorder.dry() } else { recorder })
}

/// After a run: `--check` and `--diff` show how the document changed (a
/// unified diff on stdout), and a rewrite in place is said on stderr.
/// Returns whether `--check` found a change.
fn report_changes(loaded: &Loaded, args: &RunArgs, recorder: &Recorder) -> bool {
    let after = recorder.document();
    if after == loaded.source {
        return false;
    }
    if args.check || args.diff {
        let text = similar::TextDiff::from_lines(&loaded.source, &after)
            .unified_diff()
            .context_radius(3)
            .header(
                &loaded.display(),
                &format!("{} (executed)", loaded.display()),
            )
            .to_string();
        crate::terminal::out(&text);
    }
    if !args.check && args.output.is_none() && !args.json {
        crate::say_line!("{}: outputs recorded in the runbook", loaded.display());
    }
    args.check
}

pub fn document_error(loaded: &Loaded, diagnostics: Vec<Diagnostic>) -> Error {
    Error::Document {
        path: loaded.display(),
        source_text: loaded.source.clone(),
        diagnostics,
    }
}

/// Front-matter secrets that neither `--secret`, the environment nor a
/// capture of the runbook provides: errors before anything runs.
pub fn secrets_nobody_gives(loaded: &Loaded, defined: &BTreeSet<String>) -> Vec<Diagnostic> {
    secrets_without_value(&loaded.runbook, defined)
        .into_iter()
        .map(|name| {
            Diagnostic::error(
                format!("secret {name} is declared, but nothing gives it a value"),
                loaded.front_matter_key("secrets"),
            )
            .help(format!(
                "pass --secret {name}=VALUE, or set {name} in the environment"
            ))
        })
        .collect()
}

/// The declared secrets that neither `defined` nor a capture gives a value.
pub fn secrets_without_value(runbook: &Runbook, defined: &BTreeSet<String>) -> Vec<String> {
    let captured: BTreeSet<&str> = runbook
        .cells
        .iter()
        .filter_map(|c| c.options.capture.as_ref().map(|cap| cap.name.as_str()))
        .collect();
    runbook
        .settings
        .secrets
        .iter()
        .filter(|name| !defined.contains(*name) && !captured.contains(name.as_str()))
        .cloned()
        .collect()
}

/// Params, `--params` files, `--set` and `--secret`, combined.
pub fn starting_vars(loaded: &Loaded, args: &RunArgs) -> Result<Vars> {
    let mut overrides = Overrides::default();
    for file in &args.params {
        overrides
            .values
            .extend(read_params_file(file).map_err(Error::Usage)?);
    }
    for assignment in &args.set {
        let (name, value) =
            parse_assignment(assignment).map_err(|e| Error::Usage(format!("--set: {e}")))?;
        overrides
            .values
            .push((name, serde_json::Value::String(value)));
    }
    for assignment in &args.secret {
        // The message must not echo the argument: it holds a secret.
        let (name, value) = parse_assignment(assignment).map_err(|_| {
            Error::Usage(
                "--secret: expected NAME=VALUE with NAME a variable name (the value is not shown)"
                    .into(),
            )
        })?;
        overrides.secrets.push((name, value));
    }
    let mut vars = initial(&loaded.runbook.settings, &overrides).map_err(|error| {
        let span = loaded.front_matter_key(&error.name);
        document_error(
            loaded,
            vec![
                Diagnostic::error(format!("param {}: {}", error.name, error.message), span)
                    .help("a param may use only the params above it"),
            ],
        )
    })?;
    // Secrets named in the front matter may come from the caller's environment.
    for name in &loaded.runbook.settings.secrets {
        if !vars.contains(name) {
            if let Ok(value) = std::env::var(name) {
                vars.set(name, serde_json::Value::String(value), true);
            }
        }
    }
    Ok(vars)
}

pub fn redactions(loaded: &Loaded) -> Result<Vec<(Regex, String)>> {
    loaded
        .runbook
        .settings
        .redact
        .iter()
        .map(|rule| {
            Regex::new(&rule.regex)
                .map(|re| (re, rule.with.clone()))
                .map_err(|e| {
                    let span = loaded.front_matter_key("redact");
                    document_error(
                        loaded,
                        vec![Diagnostic::error(
                            format!("invalid redact regex: {e}"),
                            span,
                        )],
                    )
                })
        })
        .collect()
}

/// Every cell as it would run, captures shown as `<NAME>`, secrets masked.
pub fn dry_run(loaded: &Loaded, cells: &[usize], vars: &Vars) -> String {
    crate::run::template::with_document_budget(|| dry_run_within_budget(loaded, cells, vars))
}

fn dry_run_within_budget(loaded: &Loaded, cells: &[usize], vars: &Vars) -> String {
    let env = environment();
    let masker = vars.masker();
    let values = vars.with_placeholders(&loaded.runbook);
    let mut out = String::new();
    for &i in cells {
        let cell = &loaded.runbook.cells[i];
        let what = match &cell.kind {
            CellKind::Code { .. } => cell.lang.clone(),
            CellKind::File { path, .. } => format!("file {path}"),
        };
        let skip = if cell.options.skip { ", skipped" } else { "" };
        out.push_str(&format!(
            "# cell {} ({what}{skip}), {}:{}\n",
            cell.name(),
            loaded.display(),
            cell.line
        ));
        let rendered = render_cell(&env, cell, &values)
            .unwrap_or_else(|e| format!("<template error: {}>\n", e.message));
        out.push_str(&masker.mask(&rendered));
        if !rendered.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
