//! The document side: parsing, byte-exact rewriting, diagnostics.

use proptest::prelude::*;
use runbook::diagnostic::render_all;
use runbook::parser::parse;
use runbook::writer::{apply, Edit, Output};

use crate::support::data;

fn set(cell: usize, text: &str) -> Edit {
    Edit {
        cell,
        output: Some(Output {
            text: text.to_string(),
            exit: 0,
            literal: false,
        }),
    }
}

fn remove(cell: usize) -> Edit {
    Edit { cell, output: None }
}

/// Inserts an output under cell `cell`, checks it parses back attached to
/// that cell, removes it again and checks the original bytes come back.
#[track_caller]
fn insert_and_remove(doc: &str, cell: usize, text: &str) {
    let runbook = parse(doc).expect("document parses");
    let cells = runbook.cells.len();
    let written = apply(doc, &runbook, &[set(cell, text)]);
    let reparsed = parse(&written).expect("written document parses");
    assert_eq!(
        reparsed.cells.len(),
        cells,
        "cells after writing:\n{written}"
    );
    let output = reparsed.cells[cell]
        .output
        .as_ref()
        .expect("output attached");
    assert_eq!(output.text, text, "in:\n{written}");
    assert_eq!(
        apply(&written, &reparsed, &[set(cell, text)]),
        written,
        "idempotent"
    );
    assert_eq!(
        apply(&written, &reparsed, &[remove(cell)]),
        doc,
        "removal restores the bytes"
    );
}

#[derive(serde::Deserialize)]
struct Example {
    number: usize,
    markdown: String,
}

#[test]
fn every_commonmark_example_round_trips() {
    let json = std::fs::read_to_string(data("commonmark-spec-0.31.2.json")).unwrap();
    let examples: Vec<Example> = serde_json::from_str(&json).unwrap();
    assert_eq!(examples.len(), 652);
    let cell = "```bash\necho hi\n```\n";
    let mut exercised = 0;
    for example in &examples {
        let md = &example.markdown;
        // The example alone: parsing works or reports an unclosed fence,
        // and writing nothing changes nothing.
        match parse(md) {
            Ok(runbook) => assert_eq!(apply(md, &runbook, &[]), *md, "example {}", example.number),
            Err(diagnostics) => {
                assert!(
                    diagnostics.iter().all(|d| d.message.contains("fence")),
                    "example {}: {diagnostics:?}",
                    example.number
                );
                continue;
            }
        }
        // A cell before the example: its output goes in and out exactly.
        let before = format!("{cell}\n{md}");
        insert_and_remove(&before, 0, "hi\n\n``` tricky\nthere");
        // A cell after it, when the example leaves no container open.
        let after = format!("{md}\n\n{cell}");
        if let Ok(runbook) = parse(&after) {
            if let Some(last) = runbook
                .cells
                .iter()
                .position(|c| c.body == "echo hi\n" && c.prefix.is_empty())
            {
                insert_and_remove(&after, last, "x");
            }
        }
        exercised += 1;
    }
    assert!(exercised > 600, "only {exercised} examples exercised");
}

#[test]
fn real_world_markdown_round_trips() {
    let folder = data("real-world");
    let mut files = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let runbook = parse(&text).unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
        assert_eq!(apply(&text, &runbook, &[]), text);
        // Put a cell between every pair of top-level paragraphs, fill each
        // with output, and take the outputs out again.
        let with_cells = text.replace("\n\n# ", "\n\n```sh\ntrue\n```\n\n# ");
        let runbook = parse(&with_cells).unwrap();
        let edits: Vec<Edit> = (0..runbook.cells.len())
            .map(|i| set(i, "out\n`````"))
            .collect();
        let written = apply(&with_cells, &runbook, &edits);
        let reparsed = parse(&written).unwrap();
        assert_eq!(
            reparsed.cells.len(),
            runbook.cells.len(),
            "{}",
            path.display()
        );
        let removals: Vec<Edit> = (0..reparsed.cells.len()).map(remove).collect();
        assert_eq!(
            apply(&written, &reparsed, &removals),
            with_cells,
            "{}",
            path.display()
        );
        files += 1;
    }
    assert!(files >= 8);
}

#[test]
fn parsed_model_snapshot() {
    let doc = r#"---
title: Kept for the site
runbook:
  shell: sh
  params:
    ENVIRONMENT: dev
    RG_AKS: "rg-{{ ENVIRONMENT }}-aks"
  secrets: [CLIENT_SECRET]
  requires: [az, kubectl]
  redact:
    - { regex: '\d{4}-\d\d-\d\dT[\d:.]+Z', with: '[TIMESTAMP]' }
---
# Lab

```shell {#setup}
echo "$RG_AKS"
```
```output
rg-dev-aks
```

1. Steps in a list:

   ```az {id=oidc capture=OIDC_URL timeout=2m retries=2 retry-delay=5s}
   az aks show --query oidcIssuerProfile.issuerUrl -o tsv
   ```

> ```kubectl {capture-json=SA secret expect=any continue-on-error cwd=k8s confirm output=none}
> kubectl get sa -o json
> ```
>
> ````output {exit=3}
> partial
> ````

```yaml {file=k8s/sa.yaml mode=0600}
name: {{ OIDC_URL }}
```

```python {skip}
print("never")
```

```text
prose
```
"#;
    let runbook = parse(doc).unwrap();
    insta::assert_yaml_snapshot!("parsed_model", (&runbook.settings.params, &runbook.cells));
}

#[test]
fn diagnostics_snapshot() {
    let cases = [
        ("unknown attribute", "```bash {id=a captur=X}\ntrue\n```\n"),
        (
            "duplicate id",
            "```bash {#a}\ntrue\n```\n\ntext\n\n```sh {id=a}\ntrue\n```\n",
        ),
        (
            "bad duration",
            "```bash {timeout=\"2 minutes\"}\ntrue\n```\n",
        ),
        ("bad number", "```bash {retries=many}\ntrue\n```\n"),
        (
            "file and mode on a code cell",
            "```bash {mode=0600}\ntrue\n```\n",
        ),
        (
            "unterminated braces",
            "- item\n\n  ```bash {id=a capture=B\n  true\n  ```\n",
        ),
        (
            "unclosed fence",
            "# T\n\n```bash\necho one\n\n## later\n\n```bash\necho two\n",
        ),
        (
            "unclosed prose fence hiding cells",
            "```\nnotes\n\n```bash\ntrue\n",
        ),
        ("secret without capture", "```bash {secret}\ntrue\n```\n"),
        ("bad front matter", "---\nrunbook:\n  params: [1, 2]\n---\n"),
        (
            "unknown front matter key",
            "---\ntitle: x\nrunbook:\n  shel: bash\n---\n",
        ),
        ("bad capture name", "```bash {capture=1X}\ntrue\n```\n"),
    ];
    let mut rendered = String::new();
    for (name, doc) in cases {
        let diagnostics = parse(doc).expect_err(name);
        rendered.push_str(&format!(
            "=== {name}\n{}\n",
            render_all(&diagnostics, "lab.md", doc, false)
        ));
    }
    insta::assert_snapshot!("diagnostics", rendered);
}

#[test]
fn fences_of_every_kind_are_cells() {
    let doc = "~~~bash\necho tilde\n~~~\n\n`````sh\necho ```\n`````\n\n   ```bash\n   echo indented\n   ```\n\n    ```bash\n    indented code, not a fence\n    ```\n";
    let runbook = parse(doc).unwrap();
    let bodies: Vec<&str> = runbook.cells.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["echo tilde\n", "echo ```\n", "echo indented\n"]);
    for (i, cell) in runbook.cells.iter().enumerate() {
        insert_and_remove(doc, i, "out");
        assert_eq!(cell.number, i + 1);
    }
}

#[test]
fn a_quote_marker_does_not_close_a_top_level_fence() {
    // Found by the arbitrary-markdown property test: `> ```` inside a
    // top-level block is content, so this cell runs to the end of the file.
    let diagnostics = parse("```bash\necho\n> ```").unwrap_err();
    assert!(
        diagnostics[0].message.contains("never closed"),
        "{diagnostics:?}"
    );
    let doc = "> ```bash\n> echo\n> ```\n";
    assert_eq!(parse(doc).unwrap().cells[0].prefix, "> ");
    // Nor does a fence followed by a tab, for pulldown-cmark.
    assert!(parse("```bash\n\n```\n```bash\n```\t").is_err());
}

#[test]
fn output_belongs_to_the_cell_above_only_across_blank_lines() {
    let doc = "```bash\na\n```\n\n\n```output\nA\n```\n\n```bash\nb\n```\ntext\n```output\nB\n```\n\n- ```bash\n  c\n  ```\n- ```output\n  C\n  ```\n";
    let runbook = parse(doc).unwrap();
    let outputs: Vec<Option<&str>> = runbook
        .cells
        .iter()
        .map(|c| c.output.as_ref().map(|o| o.text.as_str()))
        .collect();
    assert_eq!(outputs, [Some("A"), None, None]);
}

#[test]
fn unchanged_outputs_leave_the_file_untouched_on_disk() {
    let test = crate::support::Test::new();
    let doc = "```bash\necho hi\n```\n~~~output\nhi\n~~~\n";
    let path = test.write("doc.md", doc);
    let runbook = parse(doc).unwrap();
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let written = apply(doc, &runbook, &[set(0, "hi")]);
    assert!(!runbook::atomic::write_if_changed(&path, written.as_bytes()).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(test.read("doc.md"), doc);
}

fn block() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z ]{0,20}".prop_map(|s| format!("{s}\n")),
        "[a-z]{1,8}".prop_map(|s| format!("# {s}\n")),
        Just("```bash\necho hi\n```\n".to_string()),
        Just("~~~~sh {id=x}\nls\n~~~~\n".to_string()),
        Just("```kubectl {capture=NS}\nkubectl get ns\n```\n".to_string()),
        Just("```yaml\nprose: true\n```\n".to_string()),
        Just("- item\n\n  ```bash\n  echo in list\n  ```\n".to_string()),
        Just("> quote\n>\n> ```sh\n> echo quoted\n> ```\n".to_string()),
        Just("1. one\n   ```bash\n   x\n   ```\n2. two\n".to_string()),
        Just("\n".to_string()),
        Just("    indented code\n".to_string()),
        Just("<div>\n\nhtml\n</div>\n".to_string()),
    ]
}

fn output_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[ -~é`]{0,12}", 0..5).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn inserting_then_removing_outputs_restores_the_bytes(
        blocks in prop::collection::vec(block(), 0..12),
        separators in prop::collection::vec(prop_oneof![Just("\n"), Just("")], 12),
        outputs in prop::collection::vec(output_text(), 12),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let mut doc: String = blocks
            .iter()
            .zip(&separators)
            .map(|(b, s)| format!("{b}{s}"))
            .collect();
        if !final_newline && doc.ends_with('\n') {
            doc.pop();
        }
        if crlf {
            doc = doc.replace('\n', "\r\n");
        }
        if bom {
            doc.insert(0, '\u{feff}');
        }
        let Ok(runbook) = parse(&doc) else { return Ok(()); };
        let edits: Vec<Edit> = runbook
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.output.is_none())
            .map(|(i, _)| set(i, &outputs[i % outputs.len()]))
            .collect();
        let written = apply(&doc, &runbook, &edits);
        let reparsed = parse(&written).expect("written document parses");
        prop_assert_eq!(reparsed.cells.len(), runbook.cells.len());
        for edit in &edits {
            let expected = &edit.output.as_ref().unwrap().text;
            let got = reparsed.cells[edit.cell].output.as_ref().map(|o| &o.text);
            prop_assert_eq!(got, Some(expected), "{}", written);
        }
        prop_assert_eq!(apply(&written, &reparsed, &edits), written.clone());
        let removals: Vec<Edit> = edits.iter().map(|e| remove(e.cell)).collect();
        prop_assert_eq!(apply(&written, &reparsed, &removals), doc);
    }
}

fn markdownish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => Just("```bash\n".to_string()),
            3 => Just("\n```\n".to_string()),
            2 => Just("```output\n".to_string()),
            1 => Just("~~~sh {#a}\n".to_string()),
            1 => Just("\n~~~\n".to_string()),
            1 => Just("````kubectl {capture=X}\n".to_string()),
            1 => Just("\n````\n".to_string()),
            1 => Just("```".to_string()),
            1 => Just("{".to_string()),
            1 => Just("}".to_string()),
            3 => Just("\n".to_string()),
            1 => Just("\r\n".to_string()),
            2 => Just("> ".to_string()),
            2 => Just("- ".to_string()),
            2 => Just("  ".to_string()),
            1 => Just("    ".to_string()),
            1 => Just("\t".to_string()),
            1 => Just("---\n".to_string()),
            1 => Just("`".to_string()),
            1 => Just("# ".to_string()),
            3 => "[a-z ]{1,5}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn arbitrary_markdown_parses_or_fails_cleanly_and_round_trips(doc in markdownish()) {
        let Ok(runbook) = parse(&doc) else { return Ok(()); };
        prop_assert_eq!(apply(&doc, &runbook, &[]), doc.clone());
        let edits: Vec<Edit> = runbook
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.output.is_none())
            .map(|(i, _)| set(i, "out\n```x"))
            .collect();
        let written = apply(&doc, &runbook, &edits);
        let reparsed = parse(&written);
        prop_assert!(reparsed.is_ok(), "{:?}\n{}", reparsed.err(), written);
        let reparsed = reparsed.unwrap();
        prop_assert_eq!(reparsed.cells.len(), runbook.cells.len(), "{}", written);
        let removals: Vec<Edit> = edits.iter().map(|e| remove(e.cell)).collect();
        prop_assert_eq!(apply(&written, &reparsed, &removals), doc);
    }
}
