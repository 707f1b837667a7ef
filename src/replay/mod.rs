//! Replay and record: cassettes of what `az`, `kubectl` and `helm` did,
//! the shim the runbook binary becomes under a tool's name, and the run's
//! side that answers the shims.

pub mod cassette;
pub mod interceptor;
pub mod shim;
