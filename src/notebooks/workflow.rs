//! A runbook as a CI pipeline: a GitHub Actions workflow or an Azure
//! Pipelines pipeline. The whole runbook runs in one step, so shell state
//! carries from cell to cell as it does locally (one step per cell would
//! lose functions and `cd` between steps).
//!
//! - Plain params become inputs (parameters), passed to the step through
//!   the environment, never pasted into its script, so an input cannot
//!   inject code. Params that template others follow them.
//! - A runbook that uses `az` signs in first: `azure/login` with OpenID
//!   Connect (`id-token: write`, no stored password) on GitHub, the
//!   `AzureCLI@2` task with a service connection on Azure Pipelines.
//! - `replay` is an input that is off by default: a pipeline runs for real,
//!   and replays its fixtures only when asked.
//! - Front-matter secrets reach only the step that runs runbook.
//! - The runbook is named by its path from the repository root, and the
//!   executed document is kept as an artifact.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::document::Runbook;

/// GitHub allows this many `workflow_dispatch` inputs; further params keep
/// their defaults.
pub const GITHUB_INPUTS: usize = 10;

/// What both pipelines need to know about a runbook.
struct Plan {
    /// The runbook's path from the repository root.
    path: String,
    /// Plain params with their defaults, in order.
    params: Vec<(String, String)>,
    secrets: Vec<String>,
    uses_az: bool,
    has_fixtures: bool,
    confirm: bool,
    /// How to install runbook: from the repository itself when it is
    /// runbook's own, else from crates.io.
    install: String,
}

fn plan(file: &Path, runbook: &Runbook) -> Plan {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let root = repository_root(&absolute);
    let path = root
        .as_ref()
        .and_then(|r| absolute.strip_prefix(r).ok())
        .map_or_else(|| file.display().to_string(), |p| p.display().to_string());
    let own = root
        .as_ref()
        .and_then(|r| std::fs::read_to_string(r.join("Cargo.toml")).ok())
        .is_some_and(|cargo| cargo.contains("name = \"runbook\""));
    let install = if own {
        "cargo install --locked --path ."
    } else {
        "cargo install --locked runbook"
    };
    let params = runbook
        .settings
        .params
        .iter()
        .map(|(name, value)| {
            let default = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.clone(), default)
        })
        .filter(|(_, default)| !crate::template::has_template(default))
        .collect();
    let uses_az = runbook.settings.requires.iter().any(|t| t == "az")
        || runbook.cells.iter().any(|c| {
            !c.options.skip
                && (c.lang == "az" || c.body.lines().any(|l| l.trim_start().starts_with("az ")))
        });
    Plan {
        path,
        params,
        secrets: runbook.settings.secrets.clone(),
        uses_az,
        has_fixtures: runbook.settings.replay.is_some(),
        confirm: runbook
            .cells
            .iter()
            .any(|c| c.options.confirm && !c.options.skip),
        install: install.to_string(),
    }
}

/// The nearest folder above `file` holding `.git`.
fn repository_root(file: &Path) -> Option<std::path::PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// The `runbook run` command line, reading inputs from the environment.
fn run_command(plan: &Plan, params: &[(String, String)]) -> String {
    let mut command = format!("runbook run {}", plan.path);
    for (name, _) in params {
        command.push_str(&format!(" --set \"{name}=$INPUT_{name}\""));
    }
    if plan.confirm {
        command.push_str(" --yes");
    }
    if plan.has_fixtures {
        // Real by default; the fixtures the front matter names on request.
        format!("if [ \"$INPUT_REPLAY\" = true ]; then replay=; else replay=--no-replay; fi\n{command} $replay")
    } else {
        command
    }
}

pub fn github_actions(file: &Path, runbook: &Runbook, title: &str) -> String {
    let plan = plan(file, runbook);
    let (params, fixed) = plan.params.split_at(
        plan.params
            .len()
            .min(GITHUB_INPUTS - usize::from(plan.has_fixtures)),
    );
    let mut inputs = Map::new();
    let mut step_env = Map::new();
    for (name, default) in params {
        inputs.insert(
            name.clone(),
            json!({"description": name, "required": false, "type": "string", "default": default}),
        );
        step_env.insert(
            format!("INPUT_{name}"),
            Value::from(format!("${{{{ inputs.{name} }}}}")),
        );
    }
    if plan.has_fixtures {
        inputs.insert(
            "replay".into(),
            json!({"description": "Replay the recorded fixtures instead of calling the real tools", "required": false, "type": "boolean", "default": false}),
        );
        step_env.insert("INPUT_REPLAY".into(), Value::from("${{ inputs.replay }}"));
    }
    for secret in &plan.secrets {
        step_env.insert(
            secret.clone(),
            Value::from(format!("${{{{ secrets.{secret} }}}}")),
        );
    }
    let mut steps = vec![
        json!({"uses": "actions/checkout@v4"}),
        json!({"name": "Install runbook", "run": plan.install}),
    ];
    if plan.uses_az {
        let mut login = json!({
            "name": "Sign in to Azure (OpenID Connect)",
            "uses": "azure/login@v2",
            "with": {
                "client-id": "${{ secrets.AZURE_CLIENT_ID }}",
                "tenant-id": "${{ secrets.AZURE_TENANT_ID }}",
                "subscription-id": "${{ secrets.AZURE_SUBSCRIPTION_ID }}"
            }
        });
        if plan.has_fixtures {
            login["if"] = Value::from("${{ !inputs.replay }}");
        }
        steps.push(login);
    }
    steps.push(json!({
        "name": format!("Run {}", plan.path),
        "env": step_env,
        "run": run_command(&plan, params),
    }));
    steps.push(json!({
        "name": "Keep the executed runbook",
        "if": "always()",
        "uses": "actions/upload-artifact@v4",
        "with": {"name": "executed-runbook", "path": plan.path}
    }));
    let mut permissions = json!({"contents": "read"});
    if plan.uses_az {
        permissions["id-token"] = Value::from("write");
    }
    let workflow = json!({
        "name": title,
        "on": {"workflow_dispatch": {"inputs": inputs}},
        "permissions": permissions,
        "jobs": {"runbook": {"runs-on": "ubuntu-latest", "steps": steps}},
    });
    let yaml = serde_norway::to_string(&workflow).expect("workflows serialise");
    let mut header = format!(
        "# Generated by `runbook export {} --to github-actions`.\n",
        plan.path
    );
    if plan.uses_az {
        header.push_str("# Azure sign-in uses OpenID Connect: give the repository the secrets\n# AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_SUBSCRIPTION_ID of an app\n# registration with a federated credential for this repository.\n");
    }
    if !fixed.is_empty() {
        let names: Vec<&str> = fixed.iter().map(|(n, _)| n.as_str()).collect();
        header.push_str(&format!(
            "# GitHub takes {GITHUB_INPUTS} inputs at most: {} keep their defaults.\n",
            names.join(", ")
        ));
    }
    format!("{header}{yaml}")
}

pub fn azure_pipelines(file: &Path, runbook: &Runbook) -> String {
    let plan = plan(file, runbook);
    let mut parameters: Vec<Value> = plan
        .params
        .iter()
        .map(|(name, default)| json!({"name": name, "displayName": name, "type": "string", "default": default}))
        .collect();
    if plan.has_fixtures {
        // A string with two values: the published schema takes only string
        // defaults, and the script compares text either way.
        parameters.push(json!({"name": "replay", "displayName": "Replay the recorded fixtures instead of calling the real tools", "type": "string", "default": "false", "values": ["false", "true"]}));
    }
    if plan.uses_az {
        parameters.push(json!({"name": "serviceConnection", "displayName": "Azure service connection", "type": "string", "default": "azure"}));
    }
    let mut env = Map::new();
    for (name, _) in &plan.params {
        env.insert(
            format!("INPUT_{name}"),
            Value::from(format!("${{{{ parameters.{name} }}}}")),
        );
    }
    if plan.has_fixtures {
        env.insert(
            "INPUT_REPLAY".into(),
            Value::from("${{ parameters.replay }}"),
        );
    }
    for secret in &plan.secrets {
        // Secret variables reach a step only when mapped, as here.
        env.insert(secret.clone(), Value::from(format!("$({secret})")));
    }
    let script = run_command(&plan, &plan.params);
    let run = if plan.uses_az {
        json!({
            "task": "AzureCLI@2",
            "displayName": format!("Run {}", plan.path),
            "inputs": {
                "azureSubscription": "${{ parameters.serviceConnection }}",
                "scriptType": "bash",
                "scriptLocation": "inlineScript",
                "inlineScript": script,
            },
            "env": env,
        })
    } else {
        json!({"script": script, "displayName": format!("Run {}", plan.path), "env": env})
    };
    let pipeline = json!({
        "trigger": "none",
        "parameters": parameters,
        "pool": {"vmImage": "ubuntu-latest"},
        "steps": [
            {"checkout": "self"},
            {"script": plan.install, "displayName": "Install runbook"},
            run,
            {"publish": plan.path, "artifact": "executed-runbook", "condition": "always()", "displayName": "Keep the executed runbook"},
        ],
    });
    let yaml = serde_norway::to_string(&pipeline).expect("pipelines serialise");
    format!(
        "# Generated by `runbook export {} --to azure-pipelines`.\n{yaml}",
        plan.path
    )
}

/// `runbook test` over the runbooks `pattern` matches, as a GitHub Actions
/// matrix: `partitions` runners each test their stable share
/// (`--partition K/N`), and one job at the end adds up their closing lines.
pub fn github_actions_test(pattern: &str, partitions: u32) -> Result<String, String> {
    // The pattern is pasted into the script unquoted, so that the shell
    // expands it: only path and glob characters may stand in it.
    let safe = !pattern.is_empty()
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./*-+@,{}[]?".contains(c));
    if !safe {
        return Err(format!(
            "`{pattern}` is not a plain glob of runbooks (letters, digits and _ . / * - + @ , {{ }} [ ] ? only)"
        ));
    }
    let matrix: Vec<u32> = (1..=partitions).collect();
    let test_script = format!(
        "shopt -s globstar nullglob\nrunbook test --partition \"${{{{ matrix.partition }}}}/{partitions}\" {pattern} | tee \"result-${{{{ matrix.partition }}}}.txt\""
    );
    let summary_script = "total_passed=0; total_failed=0; total_skipped=0\n\
for file in result-*.txt; do\n\
  read -r passed _ failed _ skipped _ < <(tail -n 1 \"$file\" | tr -d ',')\n\
  total_passed=$((total_passed + passed)); total_failed=$((total_failed + failed)); total_skipped=$((total_skipped + skipped))\n\
done\n\
echo \"$total_passed passed, $total_failed failed, $total_skipped skipped\" | tee -a \"$GITHUB_STEP_SUMMARY\"\n\
test \"$total_failed\" = 0 && test \"${{ needs.test.result }}\" = success";
    let workflow = json!({
        "name": "runbook test",
        "on": {"push": {}, "pull_request": {}, "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": {
            "test": {
                "runs-on": "ubuntu-latest",
                "strategy": {"fail-fast": false, "matrix": {"partition": matrix}},
                "steps": [
                    {"uses": "actions/checkout@v4"},
                    {"name": "Install runbook", "run": "cargo install --locked runbook"},
                    {"name": format!("Test share ${{{{ matrix.partition }}}} of {partitions}"), "run": test_script},
                    {"if": "always()", "uses": "actions/upload-artifact@v4", "with": {"name": "result-${{ matrix.partition }}", "path": "result-${{ matrix.partition }}.txt"}},
                ],
            },
            "summary": {
                "needs": "test",
                "if": "always()",
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"uses": "actions/download-artifact@v4", "with": {"pattern": "result-*", "merge-multiple": true}},
                    {"name": "All shares together", "shell": "bash", "run": summary_script},
                ],
            },
        },
    });
    let yaml = serde_norway::to_string(&workflow).expect("workflows serialise");
    Ok(format!(
        "# Generated by `runbook export '{pattern}' --to github-actions-test --partitions {partitions}`.\n{yaml}"
    ))
}
