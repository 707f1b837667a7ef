//! The lab judged by the real tools, offline: every `az` call it makes is
//! parsed by the real Azure CLI (PyPI `azure-cli`), and every manifest it
//! renders or applies validates against the Kubernetes schemas
//! (PyPI `kubernetes-validate`). `.ci/run` installs both into
//! `target/lab-tools`; elsewhere these tests say they skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{lab_tool as tool, Test};

/// The Kubernetes version the lab's cluster runs.
const KUBERNETES_VERSION: &str = "1.33";

/// Kinds that are custom resources, with no schema in Kubernetes itself.
const CUSTOM_KINDS: [&str; 1] = ["ClusterIssuer"];

fn cassette() -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(
        root.join("fixtures/aks-workload-identity/aks-workload-identity.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What the real CLI made of an argument list.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Parsed and went on to need a sign-in (or, for a Bicep deployment,
    /// to fetch the Bicep compiler): the arguments are right.
    Accepted,
    Rejected(String),
}

fn judge(az: &Path, argv: &[String], folder: &Path, config: &Path) -> Verdict {
    let output = Command::new(az)
        .args(&argv[1..])
        .current_dir(folder)
        .env("AZURE_CONFIG_DIR", config)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .env("AZURE_CORE_NO_COLOR", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let signed_out = stderr.contains("Please run 'az login'");
    let bicep =
        stderr.contains("retrieve the latest Bicep version") || stderr.contains("Bicep CLI");
    if output.status.code() != Some(2) && (signed_out || bicep) {
        Verdict::Accepted
    } else {
        Verdict::Rejected(format!("exit {:?}: {stderr}", output.status.code()))
    }
}

#[test]
fn the_real_azure_cli_accepts_every_az_call_of_the_lab() {
    let Some(az) = tool("az") else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = root.join("runbooks");
    let config = tempfile::tempdir().unwrap();
    // The check has teeth: a wrong flag and a wrong command are rejected.
    for wrong in [
        vec![
            "az",
            "aks",
            "show",
            "--resource-group",
            "rg",
            "--name",
            "x",
            "--bogus",
        ],
        vec!["az", "aks", "shw", "--name", "x"],
        vec![
            "az",
            "identity",
            "federated-credential",
            "create",
            "--name",
            "x",
        ],
    ] {
        let argv: Vec<String> = wrong.iter().map(|s| s.to_string()).collect();
        assert!(
            matches!(
                judge(&az, &argv, &folder, config.path()),
                Verdict::Rejected(_)
            ),
            "{wrong:?} was accepted"
        );
    }
    let mut checked = 0;
    let mut rejected = Vec::new();
    for call in cassette()["calls"].as_array().unwrap() {
        let argv: Vec<String> = call["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace("$RUNBOOK_DIR", &folder.display().to_string())
            })
            .collect();
        if argv[0] != "az" {
            continue;
        }
        checked += 1;
        if let Verdict::Rejected(why) = judge(&az, &argv, &folder, config.path()) {
            rejected.push(format!("{}\n  {why}", argv.join(" ")));
        }
    }
    assert!(checked >= 20, "only {checked} az calls found");
    assert!(
        rejected.is_empty(),
        "the Azure CLI rejects:\n{}",
        rejected.join("\n")
    );
    eprintln!("az: {checked} calls accepted by the real Azure CLI");
}

/// The lab replayed in a scratch folder; returns the folder.
fn replayed_lab() -> Test {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let test = Test::new();
    for folder in ["runbooks", "fixtures"] {
        std::fs::create_dir_all(test.path(folder)).unwrap();
        runbook::testing::copy_folder(&root.join(folder), &test.path(folder)).unwrap();
    }
    test.run(&["run", "runbooks/aks-workload-identity.md", "--no-write"])
        .code(0);
    test
}

/// Validates one manifest file; returns the problems found.
fn validate(validator: &Path, file: &Path) -> Vec<String> {
    let output = Command::new(validator)
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("INFO"))
        .filter(|l| {
            // A custom resource has no schema here; say so, but pass.
            !(l.contains("Couldn't find schema")
                && CUSTOM_KINDS
                    .iter()
                    .any(|k| l.contains(&format!("kind {k} "))))
        })
        .map(str::to_string)
        .collect();
    if !output.status.success() && problems.is_empty() {
        problems.push(format!("exit {:?}", output.status.code()));
    }
    problems
}

#[test]
fn every_manifest_of_the_lab_validates_against_the_kubernetes_schemas() {
    let Some(validator) = tool("kubernetes-validate") else {
        return;
    };
    // The check has teeth: a broken Deployment is rejected.
    let broken = tempfile::tempdir().unwrap();
    let bad = broken.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n  selector: {}\n  template: {}\n",
    )
    .unwrap();
    assert!(!validate(&validator, &bad).is_empty());
    let test = replayed_lab();
    let mut files: Vec<PathBuf> = std::fs::read_dir(test.path("runbooks/out/lab/k8s"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    // And what the lab piped to `kubectl apply -f -`, as recorded.
    for (i, call) in cassette()["calls"].as_array().unwrap().iter().enumerate() {
        if call["argv"] == serde_json::json!(["kubectl", "apply", "-f", "-"]) {
            let path = test.path(&format!("applied-{i}.yaml"));
            std::fs::write(&path, call["stdin"].as_str().unwrap()).unwrap();
            files.push(path);
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut problems = Vec::new();
    for file in &files {
        for problem in validate(&validator, file) {
            problems.push(format!("{}: {problem}", file.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "kubernetes-validate: {} manifests valid for Kubernetes {KUBERNETES_VERSION} ({} not validated: no schema here)",
        files.len(),
        CUSTOM_KINDS.join(", ")
    );
}
