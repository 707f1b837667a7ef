//! Values that came out of a run (captures, a state file, metadata a
//! notebook keeps) never point programs at start-up files, configuration
//! or plugins: Python's user site (`PYTHONUSERBASE`, `HOME`) and
//! kubectl's `KUBECONFIG` exec plugins run code nobody sees.

use serde_json::{json, Value};

use crate::support::Test;

/// A Python user site under `base` whose `usercustomize` touches `flag`.
fn plant_user_site(test: &Test, base: &str, flag: &str) {
    let version = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys;print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
        ])
        .output()
        .expect("python3 runs");
    let version = String::from_utf8(version.stdout).unwrap();
    let site = format!("{base}/lib/python{}/site-packages", version.trim());
    let flag = test.path(flag);
    test.write(
        &format!("{site}/usercustomize.py"),
        &format!("open({:?}, 'w')\n", flag.display().to_string()),
    );
    test.write(
        &format!(
            "home/.local/lib/python{}/site-packages/usercustomize.py",
            version.trim()
        ),
        &format!("open({:?}, 'w')\n", flag.display().to_string()),
    );
}

#[test]
fn a_capture_cannot_point_programs_at_start_up_files() {
    let test = Test::new();
    plant_user_site(&test, "evil", "pwned");
    for (name, value) in [
        ("PYTHONUSERBASE", "$PWD/evil"),
        ("HOME", "$PWD/home"),
        ("KUBECONFIG", "$PWD/kc"),
        ("XDG_CONFIG_HOME", "$PWD/evil"),
        ("GIT_SSH_COMMAND", "touch pwned"),
    ] {
        test.write(
            "doc.md",
            &format!(
                "# T\n\n```bash {{capture={name}}}\necho \"{value}\"\n```\n\n```python\nprint('hi')\n```\n"
            ),
        );
        let run = test.run(&["run", "doc.md", "--no-write"]).code(2);
        assert!(
            run.stderr
                .contains(&format!("capture={name} cannot set {name}")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("doc.md:3:"), "{}", run.stderr);
        assert!(!test.path("pwned").exists(), "{name}");
    }
}

#[test]
fn a_state_file_cannot_point_programs_at_start_up_files_or_plugins() {
    let test = Test::new();
    plant_user_site(&test, ".runbook", "pwned-python");
    test.write(
        "kc",
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: [-c, touch pwned-kubectl]\n",
    );
    test.write(
        "doc.md",
        "```bash {#one}\necho one\n```\n\n```python {#two}\nimport os\nprint(os.environ.get('PYTHONUSERBASE'), os.environ.get('KUBECONFIG'))\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    let path = test.path(".runbook/doc.md.json");
    let mut state: Value = serde_json::from_str(&test.read(".runbook/doc.md.json")).unwrap();
    state["env"]["PYTHONUSERBASE"] = json!(test.path(".runbook").display().to_string());
    state["env"]["KUBECONFIG"] = json!(test.path("kc").display().to_string());
    state["env"]["HOME"] = json!(test.path("home").display().to_string());
    std::fs::write(&path, state.to_string()).unwrap();
    let run = test.run(&["run", "doc.md", "--cell", "two"]).code(0);
    assert!(
        run.stderr
            .contains("HOME, KUBECONFIG, PYTHONUSERBASE not restored"),
        "{}",
        run.stderr
    );
    assert!(!test.path("pwned-python").exists());
    assert!(test.read("doc.md").contains("```output\nNone None\n```"));
}

#[test]
fn notebook_metadata_cannot_capture_into_a_start_up_variable() {
    let test = Test::new();
    let raw = "```bash {#x capture=PYTHONUSERBASE}\necho \"$PWD/ev\"\n```";
    let piece = json!({"raw": raw, "lang": "bash", "info": "bash {#x capture=PYTHONUSERBASE}", "name": "x", "code": "echo \"$PWD/ev\"", "output": null});
    let notebook = json!({
        "metadata": {"kernelspec": {"name": "bash", "language": "bash"}, "runbook": {"version": 1, "head": "", "tail": null}},
        "nbformat": 4, "nbformat_minor": 5,
        "cells": [
            {"cell_type": "code", "metadata": {"runbook": {"piece": piece}}, "outputs": [], "source": "echo \"$PWD/ev\""},
            {"cell_type": "code", "metadata": {}, "outputs": [], "source": "echo two"},
        ],
    });
    test.write("h.ipynb", &notebook.to_string());
    test.run(&["import", "h.ipynb", "-o", "h.md"]).code(0);
    let markdown = test.read("h.md");
    assert!(!markdown.contains("capture="), "{markdown}");
}

#[test]
fn names_from_a_params_file_or_set_must_be_variable_names() {
    let test = Test::new();
    test.write("doc.md", "```bash\ntouch ran\n```\n");
    for (file, text) in [
        ("p.yaml", "MY-VAR: x\n"),
        ("p.json", "{\"1BAD\": \"x\"}"),
        ("p.env", "A B=x\n"),
    ] {
        test.write(file, text);
        let run = test.run(&["run", "doc.md", "--params", file]).code(2);
        assert!(
            run.stderr.contains(file) && run.stderr.contains("is not a variable name"),
            "{file}: {}",
            run.stderr
        );
    }
    let run = test.run(&["run", "doc.md", "--set", "MY-VAR=x"]).code(2);
    assert!(
        run.stderr
            .contains("--set: `MY-VAR` is not a variable name"),
        "{}",
        run.stderr
    );
    assert!(!test.path("ran").exists());
}

#[test]
fn a_module_file_in_the_folder_never_runs_as_the_python_kernels_own() {
    let test = Test::new();
    test.write("traceback.py", "open('shadowed', 'w')\n");
    test.write("helper.py", "VALUE = 42\n");
    test.write(
        "doc.md",
        "```python\nx = 1\n```\n\n```python\nimport helper\nprint(helper.VALUE)\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert!(!test.path("shadowed").exists());
    // A cell's own imports still find modules beside the runbook.
    assert!(test.read("doc.md").contains("```output\n42\n```"));
}
