//! What an intercepted call costs on replay, next to starting the real
//! `kubectl` client: a cell calling `kubectl version --client` N times is
//! recorded once, then replayed; the same N calls are also made to the real
//! client directly. Run with `cargo bench --bench shim_overhead`.

use std::process::{Command, Stdio};
use std::time::Instant;

const CALLS: usize = 200;

fn main() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("skipped: kubectl is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let runbook = dir.path().join("calls.md");
    std::fs::write(
        &runbook,
        format!("```bash\nfor i in $(seq {CALLS}); do kubectl version --client -o json >/dev/null; done\n```\n"),
    )
    .expect("write runbook");
    let binary = env!("CARGO_BIN_EXE_runbook");
    let fixtures = dir.path().join("fixtures");
    let run = |mode: &str| {
        let started = Instant::now();
        let status = Command::new(binary)
            .args(["run", "--no-write", mode])
            .arg(&fixtures)
            .arg(&runbook)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runbook starts");
        assert!(status.success());
        started.elapsed()
    };
    let recording = run("--record");
    let replaying = (0..3).map(|_| run("--replay")).min().expect("runs");
    let started = Instant::now();
    let status = Command::new("bash")
        .args([
            "-c",
            &format!(
                "for i in $(seq {CALLS}); do kubectl version --client -o json >/dev/null; done"
            ),
        ])
        .status()
        .expect("bash starts");
    assert!(status.success());
    let real = started.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / CALLS as f64;
    println!("{CALLS} calls of `kubectl version --client`");
    println!("  real kubectl:            {:8.3} ms per call", per(real));
    println!(
        "  recording (real + shim): {:8.3} ms per call",
        per(recording)
    );
    println!(
        "  replay (shim only):      {:8.3} ms per call",
        per(replaying)
    );
}
