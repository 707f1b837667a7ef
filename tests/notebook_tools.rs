//! Exported notebooks judged by real Jupyter tooling (PyPI `nbformat`,
//! `papermill` and `bash_kernel`, which `.ci/run` installs into
//! `target/lab-tools`): every export is a valid notebook, and a shell
//! notebook executed by Jupyter's bash kernel prints what `runbook run`
//! recorded.

use std::path::Path;
use std::process::Command;

use crate::support::{lab_tool, Test};

fn validate(python: &Path, notebook: &Path) -> Result<(), String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import sys, nbformat; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))",
        ])
        .arg(notebook)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn every_exported_notebook_is_valid_nbformat() {
    let Some(python) = lab_tool("python") else {
        return;
    };
    let test = Test::new();
    let mut docs = crate::support::repository_runbooks();
    docs.push((
        "pwsh.md".into(),
        "# P\n\n```pwsh {#get}\nGet-Date\n```\n```output\ntoday\n```\n\n```bash\necho 1\n```\n"
            .into(),
    ));
    docs.push(("python.md".into(), "```python\nprint(1)\n```\n".into()));
    // Broken on purpose: the check has teeth.
    test.write("broken.ipynb", "{\"cells\": [{\"cell_type\": \"code\"}], \"metadata\": {}, \"nbformat\": 4, \"nbformat_minor\": 5}");
    assert!(validate(&python, &test.path("broken.ipynb")).is_err());
    for (name, doc) in &docs {
        test.write(name, doc);
        let notebook = format!("{name}.ipynb");
        test.run(&["export", name, "--to", "ipynb", "-o", &notebook])
            .code(0);
        if let Err(error) = validate(&python, &test.path(&notebook)) {
            panic!("{name}: {error}");
        }
    }
    let kernel = |name: &str| {
        let notebook: serde_json::Value =
            serde_json::from_str(&test.read(&format!("{name}.ipynb"))).unwrap();
        notebook["metadata"]["kernelspec"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(kernel("quickstart.md"), "bash");
    assert_eq!(kernel("pwsh.md"), ".net-pwsh");
    assert_eq!(kernel("python.md"), "python3");
    eprintln!("nbformat: {} exported notebooks valid", docs.len());
}

/// The text of a code cell's outputs, as Jupyter recorded them.
fn outputs_text(cell: &serde_json::Value) -> String {
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| match &o["text"] {
            serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect(),
            serde_json::Value::String(text) => text.clone(),
            _ => String::new(),
        })
        .collect::<String>()
        .replace("\r\n", "\n")
}

#[test]
fn jupyters_bash_kernel_prints_what_runbook_recorded() {
    let Some(papermill) = lab_tool("papermill") else {
        return;
    };
    let test = Test::new();
    test.write(
        "shell.md",
        "---\nrunbook:\n  params:\n    GREETING: hello\n    WHO: \"{{ GREETING }} world\"\n---\n# Shell\n\n```bash {#first}\nNAME=kernel\necho \"$WHO from the $NAME\"\n```\n\n```bash {#state}\necho \"still $NAME\"\nfor i in 1 2 3; do echo \"line $i\"; done\n```\n\n```bash {#functions}\ngreet() { echo \"hi $1\"; }\ngreet there\n```\n",
    );
    test.run(&["run", "shell.md"]).code(0);
    test.run(&["export", "shell.md", "--to", "ipynb", "-o", "shell.ipynb"])
        .code(0);
    let output = Command::new(&papermill)
        .args(["shell.ipynb", "executed.ipynb", "-k", "bash", "--cwd"])
        .arg(test.dir.path())
        .current_dir(test.dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let recorded = runbook::parser::parse(&test.read("shell.md")).unwrap();
    let executed: serde_json::Value = serde_json::from_str(&test.read("executed.ipynb")).unwrap();
    let code_cells: Vec<&serde_json::Value> = executed["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code" && c["metadata"]["runbook"]["parameters"] != true)
        .collect();
    assert_eq!(code_cells.len(), recorded.cells.len());
    for (cell, ran) in recorded.cells.iter().zip(code_cells) {
        let expected = cell
            .output
            .as_ref()
            .map(|o| o.text.clone())
            .unwrap_or_default();
        assert_eq!(
            outputs_text(ran).trim_end(),
            expected,
            "cell {}",
            cell.name()
        );
    }
    eprintln!(
        "papermill: {} cells printed what runbook recorded",
        recorded.cells.len()
    );
}

/// Validates a pipeline file against a schema check-jsonschema ships.
fn schema_check(checker: &Path, schema: &str, file: &Path) -> Result<(), String> {
    let output = Command::new(checker)
        .args(["--builtin-schema", schema])
        .arg(file)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[test]
fn exported_pipelines_validate_against_their_published_schemas() {
    let Some(checker) = lab_tool("check-jsonschema") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let test = Test::new();
    // The check has teeth: a workflow without jobs is rejected.
    test.write("bad.yml", "name: x\non: push\n");
    assert!(schema_check(&checker, "vendor.github-workflows", &test.path("bad.yml")).is_err());
    for name in ["aks-workload-identity", "quickstart"] {
        let runbook = root.join(format!("runbooks/{name}.md"));
        for (format, schema) in [
            ("github-actions", "vendor.github-workflows"),
            ("azure-pipelines", "vendor.azure-pipelines"),
        ] {
            let file = test.export(&runbook, format, &format!("{name}.{format}.yml"));
            if let Err(error) = schema_check(&checker, schema, &file) {
                panic!("{name} as {format}: {error}");
            }
        }
    }
    let matrix = test.path("matrix.yml");
    test.run(&[
        "export",
        "docs/**/*.md",
        "--to",
        "github-actions-test",
        "-o",
        matrix.to_str().unwrap(),
    ])
    .code(0);
    if let Err(error) = schema_check(&checker, "vendor.github-workflows", &matrix) {
        panic!("the test matrix: {error}");
    }
    eprintln!("check-jsonschema: 5 exported pipelines valid");
}
