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
        run.stderr.contains("wrote check.md (3 cells)"),
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
        "python3"
    );
    assert_eq!(notebook["cells"][4]["source"], serde_json::json!(["End."]));
    test.run(&["import", "demo.ipynb", "-o", "back.md"]).code(0);
    let back = test.read("back.md");
    assert!(
        back.contains("```bash\necho one\n```\n```output\none\n```"),
        "{back}"
    );
    assert!(back.contains("```python\nprint(2)\n```"), "{back}");
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
    let workflow: serde_yaml::Value = serde_yaml::from_str(&run.stdout).unwrap();
    let inputs = &workflow["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(inputs["ENV"]["default"], "dev");
    assert!(
        inputs.get("RG").is_none(),
        "a templated param follows its inputs"
    );
    let job = &workflow["jobs"]["runbook"];
    assert_eq!(job["env"]["TOKEN"], "${{ secrets.TOKEN }}");
    let steps = job["steps"].as_sequence().unwrap();
    let run_step = steps.iter().find(|s| s["name"] == "Run lab.md").unwrap();
    assert_eq!(
        run_step["run"],
        "runbook run lab.md --set \"ENV=$INPUT_ENV\" --yes"
    );
    assert_eq!(run_step["env"]["INPUT_ENV"], "${{ inputs.ENV }}");
    assert_eq!(steps.last().unwrap()["uses"], "actions/upload-artifact@v4");
}
