//! What a cell costs on top of its work: `runbook run` on runbooks of 1,
//! 100 and 1000 trivial cells, against N × `bash -c true` (the floor of
//! starting a shell per cell), measured in the same run on the same machine.
//!
//! Run with `cargo bench --bench cell_overhead`. Prints a table; asserts
//! nothing, since timings on shared machines are noisy.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn runbook_with(cells: usize) -> String {
    let mut doc = String::from("# Benchmark\n\n");
    for i in 0..cells {
        doc.push_str(&format!("```bash\ntrue {i}\n```\n\n"));
    }
    doc
}

fn time(mut command: Command) -> Duration {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("starts");
    assert!(status.success(), "{command:?} failed");
    started.elapsed()
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().expect("at least one run")
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = env!("CARGO_BIN_EXE_runbook");
    println!(
        "{:>6}  {:>12}  {:>14}  {:>12}  {:>10}",
        "cells", "runbook", "N x bash -c", "per cell", "ratio"
    );
    for cells in [1usize, 100, 1000] {
        let path = dir.path().join(format!("bench-{cells}.md"));
        std::fs::write(&path, runbook_with(cells)).expect("write runbook");
        let runs = if cells == 1000 { 3 } else { 5 };
        let ours = best_of(runs, || {
            let mut command = Command::new(binary);
            command
                .args(["run", "--no-write"])
                .arg(&path)
                .env("NO_COLOR", "1");
            time(command)
        });
        let floor = best_of(runs, || {
            let started = Instant::now();
            for _ in 0..cells {
                let status = Command::new("bash")
                    .args(["-c", "true"])
                    .status()
                    .expect("bash starts");
                assert!(status.success());
            }
            started.elapsed()
        });
        println!(
            "{cells:>6}  {:>10.1}ms  {:>12.1}ms  {:>10.3}ms  {:>9.2}x",
            ours.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            ours.as_secs_f64() * 1e3 / cells as f64,
            ours.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
