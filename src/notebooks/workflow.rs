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
//!
//! Both are built as data and serialised, never pasted together: a name,
//! value or path from the document lands as a YAML string (an input's
//! default, an `env:` value, a shell-quoted word), never as a key, a step
//! or an expression. Param and secret names are identifiers (the front
//! matter refuses others); a path or value that a pipeline would read as
//! an expression (`${{`, and on Azure `$(` and `$[`) is refused. Actions
//! are pinned to the commit of a release, and the checkout keeps no
//! credentials.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::document::Runbook;

/// A GitHub action, pinned to the commit its release tag names.
struct Action {
    name: &'static str,
    commit: &'static str,
    release: &'static str,
}

impl Action {
    /// `owner/name@commit`, as `uses:` takes it.
    fn uses(&self) -> String {
        format!("{}@{}", self.name, self.commit)
    }
}

/// The actions the workflows use: the commits of their releases' tags
/// (read from each action's repository), so a moved tag cannot change
/// what runs. Update the commit and the release together.
const CHECKOUT: Action = Action {
    name: "actions/checkout",
    commit: "3d3c42e5aac5ba805825da76410c181273ba90b1",
    release: "v7.0.1",
};
const AZURE_LOGIN: Action = Action {
    name: "azure/login",
    commit: "f5d393ae46f8fde4be8b75f32e3fc50e654ad0ca",
    release: "v3.0.1",
};
const UPLOAD_ARTIFACT: Action = Action {
    name: "actions/upload-artifact",
    commit: "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
    release: "v7.0.0",
};
const DOWNLOAD_ARTIFACT: Action = Action {
    name: "actions/download-artifact",
    commit: "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
    release: "v8.0.1",
};
const ACTIONS: [&Action; 4] = [
    &CHECKOUT,
    &AZURE_LOGIN,
    &UPLOAD_ARTIFACT,
    &DOWNLOAD_ARTIFACT,
];

/// Why a runbook cannot be exported as a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// The front matter entry at fault (a param or secret name), if any.
    pub name: Option<String>,
}

impl Refusal {
    fn of(name: Option<&str>, message: String) -> Refusal {
        Refusal {
            message,
            name: name.map(str::to_string),
        }
    }
}

/// What GitHub reads as an expression inside a string.
const GITHUB_EXPRESSIONS: [&str; 1] = ["${{"];
/// What Azure Pipelines reads as an expression inside a string: template
/// expressions, macros and runtime expressions.
const AZURE_EXPRESSIONS: [&str; 3] = ["${{", "$(", "$["];

/// The expression syntax `text` holds, if any.
fn expression_in(text: &str, syntaxes: &[&'static str]) -> Option<&'static str> {
    syntaxes.iter().copied().find(|s| text.contains(s))
}

/// Whether `c` ends a line for some YAML reader (YAML 1.1 counts NEL and
/// the Unicode line and paragraph separators), or is another control
/// character no path or name needs.
fn breaks_lines(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

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

/// `expressions`: what the pipeline reads as an expression, refused in
/// the path.
fn plan(file: &Path, runbook: &Runbook, expressions: &[&'static str]) -> Result<Plan, Refusal> {
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
    if path.chars().any(breaks_lines) {
        return Err(Refusal::of(
            None,
            format!(
                "`{}` has a line break or control character in its path; a pipeline cannot name it safely: rename the file",
                path.escape_debug()
            ),
        ));
    }
    if let Some(syntax) = expression_in(&path, expressions) {
        return Err(Refusal::of(
            None,
            format!(
                "`{path}` holds `{syntax}`, which a pipeline would read as an expression: rename the file"
            ),
        ));
    }
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
        // A secret is given by the pipeline's secrets, never as an input
        // whose value anyone can read.
        .filter(|(name, _)| !runbook.settings.secrets.contains(name))
        .collect();
    let uses_az = runbook.settings.requires.iter().any(|t| t == "az")
        || runbook.cells.iter().any(|c| {
            !c.options.skip
                && (c.lang == "az" || c.body.lines().any(|l| l.trim_start().starts_with("az ")))
        });
    Ok(Plan {
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
    })
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
    // A path that starts with `-` is not read as an option.
    let path = if plan.path.starts_with('-') {
        format!("./{}", plan.path)
    } else {
        plan.path.clone()
    };
    let mut command = format!("runbook run {}", crate::template::shell_quote(&path));
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

pub fn github_actions(file: &Path, runbook: &Runbook, title: &str) -> Result<String, Refusal> {
    let plan = plan(file, runbook, &GITHUB_EXPRESSIONS)?;
    // `secrets.GITHUB_TOKEN` is the workflow's own token, and GitHub
    // keeps the `GITHUB_` prefix for itself: a document cannot ask for it.
    if let Some(name) = plan
        .secrets
        .iter()
        .find(|s| s.to_ascii_uppercase().starts_with("GITHUB_"))
    {
        return Err(Refusal::of(
            Some(name),
            format!("secret {name}: GitHub keeps names starting with GITHUB_ for itself (GITHUB_TOKEN is the workflow's own token); name the secret otherwise"),
        ));
    }
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
        checkout(),
        json!({"name": "Install runbook", "run": plan.install}),
    ];
    if plan.uses_az {
        let mut login = json!({
            "name": "Sign in to Azure (OpenID Connect)",
            "uses": AZURE_LOGIN.uses(),
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
    // An empty `env:` is left out: actionlint faults it.
    let mut run = Map::new();
    run.insert("name".into(), Value::from(format!("Run {}", plan.path)));
    if !step_env.is_empty() {
        run.insert("env".into(), Value::Object(step_env));
    }
    run.insert("run".into(), Value::from(run_command(&plan, params)));
    steps.push(Value::Object(run));
    steps.push(json!({
        "name": "Keep the executed runbook",
        "if": "always()",
        "uses": UPLOAD_ARTIFACT.uses(),
        "with": {"name": "executed-runbook", "path": plan.path}
    }));
    // The workflow grants nothing; the job what it needs.
    let mut permissions = json!({"contents": "read"});
    if plan.uses_az {
        permissions["id-token"] = Value::from("write");
    }
    let workflow = json!({
        "name": title,
        "on": {"workflow_dispatch": {"inputs": inputs}},
        "permissions": {},
        "jobs": {"runbook": {"name": format!("Run {}", plan.path), "runs-on": "ubuntu-latest", "permissions": permissions, "steps": steps}},
    });
    let yaml = serialise(&workflow);
    let mut header = format!(
        "# Generated by `runbook export {} --to github-actions`.\n",
        crate::template::shell_quote(&plan.path)
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
    Ok(format!("{header}{yaml}"))
}

/// The checkout step: it keeps no credentials in the work tree, where the
/// runbook's cells could read them.
fn checkout() -> Value {
    json!({"name": "Check out the repository", "uses": CHECKOUT.uses(), "with": {"persist-credentials": false}})
}

/// YAML for a pipeline, each pinned action followed by its release as a
/// comment (`# v7.0.1`, as tools that update pins expect), and each plain
/// string that a YAML 1.1 reader would take for something else (`yes`,
/// `on`, `1_000`, `2024-01-01`) single-quoted, so every reader gets the
/// same strings. The text is read back and must be the very structure
/// given: no string became a key, a step or an expression.
fn serialise(pipeline: &Value) -> String {
    let plain = serde_norway::to_string(pipeline).expect("pipelines serialise");
    let same =
        |text: &str| serde_norway::from_str::<Value>(text).is_ok_and(|read| read == *pipeline);
    assert!(same(&plain), "a pipeline reads back as it was built");
    let mut text = String::new();
    // The indent of the line that opened a block scalar (`run: |-`),
    // whose content lines are left as they are.
    let mut block: Option<usize> = None;
    for line in plain.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(open) = block {
            if line.trim().is_empty() || indent > open {
                text.push_str(line);
                text.push('\n');
                continue;
            }
            block = None;
        }
        let item = line.trim_start().trim_start_matches("- ");
        let lead = &line[..line.len() - item.len()];
        // `key: value`, `key:` or a bare `value`.
        let (key, value) = match item.split_once(": ") {
            Some((key, value)) => (Some(key), value),
            None => match item.strip_suffix(':') {
                Some(key) => (Some(key), ""),
                None => (None, item),
            },
        };
        if value.starts_with(['|', '>']) {
            block = Some(indent);
        }
        let release = item
            .strip_prefix("uses: ")
            .and_then(|uses| ACTIONS.iter().find(|a| a.uses() == uses).map(|a| a.release));
        if let Some(release) = release {
            text.push_str(&format!("{line} # {release}\n"));
            continue;
        }
        // The workflow's own `on:` stays as GitHub writes it.
        let quote = |scalar: &str, is_key: bool| {
            if (is_key && indent == 0) || !reads_otherwise_in_yaml_1_1(scalar) {
                scalar.to_string()
            } else {
                format!("'{scalar}'")
            }
        };
        match key {
            Some(key) if value.is_empty() => text.push_str(&format!("{lead}{}:", quote(key, true))),
            Some(key) => text.push_str(&format!(
                "{lead}{}: {}",
                quote(key, true),
                quote(value, false)
            )),
            None => text.push_str(&format!("{lead}{}", quote(value, false))),
        }
        text.push('\n');
    }
    if same(&text) {
        text
    } else {
        plain
    }
}

/// Whether a plain scalar that YAML 1.2 (serde_norway, GitHub, Azure)
/// reads as a string would be a boolean, number, date or null to a YAML
/// 1.1 reader (PyYAML, older tools).
fn reads_otherwise_in_yaml_1_1(scalar: &str) -> bool {
    static YAML_1_1: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let yaml_1_1 = YAML_1_1.get_or_init(|| {
        regex::Regex::new(
            r"^(?i:y|n|yes|no|on|off|true|false|null|~|=|<<|[-+]?[0-9.][0-9a-z_:.+-]*|[-+]?\.(inf|nan))$",
        )
        .expect("valid regex")
    });
    yaml_1_1.is_match(scalar)
        && matches!(
            serde_norway::from_str::<serde_norway::Value>(scalar),
            Ok(serde_norway::Value::String(_))
        )
}

pub fn azure_pipelines(file: &Path, runbook: &Runbook) -> Result<String, Refusal> {
    let plan = plan(file, runbook, &AZURE_EXPRESSIONS)?;
    // A parameter's value is pasted into the step's `env:` at compile
    // time, where Azure then expands `$(...)` macros: a default holding
    // one would read a pipeline variable (System.AccessToken...).
    for (name, default) in &plan.params {
        if let Some(syntax) = expression_in(default, &AZURE_EXPRESSIONS) {
            return Err(Refusal::of(
                Some(name),
                format!("param {name}: its default holds `{syntax}`, which Azure Pipelines would expand as an expression; give the value at queue time instead"),
            ));
        }
    }
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
    let mut run = run;
    if let Some(step) = run.as_object_mut() {
        if step["env"].as_object().is_some_and(Map::is_empty) {
            // `env` is the step's last key: removing it keeps the order.
            step.remove("env");
        }
    }
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
    let yaml = serialise(&pipeline);
    Ok(format!(
        "# Generated by `runbook export {} --to azure-pipelines`.\n{yaml}",
        crate::template::shell_quote(&plan.path)
    ))
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
                "name": "Test a share of the runbooks",
                "runs-on": "ubuntu-latest",
                "strategy": {"fail-fast": false, "matrix": {"partition": matrix}},
                "steps": [
                    checkout(),
                    {"name": "Install runbook", "run": "cargo install --locked runbook"},
                    {"name": format!("Test share ${{{{ matrix.partition }}}} of {partitions}"), "run": test_script},
                    {"name": "Keep the share's result", "if": "always()", "uses": UPLOAD_ARTIFACT.uses(), "with": {"name": "result-${{ matrix.partition }}", "path": "result-${{ matrix.partition }}.txt"}},
                ],
            },
            "summary": {
                "name": "Add up the shares",
                "needs": "test",
                "if": "always()",
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"name": "Fetch every share's result", "uses": DOWNLOAD_ARTIFACT.uses(), "with": {"pattern": "result-*", "merge-multiple": true}},
                    {"name": "All shares together", "shell": "bash", "run": summary_script},
                ],
            },
        },
    });
    let yaml = serialise(&workflow);
    Ok(format!(
        "# Generated by `runbook export '{pattern}' --to github-actions-test --partitions {partitions}`.\n{yaml}"
    ))
}
