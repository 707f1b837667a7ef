//! Replay and record of intercepted tools.

use crate::support::Test;

/// A stand-in for a cloud CLI: prints its arguments, what it read on stdin
/// when asked to, a counter that grows with every call, and a GUID.
const FAKE_AZ: &str = r#"#!/bin/bash
n=$(( $(cat "$(dirname "$0")/../calls" 2>/dev/null || echo 0) + 1 ))
echo $n > "$(dirname "$0")/../calls"
case "$1" in
  fail) echo "boom" >&2; exit 3 ;;
esac
echo "az $* (call $n)"
for a in "$@"; do [ "$a" = "@-" ] && echo "stdin: $(cat)"; done
echo "id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301"
"#;

fn with_fake_az(test: &Test) -> String {
    test.write("bin/az", FAKE_AZ);
    std::fs::set_permissions(
        test.path("bin/az"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    )
}

/// A PATH without the fake tool (nor any real az).
fn without_az() -> String {
    std::env::var("PATH")
        .unwrap()
        .split(':')
        .filter(|dir| !std::path::Path::new(dir).join("az").exists())
        .collect::<Vec<_>>()
        .join(":")
}

const LAB: &str = "```az {capture=ID}\naz group show --name rg-dev | sed -n 's/^id: //p'\n```\n\n```az\naz role assignment create --assignee {{ ID }}\naz group show --name rg-dev\naz group show --name rg-dev\n```\n\n```bash\necho '{\"kind\": \"A\"}' | az rest --body @- | head -n 2\necho '{\"kind\": \"B\"}' | az rest --body @- | head -n 2\n```\n\n```bash {continue-on-error}\naz fail now\n```\n";

#[test]
fn a_recorded_run_replays_identically_without_the_tool() {
    let test = Test::new();
    test.write("lab.md", LAB);
    let path = with_fake_az(&test);
    test.run_env(
        &["run", "lab.md", "--record", "fixtures"],
        &[("PATH", &path)],
    )
    .code(0);
    let recorded = test.read("lab.md");
    assert!(
        recorded.contains("az group show --name rg-dev (call 3)"),
        "{recorded}"
    );
    assert!(recorded.contains("stdin: {\"kind\": \"B\"}"), "{recorded}");
    assert!(
        recorded.contains("```output {exit=3}\nboom\n```"),
        "{recorded}"
    );
    let calls_made = test.read("calls");

    // The cassette: pretty JSON, in call order, stdin kept, GUIDs normalised.
    let cassette: serde_json::Value =
        serde_json::from_str(&test.read("fixtures/lab.json")).unwrap();
    let calls = cassette["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 7);
    assert_eq!(
        calls[0]["argv"],
        serde_json::json!(["az", "group", "show", "--name", "rg-dev"])
    );
    assert_eq!(calls[1]["argv"][5], "00000000-0000-0000-0000-000000000001");
    assert_eq!(calls[4]["stdin"], "{\"kind\": \"A\"}\n");
    assert!(calls[0].get("stdin").is_none());
    assert_eq!(calls[6]["exit"], 3);
    assert!(!test.read("fixtures/lab.json").contains("3f2504e0"));

    // Replay with no az anywhere: same document, and the tool never ran.
    test.write("lab.md", LAB);
    test.run_env(
        &["run", "lab.md", "--replay", "fixtures"],
        &[("PATH", &without_az())],
    )
    .code(0);
    let replayed = test.read("lab.md");
    assert_eq!(
        replayed,
        recorded.replace(
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "00000000-0000-0000-0000-000000000001"
        )
    );
    assert_eq!(test.read("calls"), calls_made);
}

#[test]
fn repeated_calls_answer_in_order_and_the_last_repeats() {
    let test = Test::new();
    test.write("lab.md", "```az\naz vm list\naz vm list\n```\n");
    let path = with_fake_az(&test);
    test.run_env(&["run", "lab.md", "--record", "fx"], &[("PATH", &path)])
        .code(0);
    test.write("lab.md", "```az\naz vm list\naz vm list\naz vm list\n```\n");
    test.run_env(
        &["run", "lab.md", "--replay", "fx"],
        &[("PATH", &without_az())],
    )
    .code(0);
    let doc = test.read("lab.md");
    assert!(doc.contains("az vm list (call 1)\nid: 00000000-0000-0000-0000-000000000001\naz vm list (call 2)\nid: 00000000-0000-0000-0000-000000000001\naz vm list (call 2)\n"), "{doc}");
}

#[test]
fn a_call_without_recording_fails_its_cell_even_in_a_pipeline() {
    let test = Test::new();
    test.write("fx/lab.json", r#"{"version": 1, "runbook": "lab.md", "calls": [
        {"argv": ["kubectl", "get", "pods", "-n", "app"], "stdout": "web-1   Running\n", "stderr": "", "exit": 0},
        {"argv": ["kubectl", "apply", "-f", "-"], "stdin": "kind: A\n", "stdout": "a created\n", "stderr": "", "exit": 0}
    ]}"#);
    test.write(
        "lab.md",
        "```bash\nkubectl get pods -n web | cat\necho after\n```\n",
    );
    let run = test.run(&["run", "lab.md", "--replay", "fx"]).code(1);
    let doc = test.read("lab.md");
    assert!(
        doc.contains("```output {exit=1}\nrunbook: no recording for `kubectl get pods -n web`\n  closest recorded calls:\n    kubectl get pods -n app\n    kubectl apply -f -\n  hint: record it with `runbook run lab.md --record fx`\nafter\n```"),
        "{doc}"
    );
    assert!(run.stderr.contains("<== 1: FAILED"), "{}", run.stderr);
    // The closest calls are shown once: in the output, not again in the verdict.
    assert_eq!(
        run.stderr.matches("closest recorded calls").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("FAILED exit 1 (")
            && run
                .stderr
                .contains("): no recording for `kubectl get pods -n web`\n"),
        "{}",
        run.stderr
    );
    // stdin is part of the match.
    test.write("lab.md", "```bash\necho 'kind: A' | kubectl apply -f -\n```\n\n```bash\necho 'kind: B' | kubectl apply -f -\n```\n");
    test.run(&["run", "lab.md", "--replay", "fx"]).code(1);
    let doc = test.read("lab.md");
    assert!(doc.contains("```output\na created\n```"), "{doc}");
    assert!(
        doc.contains("no recording for `kubectl apply -f -` with this stdin"),
        "{doc}"
    );
}

#[test]
fn replay_from_front_matter_and_a_broken_cassette() {
    let test = Test::new();
    test.write(
        "fx/lab.json",
        "{\n  \"version\": 1,\n  \"calls\": [\n    {\"argv\": [\"helm\", \"version\"],}\n  ]\n}\n",
    );
    let doc = "---\nrunbook:\n  replay: fx\n---\n```helm\nhelm version\n```\n";
    test.write("lab.md", doc);
    let run = test.run(&["run", "lab.md"]).code(2);
    assert!(run.stderr.contains("fx/lab.json:4:"), "{}", run.stderr);
    assert!(run.stderr.contains("invalid cassette"), "{}", run.stderr);
    assert_eq!(test.read("lab.md"), doc);
    test.write("fx/lab.json", "{\"version\": 1, \"calls\": [{\"argv\": [\"helm\", \"version\"], \"stdout\": \"v3.16.2\\n\"}]}");
    test.run(&["run", "lab.md"]).code(0);
    assert!(test.read("lab.md").contains("```output\nv3.16.2\n```"));
}

#[test]
fn recorded_secrets_are_masked_and_loops_keep_their_input() {
    let test = Test::new();
    test.write("names.txt", "one\ntwo\nthree\n");
    test.write(
        "lab.md",
        "```bash\nwhile read name; do az group show --name \"$name\"; done < names.txt\n```\n\n```az\naz login --password \"$PASSWORD\"\n```\n",
    );
    let path = with_fake_az(&test);
    test.run_env(
        &[
            "run",
            "lab.md",
            "--record",
            "fx",
            "--secret",
            "PASSWORD=hunter2-long",
        ],
        &[("PATH", &path)],
    )
    .code(0);
    let doc = test.read("lab.md");
    assert!(doc.contains("az group show --name three (call 3)"), "{doc}");
    let cassette = test.read("fx/lab.json");
    assert!(!cassette.contains("hunter2-long"), "{cassette}");
    assert!(cassette.contains("[masked:PASSWORD]"), "{cassette}");
}

#[test]
fn the_real_kubectl_client_recorded_then_replayed_without_it() {
    if runbook::tools::find_on_path("kubectl", None).is_none() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let test = Test::new();
    let doc = "```kubectl {capture=SA}\nkubectl create serviceaccount workload-identity-sa -n workload --dry-run=client -o yaml\n```\n\n```bash\nkubectl create configmap settings --from-literal=sa=\"$(echo \"$SA\" | grep -c ServiceAccount)\" --dry-run=client -o json | kubectl create -f - --dry-run=client --validate=false -o name 2>&1 | tail -n 1\n```\n";
    test.write("lab.md", doc);
    test.run(&["run", "lab.md", "--record", "fx"]).code(0);
    let recorded = test.read("lab.md");
    assert!(recorded.contains("kind: ServiceAccount"), "{recorded}");
    let cassette = test.read("fx/lab.json");
    assert!(
        cassette.contains("\"stdin\": \"{\\n    \\\"kind\\\": \\\"ConfigMap\\\""),
        "{cassette}"
    );
    test.write("lab.md", doc);
    // A PATH holding only what the cells need besides kubectl.
    for tool in ["bash", "grep", "tail", "cat", "env"] {
        let real = runbook::tools::find_on_path(tool, None).unwrap();
        std::fs::create_dir_all(test.path("minimal")).unwrap();
        std::os::unix::fs::symlink(real, test.path("minimal").join(tool)).unwrap();
    }
    let minimal = test.path("minimal").display().to_string();
    assert!(runbook::tools::find_on_path("kubectl", Some(&minimal)).is_none());
    test.run_env(&["run", "lab.md", "--replay", "fx"], &[("PATH", &minimal)])
        .code(0);
    assert_eq!(test.read("lab.md"), recorded);
}

#[test]
fn a_replayed_call_prints_its_streams_in_the_order_the_tool_did() {
    let test = Test::new();
    test.write(
        "bin/az",
        "#!/bin/bash\necho 'Packing source code...' >&2; sleep 0.1\necho 'Waiting for an agent...' >&2; sleep 0.1\necho Succeeded; sleep 0.1\necho 'done' >&2\n",
    );
    crate::support::executable(&test.path("bin/az"));
    let path = format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    test.write("lab.md", "```az\naz acr build --registry r .\n```\n");
    test.run_env(
        &["run", "lab.md", "--record", "fixtures"],
        &[("PATH", &path)],
    )
    .code(0);
    let recorded = test.read("lab.md");
    let expected =
        "```output\nPacking source code...\nWaiting for an agent...\nSucceeded\ndone\n```";
    assert!(recorded.contains(expected), "{recorded}");
    let cassette: serde_json::Value =
        serde_json::from_str(&test.read("fixtures/lab.json")).unwrap();
    assert_eq!(
        cassette["calls"][0]["output"],
        serde_json::json!([
            {"stderr": "Packing source code...\nWaiting for an agent...\n"},
            {"stdout": "Succeeded\n"},
            {"stderr": "done\n"}
        ])
    );
    // Replayed without the tool, five times: the same order every time.
    for _ in 0..5 {
        test.run_env(
            &["run", "lab.md", "--replay", "fixtures"],
            &[("PATH", &without_az())],
        )
        .code(0);
        assert_eq!(test.read("lab.md"), recorded);
    }
}
