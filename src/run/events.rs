//! What a run reports as it goes. The executor emits events; the terminal
//! display, the JSON stream and the document recorder consume them.

use serde::{Deserialize, Serialize};

use crate::kernel::Stream;

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    TimedOut,
    Interrupted,
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::TimedOut => "timed-out",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::TimedOut | Status::Interrupted
        )
    }
}

/// One thing that happened during a run. All text is already masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        file: String,
        cells: usize,
    },
    CellStarted {
        index: usize,
        number: usize,
        name: String,
        lang: String,
        /// The code after templating.
        rendered: String,
        /// 1 for the first try, then one more for each retry.
        attempt: u32,
    },
    Output {
        index: usize,
        stream: Stream,
        text: String,
    },
    CellFinished {
        index: usize,
        number: usize,
        name: String,
        status: Status,
        exit: i32,
        duration_ms: u64,
        /// Names of the variables this cell captured.
        captured: Vec<String>,
        /// The text recorded under the cell (`None`: nothing recorded).
        #[serde(skip_serializing_if = "Option::is_none")]
        recorded: Option<String>,
        /// Why the cell failed, when it was not its exit status alone.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    RunFinished {
        status: RunStatus,
        passed: usize,
        failed: usize,
        skipped: usize,
        /// Selected cells that never ran (after a failure or an interrupt).
        not_run: usize,
        duration_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Passed,
    Failed,
    Interrupted,
}

/// A consumer of events.
pub trait Sink {
    fn event(&mut self, event: &Event);
    /// Called about ten times a second while a cell runs.
    fn tick(&mut self) {}
}

/// Prints each event as one JSON line on stdout.
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&mut self, event: &Event) {
        let line = serde_json::to_string(event).expect("events serialise");
        crate::terminal::out(&format!("{line}\n"));
    }
}
