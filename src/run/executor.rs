//! Runs a plan of cells in kernels and emits what happens as events. It
//! never parses: cells arrive parsed, and the document is written by a sink.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::document::{Cell, CellKind, Interpreter, Runbook};
use crate::duration::format_duration;
use crate::events::{Event, RunStatus, Sink, Status};
use crate::kernel::{Kernel, Launch, Step, Stream};
use crate::output::{Limits, Recording};
use crate::secrets::{LiveMask, Masker, SHORT};
use crate::template::{environment, render_in_background, Target, TemplateError};
use crate::vars::Vars;

/// Exit status recorded for a cell that ran out of time (as `timeout(1)`).
pub const EXIT_TIMED_OUT: i32 = 124;
/// Exit status recorded for an interrupted cell.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Calls to intercepted tools that had no recording, since the last look.
pub trait MissLog: Send + Sync {
    fn take(&self) -> Vec<String>;
}

/// Told each time the run learns secret values, so that what matches
/// recorded calls knows them too.
pub trait SecretLog: Send + Sync {
    fn learn(&self, masker: &Masker);
}

/// How to run.
#[derive(Clone)]
pub struct Options {
    pub limits: Limits,
    /// Answer yes to `confirm` cells.
    pub yes: bool,
    /// Time between SIGINT/SIGTERM and SIGKILL.
    pub grace: Duration,
    /// PATH for cells, when it differs from the inherited one.
    pub path: Option<String>,
    /// Rules applied to recorded outputs.
    pub redactions: Vec<(Regex, String)>,
    /// Environment a previous run's cells exported, restored for this one.
    pub restored_env: BTreeMap<String, String>,
    /// Environment for the run's own machinery (the shims' socket).
    pub extra_env: Vec<(String, String)>,
    /// Where misses of replayed calls are reported.
    pub misses: Option<std::sync::Arc<dyn MissLog>>,
    /// Who else must know the run's secrets.
    pub secrets: Option<std::sync::Arc<dyn SecretLog>>,
    /// Stop requests besides signals: each change of the value is one.
    pub stop: Option<tokio::sync::watch::Receiver<u64>>,
    /// Where `confirm` cells ask, instead of the terminal.
    pub prompts: Option<tokio::sync::mpsc::UnboundedSender<Prompt>>,
}

/// A `confirm` cell's question, answered through `reply`.
pub struct Prompt {
    pub index: usize,
    pub question: String,
    pub reply: tokio::sync::oneshot::Sender<bool>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            yes: false,
            grace: Duration::from_secs(3),
            path: None,
            redactions: Vec::new(),
            restored_env: BTreeMap::new(),
            extra_env: Vec::new(),
            misses: None,
            secrets: None,
            stop: None,
            prompts: None,
        }
    }
}

/// The cells to run, in order.
pub struct Plan<'a> {
    /// The runbook's path, for reports.
    pub file: String,
    pub runbook: &'a Runbook,
    /// Where the runbook lives: kernels start here, file cells write here.
    pub folder: PathBuf,
    /// Indices into `runbook.cells`.
    pub cells: Vec<usize>,
}

/// What a run ended with.
#[derive(Debug)]
pub struct Outcome {
    pub status: RunStatus,
    pub vars: Vars,
    /// Every secret value the run knew, derived ones included.
    pub masker: Masker,
    /// Environment variables the cells exported, as the shells held them
    /// at the end (not known after an interrupt).
    pub exported: BTreeMap<String, String>,
}

/// Sends events to every sink.
pub struct Emitter<'s> {
    pub sinks: Vec<&'s mut dyn Sink>,
}

impl Emitter<'_> {
    pub fn emit(&mut self, event: Event) {
        for sink in self.sinks.iter_mut() {
            sink.event(&event);
        }
    }

    fn tick(&mut self) {
        for sink in self.sinks.iter_mut() {
            sink.tick();
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP and the caller's stop requests, as one stream
/// of "stop now".
struct Interrupts {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
    stop: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Interrupts {
    fn new(stop: Option<tokio::sync::watch::Receiver<u64>>) -> Interrupts {
        Interrupts {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
            stop,
        }
    }

    /// Stop requests made before now are old news.
    fn forget(&mut self) {
        if let Some(stop) = &mut self.stop {
            stop.borrow_and_update();
        }
    }

    /// Whether a stop was asked for since the run began.
    fn asked(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.has_changed().unwrap_or(false))
    }

    async fn recv(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        async fn asked(stop: &mut Option<tokio::sync::watch::Receiver<u64>>) {
            if let Some(stop) = stop {
                if stop.changed().await.is_ok() {
                    return;
                }
            }
            std::future::pending().await
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.hangup) => {}
            _ = asked(&mut self.stop) => {}
        }
    }
}

/// What a cell's end reports.
struct Ending {
    status: Status,
    exit: i32,
    recorded: Option<String>,
    message: Option<String>,
}

impl Ending {
    fn new(status: Status, exit: i32) -> Ending {
        Ending {
            status,
            exit,
            recorded: None,
            message: None,
        }
    }

    fn message(mut self, message: impl Into<String>) -> Ending {
        self.message = Some(message.into());
        self
    }
}

/// Why a cell has no code to run.
enum Unrendered {
    Template(TemplateError),
    TimedOut(Duration),
    Interrupted,
}

/// How one attempt at a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done(i32),
    /// The interpreter exited; its state is gone.
    Exited(i32),
    TimedOut,
    Interrupted,
}

struct Attempt {
    end: End,
    /// The cell's stdout, kept only when it captures.
    stdout: Option<Vec<u8>>,
    /// The capture's stdout went over [`MAX_CAPTURE`].
    stdout_overflow: bool,
    recording: Recording,
}

/// Most stdout a capture keeps; past it the capture fails.
pub const MAX_CAPTURE: usize = 16 * 1024 * 1024;

/// One run of cells in a session.
struct Executor<'a, 's> {
    s: &'a mut Session,
    runbook: &'a Runbook,
    cells: &'a [usize],
    emitter: Emitter<'s>,
}

/// Runs the plan. Every process started is gone when this returns.
pub async fn execute(
    plan: &Plan<'_>,
    vars: Vars,
    options: &Options,
    emitter: Emitter<'_>,
) -> Outcome {
    let mut session = Session::new(&plan.file, plan.folder.clone(), vars, options.clone());
    session.forget_stops();
    let status = session.run(plan.runbook, &plan.cells, emitter).await;
    let exported = if status == RunStatus::Interrupted {
        BTreeMap::new()
    } else {
        session.exported().await
    };
    session.end_kernels().await;
    Outcome {
        status,
        vars: session.vars,
        masker: session.masker,
        exported,
    }
}

/// Variables every shell sets for itself, not worth restoring.
const SHELL_OWN: [&str; 5] = ["PWD", "OLDPWD", "SHLVL", "_", "PS1"];

/// Kernels and values that live from one run of cells to the next: one
/// per `runbook run`, one per document for `runbook serve`.
pub struct Session {
    file: String,
    folder: PathBuf,
    options: Options,
    vars: Vars,
    masker: Masker,
    kernels: BTreeMap<&'static str, Kernel>,
    interrupts: Interrupts,
    env: minijinja::Environment<'static>,
}

impl Session {
    /// A session for the runbook `file` (as reports name it) in `folder`.
    pub fn new(file: &str, folder: PathBuf, vars: Vars, options: Options) -> Session {
        crate::procs::become_subreaper();
        let (masker, short) = vars.masker_and_short();
        warn_short(&short);
        let interrupts = Interrupts::new(options.stop.clone());
        let session = Session {
            file: file.to_string(),
            folder,
            options,
            vars,
            masker,
            kernels: BTreeMap::new(),
            interrupts,
            env: environment(),
        };
        session.share_secrets();
        session
    }

    /// Runs `cells` (indices into `runbook.cells`) in this session's
    /// kernels, which stay alive afterwards.
    pub async fn run(
        &mut self,
        runbook: &Runbook,
        cells: &[usize],
        emitter: Emitter<'_>,
    ) -> RunStatus {
        let mut executor = Executor {
            s: self,
            runbook,
            cells,
            emitter,
        };
        executor.run().await
    }

    /// Stop requests made before now do not stop the runs that follow.
    pub fn forget_stops(&mut self) {
        self.interrupts.forget();
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Gives a variable a value, as `--set` or `--secret` would.
    pub fn set_var(&mut self, name: &str, value: serde_json::Value, secret: bool) {
        if secret {
            if let serde_json::Value::String(text) = &value {
                if self.masker.add(name, text) {
                    warn_short(&[name.to_string()]);
                }
            }
        }
        self.vars.set(name, value, secret);
        self.share_secrets();
    }

    /// Replaces every value: a restart begins again from these.
    pub fn reset_vars(&mut self, vars: Vars) {
        let (masker, _) = vars.masker_and_short();
        // Secrets learnt so far stay masked: their values may still be in
        // what the old kernels printed.
        self.masker.merge(masker);
        self.vars = vars;
        self.share_secrets();
    }

    /// Ends every kernel and every process they started.
    pub async fn end_kernels(&mut self) {
        for (_, kernel) in std::mem::take(&mut self.kernels) {
            let tag = kernel.tag().to_string();
            kernel.shutdown().await;
            crate::procs::kill_tagged(crate::kernel::TAG_ENV, &tag);
        }
        crate::procs::kill_descendants(&[]);
    }

    /// Tells whoever must know (the replay matcher) every secret known now.
    fn share_secrets(&self) {
        if let Some(learner) = &self.options.secrets {
            learner.learn(&self.masker);
        }
    }

    async fn kernel(&mut self, interpreter: Interpreter) -> std::io::Result<&mut Kernel> {
        let key = interpreter.program();
        if !self.kernels.contains_key(key) {
            let kernel = Kernel::start(Launch {
                interpreter,
                cwd: self.folder.clone(),
                env: self.env_vars(),
                path: self.options.path.clone(),
            })
            .await?;
            self.kernels.insert(key, kernel);
        }
        Ok(self.kernels.get_mut(key).expect("inserted"))
    }

    fn env_vars(&self) -> BTreeMap<String, String> {
        let mut env = self.options.restored_env.clone();
        env.extend(self.options.extra_env.iter().cloned());
        env.extend(self.vars.iter().map(|(k, v)| (k.clone(), v.env_text())));
        env
    }

    /// What the shell kernels exported beyond the caller's environment and
    /// the runbook's variables.
    pub async fn exported(&mut self) -> BTreeMap<String, String> {
        let mut exported = BTreeMap::new();
        let known = self.env_vars();
        for kernel in self
            .kernels
            .values_mut()
            .filter(|k| k.interpreter().is_posix_shell())
        {
            // bash lists its exports with builtins alone; the others ask env.
            let dump = if kernel.interpreter() == Interpreter::Bash {
                r#"for __rb_n in $(compgen -e); do printf '%s=%s\0' "$__rb_n" "${!__rb_n}"; done"#
            } else {
                "env -0"
            };
            if kernel.run(dump, &BTreeMap::new(), None).await.is_err() {
                continue;
            }
            let mut stdout = Vec::new();
            loop {
                match kernel.next().await {
                    Step::Output(Stream::Stdout, bytes) => stdout.extend(bytes),
                    Step::Output(Stream::Stderr, _) => {}
                    Step::Done(_) | Step::Exited(_) => break,
                }
            }
            for entry in stdout.split(|&b| b == 0) {
                let entry = String::from_utf8_lossy(entry);
                let Some((name, value)) = entry.split_once('=') else {
                    continue;
                };
                let inherited = std::env::var(name).ok();
                if SHELL_OWN.contains(&name)
                    || name == crate::kernel::TAG_ENV
                    || (name == "PATH" && self.options.path.as_deref() == Some(value))
                    || inherited.as_deref() == Some(value)
                    || known.get(name).map(String::as_str) == Some(value)
                    || self.masker.mask(value) != value
                {
                    continue;
                }
                exported.insert(name.to_string(), value.to_string());
            }
        }
        exported
    }

    /// Ends a kernel whose state is lost; with `kill_jobs`, also whatever
    /// it started, wherever that went (other kernels' jobs are left alone).
    async fn drop_kernel(&mut self, interpreter: Interpreter, kill_jobs: bool) {
        let Some(kernel) = self.kernels.remove(interpreter.program()) else {
            return;
        };
        if kill_jobs {
            let tag = kernel.tag().to_string();
            kernel.shutdown().await;
            crate::procs::kill_tagged(crate::kernel::TAG_ENV, &tag);
        } else {
            kernel.release().await;
        }
    }

    /// `lab.md:12: template error in cell oidc: ...`
    fn template_error(&self, cell: &Cell, error: &TemplateError) -> String {
        let line = cell.line + error.line.unwrap_or(1);
        format!(
            "{}:{line}: template error in cell {}: {}",
            self.file,
            cell.name(),
            error.message
        )
    }

    /// Writes a file cell: inside the runbook's folder only (no `..`, no
    /// absolute path, no link leading out), never holding a secret, and
    /// with its mode from the first byte.
    fn write_file(&self, text: &str, path: &str, mode: Option<u32>) -> Result<(), String> {
        if self.masker.reveals(text) {
            return Err(format!(
                "file cell would write a secret to {path}: {}; nothing was written (secrets are never written to disk: pass it from a shell cell, e.g. `kubectl create secret ... --from-literal`)",
                secret_names_in(&self.masker.mask(text))
            ));
        }
        // Reached and written through the folder held open, so a link
        // swapped in meanwhile cannot lead the write out.
        let target = crate::paths::beneath(&self.folder, path)?;
        crate::atomic::write_beneath(&target, text.as_bytes(), mode)
            .map_err(|e| format!("{}: {e}", self.folder.join(path).display()))?;
        Ok(())
    }
}

impl Executor<'_, '_> {
    async fn run(&mut self) -> RunStatus {
        let started = Instant::now();
        self.emitter.emit(Event::RunStarted {
            file: self.s.file.clone(),
            cells: self.cells.len(),
        });
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        let mut status = RunStatus::Passed;
        for &index in self.cells {
            // A stop asked for between two cells ends the run there.
            if self.s.interrupts.asked() {
                status = RunStatus::Interrupted;
                break;
            }
            let cell = &self.runbook.cells[index];
            let result = self.cell(index, cell).await;
            match result {
                Status::Passed => passed += 1,
                Status::Skipped => skipped += 1,
                _ => failed += 1,
            }
            if result == Status::Interrupted {
                status = RunStatus::Interrupted;
                break;
            }
            if result.is_failure() && !cell.options.continue_on_error {
                status = RunStatus::Failed;
                break;
            }
        }
        self.emitter.emit(Event::RunFinished {
            status,
            passed,
            failed,
            skipped,
            not_run: self.cells.len() - passed - failed - skipped,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        status
    }

    fn finished(&mut self, cell: &Cell, index: usize, started: Instant, ending: Ending) -> Status {
        let Ending {
            status,
            exit,
            recorded,
            message,
        } = ending;
        let captured = match (&cell.options.capture, status) {
            (Some(capture), Status::Passed) => vec![capture.name.clone()],
            _ => Vec::new(),
        };
        self.emitter.emit(Event::CellFinished {
            index,
            number: cell.number,
            name: cell.name(),
            status,
            exit,
            duration_ms: started.elapsed().as_millis() as u64,
            captured,
            recorded,
            message: message.map(|m| self.s.masker.mask(&m)),
        });
        status
    }

    async fn cell(&mut self, index: usize, cell: &Cell) -> Status {
        let started = Instant::now();
        if cell.options.skip {
            return self.finished(cell, index, started, Ending::new(Status::Skipped, 0));
        }
        let rendered = match self.render(cell).await {
            Ok(text) => Ok(text),
            Err(Unrendered::Template(error)) => Err(error),
            Err(Unrendered::TimedOut(limit)) => {
                self.started(index, cell, &cell.body, 1);
                let message = format!(
                    "{}:{}: cell {} timed out after {} rendering its template",
                    self.s.file,
                    cell.line + 1,
                    cell.name(),
                    format_duration(limit)
                );
                let ending = Ending {
                    recorded: Some(message.clone()),
                    ..Ending::new(Status::TimedOut, EXIT_TIMED_OUT).message(message)
                };
                return self.finished(cell, index, started, ending);
            }
            Err(Unrendered::Interrupted) => {
                self.started(index, cell, &cell.body, 1);
                let ending = Ending::new(Status::Interrupted, EXIT_INTERRUPTED)
                    .message("interrupted while rendering its template");
                return self.finished(cell, index, started, ending);
            }
        };
        self.started(index, cell, rendered.as_deref().unwrap_or(&cell.body), 1);
        let interpreter = match &cell.kind {
            CellKind::File { path, mode } => {
                let written = match rendered {
                    Ok(text) => self.s.write_file(&text, path, *mode),
                    Err(error) => Err(match &error.secret {
                        Some(name) => format!(
                            "{}:{}: file cell would write a secret to {path}: {name}; nothing was written ({})",
                            self.s.file,
                            cell.line + error.line.unwrap_or(1),
                            error.message
                        ),
                        None => self.s.template_error(cell, &error),
                    }),
                };
                let ending = match written {
                    Ok(()) => Ending::new(Status::Passed, 0).message(format!("wrote {path}")),
                    Err(message) => Ending::new(Status::Failed, 1).message(message),
                };
                return self.finished(cell, index, started, ending);
            }
            CellKind::Code { interpreter } => *interpreter,
        };
        let code = match rendered {
            Ok(code) => code,
            Err(error) => {
                let message = self.s.template_error(cell, &error);
                let ending = Ending {
                    recorded: Some(self.s.masker.mask(&message)),
                    ..Ending::new(Status::Failed, 2).message(message)
                };
                return self.finished(cell, index, started, ending);
            }
        };
        if cell.options.confirm && !self.s.options.yes && !self.confirmed(index, cell).await {
            return self.finished(
                cell,
                index,
                started,
                Ending::new(Status::Skipped, 0).message("not confirmed"),
            );
        }
        let cwd = cell
            .options
            .cwd
            .as_ref()
            // Absolute: the kernel already runs in the runbook's folder, so
            // a relative `docs/work` would be looked for in `docs/docs/work`.
            .map(|dir| {
                let joined = self.s.folder.join(dir);
                std::path::absolute(&joined).unwrap_or(joined)
            });
        let mut attempt_number = 1;
        let attempt = loop {
            if attempt_number > 1 {
                self.started(index, cell, &code, attempt_number);
            }
            let attempt = self
                .attempt(index, cell, interpreter, &code, cwd.as_deref())
                .await;
            let succeeded = match attempt.end {
                End::Done(exit) | End::Exited(exit) => cell.options.expect.accepts(exit),
                End::TimedOut | End::Interrupted => false,
            };
            if succeeded || attempt.end == End::Interrupted || attempt_number > cell.options.retries
            {
                break attempt;
            }
            attempt_number += 1;
            tokio::select! {
                _ = tokio::time::sleep(cell.options.retry_delay) => {}
                _ = self.s.interrupts.recv() => break Attempt { end: End::Interrupted, ..attempt },
            }
        };
        self.conclude(index, cell, attempt, started)
    }

    /// Asks whether to run a `confirm` cell: where the caller asks, or on
    /// the terminal. A stop while waiting is a no.
    async fn confirmed(&mut self, index: usize, cell: &Cell) -> bool {
        let Some(prompts) = &self.s.options.prompts else {
            return confirm(cell);
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let question = format!("Run cell {} ({})?", cell.name(), cell.first_line());
        if prompts
            .send(Prompt {
                index,
                question,
                reply,
            })
            .is_err()
        {
            return false;
        }
        tokio::select! {
            answer = answer => answer.unwrap_or(false),
            _ = self.s.interrupts.recv() => false,
        }
    }

    /// Renders a cell with the run's values, on a thread of its own: the
    /// cell's timeout (or, without one, the rendering deadline) and a stop
    /// cover its rendering too. No secret's value takes part: a secret
    /// renders as a reference to its environment variable.
    async fn render(&mut self, cell: &Cell) -> Result<String, Unrendered> {
        if !crate::template::has_template(cell.template_text()) {
            return Ok(cell.body.clone());
        }
        let receiver = render_in_background(
            &self.s.env,
            &cell.body,
            &self.s.vars.template_values(),
            Target::of(cell),
        );
        let limit = cell
            .options
            .timeout
            .unwrap_or(crate::template::RENDER_DEADLINE);
        let waiting = tokio::task::spawn_blocking(move || receiver.wait(limit));
        tokio::select! {
            done = waiting => match done {
                Ok(Some(result)) => result.map_err(Unrendered::Template),
                _ if cell.options.timeout.is_some() => Err(Unrendered::TimedOut(limit)),
                _ => Err(Unrendered::Template(crate::template::too_slow(limit))),
            },
            _ = self.s.interrupts.recv() => Err(Unrendered::Interrupted),
        }
    }

    /// Reports that an attempt at a cell starts.
    /// `rendered` is the cell as rendered (each secret a reference to its
    /// environment variable, so it holds none; masked all the same), or
    /// its source when it did not render.
    fn started(&mut self, index: usize, cell: &Cell, rendered: &str, attempt: u32) {
        let rendered = self.s.masker.mask(rendered);
        self.emitter.emit(Event::CellStarted {
            index,
            number: cell.number,
            name: cell.name(),
            lang: cell.lang.clone(),
            rendered,
            attempt,
        });
    }

    /// Turns an attempt into the cell's result: capture, recorded text.
    fn conclude(
        &mut self,
        index: usize,
        cell: &Cell,
        mut attempt: Attempt,
        started: Instant,
    ) -> Status {
        let (mut status, exit, note) = match attempt.end {
            End::Done(exit) | End::Exited(exit) => {
                let status = if cell.options.expect.accepts(exit) {
                    Status::Passed
                } else {
                    Status::Failed
                };
                (status, exit, None)
            }
            End::TimedOut => {
                let limit = cell
                    .options
                    .timeout
                    .map(format_duration)
                    .unwrap_or_default();
                (
                    Status::TimedOut,
                    EXIT_TIMED_OUT,
                    Some(format!("timed out after {limit}")),
                )
            }
            End::Interrupted => (
                Status::Interrupted,
                EXIT_INTERRUPTED,
                Some("interrupted".to_string()),
            ),
        };
        let mut message = note.clone();
        let misses = self
            .s
            .options
            .misses
            .as_ref()
            .map(|m| m.take())
            .unwrap_or_default();
        if !misses.is_empty() && matches!(attempt.end, End::Done(_) | End::Exited(_)) {
            // A replayed call without a recording fails its cell even when a
            // pipeline hides the shim's exit status.
            status = Status::Failed;
            message = Some(misses.join("\n"));
        }
        if let Some(capture) = &cell.options.capture {
            let stdout = attempt.stdout.take().unwrap_or_default();
            let text = String::from_utf8_lossy(&stdout)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            let parsed = if attempt.stdout_overflow {
                Err(format!(
                    "capture={}: stdout is over {} and is not kept",
                    capture.name,
                    crate::output::human_bytes(MAX_CAPTURE)
                ))
            } else if capture.json {
                serde_json::from_str(&text)
                    .map_err(|e| format!("capture-json={}: stdout is not JSON ({e})", capture.name))
            } else {
                Ok(serde_json::Value::String(text.clone()))
            };
            if capture.secret {
                // Masked whatever the cell's fate: a failed, timed-out or
                // malformed secret is still a secret.
                let mut short = Vec::new();
                if self.s.masker.add(&capture.name, &text) {
                    short.push(capture.name.clone());
                }
                if let Ok(value) = &parsed {
                    short.extend(self.s.masker.add_json(&capture.name, value));
                }
                self.s.share_secrets();
                warn_short(&short);
            }
            match parsed {
                Ok(value) if status == Status::Passed => {
                    self.s.vars.set(&capture.name, value, capture.secret);
                }
                Ok(_) => {}
                Err(error) if status == Status::Passed => {
                    status = Status::Failed;
                    message = Some(error);
                }
                Err(_) => {}
            }
            if capture.secret && !attempt.recording.is_empty() {
                // Held back while it ran; shown now that it can be masked.
                let text = attempt
                    .recording
                    .text(self.s.options.limits, &self.s.masker);
                self.emitter.emit(Event::Output {
                    index,
                    stream: Stream::Stdout,
                    text: format!("{text}\n"),
                });
            }
        }
        let recorded = cell.options.record_output.then(|| {
            if let Some(note) = &note {
                attempt.recording.note(&format!("[runbook: {note}]"));
            }
            let mut text = attempt
                .recording
                .text(self.s.options.limits, &self.s.masker);
            for (regex, with) in &self.s.options.redactions {
                text = regex.replace_all(&text, with.as_str()).into_owned();
            }
            text
        });
        let exit = if status == Status::Failed && exit == 0 {
            1
        } else {
            exit
        };
        let ending = Ending {
            status,
            exit,
            recorded,
            message,
        };
        self.finished(cell, index, started, ending)
    }

    async fn attempt(
        &mut self,
        index: usize,
        cell: &Cell,
        interpreter: Interpreter,
        code: &str,
        cwd: Option<&Path>,
    ) -> Attempt {
        let mut attempt = Attempt {
            end: End::Done(0),
            stdout: cell.options.capture.as_ref().map(|_| Vec::new()),
            stdout_overflow: false,
            recording: Recording::new(self.s.options.limits),
        };
        let env = self.s.env_vars();
        if let Some(misses) = &self.s.options.misses {
            misses.take();
        }
        let mut started = match self.s.kernel(interpreter).await {
            Ok(kernel) => kernel.run(code, &env, cwd).await,
            Err(e) => Err(e),
        };
        if started.is_err() && interpreter != Interpreter::Pwsh {
            // The kernel may have ended after the last cell (a cell that
            // closed its descriptors, say): start a new one, once.
            self.s.drop_kernel(interpreter, false).await;
            let note = format!(
                "[runbook: the {} kernel had ended; started a new one, without the state of earlier cells]\n",
                interpreter.program()
            );
            self.emitter.emit(Event::Output {
                index,
                stream: Stream::Stderr,
                text: note,
            });
            started = match self.s.kernel(interpreter).await {
                Ok(kernel) => kernel.run(code, &env, cwd).await,
                Err(e) => Err(e),
            };
        }
        if let Err(error) = started {
            let message = format!("cannot start {}: {error}\n", interpreter.program());
            self.emitter.emit(Event::Output {
                index,
                stream: Stream::Stderr,
                text: message.clone(),
            });
            attempt.recording.push(message.as_bytes());
            attempt.end = End::Exited(127);
            self.s.drop_kernel(interpreter, false).await;
            return attempt;
        }
        let deadline = cell
            .options
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        // A cell capturing a secret is shown only once the secret is known
        // and can be masked.
        let hold = cell.options.capture.as_ref().is_some_and(|c| c.secret);
        let mut live = [LiveMask::default(), LiveMask::default()];
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        let mut stopping: Option<(End, tokio::time::Instant)> = None;
        loop {
            let kill_at = stopping.map(|(_, at)| at);
            let kernel = self
                .s
                .kernels
                .get_mut(interpreter.program())
                .expect("kernel running");
            tokio::select! {
                step = kernel.next() => match step {
                    Step::Output(stream, bytes) => {
                        if let (Stream::Stdout, Some(stdout)) = (stream, attempt.stdout.as_mut()) {
                            if stdout.len() + bytes.len() <= MAX_CAPTURE {
                                stdout.extend_from_slice(&bytes);
                            } else {
                                attempt.stdout_overflow = true;
                            }
                        }
                        attempt.recording.push_stream(stream as usize, &bytes);
                        if !hold {
                            if let Some(text) = live[stream as usize].push(&bytes, &self.s.masker) {
                                self.emitter.emit(Event::Output { index, stream, text });
                            }
                        }
                    }
                    Step::Done(exit) => {
                        attempt.end = stopping.map(|(end, _)| end).unwrap_or(End::Done(exit));
                        break;
                    }
                    Step::Exited(exit) => {
                        attempt.end = stopping.map(|(end, _)| end).unwrap_or(End::Exited(exit));
                        break;
                    }
                },
                _ = sleep_until(deadline), if stopping.is_none() => {
                    if let Some(pid) = kernel.pid() {
                        crate::procs::signal_group(pid, libc::SIGTERM);
                    }
                    stopping = Some((End::TimedOut, tokio::time::Instant::now() + self.s.options.grace));
                }
                _ = self.s.interrupts.recv(), if stopping.is_none() => {
                    if let Some(pid) = kernel.pid() {
                        crate::procs::signal_group(pid, libc::SIGINT);
                    }
                    stopping = Some((End::Interrupted, tokio::time::Instant::now() + self.s.options.grace));
                }
                _ = sleep_until(kill_at), if kill_at.is_some() => {
                    if let Some(pid) = kernel.pid() {
                        crate::procs::signal_group(pid, libc::SIGKILL);
                    }
                    attempt.end = stopping.map(|(end, _)| end).expect("stopping");
                    break;
                }
                _ = ticker.tick() => {
                    self.emitter.tick();
                    // Stopped, and the interpreter is gone: a job it left in
                    // the background may hold its pipes open, but the cell
                    // is over (the job is killed with the kernel below).
                    if let Some((end, _)) = stopping {
                        if kernel.has_exited() {
                            attempt.end = end;
                            break;
                        }
                    }
                }
            }
        }
        attempt.recording.finish();
        if !hold {
            for stream in [Stream::Stdout, Stream::Stderr] {
                if let Some(text) = live[stream as usize].flush(&self.s.masker) {
                    self.emitter.emit(Event::Output {
                        index,
                        stream,
                        text,
                    });
                }
            }
        }
        match attempt.end {
            // The interpreter ended by itself: what it left running in the
            // background lives on until the run ends.
            End::Exited(_) => self.s.drop_kernel(interpreter, false).await,
            // Stopped: the kernel and everything it started go.
            End::TimedOut | End::Interrupted => self.s.drop_kernel(interpreter, true).await,
            End::Done(_) => {}
        }
        attempt
    }
}

/// `[masked:A], [masked:B]` as `A, B`, for messages.
fn secret_names_in(masked: &str) -> String {
    let mut names: Vec<&str> = masked
        .split("[masked:")
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// Warns about short secrets: masked, but masking may hide ordinary text.
pub fn warn_short(names: &[String]) {
    for name in names {
        crate::say_line!(
            "warning: secret {name} is shorter than {SHORT} characters; it is masked everywhere, which may also hide ordinary text"
        );
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Asks on the terminal whether to run a `confirm` cell.
fn confirm(cell: &Cell) -> bool {
    crate::terminal::say(&format!(
        "Run cell {} ({})? [y/N] ",
        cell.name(),
        cell.first_line()
    ));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}
