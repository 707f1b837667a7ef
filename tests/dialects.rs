//! Documents written for other tools: Azure docs' fences are cells of the
//! tool they name.

use crate::support::{executable, Test};

#[test]
fn azure_docs_fences_are_az_and_pwsh_cells() {
    let test = Test::new();
    test.write("bin/az", "#!/bin/sh\necho \"az called with: $*\"\n");
    executable(&test.path("bin/az"));
    let doc = "# Create a group\n\n```azurecli-interactive\naz group create -n rg1\n```\n\n```azurecli\naz group show -n rg1\n```\n\n```azure-cli\naz group delete -n rg1\n```\n\n```azurepowershell-interactive\nGet-AzResourceGroup\n```\n\nA transcript stays prose:\n\n```console\n$ az version\n```\n\n```shell-session\n$ az login\n```\n";
    test.write("doc.md", doc);
    let list = test.run(&["list", "doc.md", "--json"]).code(0);
    let langs: Vec<String> = list
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["lang"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        langs,
        [
            "azurecli-interactive",
            "azurecli",
            "azure-cli",
            "azurepowershell-interactive"
        ]
    );
    // The Azure CLI cells need `az`, the PowerShell one `pwsh`.
    let path = format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let check = test.run_env(&["check", "doc.md"], &[("PATH", &path)]);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("doc.md: az: az called with: --version"),
        "{said}"
    );
    assert!(said.contains("doc.md: pwsh:"), "{said}");
    // Without the PowerShell cell, the az cells run with bash and `az`.
    test.write(
        "az.md",
        &doc.replace(
            "```azurepowershell-interactive\nGet-AzResourceGroup\n```\n",
            "",
        ),
    );
    test.run_env(&["run", "az.md"], &[("PATH", &path)]).code(0);
    let after = test.read("az.md");
    for call in [
        "az called with: group create -n rg1",
        "az called with: group show -n rg1",
        "az called with: group delete -n rg1",
    ] {
        assert!(
            after.contains(&format!("```output\n{call}\n```")),
            "{after}"
        );
    }
    // Without `az` on the PATH, the run says so before anything runs.
    test.write("az2.md", &test.read("az.md"));
    let run = test
        .run_env(&["run", "az2.md"], &[("PATH", "/usr/bin:/bin")])
        .code(2);
    assert!(run.stderr.contains("`az` is not on PATH"), "{}", run.stderr);
}

#[test]
fn a_document_with_nothing_to_run_never_passes_a_test_silently() {
    let test = Test::new();
    // An article whose examples are all transcripts or unknown fences.
    test.write(
        "article.md",
        "# Deploy\n\n```console\n$ az group create -n rg1\n```\n\n```text\nsome output\n```\n\n```bash {skip}\necho never\n```\n",
    );
    let check = test.run(&["check", "article.md"]).code(0);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("no cell runs: nothing in this document is tested or run")
            && said.contains("article.md:1:1"),
        "{said}"
    );
    let run = test.run(&["test", "article.md"]).code(1);
    assert!(
        run.stdout.contains("article.md: FAILED: no cell to run"),
        "{}",
        run.stdout
    );
    // The summary stays the last line, which CI summaries read.
    assert_eq!(
        run.stdout.lines().last(),
        Some("0 passed, 0 failed, 0 skipped"),
        "{}",
        run.stdout
    );
    let run = test
        .run(&["test", "article.md", "--no-tests", "warn"])
        .code(0);
    assert!(
        run.stdout.contains("warning: no cell to run"),
        "{}",
        run.stdout
    );
    test.run(&["test", "article.md", "--no-tests", "pass"])
        .code(0);
    // One file with cells beside it does not hide the empty one.
    test.write("ok.md", "```bash\necho hi\n```\n```output\nhi\n```\n");
    test.run(&["test", "ok.md", "article.md"]).code(1);
    test.run(&["test", "ok.md"]).code(0);
}

#[test]
fn a_placeholder_in_a_cell_is_named_as_one_with_the_caret_on_it() {
    let test = Test::new();
    test.write(
        "doc.md",
        "# Create\n\n```bash\nexport CLUSTER=<cluster-name>\necho \"$CLUSTER\"\n```\n\n```azurecli\naz aks show -g \"$RG\" -n <name>\n```\n\n```bash\necho '<quoted>' \"<also-quoted>\"\n```\n",
    );
    let run = test.run(&["check", "doc.md"]).code(1);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("`<cluster-name>` looks like a placeholder: make it a param")
            && said.contains("doc.md:4:16")
            && said.contains("declare `CLUSTER_NAME` under `params:`"),
        "{said}"
    );
    assert!(
        said.contains("`<name>` looks like a placeholder") && said.contains("doc.md:9:"),
        "{said}"
    );
    // Quoted, it is text, and bash accepts it.
    assert!(!said.contains("quoted>"), "{said}");
    assert_eq!(
        said.matches("looks like a placeholder").count(),
        2,
        "{said}"
    );
}
