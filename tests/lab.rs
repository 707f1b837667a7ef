//! The AKS Workload Identity lab, replayed offline from its fixtures.

use std::path::Path;

use crate::support::Test;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    runbook::testing::copy_folder(from, to).unwrap();
}

#[test]
fn the_lab_replays_offline_to_its_committed_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let test = Test::new();
    copy(&root.join("runbooks"), &test.path("runbooks"));
    copy(&root.join("fixtures"), &test.path("fixtures"));
    let committed =
        std::fs::read_to_string(root.join("runbooks/aks-workload-identity.md")).unwrap();
    // No az, helm or kubelogin here: every call is answered from fixtures.
    let run = test
        .run(&[
            "run",
            "runbooks/aks-workload-identity.md",
            "--output",
            "executed.md",
        ])
        .code(0);
    assert!(
        run.stderr.contains("50 passed, 0 failed, 1 skipped"),
        "{}",
        run.stderr
    );
    let executed = test.read("executed.md");
    assert_eq!(
        executed, committed,
        "the committed lab differs from what its fixtures replay"
    );
    insta::assert_snapshot!("lab_executed_document", executed);

    // The manifests the lab applied with `kubectl apply -f -`.
    let mut manifests = String::new();
    for name in [
        "infra-service-account",
        "external-dns-config",
        "external-dns",
        "cluster-issuers",
        "workload",
    ] {
        let text = test.read(&format!("runbooks/out/lab/k8s/{name}.yaml"));
        manifests.push_str(&format!("# out/lab/k8s/{name}.yaml\n{text}"));
    }
    for name in ["ingress-nginx", "cert-manager"] {
        let text = test.read(&format!("runbooks/out/lab/helm/{name}.yaml"));
        manifests.push_str(&format!("# out/lab/helm/{name}.yaml\n{text}"));
    }
    insta::assert_snapshot!("lab_manifests", manifests);
    assert!(manifests
        .contains("azure.workload.identity/client-id: \"00000000-0000-0000-0000-000000000005\""));
}

#[test]
fn every_applied_manifest_is_on_record_in_the_cassette() {
    // Replay matches each `kubectl apply -f -` by a digest of its stdin, so
    // the lab replaying cleanly means it applied exactly these.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cassette: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("fixtures/aks-workload-identity/aks-workload-identity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let applied: Vec<&str> = cassette["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["argv"] == serde_json::json!(["kubectl", "apply", "-f", "-"]))
        .map(|c| c["stdin"].as_str().unwrap())
        .collect();
    assert_eq!(applied.len(), 5);
    assert!(applied.iter().any(|m| m.contains("kind: ClusterIssuer")));
    assert!(applied
        .iter()
        .any(|m| m.contains("name: azure-config-file")));
    insta::assert_snapshot!(
        "lab_kubectl_apply_stdin",
        applied.join("# ---- next kubectl apply -f -\n")
    );
}
