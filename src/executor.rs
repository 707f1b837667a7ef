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
use crate::output::{block_text, Limits};
use crate::secrets::Masker;
use crate::template::{environment, render};
use crate::vars::Vars;

/// Exit status recorded for a cell that ran out of time (as `timeout(1)`).
pub const EXIT_TIMED_OUT: i32 = 124;
/// Exit status recorded for an interrupted cell.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Calls to intercepted tools that had no recording, since the last look.
pub trait MissLog: Send + Sync {
    fn take(&self) -> Vec<String>;
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

/// SIGINT, SIGTERM and SIGHUP, as one stream of "stop now".
struct Interrupts {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
}

impl Interrupts {
    fn new() -> Interrupts {
        Interrupts {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
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
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.hangup) => {}
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
    stdout: Vec<u8>,
    combined: Vec<u8>,
}

/// Splits streamed bytes into whole lines so secrets are masked whole.
#[derive(Default)]
struct Lines {
    buffer: [Vec<u8>; 2],
}

impl Lines {
    fn push(&mut self, stream: Stream, bytes: &[u8]) -> Option<String> {
        let buffer = &mut self.buffer[stream as usize];
        buffer.extend_from_slice(bytes);
        let end = buffer.iter().rposition(|&b| b == b'\n' || b == b'\r')? + 1;
        let line: Vec<u8> = buffer.drain(..end).collect();
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    fn flush(&mut self, stream: Stream) -> Option<String> {
        let buffer = std::mem::take(&mut self.buffer[stream as usize]);
        (!buffer.is_empty()).then(|| String::from_utf8_lossy(&buffer).into_owned())
    }
}

struct Executor<'a, 's> {
    plan: &'a Plan<'a>,
    options: &'a Options,
    emitter: Emitter<'s>,
    vars: Vars,
    masker: Masker,
    kernels: BTreeMap<&'static str, Kernel>,
    interrupts: Interrupts,
    env: minijinja::Environment<'static>,
}

/// Runs the plan. Every process started is gone when this returns.
pub async fn execute(
    plan: &Plan<'_>,
    vars: Vars,
    options: &Options,
    emitter: Emitter<'_>,
) -> Outcome {
    crate::procs::become_subreaper();
    let masker = vars.masker();
    let mut executor = Executor {
        plan,
        options,
        emitter,
        vars,
        masker,
        kernels: BTreeMap::new(),
        interrupts: Interrupts::new(),
        env: environment(),
    };
    let status = executor.run().await;
    let exported = if status == RunStatus::Interrupted {
        BTreeMap::new()
    } else {
        executor.exported().await
    };
    for (_, kernel) in std::mem::take(&mut executor.kernels) {
        kernel.shutdown().await;
    }
    crate::procs::kill_descendants(&[]);
    Outcome {
        status,
        vars: executor.vars,
        exported,
    }
}

/// Variables every shell sets for itself, not worth restoring.
const SHELL_OWN: [&str; 5] = ["PWD", "OLDPWD", "SHLVL", "_", "PS1"];

impl Executor<'_, '_> {
    async fn run(&mut self) -> RunStatus {
        let started = Instant::now();
        self.emitter.emit(Event::RunStarted {
            file: self.plan.file.clone(),
            cells: self.plan.cells.len(),
        });
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        let mut status = RunStatus::Passed;
        for &index in &self.plan.cells {
            let cell = &self.plan.runbook.cells[index];
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
            message: message.map(|m| self.masker.mask(&m)),
        });
        status
    }

    async fn cell(&mut self, index: usize, cell: &Cell) -> Status {
        let started = Instant::now();
        if cell.options.skip {
            return self.finished(cell, index, started, Ending::new(Status::Skipped, 0));
        }
        let interpreter = match &cell.kind {
            CellKind::File { path, mode } => {
                let rendered = render(&self.env, &cell.body, &self.vars.template_values(), false);
                self.emitter.emit(Event::CellStarted {
                    index,
                    number: cell.number,
                    name: cell.name(),
                    lang: cell.lang.clone(),
                    rendered: self.masker.mask(rendered.as_deref().unwrap_or_default()),
                    attempt: 1,
                });
                let written = rendered
                    .map_err(|e| self.template_error(cell, &e))
                    .and_then(|text| self.write_file(&text, path, *mode));
                let ending = match written {
                    Ok(()) => Ending::new(Status::Passed, 0).message(format!("wrote {path}")),
                    Err(message) => Ending::new(Status::Failed, 1).message(message),
                };
                return self.finished(cell, index, started, ending);
            }
            CellKind::Code { interpreter } => *interpreter,
        };
        let code = match render(
            &self.env,
            &cell.body,
            &self.vars.template_values(),
            interpreter.is_posix_shell(),
        ) {
            Ok(code) => code,
            Err(error) => {
                let message = self.template_error(cell, &error);
                let ending = Ending {
                    recorded: Some(message.clone()),
                    ..Ending::new(Status::Failed, 2).message(message)
                };
                return self.finished(cell, index, started, ending);
            }
        };
        if cell.options.confirm && !self.options.yes && !confirm(cell) {
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
            .map(|dir| self.plan.folder.join(dir));
        let mut attempt_number = 1;
        let attempt = loop {
            self.emitter.emit(Event::CellStarted {
                index,
                number: cell.number,
                name: cell.name(),
                lang: cell.lang.clone(),
                rendered: self.masker.mask(&code),
                attempt: attempt_number,
            });
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
                _ = self.interrupts.recv() => break Attempt { end: End::Interrupted, ..attempt },
            }
        };
        self.conclude(index, cell, attempt, started)
    }

    /// Turns an attempt into the cell's result: capture, recorded text.
    fn conclude(
        &mut self,
        index: usize,
        cell: &Cell,
        attempt: Attempt,
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
        if status == Status::Passed {
            if let Some(capture) = &cell.options.capture {
                let stdout = String::from_utf8_lossy(&attempt.stdout);
                let text = stdout.trim_end_matches(['\n', '\r']).to_string();
                let value = if capture.json {
                    match serde_json::from_str(&text) {
                        Ok(value) => Some(value),
                        Err(e) => {
                            status = Status::Failed;
                            message = Some(format!(
                                "capture-json={}: stdout is not JSON ({e})",
                                capture.name
                            ));
                            None
                        }
                    }
                } else {
                    Some(serde_json::Value::String(text.clone()))
                };
                if let Some(value) = value {
                    if capture.secret {
                        self.masker.add(&capture.name, &text);
                    }
                    self.vars.set(&capture.name, value, capture.secret);
                }
            }
        }
        if cell.options.capture.as_ref().is_some_and(|c| c.secret) && !attempt.combined.is_empty() {
            let text = self
                .masker
                .mask(&String::from_utf8_lossy(&attempt.combined));
            self.emitter.emit(Event::Output {
                index,
                stream: Stream::Stdout,
                text,
            });
        }
        let recorded = cell.options.record_output.then(|| {
            let mut raw = String::from_utf8_lossy(&attempt.combined).into_owned();
            if let Some(note) = &note {
                if !raw.is_empty() && !raw.ends_with('\n') {
                    raw.push('\n');
                }
                raw.push_str(&format!("[runbook: {note}]\n"));
            }
            let mut text = self.masker.mask(&block_text(&raw, self.options.limits));
            for (regex, with) in &self.options.redactions {
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

    async fn kernel(&mut self, interpreter: Interpreter) -> std::io::Result<&mut Kernel> {
        let key = interpreter.program();
        if !self.kernels.contains_key(key) {
            let kernel = Kernel::start(Launch {
                interpreter,
                cwd: self.plan.folder.clone(),
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
    async fn exported(&mut self) -> BTreeMap<String, String> {
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
            stdout: Vec::new(),
            combined: Vec::new(),
        };
        let env = self.env_vars();
        if let Some(misses) = &self.options.misses {
            misses.take();
        }
        let started = match self.kernel(interpreter).await {
            Ok(kernel) => kernel.run(code, &env, cwd).await,
            Err(e) => Err(e),
        };
        if let Err(error) = started {
            let message = format!("cannot start {}: {error}\n", interpreter.program());
            self.emitter.emit(Event::Output {
                index,
                stream: Stream::Stderr,
                text: message.clone(),
            });
            attempt.combined.extend(message.as_bytes());
            attempt.end = End::Exited(127);
            self.drop_kernel(interpreter).await;
            return attempt;
        }
        let deadline = cell
            .options
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        // A cell capturing a secret is shown only once the secret is known
        // and can be masked.
        let hold = cell.options.capture.as_ref().is_some_and(|c| c.secret);
        let mut lines = Lines::default();
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        let mut stopping: Option<(End, tokio::time::Instant)> = None;
        loop {
            let kill_at = stopping.map(|(_, at)| at);
            let kernel = self
                .kernels
                .get_mut(interpreter.program())
                .expect("kernel running");
            tokio::select! {
                step = kernel.next() => match step {
                    Step::Output(stream, bytes) => {
                        if stream == Stream::Stdout {
                            attempt.stdout.extend_from_slice(&bytes);
                        }
                        attempt.combined.extend_from_slice(&bytes);
                        if let Some(text) = lines.push(stream, &bytes).filter(|_| !hold) {
                            let text = self.masker.mask(&text);
                            self.emitter.emit(Event::Output { index, stream, text });
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
                    stopping = Some((End::TimedOut, tokio::time::Instant::now() + self.options.grace));
                }
                _ = self.interrupts.recv(), if stopping.is_none() => {
                    if let Some(pid) = kernel.pid() {
                        crate::procs::signal_group(pid, libc::SIGINT);
                    }
                    stopping = Some((End::Interrupted, tokio::time::Instant::now() + self.options.grace));
                }
                _ = sleep_until(kill_at), if kill_at.is_some() => {
                    if let Some(pid) = kernel.pid() {
                        crate::procs::signal_group(pid, libc::SIGKILL);
                    }
                    attempt.end = stopping.map(|(end, _)| end).expect("stopping");
                    break;
                }
                _ = ticker.tick() => self.emitter.tick(),
            }
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(text) = lines.flush(stream).filter(|_| !hold) {
                let text = self.masker.mask(&text);
                self.emitter.emit(Event::Output {
                    index,
                    stream,
                    text,
                });
            }
        }
        if matches!(
            attempt.end,
            End::Exited(_) | End::TimedOut | End::Interrupted
        ) {
            self.drop_kernel(interpreter).await;
        }
        attempt
    }

    /// Ends a kernel whose state is lost, and anything it left running.
    async fn drop_kernel(&mut self, interpreter: Interpreter) {
        if let Some(kernel) = self.kernels.remove(interpreter.program()) {
            kernel.shutdown().await;
        }
        let keep: Vec<i32> = self.kernels.values().filter_map(Kernel::pid).collect();
        crate::procs::kill_descendants(&keep);
    }

    /// `lab.md:12: template error in cell oidc: ...`
    fn template_error(&self, cell: &Cell, error: &crate::template::TemplateError) -> String {
        let line = cell.line + error.line.unwrap_or(1);
        format!(
            "{}:{line}: template error in cell {}: {}",
            self.plan.file,
            cell.name(),
            error.message
        )
    }

    fn write_file(&self, text: &str, path: &str, mode: Option<u32>) -> Result<(), String> {
        let target = self.plan.folder.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        crate::atomic::write_if_changed(&target, text.as_bytes())
            .map_err(|e| format!("{}: {e}", target.display()))?;
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", target.display()))?;
        }
        Ok(())
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
    eprint!("Run cell {} ({})? [y/N] ", cell.name(), cell.first_line());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}
