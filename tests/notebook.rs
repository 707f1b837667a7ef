//! `runbook import` and `runbook export`.

use crate::support::Test;

const JUPYTER: &str = r##"{
 "metadata": {"kernelspec": {"display_name": "Bash", "language": "bash", "name": "bash"}},
 "nbformat": 4, "nbformat_minor": 5,
 "cells": [
  {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Cluster check\n", "\n", "Who am I?"]},
  {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": 1, "source": ["NAME=world\n", "echo \"hello $NAME\""],
   "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hello world\n"]}]},
  {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 2, "source": "echo \"again $NAME\"", "outputs": []}
 ]
}"##;

#[test]
fn a_jupyter_notebook_becomes_a_runbook_that_runs() {
    let test = Test::new();
    test.write("check.ipynb", JUPYTER);
    let run = test
        .run(&["import", "check.ipynb", "-o", "check.md"])
        .code(0);
    assert!(
        run.stderr.contains("wrote check.md (2 cells)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        test.read("check.md"),
        "# Cluster check\n\nWho am I?\n\n```bash\nNAME=world\necho \"hello $NAME\"\n```\n```output\nhello world\n```\n\n```bash\necho \"again $NAME\"\n```\n"
    );
    test.run(&["run", "check.md"]).code(0);
    assert!(test
        .read("check.md")
        .ends_with("```bash\necho \"again $NAME\"\n```\n```output\nagain world\n```\n"));
}

#[test]
fn a_polyglot_dib_keeps_its_kernels() {
    let test = Test::new();
    test.write(
        "lab.dib",
        "#!meta\n\n{\"kernelInfo\":{\"defaultKernelName\":\"pwsh\",\"items\":[{\"name\":\"pwsh\"}]}}\n\n#!markdown\n\n# Lab\n\n#!pwsh\n\nGet-AzContext\n\n#!csharp\n\nConsole.WriteLine(42);\n",
    );
    test.run(&["import", "lab.dib", "-o", "lab.md"]).code(0);
    assert_eq!(
        test.read("lab.md"),
        "# Lab\n\n```pwsh\nGet-AzContext\n```\n\n```csharp\nConsole.WriteLine(42);\n```\n"
    );
    let list = test.run(&["list", "lab.md"]).code(0);
    assert_eq!(
        list.stdout.lines().count(),
        2,
        "only the pwsh block is a cell:\n{}",
        list.stdout
    );
}

#[test]
fn export_to_ipynb_and_back_keeps_cells_and_outputs() {
    let test = Test::new();
    let doc = "---\ntitle: x\n---\n# Demo\n\nFirst:\n\n```bash {#one}\necho one\n```\n```output\none\n```\n\n- In a list:\n\n  ```python\n  print(2)\n  ```\n\nEnd.\n";
    test.write("demo.md", doc);
    test.run(&["export", "demo.md", "--to", "ipynb", "-o", "demo.ipynb"])
        .code(0);
    let notebook: serde_json::Value = serde_json::from_str(&test.read("demo.ipynb")).unwrap();
    let kinds: Vec<&str> = notebook["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["markdown", "code", "markdown", "code", "markdown"]);
    assert_eq!(notebook["cells"][1]["id"], "one");
    assert_eq!(
        notebook["cells"][1]["outputs"][0]["text"],
        serde_json::json!(["one\n"])
    );
    assert_eq!(
        notebook["cells"][3]["metadata"]["polyglot_notebook"]["kernelName"],
        "python"
    );
    assert_eq!(notebook["cells"][4]["source"], serde_json::json!(["End."]));
    test.run(&["import", "demo.ipynb", "-o", "back.md"]).code(0);
    // Byte for byte: front matter, info strings, the list's indent, outputs.
    assert_eq!(test.read("back.md"), doc);
}

#[test]
fn export_to_github_actions() {
    let test = Test::new();
    test.write(
        "lab.md",
        "---\nrunbook:\n  params:\n    ENV: dev\n    RG: \"rg-{{ ENV }}\"\n  secrets: [TOKEN]\n  requires: [kubectl]\n---\n```bash {confirm}\necho \"$RG\"\n```\n",
    );
    let run = test
        .run(&["export", "lab.md", "--to", "github-actions"])
        .code(0);
    let workflow: serde_norway::Value = serde_norway::from_str(&run.stdout).unwrap();
    let inputs = &workflow["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(inputs["ENV"]["default"], "dev");
    assert!(
        inputs.get("RG").is_none(),
        "a templated param follows its inputs"
    );
    let job = &workflow["jobs"]["runbook"];
    assert!(
        job.get("env").is_none(),
        "secrets go to the one step that needs them"
    );
    let steps = job["steps"].as_sequence().unwrap();
    let run_step = steps.iter().find(|s| s["name"] == "Run lab.md").unwrap();
    assert_eq!(
        run_step["run"],
        "runbook run lab.md --set \"ENV=$INPUT_ENV\" --yes"
    );
    assert_eq!(run_step["env"]["INPUT_ENV"], "${{ inputs.ENV }}");
    assert_eq!(run_step["env"]["TOKEN"], "${{ secrets.TOKEN }}");
    // Pinned to a release's commit, not to a tag that can move.
    let upload = steps.last().unwrap()["uses"].as_str().unwrap();
    let commit = upload.strip_prefix("actions/upload-artifact@").unwrap();
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{upload}"
    );
    assert!(
        workflow["permissions"].get("id-token").is_none(),
        "no az, no sign-in"
    );
}

/// Every runbook in the repository, and some hard cases, through a
/// notebook and back: the same bytes.
#[test]
fn md_to_ipynb_and_dib_and_back_is_lossless() {
    let test = Test::new();
    let mut docs = crate::support::repository_runbooks();
    docs.push((
        "hard.md".into(),
        "\u{feff}---\nrunbook:\n  params:\n    A: \"1\"\n---\n\n```bash {#one capture=X timeout=2m}\necho one\n```\n\n```output\none\n```\n\n\n> ```sh {skip}\n> false\n> ```\n> ```output {exit=1}\n> no\n> ```\n\n```yaml {file=x.yaml}\na: {{ A }}\n```\n\n````az {#two continue-on-error}\naz group show -n x\n````\n```output {exit=3 literal}\n...\n```\ntail without newline".into(),
    ));
    docs.push((
        "crlf.md".into(),
        "# T\r\n\r\n```bash\r\necho hi\r\n```\r\n```output\r\nhi\r\n```\r\n".into(),
    ));
    assert!(docs.len() >= 4);
    for (name, doc) in &docs {
        test.write(name, doc);
        for format in ["ipynb", "dib"] {
            let notebook = format!("{name}.{format}");
            let back = format!("{name}.{format}.back.md");
            test.run(&["export", name, "--to", format, "-o", &notebook])
                .code(0);
            test.run(&["import", &notebook, "-o", &back, "--force"])
                .code(0);
            assert_eq!(&test.read(&back), doc, "{name} through {format}");
        }
    }
}

#[test]
fn a_notebook_edited_elsewhere_comes_back_with_its_edits() {
    let test = Test::new();
    let doc = "# Demo\n\n```bash {#one}\necho one\n```\n```output\none\n```\n\nMiddle.\n\n```bash {#two timeout=1m}\necho two\n```\n";
    test.write("demo.md", doc);
    test.run(&["export", "demo.md", "--to", "ipynb", "-o", "demo.ipynb"])
        .code(0);
    let mut notebook: serde_json::Value = serde_json::from_str(&test.read("demo.ipynb")).unwrap();
    // Edited in Jupyter: the second cell's code and the middle prose.
    notebook["cells"][2]["source"] = serde_json::json!(["Middle, edited."]);
    notebook["cells"][3]["source"] = serde_json::json!(["echo TWO"]);
    test.write("demo.ipynb", &notebook.to_string());
    test.run(&["import", "demo.ipynb", "-o", "back.md"]).code(0);
    assert_eq!(
        test.read("back.md"),
        "# Demo\n\n```bash {#one}\necho one\n```\n```output\none\n```\n\nMiddle, edited.\n\n```bash {#two timeout=1m}\necho TWO\n```\n"
    );
}

#[test]
fn a_dib_follows_the_format_magics_stay_and_set_becomes_params() {
    let test = Test::new();
    test.write(
        "lab.dib",
        "#!meta\n\n{\"kernelInfo\":{\"defaultKernelName\":\"pwsh\",\"items\":[{\"name\":\"pwsh\",\"aliases\":[\"ps\"]}]}}\n\n#!markdown\n\n# Lab\n\n#!pwsh\n\n#!time\n#!set --name RG --value @input:\"Resource group?\"\n#!set --name TOKEN --value @password:\"Token\"\nWrite-Output $RG\n\n#!ps\n\n#!about\n#!time\nGet-Date\n",
    );
    let run = test.run(&["import", "lab.dib", "-o", "lab.md"]).code(0);
    // Each magic is reported once, with its line.
    assert!(
        run.stderr
            .contains("lab.dib: line 11: `#!time` has no meaning in a runbook"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`#!about`"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("#!time").count(), 1, "{}", run.stderr);
    let doc = test.read("lab.md");
    assert_eq!(
        doc,
        "---\nrunbook:\n  params:\n    RG: \"\"  # asked for: \"Resource group?\"\n  secrets: [TOKEN]\n---\n# Lab\n\n```pwsh\n#!time\n$RG = $env:RG\n$TOKEN = $env:TOKEN\nWrite-Output $RG\n```\n\n```pwsh\n#!about\n#!time\nGet-Date\n```\n"
    );
}

#[test]
fn a_notebook_runs_directly() {
    let test = Test::new();
    test.write("check.ipynb", JUPYTER);
    let run = test.run(&["run", "check.ipynb"]).code(0);
    assert!(
        run.stderr
            .contains("executed document written to check.ipynb.md"),
        "{}",
        run.stderr
    );
    assert!(test
        .read("check.ipynb.md")
        .ends_with("```bash\necho \"again $NAME\"\n```\n```output\nagain world\n```\n"));
    // The notebook itself is left alone.
    assert_eq!(test.read("check.ipynb"), JUPYTER);
}

#[test]
fn a_dry_run_needs_no_interpreter() {
    let test = Test::new();
    test.write("doc.md", "```pwsh\nWrite-Output hi\n```\n");
    let run = test
        .run_env(&["run", "doc.md", "--dry-run"], &[("PATH", "/nonexistent")])
        .code(0);
    assert!(run.stdout.contains("Write-Output hi"), "{}", run.stdout);
}

#[test]
fn rich_outputs_are_written_beside_or_noted_never_dropped() {
    let test = Test::new();
    // A 1x1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let notebook = serde_json::json!({
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": ["plot()"], "outputs": [
                {"output_type": "display_data", "data": {"image/png": png, "text/plain": ["<Figure>"]}, "metadata": {}}
            ]},
            {"cell_type": "code", "metadata": {}, "source": ["table()"], "outputs": [
                {"output_type": "display_data", "data": {"text/html": ["<table></table>"]}, "metadata": {}}
            ]}
        ]
    });
    test.write("plots.ipynb", &notebook.to_string());
    let run = test
        .run(&["import", "plots.ipynb", "-o", "plots.md"])
        .code(0);
    assert!(
        run.stderr.contains("wrote ./plots-output-1.png")
            || run.stderr.contains("plots-output-1.png"),
        "{}",
        run.stderr
    );
    let image = std::fs::read(test.path("plots-output-1.png")).unwrap();
    assert!(image.starts_with(b"\x89PNG"));
    let doc = test.read("plots.md");
    assert!(
        doc.contains("```output\n<Figure>\n```\n\n![output](plots-output-1.png)"),
        "{doc}"
    );
    assert!(
        doc.contains("[runbook: an HTML output with no text form was left out]"),
        "{doc}"
    );
}

#[test]
fn pwsh_variables_are_read_and_what_cannot_work_is_said() {
    let test = Test::new();
    test.write(
        "ps.md",
        "---\nrunbook:\n  params:\n    DNS_RG: rg-dns\n---\n```pwsh {#set}\n$zone = Get-Zone -ResourceGroup $env:DNS_RG\n```\n\n```pwsh {#use}\nWrite-Output $zone\nWrite-Output $DNS_RG\n```\n",
    );
    let check = test.run(&["check", "ps.md"]);
    assert!(
        check
            .stderr
            .contains("$zone is assigned in pwsh cell set, but pwsh cells do not share a process"),
        "{}",
        check.stderr
    );
    assert!(
        check.stderr.contains(
            "$dns_rg in a pwsh cell is a PowerShell variable, not the runbook variable DNS_RG"
        ),
        "{}",
        check.stderr
    );
    assert!(check.stderr.contains("ps.md:11:"), "{}", check.stderr);
    // `list` sees what the pwsh cell reads from the environment.
    let list = test.run(&["list", "ps.md", "--json"]).code(0);
    let first: serde_json::Value =
        serde_json::from_str(list.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["uses"], serde_json::json!(["DNS_RG"]));
    // An imported notebook says the same.
    test.write(
        "lab.dib",
        "#!pwsh\n\n$rg = 'x'\n\n#!pwsh\n\nWrite-Output $rg\n",
    );
    let import = test.run(&["import", "lab.dib", "-o", "lab.md"]).code(0);
    assert!(
        import.stderr.contains("$rg is assigned in pwsh cell 1"),
        "{}",
        import.stderr
    );
}

#[test]
fn the_labs_pipelines_sign_in_with_oidc_run_for_real_and_name_the_runbook_from_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = root.join("runbooks/aks-workload-identity.md");
    let test = Test::new();
    for format in ["github-actions", "azure-pipelines"] {
        let run = test
            .run(&["export", lab.to_str().unwrap(), "--to", format])
            .code(0);
        insta::assert_snapshot!(format!("lab_{}", format.replace('-', "_")), run.stdout);
    }
}
