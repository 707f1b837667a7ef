//! The live terminal display: cell output streamed as it comes, with a
//! status line (cell, spinner, elapsed time) on a terminal, plain header and
//! result lines otherwise (or with `NO_COLOR`).

use std::io::Write;
use std::time::Instant;

use crate::duration::format_duration;
use crate::events::{Event, Sink, Status};
use crate::kernel::Stream;

/// Writes to stderr in one call, so lines are not split between writes.
/// A closed stderr is not an error: the run goes on without a display.
pub fn say(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes to stdout and flushes. A closed stdout (`runbook run x.md |
/// head -1`) is the terminal going away, not a reason to stop: the run
/// goes on, records its outputs and ends its processes as usual.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `say` with format arguments and a newline.
#[macro_export]
macro_rules! say_line {
    () => {
        $crate::terminal::say("\n")
    };
    ($($arg:tt)*) => {
        $crate::terminal::say(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `--color`: when to paint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (or `CLICOLOR_FORCE` is).
    #[default]
    Auto,
    Always,
    Never,
}

static CHOICE: std::sync::OnceLock<ColorChoice> = std::sync::OnceLock::new();

/// Sets `--color` for the process (once, at start).
pub fn set_color_choice(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether to paint output going to a stream that is (or is not) a
/// terminal: `--color`, then `CLICOLOR_FORCE`, then `NO_COLOR`.
pub fn color(is_terminal: bool) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    match CHOICE.get().copied().unwrap_or_default() {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("CLICOLOR_FORCE") => true,
        ColorChoice::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none(),
    }
}

const GREEN: &str = "32";
const RED: &str = "31";
const YELLOW: &str = "33";
const DIM: &str = "2";

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub struct Terminal {
    /// Redraw a status line instead of printing plain lines.
    live: bool,
    /// Paint results and timings.
    color: bool,
    /// Whether the cell that finishes next was reported as started.
    started: bool,
    total: usize,
    done: usize,
    current: Option<(String, Instant)>,
    frame: usize,
    /// Whether the cell's last output chunk ended without a newline.
    open_line: [bool; 2],
}

impl Terminal {
    pub fn new(live: bool, color: bool) -> Terminal {
        Terminal {
            live,
            color,
            started: false,
            total: 0,
            done: 0,
            current: None,
            frame: 0,
            open_line: [false, false],
        }
    }

    /// `text` in an ANSI colour when colour is on.
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn clear_status(&self) {
        if self.live && self.current.is_some() {
            say("\r\x1b[2K");
        }
    }

    fn draw_status(&mut self) {
        if let (true, Some((name, started))) = (self.live, &self.current) {
            self.frame = (self.frame + 1) % SPINNER.len();
            say(&format!(
                "\r\x1b[2K{} [{}/{}] {name} {}",
                SPINNER[self.frame],
                self.done + 1,
                self.total,
                format_duration(std::time::Duration::from_millis(
                    started.elapsed().as_millis() as u64 / 100 * 100
                ))
            ));
        }
    }

    fn finish_open_lines(&mut self) {
        if self.open_line[0] {
            out("\n");
        }
        if self.open_line[1] {
            say_line!();
        }
        self.open_line = [false, false];
    }
}

impl Sink for Terminal {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { cells, .. } => self.total = *cells,
            Event::CellStarted {
                name,
                lang,
                attempt,
                ..
            } => {
                let label = if *attempt > 1 {
                    format!("{name} ({lang}, try {attempt})")
                } else {
                    format!("{name} ({lang})")
                };
                self.started = true;
                if self.live {
                    self.current = Some((label, Instant::now()));
                    self.draw_status();
                } else {
                    say_line!("==> [{}/{}] {label}", self.done + 1, self.total);
                }
            }
            Event::Output { stream, text, .. } => {
                self.clear_status();
                let open = !text.ends_with('\n');
                match stream {
                    Stream::Stdout => out(text),
                    Stream::Stderr => say(text),
                }
                self.open_line[*stream as usize] = open;
                self.draw_status();
            }
            Event::CellFinished {
                name,
                status,
                exit,
                duration_ms,
                message,
                ..
            } => {
                self.clear_status();
                self.finish_open_lines();
                self.current = None;
                self.done += 1;
                let took = format_duration(std::time::Duration::from_millis(*duration_ms));
                let (mark, paint, what) = match status {
                    Status::Passed => ("ok", GREEN, String::new()),
                    Status::Skipped => ("skipped", YELLOW, String::new()),
                    Status::Failed => ("FAILED", RED, format!(" exit {exit}")),
                    Status::TimedOut => ("TIMED OUT", RED, String::new()),
                    Status::Interrupted => ("INTERRUPTED", RED, String::new()),
                };
                let mark = self.paint(paint, mark);
                let took = self.paint(DIM, &format!("({took})"));
                let detail = message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                if std::mem::take(&mut self.started) {
                    say_line!("<== {name}: {mark}{what} {took}{detail}");
                } else {
                    // A cell that never started (`skip`) gets one line.
                    say_line!("--- [{}/{}] {name}: {mark}{detail}", self.done, self.total);
                }
            }
            Event::RunFinished {
                passed,
                failed,
                skipped,
                not_run,
                duration_ms,
                ..
            } => {
                let took = format_duration(std::time::Duration::from_millis(*duration_ms));
                let failed = if *failed > 0 {
                    self.paint(RED, &format!("{failed} failed"))
                } else {
                    format!("{failed} failed")
                };
                let not_run = if *not_run > 0 {
                    format!(", {not_run} not run")
                } else {
                    String::new()
                };
                let took = self.paint(DIM, &format!("({took})"));
                say_line!("{passed} passed, {failed}, {skipped} skipped{not_run} {took}");
            }
        }
    }

    fn tick(&mut self) {
        self.draw_status();
    }
}
