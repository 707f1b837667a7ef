//! Regression tests for the holes a hostile run found in files, processes,
//! streams and input: each tries the attack and checks it fails.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{assert_no_process, processes_with, Test};

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

#[test]
fn a_document_behind_a_link_is_written_through_it_keeping_owner_mode_and_links() {
    let test = Test::new();
    let doc = "```bash\necho hi\n```\n";
    let real = test.write("real/a.md", doc);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&real, Some(4321), Some(4321)).unwrap();
    } else {
        eprintln!("skipped: the owner check needs root to give the file away");
    }
    std::os::unix::fs::symlink("real/a.md", test.path("link.md")).unwrap();
    test.run(&["run", "link.md"]).code(0);
    assert!(std::fs::symlink_metadata(test.path("link.md"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        test.read("real/a.md"),
        "```bash\necho hi\n```\n```output\nhi\n```\n"
    );
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (4321, 4321));
    }
    // Hard links all see the outputs.
    test.write("b.md", doc);
    std::fs::hard_link(test.path("b.md"), test.path("b-link.md")).unwrap();
    test.run(&["run", "b.md"]).code(0);
    assert!(test.read("b-link.md").contains("```output\nhi\n```"));
}

#[test]
fn a_read_only_document_is_refused_before_any_cell_runs() {
    let test = Test::new();
    let path = test.write("doc.md", "```bash\ntouch ran\n```\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let run = test.run(&["run", "doc.md"]).code(2);
    assert!(run.stderr.contains("doc.md is read-only"), "{}", run.stderr);
    assert!(!test.path("ran").exists());
    // It can still run without writing.
    test.run(&["run", "doc.md", "--no-write"]).code(0);
}

#[test]
fn the_lock_never_follows_a_link_and_each_file_keeps_its_own_state() {
    let test = Test::new();
    test.write("lab.md", "```bash\necho md\n```\n");
    test.write("lab.markdown", "```bash {#other}\necho markdown\n```\n");
    test.write("victim.txt", "precious\n");
    std::fs::create_dir_all(test.path(".runbook")).unwrap();
    std::os::unix::fs::symlink(test.path("victim.txt"), test.path(".runbook/lab.md.lock")).unwrap();
    let run = test.run(&["run", "lab.md"]).code(0);
    assert_eq!(test.read("victim.txt"), "precious\n", "{}", run.stderr);
    // Nor does the state file.
    test.write("victim2.txt", "precious too\n");
    std::os::unix::fs::symlink(
        test.path("victim2.txt"),
        test.path(".runbook/lab.markdown.json"),
    )
    .unwrap();
    let run = test.run(&["run", "lab.markdown"]).code(2);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(test.read("victim2.txt"), "precious too\n");
    std::fs::remove_file(test.path(".runbook/lab.markdown.json")).unwrap();
    test.run(&["run", "lab.markdown"]).code(0);
    let md = test.read(".runbook/lab.md.json");
    let markdown = test.read(".runbook/lab.markdown.json");
    assert!(md.contains("\"1\"") && !md.contains("\"other\""), "{md}");
    assert!(markdown.contains("\"other\""), "{markdown}");
}

#[test]
fn file_cells_write_inside_the_folder_only() {
    let test = Test::new();
    for (path, why) in [
        ("../escaped.txt", "leads out of the runbook's folder"),
        ("/tmp/runbook-absolute.txt", "is absolute"),
        ("out-{{ V }}.txt", "cannot be a template"),
    ] {
        test.write(
            "doc.md",
            &format!("# T\n\n```text {{file={path}}}\nx\n```\n"),
        );
        let run = test.run(&["run", "doc.md"]).code(2);
        assert!(run.stderr.contains(why), "{path}: {}", run.stderr);
        assert!(run.stderr.contains("doc.md:3:"), "{path}: {}", run.stderr);
    }
    assert!(!test
        .dir
        .path()
        .parent()
        .unwrap()
        .join("escaped.txt")
        .exists());
    // A link inside the folder that leads out is not followed.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), test.path("out")).unwrap();
    test.write("doc.md", "```text {file=out/x.txt}\nx\n```\n");
    let run = test.run(&["run", "doc.md"]).code(1);
    assert!(run.stderr.contains("through a link"), "{}", run.stderr);
    assert!(!outside.path().join("x.txt").exists());
    // The mode is the file's from the start, and kept.
    test.write("doc.md", "```text {file=key.txt mode=0600}\nk\n```\n");
    test.run(&["run", "doc.md"]).code(0);
    let mode = std::fs::metadata(test.path("key.txt")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn what_a_killed_run_left_behind_is_cleaned_up() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho hi\n```\n");
    test.write("fixtures/doc.json", "{\"version\": 1, \"calls\": []}\n");
    // Left by a process that no longer exists.
    let temp = test.write(".doc.md.runbook-999999999-AbCdEf.tmp", "half a document");
    let shims = std::env::temp_dir().join("runbook-shims-999999999-AbCdEf");
    std::fs::create_dir_all(&shims).unwrap();
    test.run(&["run", "doc.md", "--replay", "fixtures"]).code(0);
    assert!(!temp.exists());
    assert!(!shims.exists());
}

#[test]
fn the_shim_folder_and_socket_are_private_whatever_the_umask() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nstat -c %a \"$(dirname \"$RUNBOOK_SHIM_SOCKET\")\" \"$RUNBOOK_SHIM_SOCKET\"\n```\n",
    );
    test.write("fixtures/doc.json", "{\"version\": 1, \"calls\": []}\n");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec {} run doc.md --replay fixtures",
            env!("CARGO_BIN_EXE_runbook")
        ))
        .current_dir(test.dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(
        test.read("doc.md").contains("```output\n700\n600\n```"),
        "{}",
        test.read("doc.md")
    );
}

#[test]
fn output_that_looks_like_wildcards_is_recorded_literally_and_updated() {
    let test = Test::new();
    test.write("data.txt", "...\nx [..] y\n");
    test.write("doc.md", "```bash\ncat data.txt\n```\n");
    test.run(&["run", "doc.md"]).code(0);
    assert!(test
        .read("doc.md")
        .contains("```output {literal}\n...\nx [..] y\n```"));
    test.run(&["test", "doc.md"]).code(0);
    // Any other output now fails the test and replaces the block.
    test.write("data.txt", "other\n");
    test.run(&["test", "doc.md"]).code(1);
    test.run(&["run", "doc.md"]).code(0);
    assert!(test.read("doc.md").contains("```output\nother\n```"));
}

#[test]
fn test_passes_a_document_whose_recorded_cell_failed() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\necho ok\n```\n```output\nok\n```\n\n```bash\necho boom; exit 3\n```\n```output {exit=3}\nboom\n```\n\n```bash\necho never\n```\n",
    );
    let run = test.run(&["test", "doc.md"]).code(0);
    assert!(run.stdout.contains("cell 3 ... skipped"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("2 passed, 0 failed, 1 skipped\n"),
        "{}",
        run.stdout
    );
    // --update says what it updated and exits 0; what it cannot update
    // (a cell that did not run but has an output recorded) fails it.
    test.write("doc.md", "```bash\necho new\n```\n```output\nold\n```\n");
    let run = test.run(&["test", "doc.md", "--update"]).code(0);
    assert!(run.stdout.contains("cell 1 ... updated"), "{}", run.stdout);
    test.write(
        "doc.md",
        "```bash\nexit 4\n```\n\n```bash\necho two\n```\n```output\ntwo\n```\n",
    );
    let run = test.run(&["test", "doc.md", "--update"]).code(1);
    assert!(run.stdout.contains("cell 2 ... FAILED"), "{}", run.stdout);
}

#[test]
fn a_closed_stdout_does_not_stop_the_run_and_no_child_survives() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nseq 1 5000\n```\n\n```bash\nsleep 300.71 &\nsetsid sleep 300.72 &\necho started\n```\n\n```bash\necho last\n```\n",
    );
    let mut child = test
        .command(&["run", "doc.md"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader goes away, as `| head -1` does.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(first, "1\n");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let doc = test.read("doc.md");
    assert!(doc.contains("```output\nlast\n```"), "{doc}");
    assert!(test.path(".runbook/doc.md.json").exists());
    assert_no_process("sleep 300.71");
    assert_no_process("sleep 300.72");
}

#[test]
fn cells_that_redirect_or_close_their_streams_end_and_the_next_cell_runs() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nexec >/dev/null\necho gone\n```\n\n```bash\necho after1\n```\n\n```bash\nexec 1>&-\ntrue\n```\n\n```bash\necho after2\n```\n\n```bash\nexec > >(cat >> log) 2>&1\necho teed\n```\n\n```bash\necho after3\n```\n\n```python\nimport os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 2)\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n```\n\n```python\nprint('after4')\n```\n\n```bash\nexec 3<&-\necho closed3\n```\n\n```bash\necho after5\n```\n",
    );
    let mut child = test
        .command(&["run", "doc.md"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run hung:\n{}", test.read("doc.md"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success(), "{}", test.read("doc.md"));
    let doc = test.read("doc.md");
    for line in ["after1", "after2", "after3", "after4", "closed3", "after5"] {
        assert!(
            doc.contains(&format!("```output\n{line}\n```")),
            "{line}\n{doc}"
        );
    }
}

#[test]
fn one_interpreter_exiting_leaves_the_others_background_jobs_alone() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```python\nimport subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 1; touch bg-done'])\n```\n\n```bash {continue-on-error}\nexit 3\n```\n\n```bash\nfor i in $(seq 1 100); do [ -e bg-done ] && break; sleep 0.1; done\nls bg-done\n```\n",
    );
    let run = test.run(&["run", "doc.md"]);
    assert!(
        test.read("doc.md").contains("```output\nbg-done\n```"),
        "{}\n{}",
        run.stderr,
        test.read("doc.md")
    );
}

#[test]
fn a_replayed_tool_whose_reader_goes_away_dies_of_sigpipe_like_the_real_one() {
    let test = Test::new();
    let listing: String = (0..20_000).map(|i| format!("pod-{i} Running\n")).collect();
    let cassette = serde_json::json!({
        "version": 1,
        "calls": [{"argv": ["kubectl", "get", "pods"], "stdout": listing, "exit": 0}]
    });
    test.write("fixtures/doc.json", &cassette.to_string());
    test.write(
        "doc.md",
        "```bash\nkubectl get pods | head -1\necho \"status ${PIPESTATUS[0]}\"\n```\n",
    );
    test.run(&["run", "doc.md", "--replay", "fixtures"]).code(0);
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output\npod-0 Running\nstatus 141\n```"),
        "{doc}"
    );
}

#[test]
fn memory_stays_bounded_whatever_a_cell_prints() {
    let test = Test::new();
    // 200 MB of output, then a pause in which the peak is read.
    test.write(
        "doc.md",
        "```bash\nyes 0123456789012345678901234567890123456789 | head -c 200000000\n```\n\n```bash\nsleep 1\n```\n",
    );
    let mut child = test
        .command(&["run", "doc.md"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak_kib > 0, "the peak was never read");
    assert!(
        peak_kib < 64 * 1024,
        "peak resident memory {peak_kib} KiB for 200 MB printed"
    );
    let doc = test.read("doc.md");
    assert!(doc.contains("left out ...]"), "{doc}");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let test = Test::new();
    test.write("doc.md", "```bash\ntouch ran\n```\n");
    std::fs::create_dir_all(test.path("folder")).unwrap();
    test.write(
        "fx-exit/doc.json",
        "{\"version\": 1, \"calls\": [{\"argv\": [\"az\"], \"exit\": 256}]}",
    );
    test.write("fx-version/doc.json", "{\"version\": 99, \"calls\": []}");
    for (args, says) in [
        (&["run", "doc.md", "--output", "folder"][..], "is a folder"),
        (
            &["run", "doc.md", "--output", "missing/out.md"][..],
            "does not exist",
        ),
        (
            &["run", "doc.md", "--max-output", "0"][..],
            "zero is not a limit",
        ),
        (
            &["run", "doc.md", "--max-output", "0B"][..],
            "zero is not a limit",
        ),
        (
            &["run", "doc.md", "--max-output", "1,2,3"][..],
            "invalid output limit",
        ),
        (
            &["run", "doc.md", "--max-output", "99999999999999999999G"][..],
            "invalid output limit",
        ),
        (
            &["run", "doc.md", "--max-output", "18446744073709551615G"][..],
            "too large",
        ),
        (
            &["run", "doc.md", "--resume", "--cell", "1"][..],
            "cannot be used with",
        ),
        (
            &["run", "doc.md", "--replay", "fx-exit"][..],
            "has exit status 256",
        ),
        (
            &["run", "doc.md", "--replay", "fx-version"][..],
            "version 99",
        ),
        (&["test", "-j", "0", "doc.md"][..], "-j"),
        (&["check", "missing.md"][..], "missing.md"),
    ] {
        let run = test.run(args);
        assert_eq!(run.code, 2, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(says) || run.stdout.contains(says),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!test.path("ran").exists(), "{args:?} ran a cell");
    }
    // import does not replace a file unless told to.
    test.write(
        "nb.ipynb",
        &serde_json::json!({"cells": [{"cell_type": "code", "source": ["echo hi\n"], "metadata": {}, "outputs": []}], "metadata": {"kernelspec": {"name": "bash", "language": "bash"}}, "nbformat": 4, "nbformat_minor": 5}).to_string(),
    );
    let run = test.run(&["import", "nb.ipynb", "-o", "doc.md"]).code(2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(test.read("doc.md"), "```bash\ntouch ran\n```\n");
    test.run(&["import", "nb.ipynb", "-o", "doc.md", "--force"])
        .code(0);
    // An exit status on a block with no cell above it.
    test.write("orphan.md", "# T\n\n```output {exit=2}\nboom\n```\n");
    let run = test.run(&["run", "orphan.md"]).code(2);
    assert!(
        run.stderr.contains("no cell stands right above it"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("orphan.md:3:"), "{}", run.stderr);
}

#[test]
fn shell_blocks_in_a_notebooks_markdown_stay_prose() {
    let test = Test::new();
    test.write(
        "nb.ipynb",
        &serde_json::json!({"cells": [
            {"cell_type": "markdown", "source": ["How not to do it:\n", "```bash\n", "touch pwned\n", "```\n"], "metadata": {}},
            {"cell_type": "code", "source": ["echo hi\n"], "metadata": {}, "outputs": []}
        ], "metadata": {"kernelspec": {"name": "bash", "language": "bash"}}, "nbformat": 4, "nbformat_minor": 5}).to_string(),
    );
    test.run(&["import", "nb.ipynb", "-o", "doc.md"]).code(0);
    let doc = test.read("doc.md");
    assert!(doc.contains("```{.bash}\ntouch pwned\n```"), "{doc}");
    test.run(&["run", "doc.md"]).code(0);
    assert!(!test.path("pwned").exists());
    let list = test.run(&["list", "doc.md", "--json"]).code(0);
    assert_eq!(list.stdout.lines().count(), 1, "{}", list.stdout);
    let _ = processes_with("never");
}
