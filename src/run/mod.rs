//! The run: the executor and its kernels and processes, the variables and
//! templates (with shell quoting and secret masking) cells are rendered
//! with, the state and lock beside a runbook, the selection of cells, and
//! the sinks that show and record what happens (terminal, JSON, document).

pub mod analysis;
pub mod events;
pub mod executor;
pub mod kernel;
pub mod lock;
pub mod output;
pub mod preflight;
pub mod procs;
pub mod pwsh;
pub mod quoting;
pub mod recorder;
pub mod secrets;
pub mod selection;
pub mod state;
pub mod template;
pub mod terminal;
pub mod tools;
pub mod vars;
