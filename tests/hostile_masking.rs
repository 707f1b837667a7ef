//! Secrets printed in forms masking once missed, and lines whose carriage
//! returns once exposed or garbled what was recorded. Each test runs the
//! real binary on a real document with real bash and python3.

use serde_json::Value;

use crate::support::{Run, Test};

/// Front matter declaring the secrets read from the caller's environment.
fn secrets(names: &str) -> String {
    format!("---\nrunbook:\n  secrets: [{names}]\n---\n")
}

/// The recorded blocks of `doc`, in order.
fn recorded_blocks(doc: &str) -> Vec<&str> {
    doc.split("```output\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("\n```").expect("a closing fence")])
        .collect()
}

/// The JSON events a `--json` run printed.
fn events(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect()
}

/// What the `--json` output events of cell `index` carried, joined.
fn live_output(events: &[Value], index: u64) -> String {
    events
        .iter()
        .filter(|e| e["event"] == "output" && e["index"] == index)
        .map(|e| e["text"].as_str().unwrap())
        .collect()
}

/// The `recorded` text of every `cell-finished` event, in order.
fn finished_recorded(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "cell-finished")
        .map(|e| e["recorded"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn python_bytes_repr_and_ascii_of_a_non_ascii_secret_are_masked() {
    let test = Test::new();
    test.write(
        "doc.md",
        &format!(
            "{}```python\nimport os\nprint(os.environ[\"TOK\"].encode())\nprint(ascii(os.environ[\"TOK\"]))\nprint(repr(os.environ[\"TOK\"]))\n```\n",
            secrets("TOK")
        ),
    );
    let run = test
        .run_env(&["run", "doc.md", "--json"], &[("TOK", "pässwörd")])
        .code(0);
    let doc = test.read("doc.md");
    let expected = "b'[masked:TOK]'\n'[masked:TOK]'\n'[masked:TOK]'";
    assert_eq!(recorded_blocks(&doc), [expected], "{doc}");
    assert_eq!(finished_recorded(&events(&run)), [expected]);
    assert_eq!(live_output(&events(&run), 0), format!("{expected}\n"));
    // Characters above U+FFFF, and a quote that turns the quoting around.
    test.write(
        "doc.md",
        &format!(
            "{}```python\nimport os\nprint(os.environ[\"TOK\"].encode())\nprint(ascii(os.environ[\"TOK\"]))\n```\n",
            secrets("TOK")
        ),
    );
    test.run_env(&["run", "doc.md"], &[("TOK", "it's 😀 ﬁne\t€")])
        .code(0);
    let doc = test.read("doc.md");
    assert_eq!(
        recorded_blocks(&doc),
        ["b\"[masked:TOK]\"\n\"[masked:TOK]\""],
        "{doc}"
    );
}

#[test]
fn a_secret_in_python_bytes_repr_never_reaches_the_state_file() {
    let test = Test::new();
    test.write(
        "doc.md",
        &format!(
            "{}```bash\nexport Q6=\"$(python3 -c 'import os;print(repr(os.environ[\"TOK\"].encode()))')\"\nexport Q7=plain-value\n```\n",
            secrets("TOK")
        ),
    );
    test.run_env(&["run", "doc.md"], &[("TOK", "pässwörd")])
        .code(0);
    let text = test.read(".runbook/doc.md.json");
    let state: Value = serde_json::from_str(&text).unwrap();
    // The state holds the cell's environment: the plain export is there,
    // the one that holds the secret is left out.
    assert_eq!(state["env"]["Q7"], "plain-value", "{text}");
    assert!(state["env"].get("Q6").is_none(), "{text}");
    assert!(!text.contains("ssw"), "{text}");
}

#[test]
fn json_escapes_of_a_secret_with_del_and_non_ascii_are_masked() {
    let test = Test::new();
    test.write(
        "doc.md",
        &format!(
            "{}```python\nimport json, os\nprint(json.dumps(os.environ[\"TOK\"]))\nprint(json.dumps(os.environ[\"WIDE\"]))\nprint(json.dumps(os.environ[\"WIDE\"], ensure_ascii=False))\n```\n\n```bash\nprintf '%s' \"$TOK\" | jq -Rr @json\nprintf '%s' \"$WIDE\" | jq -Rr @json\njq -cn --arg t \"$TOK\" '{{t: $t}}'\n```\n",
            secrets("TOK, WIDE")
        ),
    );
    let run = test
        .run_env(
            &["run", "doc.md", "--json"],
            &[("TOK", "pass\x7fword"), ("WIDE", "ü\x7f 😀\x01 key")],
        )
        .code(0);
    let doc = test.read("doc.md");
    let expected = [
        "\"[masked:TOK]\"\n\"[masked:WIDE]\"\n\"[masked:WIDE]\"",
        "\"[masked:TOK]\"\n\"[masked:WIDE]\"\n{\"t\":\"[masked:TOK]\"}",
    ];
    assert_eq!(recorded_blocks(&doc), expected, "{doc}");
    let events = events(&run);
    assert_eq!(finished_recorded(&events), expected);
    for (index, block) in expected.iter().enumerate() {
        assert_eq!(live_output(&events, index as u64), format!("{block}\n"));
    }
}

#[test]
fn a_secret_with_a_carriage_return_is_masked_whole() {
    let test = Test::new();
    test.write(
        "doc.md",
        &format!(
            "{}```bash\necho \"$TOK\"\necho \"$TOK2\"\necho \"before $TOK after\"\n```\n",
            secrets("TOK, TOK2")
        ),
    );
    let env = [("TOK", "hunter2\rpw"), ("TOK2", "abc\rdef")];
    let run = test.run_env(&["run", "doc.md", "--json"], &env).code(0);
    let doc = test.read("doc.md");
    // Masked before the carriage return is resolved: no part of either
    // secret shows, and the line around it stays whole.
    let expected = "[masked:TOK]\n[masked:TOK2]\nbefore [masked:TOK] after";
    assert_eq!(recorded_blocks(&doc), [expected], "{doc}");
    let events = events(&run);
    assert_eq!(finished_recorded(&events), [expected]);
    assert_eq!(
        live_output(&events, 0),
        "[masked:TOK]\n[masked:TOK2]\nbefore [masked:TOK] after\n"
    );
    // The terminal echo, with the secret arriving in pieces.
    test.write(
        "doc.md",
        &format!(
            "{}```bash\nprintf '%s' \"${{TOK%pw}}\"; sleep 0.3; printf 'pw\\n'\n```\n",
            secrets("TOK")
        ),
    );
    let run = test.run_env(&["run", "doc.md"], &env).code(0);
    assert!(run.stdout.contains("[masked:TOK]\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
    assert!(!run.stdout.contains("pw"), "{}", run.stdout);
    assert_eq!(recorded_blocks(&test.read("doc.md")), ["[masked:TOK]"]);
}

#[test]
fn carriage_returns_resolve_as_a_terminal_shows_them() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash\nprintf 'a\\tb\\rc\\n'\nprintf 'xxyy\\rZ\\n'\nprintf 'abcdefgh\\r\\tX\\n'\nprintf 'a\\tb\\rcdefg\\n'\nprintf '\\033[32mgreen\\033[0m\\rG\\n'\nprintf 'crlf\\tkept\\r\\n'\nprintf 'x\\ty\\n'\n```\n",
    );
    let run = test.run(&["run", "doc.md", "--json"]).code(0);
    let expected = "c\tb\nZxyy\nabcdefghX\ncdefg   b\nGreen\ncrlf\tkept\nx\ty";
    assert_eq!(recorded_blocks(&test.read("doc.md")), [expected]);
    assert_eq!(finished_recorded(&events(&run)), [expected]);
    // Recording again changes nothing, and `test` agrees with it.
    let doc = test.read("doc.md");
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), doc);
    test.run(&["test", "doc.md"]).code(0);
}
