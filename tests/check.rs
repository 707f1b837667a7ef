//! `runbook check` and `runbook test` on documents written to fail in each way.

use crate::support::Test;

#[test]
fn check_reports_each_kind_of_problem() {
    let test = Test::new();
    test.write(
        "bad.md",
        "---\nrunbook:\n  params:\n    RG: rg-dev\n  requires: [no-such-tool-xyz]\n---\n```bash\necho \"$RG $UNSET_THING\"\nif true; then echo x\n```\n\n```bash\necho {{ NOPE }}\n```\n\n```sh\nfor f in a b; do echo $f; done\nread -r first < /dev/null; echo \"$first\"\n```\n",
    );
    let run = test.run(&["check", "bad.md"]).code(1);
    // Tool lines that name paths and versions differ between machines.
    let stdout: String = run
        .stdout
        .lines()
        .filter(|l| !l.contains("version") && !l.contains("found at"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(
        "check_text",
        format!("--- stdout\n{stdout}--- stderr\n{}", run.stderr)
    );
    let run = test.run(&["check", "bad.md", "--json"]).code(1);
    let entries: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let diagnostics: Vec<(u64, &str, &str)> = entries
        .iter()
        .filter(|e| e.get("severity").is_some())
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["severity"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        diagnostics,
        [
            (5, "error", "`no-such-tool-xyz` is not on PATH"),
            (
                8,
                "warning",
                "$UNSET_THING is not set by any param, capture or earlier cell"
            ),
            (
                9,
                "error",
                "bash syntax: syntax error: unexpected end of file"
            ),
            (13, "error", "undefined variable NOPE (defined so far: RG)"),
        ]
    );
    assert!(entries
        .iter()
        .any(|e| e["tool"] == "bash" && e["version"].as_str().is_some_and(|v| v.contains("bash"))));
}

#[test]
fn check_passes_a_good_runbook_and_reports_parse_errors_of_bad_ones() {
    let test = Test::new();
    test.write(
        "good.md",
        "```bash {capture=X}\necho hi\n```\n\n```bash\necho \"$X {{ X }}\"\n```\n",
    );
    test.write(
        "broken.md",
        "```bash {id=a captur=X}\ntrue\n```\n\n```sh {#a}\ntrue\n```\n",
    );
    let run = test.run(&["check", "good.md"]).code(0);
    assert!(
        run.stdout
            .contains("good.md: 2 cells, 0 errors, 0 warnings"),
        "{}",
        run.stdout
    );
    let run = test.run(&["check", "good.md", "broken.md"]).code(1);
    assert!(
        run.stderr.contains("error: unknown attribute `captur`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: duplicate cell id `a`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("broken.md: 2 cells, 2 errors"),
        "{}",
        run.stdout
    );
}

const DOC: &str = "---\nrunbook:\n  redact:\n    - { regex: '\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z', with: '[TIMESTAMP]' }\n---\n```bash {#stable}\necho \"made at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"\necho \"id: $RANDOM\"\nseq 1 5\n```\n```output\nmade at [TIMESTAMP]\nid: [..]\n1\n...\n5\n```\n\n```bash {#changed}\necho changed\n```\n```output\noriginal\n```\n\n```bash {#new}\necho new\n```\n\n```bash {#exit expect=any}\nexit 3\n```\n```output {exit=3}\n```\n";

#[test]
fn test_compares_fresh_outputs_with_wildcards_and_redactions() {
    let test = Test::new();
    test.write("doc.md", DOC);
    let run = test.run(&["test", "doc.md"]).code(1);
    insta::assert_snapshot!("test_report", run.stdout);
    // The document itself is untouched by a test run.
    assert_eq!(test.read("doc.md"), DOC);
}

#[test]
fn test_update_accepts_the_fresh_outputs_and_run_keeps_matching_wildcards() {
    let test = Test::new();
    test.write("doc.md", DOC);
    let run = test.run(&["test", "doc.md", "--update"]).code(0);
    assert!(
        run.stdout
            .contains("doc.md: updated with the fresh outputs"),
        "{}",
        run.stdout
    );
    let updated = test.read("doc.md");
    assert!(updated.contains("```output\nchanged\n```"), "{updated}");
    assert!(updated.contains("```output\nnew\n```"), "{updated}");
    assert!(
        updated.contains("made at [TIMESTAMP]\nid: [..]\n1\n...\n5\n"),
        "{updated}"
    );
    test.run(&["test", "doc.md"]).code(0);
    // `run` keeps the recorded block whose wildcards still match.
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), updated);
}

#[test]
fn several_files_run_in_parallel_with_one_summary() {
    let test = Test::new();
    for i in 0..4 {
        test.write(
            &format!("d{i}/doc.md"),
            &format!("```bash\necho {i}\n```\n```output\n{i}\n```\n"),
        );
    }
    test.write("d4/doc.md", "```bash\necho four\n```\n```output\n4\n```\n");
    let run = test
        .run(&[
            "test",
            "-j",
            "3",
            "d0/doc.md",
            "d1/doc.md",
            "d2/doc.md",
            "d3/doc.md",
            "d4/doc.md",
        ])
        .code(1);
    assert!(
        run.stdout.ends_with("4 passed, 1 failed, 0 skipped\n"),
        "{}",
        run.stdout
    );
    let order: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("test "))
        .collect();
    assert_eq!(
        order,
        [
            "test d0/doc.md",
            "test d1/doc.md",
            "test d2/doc.md",
            "test d3/doc.md",
            "test d4/doc.md"
        ]
    );
}

#[test]
fn test_replays_fixtures_from_the_front_matter_in_a_scratch_copy() {
    let test = Test::new();
    test.write("fx/doc.json", r#"{"calls": [{"argv": ["az", "account", "show", "--query", "name", "-o", "tsv"], "stdout": "Contoso Dev\n"}]}"#);
    test.write(
        "doc.md",
        "---\nrunbook:\n  replay: fx\n---\n```az\naz account show --query name -o tsv\n```\n```output\nContoso Dev\n```\n\n```yaml {file=out/made.yaml}\nmade: true\n```\n",
    );
    let run = test.run(&["test", "doc.md"]).code(0);
    assert!(run.stdout.contains("1 passed, 0 failed"), "{}", run.stdout);
    assert!(
        !test.path("out/made.yaml").exists(),
        "the test wrote beside the runbook"
    );
    assert!(!test.path(".runbook").exists());
}

#[test]
fn the_projects_own_runbooks_check_and_test_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut runbooks: Vec<String> = std::fs::read_dir(root.join("runbooks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.display().to_string())
        .collect();
    runbooks.sort();
    assert!(!runbooks.is_empty());
    let test = Test::new();
    let mut args = vec!["check"];
    args.extend(runbooks.iter().map(String::as_str));
    let run = test.run(&args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    args[0] = "test";
    let run = test.run(&args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn partitions_split_the_files_stably_and_cover_each_once() {
    let test = Test::new();
    let mut files = Vec::new();
    for i in 0..12 {
        let name = format!("d{i}/doc.md");
        test.write(
            &name,
            &format!("```bash\necho {i}\n```\n```output\n{i}\n```\n"),
        );
        files.push(name);
    }
    let mut seen = std::collections::BTreeMap::new();
    for k in 1..=4 {
        let share = format!("{k}/4");
        let mut args = vec!["test", "--partition", &share];
        args.extend(files.iter().map(String::as_str));
        let run = test.run(&args).code(0);
        for line in run.stdout.lines().filter_map(|l| l.strip_prefix("test ")) {
            *seen.entry(line.to_string()).or_insert(0) += 1;
        }
        // The same share again: the same files.
        let again = test.run(&args).code(0);
        assert_eq!(run.stdout, again.stdout);
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    test.run(&["test", "--partition", "5/4", "d0/doc.md"])
        .code(2);
    test.run(&["test", "--partition", "0/4", "d0/doc.md"])
        .code(2);
}

#[test]
fn the_test_matrix_workflow_runs_each_share_and_adds_them_up() {
    let test = Test::new();
    for i in 0..6 {
        let expected = if i == 3 { "wrong" } else { &i.to_string() };
        test.write(
            &format!("docs/d{i}.md"),
            &format!("```bash\necho {i}\n```\n```output\n{expected}\n```\n"),
        );
    }
    let run = test
        .run(&[
            "export",
            "docs/*.md",
            "--to",
            "github-actions-test",
            "--partitions",
            "3",
        ])
        .code(0);
    let workflow: serde_norway::Value = serde_norway::from_str(&run.stdout).unwrap();
    let steps = workflow["jobs"]["test"]["steps"].as_sequence().unwrap();
    let share_script = steps[2]["run"].as_str().unwrap().to_string();
    let summary_script = workflow["jobs"]["summary"]["steps"][1]["run"]
        .as_str()
        .unwrap()
        .replace("${{ needs.test.result }}", "success");
    // Each share as the matrix runs it, with the real binary on PATH.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_runbook"))
        .parent()
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for k in 1..=3 {
        let script = share_script.replace("${{ matrix.partition }}", &k.to_string());
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(test.dir.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
    }
    let summary = std::process::Command::new("bash")
        .arg("-c")
        .arg(&summary_script)
        .current_dir(test.dir.path())
        .env("GITHUB_STEP_SUMMARY", test.path("summary.md"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    assert_eq!(text, "5 passed, 1 failed, 0 skipped\n");
    assert!(!summary.status.success(), "a failed cell fails the summary");
    // A glob that could run code is refused.
    test.run(&["export", "docs/$(touch x)", "--to", "github-actions-test"])
        .code(2);
}

#[test]
fn new_writes_a_starter_that_checks_and_runs() {
    let test = Test::new();
    test.run(&["new", "start.md"]).code(0);
    let check = test.run(&["check", "start.md"]).code(0);
    assert!(
        check
            .stdout
            .contains("start.md: 3 cells, 0 errors, 0 warnings")
            || check.stdout.contains("4 cells, 0 errors, 0 warnings"),
        "{}{}",
        check.stdout,
        check.stderr
    );
    test.run(&["run", "start.md"]).code(0);
    let doc = test.read("start.md");
    assert!(doc.contains("```output\nhello, world (on 20"), "{doc}");
    assert!(
        doc.contains("```output\ngreeting: \"hello, world\"\n```"),
        "{doc}"
    );
    // It will not replace a runbook unless told to.
    test.run(&["new", "start.md"]).code(2);
    // The state folder keeps itself out of version control.
    assert_eq!(test.read(".runbook/.gitignore").lines().last(), Some("*"));
}

#[test]
fn version_completions_and_a_manual_page() {
    let test = Test::new();
    let version = test.run(&["--version"]).code(0);
    assert_eq!(
        version.stdout,
        format!("runbook {}\n", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = test.run(&["completions", shell]).code(0);
        assert!(run.stdout.contains("runbook"), "{shell}");
        assert!(run.stdout.contains("replay"), "{shell}");
    }
    // bash itself accepts the bash completion script.
    let script = test.run(&["completions", "bash"]).code(0).stdout;
    let status = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let man = test.run(&["man"]).code(0);
    assert!(
        man.stdout.starts_with(".ie \\n(.g .ds Aq") || man.stdout.contains(".TH runbook"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    let help = test.run(&["--help"]).code(0);
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
}

#[test]
fn defaults_for_unset_variables_are_not_warned_about_and_a_missing_secret_is_an_error() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\necho \"${REGION:-westeurope} ${ZONE:=1} ${TIER-basic} ${NAME:?give NAME}\"\necho \"$UNSET_ONE\"\n```\n",
    );
    let check = test.run(&["check", "doc.md"]);
    assert!(
        !check.stderr.contains("$REGION")
            && !check.stderr.contains("$ZONE")
            && !check.stderr.contains("$TIER")
            && !check.stderr.contains("$NAME "),
        "{}",
        check.stderr
    );
    assert!(
        check.stderr.contains("$UNSET_ONE is not set"),
        "{}",
        check.stderr
    );
    test.write(
        "secret.md",
        "---\nrunbook:\n  secrets: [TOKEN]\n---\n```bash\ntouch ran\n```\n",
    );
    let run = test.run(&["run", "secret.md"]).code(2);
    assert!(
        run.stderr
            .contains("secret TOKEN is declared, but nothing gives it a value"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--secret TOKEN=VALUE"),
        "{}",
        run.stderr
    );
    assert!(!test.path("ran").exists());
    test.run(&["run", "secret.md", "--secret", "TOKEN=t0ken-value"])
        .code(0);
    test.run_env(&["run", "secret.md"], &[("TOKEN", "t0ken-value")])
        .code(0);
}

#[test]
fn did_you_mean_for_attributes_variables_cell_ids_and_front_matter_keys() {
    let test = Test::new();
    test.write("attr.md", "```bash {timout=2m}\necho\n```\n");
    let run = test.run(&["check", "attr.md"]);
    assert!(
        run.stderr.contains("did you mean `timeout`?"),
        "{}",
        run.stderr
    );
    test.write(
        "var.md",
        "---\nrunbook:\n  params:\n    REGION: x\n---\n```bash\necho {{ REGOIN }}\n```\n",
    );
    let run = test.run(&["check", "var.md"]);
    assert!(
        run.stderr.contains("did you mean `REGION`?"),
        "{}",
        run.stderr
    );
    test.write(
        "key.md",
        "---\nrunbook:\n  parms:\n    A: b\n---\n```bash\necho\n```\n",
    );
    let run = test.run(&["check", "key.md"]);
    assert!(
        run.stderr.contains("did you mean `params`?"),
        "{}",
        run.stderr
    );
    test.write("ids.md", "```bash {#deploy}\necho\n```\n");
    let run = test.run(&["run", "ids.md", "--cell", "deplyo"]).code(2);
    assert!(
        run.stderr.contains("did you mean `deploy`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn shellcheck_findings_are_reported_at_the_runbooks_line() {
    if runbook::tools::find_on_path("shellcheck", None).is_none() {
        eprintln!("skipped: shellcheck is not installed (.ci/run installs it)");
        return;
    }
    let test = Test::new();
    test.write("doc.md", "# T\n\n```bash\nmkdir -p out\ncd out\n```\n");
    let run = test.run(&["check", "doc.md"]).code(0);
    assert!(
        run.stderr.contains("shellcheck: Use 'cd ... || exit'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("doc.md:5:1"), "{}", run.stderr);
    assert!(
        run.stdout.contains("1 cell, 0 errors, 1 warning"),
        "{}",
        run.stdout
    );
}

#[test]
fn carets_point_at_tokens_and_undefined_variables_come_in_source_order() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nif true; then echo x; fi fi\n```\n\n```bash\necho {{ ZED }} {{ ALPHA }}\n```\n",
    );
    let run = test.run(&["check", "doc.md"]).code(1);
    assert!(run.stderr.contains("--> doc.md:2:26\n"), "{}", run.stderr);
    let zed = run.stderr.find("undefined variable ZED").unwrap();
    let alpha = run.stderr.find("undefined variable ALPHA").unwrap();
    assert!(zed < alpha, "{}", run.stderr);
}
