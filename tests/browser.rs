//! `runbook serve` in a real headless Chromium (Debian's `chromium`),
//! driven by Playwright (`tests/browser/serve.mjs`). `.ci/run` installs
//! both; where either is missing the test says so and is skipped.

use std::path::Path;
use std::process::Command;

use crate::support::Test;

#[test]
fn a_person_can_use_the_notebook_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let playwright = root.join("tests/browser/node_modules/playwright-core");
    if !Path::new(&chromium).exists() || !playwright.exists() {
        eprintln!(
            "skipped: needs {chromium} and {} (.ci/run installs both: apt-get install chromium; npm ci in tests/browser)",
            playwright.display()
        );
        return;
    }
    let test = Test::new();
    let output = Command::new("node")
        .arg(root.join("tests/browser/serve.mjs"))
        .env("RUNBOOK", env!("CARGO_BIN_EXE_runbook"))
        .env("WORK", test.dir.path())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser scenario failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("browser scenario: passed"), "{stdout}");
    // The interrupted `sleep 61` and every kernel ended with the server.
    crate::support::assert_no_process("sleep 61");
}
