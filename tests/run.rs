//! `runbook run` on real files with real processes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{assert_no_process, walk, Test};

#[test]
fn shell_state_carries_forward_and_outputs_are_recorded() {
    let test = Test::new();
    test.write(
        "doc.md",
        "# Kernel\n\n```bash\nX=42\nexport Y=exported\nf() { echo \"f says $1\"; }\nmkdir -p sub && cd sub\n```\n\n```bash\necho \"$X $Y\"; f hi; basename \"$PWD\"\n```\n\nText after.\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(
        test.read("doc.md"),
        "# Kernel\n\n```bash\nX=42\nexport Y=exported\nf() { echo \"f says $1\"; }\nmkdir -p sub && cd sub\n```\n\n```bash\necho \"$X $Y\"; f hi; basename \"$PWD\"\n```\n```output\n42 exported\nf says hi\nsub\n```\n\nText after.\n"
    );
}

#[test]
fn running_twice_leaves_the_file_byte_identical_and_untouched() {
    let test = Test::new();
    let path = test.write("doc.md", "```bash\necho one\necho two >&2\n```\n");
    test.run(&["run", "doc.md"]).code(0);
    let first = test.read("doc.md");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), first);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}

#[test]
fn sh_python_and_zsh_cells_keep_their_own_state() {
    let test = Test::new();
    let zsh = runbook::tools::find_on_path("zsh", None).is_some();
    let mut doc = String::from(
        "```sh\nA=from-sh\n```\n\n```sh\necho \"sh: $A\"\n```\n\n```python\nimport os\nvalue = 6 * 7\n```\n\n```python\nprint('python:', value)\n```\n",
    );
    if zsh {
        doc.push_str(
            "\n```zsh\ntypeset -A m\nm[k]=zsh-map\n```\n\n```zsh\necho \"zsh: ${m[k]}\"\n```\n",
        );
    } else {
        eprintln!("skipped: zsh cells (zsh is not installed)");
    }
    test.write("doc.md", &doc);
    test.run(&["run", "doc.md"]).code(0);
    let written = test.read("doc.md");
    assert!(written.contains("```output\nsh: from-sh\n```"), "{written}");
    assert!(written.contains("```output\npython: 42\n```"), "{written}");
    if zsh {
        assert!(
            written.contains("```output\nzsh: zsh-map\n```"),
            "{written}"
        );
    }
}

#[test]
fn a_missing_interpreter_is_an_error_before_anything_runs() {
    let test = Test::new();
    let doc = "```bash\ntouch ran\n```\n\n```pwsh\nWrite-Output hi\n```\n";
    test.write("doc.md", doc);
    if runbook::tools::find_on_path("pwsh", Some("/usr/bin:/bin")).is_some() {
        eprintln!("skipped: pwsh is installed, so it is not missing");
        return;
    }
    let run = test
        .run_env(&["run", "doc.md"], &[("PATH", "/usr/bin:/bin")])
        .code(2);
    assert!(
        run.stderr
            .contains("`pwsh` is not on PATH; cell 2 needs it"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("doc.md:5:"), "{}", run.stderr);
    assert!(!test.path("ran").exists());
    assert_eq!(test.read("doc.md"), doc);
}

#[test]
fn pwsh_cells_get_their_code_and_variables() {
    // A stand-in `pwsh` that prints the code it reads on stdin and keeps
    // its arguments, so the plumbing is tested without PowerShell.
    let test = Test::new();
    test.write(
        "bin/pwsh",
        "#!/bin/bash\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/../argv\"\ncat\necho \"env NAME=$NAME\"\n",
    );
    std::fs::set_permissions(
        test.path("bin/pwsh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    test.write("doc.md", "---\nrunbook:\n  params:\n    NAME: \"a b\"\n---\n```pwsh\nWrite-Output \"{{ NAME }}\"\n```\n");
    let path = format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    test.run_env(&["run", "doc.md"], &[("PATH", &path)]).code(0);
    assert!(
        test.read("doc.md")
            .contains("```output\nWrite-Output \"a b\"\nenv NAME=a b\n```"),
        "{}",
        test.read("doc.md")
    );
    // The code never appears on the command line, where `ps` shows it.
    let argv = test.read("argv");
    assert!(!argv.contains("Write-Output"), "{argv}");
    assert!(argv.contains("-NonInteractive\n-Command\n"), "{argv}");
}

#[test]
fn captures_params_and_templates() {
    let test = Test::new();
    test.write("params.yaml", "REGION: westeurope\n");
    test.write("more.env", "# comment\nexport TEAM='platform'\n");
    test.write(
        "doc.md",
        r#"---
runbook:
  params:
    ENVIRONMENT: dev
    RG: "rg-{{ ENVIRONMENT }}-aks"
---
```bash {capture=ISSUER}
echo "https://oidc.example/{{ RG }}/"
```

```bash {capture-json=SA}
echo '{"metadata": {"name": "wi-sa", "labels": ["a", "b"]}}'
```

```bash
echo "$ISSUER {{ SA.metadata.name }} {{ SA.metadata.labels[1] }} $REGION {{ TEAM }} {{ OWNER }}"
echo "$SA"
```
"#,
    );
    test.run(&[
        "run",
        "doc.md",
        "--params",
        "params.yaml",
        "--params",
        "more.env",
        "--set",
        "OWNER=me",
        "--set",
        "ENVIRONMENT=prod",
    ])
    .code(0);
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output\nhttps://oidc.example/rg-prod-aks/ wi-sa b westeurope platform me\n{\"metadata\":{\"name\":\"wi-sa\",\"labels\":[\"a\",\"b\"]}}\n```"),
        "{doc}"
    );
}

#[test]
fn captured_values_never_execute_as_code() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {capture=A}\necho '$(touch pwned-a)'\n```\n\n```bash {capture=B}\necho \"'; touch pwned-b; echo '\"\n```\n\n```bash {capture=C}\necho '`touch pwned-c`'\n```\n\n```bash\necho {{ A }}\necho {{ B }}\necho \"{{ C }}\"\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    for name in ["pwned-a", "pwned-b", "pwned-c"] {
        assert!(!test.path(name).exists(), "{name} was created");
    }
    assert!(
        test.read("doc.md")
            .contains("```output\n$(touch pwned-a)\n'; touch pwned-b; echo '\n"),
        "{}",
        test.read("doc.md")
    );
}

#[test]
fn undefined_variables_are_reported_before_anything_runs() {
    let test = Test::new();
    let doc = "---\nrunbook:\n  params:\n    ENVIRONMENT: dev\n---\n```bash\ntouch ran\n```\n\n```bash\necho {{ DNS_RG }}\n```\n\n```bash {capture=LATER}\necho x\n```\n\n```yaml {file=out.yaml}\nname: {{ LATER }}\nother: {{ LATER }}\n```\n";
    test.write("doc.md", doc);
    let run = test.run(&["run", "doc.md"]).code(2);
    assert!(
        run.stderr
            .contains("error: undefined variable DNS_RG (defined so far: ENVIRONMENT)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("doc.md:11:9"), "{}", run.stderr);
    assert!(!run.stderr.contains("LATER"), "{}", run.stderr);
    assert!(!test.path("ran").exists());
    assert_eq!(test.read("doc.md"), doc);
}

#[test]
fn a_failure_stops_the_run_and_is_recorded() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho before\n```\n\n```bash\necho partial; exit 3\n```\n\n```bash\ntouch after\n```\n");
    let run = test.run(&["run", "doc.md"]).code(1);
    assert!(
        run.stderr.contains("<== 2: FAILED exit 3"),
        "{}",
        run.stderr
    );
    assert!(!test.path("after").exists());
    assert!(
        test.read("doc.md")
            .contains("```output {exit=3}\npartial\n```"),
        "{}",
        test.read("doc.md")
    );
}

#[test]
fn expect_retries_continue_on_error_and_cwd() {
    let test = Test::new();
    std::fs::create_dir(test.path("work")).unwrap();
    test.write(
        "doc.md",
        "```bash {expect=3}\nexit 3\n```\n\n```bash {expect=any}\nfalse\n```\n\n```bash {retries=2 retry-delay=10ms}\necho try >> tries; [ $(wc -l < tries) -ge 3 ]\n```\n\n```bash {continue-on-error}\necho broken; false\n```\n\n```bash {cwd=work}\npwd\n```\n\n```bash\nbasename \"$PWD\"\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    let doc = test.read("doc.md");
    assert!(doc.contains("```output {exit=3}\n```"), "{doc}");
    assert_eq!(test.read("tries"), "try\ntry\ntry\n");
    assert!(doc.contains("```output {exit=1}\nbroken\n```"), "{doc}");
    let folder = test.dir.path().canonicalize().unwrap();
    assert!(
        doc.contains(&format!("```output\n{}/work\n```", folder.display())),
        "{doc}"
    );
    let name = folder.file_name().unwrap().to_str().unwrap();
    assert!(doc.contains(&format!("```output\n{name}\n```")), "{doc}");
}

#[test]
fn a_kernel_that_exits_is_restarted_with_the_variables() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {capture=V}\necho kept\n```\n\n```bash {continue-on-error}\nexit 4\n```\n\n```bash\necho \"$V {{ V }}\"\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert!(
        test.read("doc.md").contains("```output\nkept kept\n```"),
        "{}",
        test.read("doc.md")
    );
}

#[test]
fn skip_output_none_and_file_cells() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  params:\n    NS: team-a\n---\n```bash {skip}\ntouch skipped\n```\n```output\nkept as written\n```\n\n```bash {output=none}\necho quiet; touch quiet\n```\n\n```yaml {file=k8s/ns.yaml mode=0600}\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ NS }}\n```\n\n```bash\nkubectl create configmap ns --from-file=k8s/ns.yaml --dry-run=client -o name\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    let doc = test.read("doc.md");
    assert!(!test.path("skipped").exists());
    assert!(doc.contains("```bash {skip}\ntouch skipped\n```\n```output\nkept as written\n```"));
    assert!(test.path("quiet").exists());
    assert!(!doc.contains("```output\nquiet"), "{doc}");
    assert_eq!(
        test.read("k8s/ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n"
    );
    let mode = std::fs::metadata(test.path("k8s/ns.yaml"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    if runbook::tools::find_on_path("kubectl", None).is_some() {
        assert!(doc.contains("```output\nconfigmap/ns\n```"), "{doc}");
    }
}

#[test]
fn stdin_of_a_cell_is_empty() {
    let test = Test::new();
    test.write("doc.md", "```bash\ncat; echo \"cat done\"\nread line || echo \"read hit EOF\"\n```\n\n```python\nimport sys\nprint(repr(sys.stdin.read()))\n```\n");
    // Give the run a stdin that would hand out data if cells could read it.
    let mut child = test
        .command(&["run", "doc.md"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"secret input\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output\ncat done\nread hit EOF\n```"),
        "{doc}"
    );
    assert!(doc.contains("```output\n''\n```"), "{doc}");
}

#[test]
fn confirm_needs_a_terminal_or_yes() {
    let test = Test::new();
    let doc = "```bash {confirm}\ntouch confirmed\n```\n";
    test.write("doc.md", doc);
    let run = test.run(&["run", "doc.md"]).code(2);
    assert!(
        run.stderr
            .contains("asks for confirmation, but there is no terminal"),
        "{}",
        run.stderr
    );
    assert!(!test.path("confirmed").exists());
    test.run(&["run", "doc.md", "--yes"]).code(0);
    assert!(test.path("confirmed").exists());
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {timeout=1s continue-on-error}\necho started\nsleep 413.1 &\nsetsid sleep 413.2 &\nbash -c 'sleep 413.3; echo never'\n```\n\n```bash\necho next\n```\n",
    );
    let started = Instant::now();
    test.run(&["run", "doc.md"]).code(0);
    assert!(started.elapsed() < Duration::from_secs(30));
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output {exit=124}\nstarted\n[runbook: timed out after 1s]\n```"),
        "{doc}"
    );
    assert!(doc.contains("```output\nnext\n```"), "{doc}");
    assert_no_process("413.");
}

#[test]
fn background_jobs_live_across_cells_but_not_past_the_run() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nsleep 414.1 &\nBG=$!\nnohup setsid sleep 414.2 >/dev/null 2>&1 &\n```\n\n```bash\nkill -0 $BG && echo still running\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert!(test
        .read("doc.md")
        .contains("```output\nstill running\n```"));
    assert_no_process("414.");
}

#[test]
fn ctrl_c_interrupts_records_and_leaves_no_process() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\necho first\n```\n\n```bash\necho waiting\nsetsid sleep 415.1 &\nsleep 415.2\n```\n\n```bash\ntouch not-reached\n```\n",
    );
    let mut child = test
        .command(&["run", "doc.md", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until the second cell has printed, so it is surely running.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"text\":\"waiting\\n\"") {
            break;
        }
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let events: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let finished = events
        .iter()
        .find(|e| e["event"] == "cell-finished")
        .unwrap();
    assert_eq!(finished["status"], "interrupted");
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output {exit=130}\nwaiting\n[runbook: interrupted]\n```"),
        "{doc}"
    );
    assert!(!test.path("not-reached").exists());
    assert_no_process("415.");
}

#[test]
fn no_write_output_file_and_dry_run() {
    let test = Test::new();
    let doc = "---\nrunbook:\n  params:\n    WHO: \"the world\"\n---\n```bash {capture=X}\necho hi; touch ran\n```\n\n```bash\necho {{ X }} {{ WHO }}\n```\n";
    test.write("doc.md", doc);
    let run = test.run(&["run", "doc.md", "--dry-run"]).code(0);
    assert_eq!(
        run.stdout,
        "# cell 1 (bash), doc.md:6\necho hi; touch ran\n\n# cell 2 (bash), doc.md:10\necho '<X>' 'the world'\n\n"
    );
    assert!(!test.path("ran").exists());
    test.run(&["run", "doc.md", "--no-write"]).code(0);
    assert!(test.path("ran").exists());
    assert_eq!(test.read("doc.md"), doc);
    test.run(&["run", "doc.md", "--output", "executed.md"])
        .code(0);
    assert_eq!(test.read("doc.md"), doc);
    assert!(test
        .read("executed.md")
        .contains("```output\nhi the world\n```"));
}

#[test]
fn json_events_describe_the_run() {
    let test = Test::new();
    test.write("doc.md", "```bash {id=greet capture=G}\necho hello\n```\n");
    let run = test.run(&["run", "doc.md", "--json"]).code(0);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run-started",
            "cell-started",
            "output",
            "cell-finished",
            "run-finished"
        ]
    );
    assert_eq!(events[0]["file"], "doc.md");
    assert_eq!(events[2]["text"], "hello\n");
    assert_eq!(events[3]["captured"], serde_json::json!(["G"]));
    assert_eq!(events[3]["exit"], 0);
    assert!(events[3]["duration_ms"].is_u64());
    assert_eq!(events[4]["passed"], 1);
}

#[test]
fn ansi_is_stripped_and_long_output_is_cut() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nprintf '\\033[31mred\\033[0m\\n'\nseq 1 100\n```\n",
    );
    test.run(&["run", "doc.md", "--max-output", "6"]).code(0);
    assert_eq!(
        test.read("doc.md"),
        "```bash\nprintf '\\033[31mred\\033[0m\\n'\nseq 1 100\n```\n```output\nred\n1\n2\n[... 95 lines (278 B) left out ...]\n98\n99\n100\n```\n"
    );
}

#[test]
fn secrets_never_reach_any_byte_the_run_writes() {
    let test = Test::new();
    let jwt =
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJlLXZhbHVl";
    // The document holds the token cut in two; only the cell's output is whole.
    let (jwt_head, jwt_tail) = jwt.split_at(20);
    test.write(
        "doc.md",
        &format!(
            "---\nrunbook:\n  secrets: [FROM_ENV]\n---\n```bash {{capture=TOKEN secret}}\necho \"captured-$(echo s3cret)-value\"\n```\n\n```bash\necho \"$TOKEN $GIVEN $FROM_ENV $(echo {jwt_head} {jwt_tail} | tr -d ' ')\"\necho \"{{{{ TOKEN }}}}\" >&2\n```\n\n```bash {{capture=PLAIN}}\necho \"$GIVEN\"\n```\n\n```bash\nfalse \"$GIVEN\"\n```\n"
        ),
    );
    let env = [("FROM_ENV", "env-s3cret-value")];
    let run = test.run_env(
        &[
            "run",
            "doc.md",
            "--json",
            "--secret",
            "GIVEN=given-s3cret-value",
            "--output",
            "out.md",
        ],
        &env,
    );
    let run2 = test.run_env(
        &["run", "doc.md", "--secret", "GIVEN=given-s3cret-value"],
        &env,
    );
    let mut everything = Vec::new();
    for output in [&run, &run2] {
        everything.extend_from_slice(output.stdout.as_bytes());
        everything.extend_from_slice(output.stderr.as_bytes());
    }
    for entry in walk(test.dir.path()) {
        everything.extend(std::fs::read(entry).unwrap());
    }
    let everything = String::from_utf8_lossy(&everything);
    for secret in [
        "captured-s3cret-value",
        "given-s3cret-value",
        "env-s3cret-value",
        jwt,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    let doc = test.read("doc.md");
    assert!(
        doc.contains("```output\n[masked:TOKEN] [masked:GIVEN] [masked:FROM_ENV] [masked:JWT]\n[masked:TOKEN]\n```"),
        "{doc}"
    );
    assert!(doc.contains("```output\n[masked:GIVEN]\n```"), "{doc}");
}

#[test]
fn on_a_terminal_confirm_asks_and_a_status_line_shows_progress() {
    if runbook::tools::find_on_path("script", None).is_none() {
        eprintln!("skipped: `script` (util-linux) is not installed, so no terminal can be given");
        return;
    }
    let test = Test::new();
    test.write("doc.md", "```bash {id=ask confirm}\ntouch yes-ran\n```\n\n```bash {id=slow}\nsleep 0.4; echo done\n```\n\n```bash {id=refused confirm}\ntouch no-ran\n```\n");
    let binary = env!("CARGO_BIN_EXE_runbook");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{binary} run doc.md"), "/dev/null"])
        .current_dir(test.dir.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"y\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(b"n\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        screen.contains("Run cell ask (touch yes-ran)? [y/N]"),
        "{screen}"
    );
    assert!(
        screen.contains("Run cell refused (touch no-ran)? [y/N]"),
        "{screen}"
    );
    assert!(screen.contains("[2/3] slow (bash)"), "{screen}");
    // On a terminal the result is painted: strip the colour to read it.
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&screen, "");
    assert!(plain.contains("<== refused: skipped"), "{screen}");
    assert!(screen.contains("\x1b[33mskipped\x1b[0m"), "{screen}");
    assert!(test.path("yes-ran").exists());
    assert!(!test.path("no-ran").exists());
}

#[test]
fn a_document_edited_during_the_run_is_not_overwritten() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\necho first\n```\n\n```bash\necho '<!-- edited -->' >> doc.md\necho second\n```\n",
    );
    let run = test.run(&["run", "doc.md"]).code(1);
    assert!(
        run.stderr
            .contains("doc.md changed on disk during the run; the edit is kept as it is, and the executed document was written to doc.conflict.md"),
        "{}",
        run.stderr
    );
    let doc = test.read("doc.md");
    assert!(doc.ends_with("<!-- edited -->\n"), "{doc}");
    assert!(!doc.contains("```output\nsecond"), "{doc}");
    // Neither side is lost: the outputs are in the conflict copy.
    let conflict = test.read("doc.conflict.md");
    assert!(conflict.contains("```output\nsecond\n```"), "{conflict}");
}

#[test]
fn a_timed_out_attempt_is_retried_in_a_fresh_kernel() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {capture=V}\necho kept\n```\n\n```bash {timeout=500ms retries=1 retry-delay=10ms}\necho try >> tries\n[ $(wc -l < tries) -ge 2 ] || sleep 416.1\necho \"done with $V\"\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("tries"), "try\ntry\n");
    // The record is the last attempt's; the variable survived the restart.
    assert!(
        test.read("doc.md")
            .contains("```output\ndone with kept\n```"),
        "{}",
        test.read("doc.md")
    );
    assert_no_process("416.1");
}

#[test]
fn python_cells_honour_cwd() {
    let test = Test::new();
    std::fs::create_dir(test.path("sub")).unwrap();
    test.write("doc.md", "```python {cwd=sub}\nimport os\nprint(os.path.basename(os.getcwd()))\n```\n\n```python\nimport os\nprint(os.path.basename(os.getcwd()) != 'sub')\n```\n");
    test.run(&["run", "doc.md"]).code(0);
    let doc = test.read("doc.md");
    assert!(doc.contains("```output\nsub\n```"), "{doc}");
    assert!(doc.contains("```output\nTrue\n```"), "{doc}");
}

#[test]
fn check_writes_nothing_and_fails_with_a_diff_when_the_document_would_change() {
    let test = Test::new();
    let doc = "```bash\necho fresh\n```\n```output\nstale\n```\n";
    test.write("doc.md", doc);
    let run = test.run(&["run", "doc.md", "--check"]).code(1);
    assert!(run.stdout.contains("-stale\n+fresh\n"), "{}", run.stdout);
    assert!(
        run.stderr.contains("the document would change"),
        "{}",
        run.stderr
    );
    assert_eq!(test.read("doc.md"), doc);
    assert!(
        !test.path(".runbook").exists(),
        "--check writes no state either"
    );
    // --diff writes, shows the change, and says so.
    let run = test.run(&["run", "doc.md", "--diff"]).code(0);
    assert!(run.stdout.contains("-stale\n+fresh\n"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("doc.md: outputs recorded in the runbook"),
        "{}",
        run.stderr
    );
    // Now the document is up to date: --check passes and says nothing.
    let run = test.run(&["run", "doc.md", "--check"]).code(0);
    assert!(!run.stdout.contains("@@"), "{}", run.stdout);
}

#[test]
fn the_summary_counts_cells_that_never_ran_and_a_skipped_cell_gets_one_line() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\necho one\n```\n\n```bash {skip}\necho never\n```\n\n```bash\nexit 3\n```\n\n```bash\necho after\n```\n\n```bash\necho last\n```\n",
    );
    let run = test.run(&["run", "doc.md"]).code(1);
    assert!(
        run.stderr.contains("--- [2/5] 2: skipped\n"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("<== 2"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 passed, 1 failed, 1 skipped, 2 not run ("),
        "{}",
        run.stderr
    );
    // Colour on request, whatever the terminal; never with --color never.
    let painted = test.run(&["run", "doc.md", "--color", "always"]).code(1);
    assert!(
        painted.stderr.contains("\x1b[31mFAILED\x1b[0m"),
        "{}",
        painted.stderr
    );
    let forced = test
        .run_env(&["run", "doc.md"], &[("CLICOLOR_FORCE", "1")])
        .code(1);
    assert!(
        forced.stderr.contains("\x1b[32mok\x1b[0m"),
        "{}",
        forced.stderr
    );
    let plain = test
        .run_env(
            &["run", "doc.md", "--color", "never"],
            &[("CLICOLOR_FORCE", "1")],
        )
        .code(1);
    assert!(!plain.stderr.contains('\x1b'), "{}", plain.stderr);
}

#[test]
fn cwd_is_relative_to_the_runbooks_folder_wherever_runbook_is_started() {
    // Found by the reference docs: a runbook in a subfolder with `cwd=`.
    let test = Test::new();
    test.write("docs/work/marker", "");
    test.write("docs/doc.md", "```bash {cwd=work}\nls\n```\n\n```python {cwd=work}\nimport os\nprint(sorted(os.listdir('.')))\n```\n");
    test.run(&["run", "docs/doc.md"]).code(0);
    let doc = test.read("docs/doc.md");
    assert!(doc.contains("```output\nmarker\n```"), "{doc}");
    assert!(doc.contains("```output\n['marker']\n```"), "{doc}");
}
