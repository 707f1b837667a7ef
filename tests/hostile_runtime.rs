//! Foreign documents are untrusted: what a run records, where it writes,
//! what it reads back from its state, and how it meets exhausted
//! resources. Each test tries an attack on the real binary and checks
//! that it fails.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{walk, Test};

/// The recorded block under the only cell of `doc`.
fn recorded_block(doc: &str) -> &str {
    let start = doc.find("```output\n").expect("an output block") + "```output\n".len();
    let end = doc[start..].rfind("\n```").expect("a closing fence") + start;
    &doc[start..end]
}

/// The JSON events a `--json` run printed.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect()
}

#[test]
fn outputs_are_recorded_byte_for_byte_tabs_included() {
    let test = Test::new();
    // Every byte value 0x09-0x7e on a line of its own, between colons, then
    // UTF-8 of every length.
    let mut printed = Vec::new();
    let mut expected = String::new();
    for byte in 0x09u8..=0x7e {
        printed.extend_from_slice(format!("{byte:02x}:").as_bytes());
        printed.push(byte);
        printed.extend_from_slice(b":\n");
        let line = match byte {
            // A line feed ends the line.
            b'\n' => "0a:\n:".to_string(),
            // What follows a carriage return overwrites the start of the
            // line, as a terminal shows it.
            b'\r' => ":d:".to_string(),
            // ESC starts an escape sequence (`ESC :`), which goes.
            0x1b => "1b:".to_string(),
            // The other control characters are terminal controls and go.
            0x0b..=0x1f if byte != b'\t' => format!("{byte:02x}::"),
            _ => format!("{byte:02x}:{}:", char::from(byte)),
        };
        expected.push_str(&line);
        expected.push('\n');
    }
    let utf8 = "é ß ñ ¼ ÿ\t日本語\tΩ≈ç√\t🙂👍🏽\t\u{a0}nbsp";
    printed.extend_from_slice(utf8.as_bytes());
    printed.push(b'\n');
    expected.push_str(utf8);
    // Columns of `-o tsv` output stay apart.
    let tsv = "rg-dev\teastus\tSucceeded\n\tleading\ttrailing\t";
    printed.extend_from_slice(tsv.as_bytes());
    expected.push('\n');
    expected.push_str(tsv);
    std::fs::write(test.path("bytes.bin"), &printed).unwrap();
    test.write("doc.md", "# Bytes\n\n```bash\ncat bytes.bin\n```\n");
    let run = test.run(&["run", "doc.md", "--json"]).code(0);
    let doc = test.read("doc.md");
    assert_eq!(recorded_block(&doc), expected, "{doc}");
    let events = events(&run.stdout);
    // The live output is what the cell printed, every byte of it.
    let live: String = events
        .iter()
        .filter(|e| e["event"] == "output")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(live.as_bytes(), &printed[..]);
    let finished = events
        .iter()
        .find(|e| e["event"] == "cell-finished")
        .unwrap();
    assert_eq!(finished["recorded"], expected.as_str());
    // The terminal echo too.
    let run = test.run(&["run", "doc.md", "--no-write"]).code(0);
    assert!(
        run.stdout.contains("rg-dev\teastus\tSucceeded\n"),
        "{}",
        run.stdout
    );
    // Recording again changes nothing, and `test` agrees with what it recorded.
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), doc);
    test.run(&["test", "doc.md"]).code(0);
}

/// Runs `runbook` with `env`, failing the test if it has not ended within
/// a minute (a hang is what such a test looks for).
fn run_within_a_minute(test: &Test, args: &[&str], env: &[(&str, &str)]) -> crate::support::Run {
    let mut command = test.command(args);
    command
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("runbook starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("runbook {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::support::Run::from(child.wait_with_output().unwrap())
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
}

#[test]
fn intercept_names_never_leave_the_shim_folder() {
    let test = Test::new();
    // Shim folders go in TMPDIR: two levels down, so `../../x` stays in
    // the test's folder if it escapes.
    let tmp = test.path("tmp/a");
    std::fs::create_dir_all(tmp.join("b")).unwrap();
    test.write("fixtures/doc.json", "{\"version\": 1, \"calls\": []}\n");
    for name in ["../../x", "a/b", ".runbook", "..", "socket", "", "a b"] {
        test.write(
            "doc.md",
            &format!(
                "---\nrunbook:\n  intercept: [{}]\n---\n```bash\ntouch ran\n```\n",
                serde_json::to_string(name).unwrap()
            ),
        );
        let run = test
            .run_env(
                &["run", "doc.md", "--replay", "fixtures"],
                &[("TMPDIR", tmp.join("b").to_str().unwrap())],
            )
            .code(2);
        assert!(run.stderr.contains("intercept:"), "{name}: {}", run.stderr);
        assert!(!test.path("ran").exists(), "{name}");
        assert!(!test.path("tmp/x").exists(), "{name}");
        assert!(!test.path("tmp/a/x").exists(), "{name}");
        assert!(walk(&test.path("tmp")).is_empty(), "{name}");
    }
}

#[test]
fn state_and_lock_are_used_only_as_regular_files_in_a_real_folder() {
    let test = Test::new();
    test.write("doc.md", "```bash\ntouch ran\n```\n");
    let outside = tempfile::tempdir().unwrap();
    // `.runbook` a link to a folder elsewhere: nothing runs, nothing lands there.
    std::os::unix::fs::symlink(outside.path(), test.path(".runbook")).unwrap();
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(2);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert!(walk(outside.path()).is_empty());
    assert!(!test.path("ran").exists());
    std::fs::remove_file(test.path(".runbook")).unwrap();
    // The state file a FIFO (reading it would wait for ever) or a folder.
    std::fs::create_dir(test.path(".runbook")).unwrap();
    mkfifo(&test.path(".runbook/doc.md.json"));
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    std::fs::remove_file(test.path(".runbook/doc.md.json")).unwrap();
    std::fs::create_dir(test.path(".runbook/doc.md.json")).unwrap();
    let run = run_within_a_minute(&test, &["serve", "doc.md", "--port", "0"], &[]).code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert!(!test.path("ran").exists());
    std::fs::remove_dir(test.path(".runbook/doc.md.json")).unwrap();
    // The lock a FIFO: the run goes on without it, and says so.
    mkfifo(&test.path(".runbook/doc.md.lock"));
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(0);
    assert!(run.stderr.contains("without a lock"), "{}", run.stderr);
    assert!(test.path("ran").exists());
    let lock = std::fs::symlink_metadata(test.path(".runbook/doc.md.lock")).unwrap();
    assert!(lock.file_type().is_fifo());
    // `.gitignore` a link out is not written through.
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::remove_dir_all(test.path(".runbook")).unwrap();
    std::fs::create_dir(test.path(".runbook")).unwrap();
    std::os::unix::fs::symlink(&victim, test.path(".runbook/.gitignore")).unwrap();
    run_within_a_minute(&test, &["run", "doc.md"], &[]).code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn names_read_back_from_a_state_file_never_run_code() {
    let test = Test::new();
    let doc = "```bash {#a capture=X}\necho one\n```\n\n```bash {#b}\necho \"X=$X\"; bash -c true; ls >/dev/null; env | grep -c '^LD_PRELOAD=' || true\n```\n";
    test.write("doc.md", doc);
    test.run(&["run", "doc.md"]).code(0);
    let state_path = test.path(".runbook/doc.md.json");
    let good: Value = serde_json::from_str(&test.read(".runbook/doc.md.json")).unwrap();
    test.write("evil.sh", "touch pwned-bash-env\n");
    test.write("bin/ls", "#!/bin/sh\ntouch pwned-path\n");
    crate::support::executable(&test.path("bin/ls"));
    let evil_bin = test.path("bin").display().to_string();
    // Names that are not variable names: the file is refused, nothing runs.
    for name in [
        "A;touch pwned-name;B",
        "A=B",
        "A\nB",
        "$(touch pwned-name)",
        "",
        "1A",
    ] {
        for key in ["captured", "env"] {
            let mut state = good.clone();
            state[key][name] = Value::from("v");
            std::fs::write(&state_path, state.to_string()).unwrap();
            let run = test.run(&["run", "doc.md", "--cell", "b"]).code(2);
            assert!(
                run.stderr.contains("not a valid state file"),
                "{key} {name:?}: {}",
                run.stderr
            );
        }
    }
    // A value with a NUL byte, which no environment can hold.
    let mut state = good.clone();
    state["env"]["NUL"] = Value::from("a\0b");
    std::fs::write(&state_path, state.to_string()).unwrap();
    test.run(&["run", "doc.md", "--cell", "b"]).code(2);
    // A value no environment can hold is left out, with a warning, and the
    // cell that needs it is named.
    let mut state = good.clone();
    state["captured"]["X"] = Value::from("x".repeat(200_000));
    state["env"]["HUGE"] = Value::from("y".repeat(200_000));
    std::fs::write(&state_path, state.to_string()).unwrap();
    let run = test.run(&["run", "doc.md", "--cell", "b"]).code(2);
    assert!(
        run.stderr.contains("HUGE, X not restored"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cell a"), "{}", run.stderr);
    // Names that choose what runs are left out, with a warning; the rest
    // of the state is used.
    let mut state = good.clone();
    for key in ["captured", "env"] {
        state[key]["BASH_ENV"] = Value::from(test.path("evil.sh").display().to_string());
        state[key]["ENV"] = Value::from(test.path("evil.sh").display().to_string());
        state[key]["LD_PRELOAD"] = Value::from("/nonexistent/evil.so");
        state[key]["PATH"] = Value::from(format!("{evil_bin}:/usr/bin:/bin"));
        state[key]["RUNBOOK_SHIM_SOCKET"] = Value::from("/nonexistent");
    }
    std::fs::write(&state_path, state.to_string()).unwrap();
    let run = test.run(&["run", "doc.md", "--cell", "b"]).code(0);
    assert!(
        run.stderr
            .contains("BASH_ENV, ENV, LD_PRELOAD, PATH, RUNBOOK_SHIM_SOCKET not restored"),
        "{}",
        run.stderr
    );
    let after = test.read("doc.md");
    assert!(after.contains("```output\nX=one\n0\n```"), "{after}");
    for pwned in ["pwned-name", "pwned-bash-env", "pwned-path"] {
        assert!(!test.path(pwned).exists(), "{pwned}");
    }
    // And the state written back holds none of them.
    let saved = test.read(".runbook/doc.md.json");
    assert!(
        !saved.contains("BASH_ENV") && !saved.contains("PATH"),
        "{saved}"
    );
}

#[test]
fn a_capture_never_chooses_what_runs() {
    let test = Test::new();
    for name in ["PATH", "LD_PRELOAD", "BASH_ENV", "RUNBOOK_SHIM_SOCKET"] {
        test.write(
            "doc.md",
            &format!(
                "# T\n\n```bash {{capture={name}}}\necho /tmp\n```\n\n```bash\ntouch ran\n```\n"
            ),
        );
        let run = test.run(&["run", "doc.md"]).code(2);
        assert!(
            run.stderr
                .contains(&format!("capture={name} cannot set {name}")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("doc.md:3:"), "{}", run.stderr);
        assert!(!test.path("ran").exists());
    }
    // Exporting in a cell, where a reader sees it, is the way.
    test.write(
        "doc.md",
        "```bash {capture=DIR}\necho /tmp\n```\n\n```bash\nexport PATH=\"$DIR:$PATH\"; echo ok\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
}

#[test]
fn a_dry_run_writes_nothing_at_all() {
    let test = Test::new();
    let tmp = test.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    test.write(
        "doc.md",
        "---\nrunbook:\n  replay: fixtures\n---\n```bash {capture=X}\necho hi\n```\n\n```text {file=out.txt}\nx\n```\n",
    );
    test.write("fixtures/doc.json", "{\"version\": 1, \"calls\": []}\n");
    let before: Vec<_> = walk(test.dir.path());
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (folder_time, tmp_time) = (stamp(test.dir.path()), stamp(&tmp));
    std::thread::sleep(Duration::from_millis(20));
    for extra in [&[][..], &["--replay", "fixtures"][..], &["--cell", "2"][..]] {
        let mut args = vec!["run", "doc.md", "--dry-run"];
        args.extend_from_slice(extra);
        test.run_env(&args, &[("TMPDIR", tmp.to_str().unwrap())])
            .code(0);
    }
    assert_eq!(walk(test.dir.path()), before);
    assert_eq!(stamp(test.dir.path()), folder_time);
    // Not even a shim folder made and removed again.
    assert_eq!(stamp(&tmp), tmp_time);
}

#[test]
fn a_cassette_that_is_a_fifo_or_a_device_is_refused_not_waited_on() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  replay: fixtures\n---\n```bash\ntouch ran\n```\n",
    );
    std::fs::create_dir(test.path("fixtures")).unwrap();
    mkfifo(&test.path("fixtures/doc.json"));
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    std::fs::remove_file(test.path("fixtures/doc.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", test.path("fixtures/doc.json")).unwrap();
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert!(!test.path("ran").exists());
}

#[test]
fn file_cells_never_write_into_a_fifo_or_through_a_link_out() {
    let test = Test::new();
    mkfifo(&test.path("pipe.yaml"));
    test.write("doc.md", "```yaml {file=pipe.yaml}\nx: 1\n```\n");
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    // A link to a file outside the folder, in a subfolder.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.yaml");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir(test.path("k8s")).unwrap();
    std::os::unix::fs::symlink(&victim, test.path("k8s/app.yaml")).unwrap();
    test.write("doc.md", "```yaml {file=k8s/app.yaml}\nx: 1\n```\n");
    let run = run_within_a_minute(&test, &["run", "doc.md"], &[]).code(1);
    assert!(run.stderr.contains("through a link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

/// `runbook ARGS` run by `sh -c "PREFIX exec runbook ARGS"` in the test's
/// folder.
fn run_under(test: &Test, prefix: &str, args: &str) -> crate::support::Run {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{prefix} exec '{}' {args}",
            env!("CARGO_BIN_EXE_runbook")
        ))
        .current_dir(test.dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    crate::support::Run::from(output)
}

const THREE_KERNELS: &str = "# Kernels\n\n```bash\necho bash says hi\n```\n\n```sh\necho sh says hi\n```\n\n```python\nprint('python says hi')\n```\n";

#[test]
fn too_few_open_files_is_an_error_never_a_pass() {
    let test = Test::new();
    // A hard limit below what runbook needs: refused before anything runs.
    for limit in [8, 10, 12, 16, 20, 32] {
        test.write("doc.md", THREE_KERNELS);
        let run = run_under(&test, &format!("ulimit -n {limit};"), "run doc.md").code(2);
        assert!(
            run.stderr.contains("too few open files"),
            "{limit}: {}",
            run.stderr
        );
        assert_eq!(test.read("doc.md"), THREE_KERNELS);
    }
    // A low soft limit: runbook raises its own; each cell, with the
    // caller's limit, either runs and records what it printed, or fails.
    // None passes without having run.
    let expected = ["bash says hi", "sh says hi", "python says hi"];
    for limit in [5, 8, 10, 12, 16, 20, 26, 40] {
        test.write("doc.md", THREE_KERNELS);
        let run = run_under(&test, &format!("ulimit -Sn {limit};"), "run doc.md --json");
        assert!(run.code == 0 || run.code == 1, "{limit}: {}", run.stderr);
        let events = events(&run.stdout);
        let finished: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "cell-finished")
            .collect();
        for cell in &finished {
            let index = cell["index"].as_u64().unwrap() as usize;
            if cell["status"] == "passed" {
                assert_eq!(cell["recorded"], expected[index], "{limit}: {cell}");
            }
        }
        if run.code == 0 {
            assert_eq!(finished.len(), 3, "{limit}");
        }
    }
}

/// A small tmpfs, unmounted on drop; `None`, saying so, where mounting
/// is not allowed.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a small tmpfs here (it needs root)");
            return None;
        }
        Some(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_an_error_and_the_document_stays_whole() {
    let test = Test::new();
    let Some(disk) = SmallDisk::mount(&test.path("disk"), "64k") else {
        return;
    };
    let inner = Test {
        dir: tempfile::tempdir_in(&disk.0).unwrap(),
    };
    // Outputs too big for the disk: the document cannot be rewritten.
    let doc = "```bash\nhead -c 60000 /dev/zero | tr '\\0' x | fold -w 100\n```\n";
    inner.write("doc.md", doc);
    let run = inner
        .run(&["run", "doc.md", "--max-output", "1000,1MiB"])
        .code(1);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert_eq!(inner.read("doc.md"), doc);
    let left: Vec<_> = walk(inner.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A capture too big for the state file: the run says it is not kept.
    std::fs::remove_dir_all(inner.path(".runbook")).ok();
    let doc = "```bash {capture=BIG output=none}\nhead -c 60000 /dev/zero | tr '\\0' x\n```\n";
    inner.write("doc.md", doc);
    let run = inner.run(&["run", "doc.md"]).code(1);
    assert!(run.stderr.contains("could not save"), "{}", run.stderr);
    drop(inner);
}

/// Whether this process may make mount namespaces (`unshare -m`).
fn can_unshare() -> bool {
    let can = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        eprintln!("skipped: `unshare -m` is not allowed here (it needs root)");
    }
    can
}

#[test]
fn no_proc_or_dev_null_is_an_error_before_anything_runs() {
    if !can_unshare() {
        return;
    }
    let test = Test::new();
    let doc = "```bash\ntouch ran; echo hi\n```\n";
    for (hidden, says) in [("/proc", "/proc is not mounted"), ("/dev", "/dev/null")] {
        test.write("doc.md", doc);
        let runbook = env!("CARGO_BIN_EXE_runbook");
        let output = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs tmpfs {hidden} && exec '{runbook}' run doc.md"
            ))
            .current_dir(test.dir.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let run = crate::support::Run::from(output).code(2);
        assert!(run.stderr.contains(says), "{hidden}: {}", run.stderr);
        assert!(!test.path("ran").exists(), "{hidden}");
        assert_eq!(test.read("doc.md"), doc);
    }
}
