//! Documents written to attack `export` and `check`: names, values and
//! file names that would add a key, a step or an expression to a
//! pipeline, leak a secret into a notebook, or make `check` run a
//! program the document names.

use std::path::{Path, PathBuf};

use crate::support::{executable, Test};

/// Names that are not identifiers, as YAML keys (JSON strings are YAML).
const BAD_NAMES: [&str; 7] = [
    "A: x\n  evil",
    "${{ github.token }}",
    "X-Y",
    "1X",
    "café",
    "a b",
    "",
];

/// `text` as a YAML double-quoted scalar: JSON's escapes, and YAML's own
/// for the characters YAML reads as line breaks.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text)
        .unwrap()
        .replace('\u{85}', "\\N")
        .replace('\u{2028}', "\\L")
        .replace('\u{2029}', "\\P")
}

#[test]
fn names_that_are_not_identifiers_are_refused_at_their_line_by_every_verb() {
    let test = Test::new();
    for name in BAD_NAMES {
        let key = yaml_string(name);
        let docs = [
            // (document, line of the bad name)
            (
                format!("---\nrunbook:\n  params:\n    GOOD: 1\n    {key}: 2\n---\n```bash\necho hi\n```\n"),
                if name.is_empty() { 3 } else { 5 },
            ),
            (
                format!("---\nrunbook:\n  secrets:\n  - OK\n  - {key}\n---\n```bash\necho hi\n```\n"),
                if name.is_empty() { 3 } else { 5 },
            ),
            (
                format!("---\nrunbook:\n  secrets: [OK, {key}]\n---\n```bash\necho hi\n```\n"),
                3,
            ),
        ];
        for (doc, line) in &docs {
            test.write("doc.md", doc);
            let at = format!("doc.md:{line}:");
            let runs = [
                test.run(&["check", "doc.md"]).code(1),
                test.run(&["run", "doc.md", "--no-write"]).code(2),
                test.run(&["list", "doc.md"]).code(2),
                test.run(&["export", "doc.md", "--to", "github-actions"])
                    .code(2),
                test.run(&["export", "doc.md", "--to", "azure-pipelines"])
                    .code(2),
                test.run(&["export", "doc.md", "--to", "ipynb"]).code(2),
            ];
            for run in runs {
                assert!(
                    run.stderr.contains("is not an identifier") && run.stderr.contains(&at),
                    "{name:?} at {at}\n{}",
                    run.stderr
                );
                assert!(!run.stdout.contains("jobs:"), "{}", run.stdout);
            }
        }
    }
}

/// A program that leaves a mark when anything runs it.
fn trap(test: &Test, name: &str) -> PathBuf {
    let mark = test.path("RAN");
    let path = test.write(
        name,
        &format!("#!/bin/sh\necho \"$0 $*\" >> '{}'\n", mark.display()),
    );
    executable(&path);
    path
}

#[test]
fn check_runs_nothing_the_document_names() {
    let test = Test::new();
    let evil = trap(&test, "bin/evil");
    trap(&test, "evil.sh");
    trap(&test, "bin/jq");
    let depth = "../".repeat(8);
    let relative = format!("{depth}{}", &evil.display().to_string()[1..]);
    let path = format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let env = [("PATH", path.as_str())];
    // Paths in `requires:` and `intercept:` are errors at their line.
    for (key, name) in [
        ("requires", evil.display().to_string()),
        ("requires", relative.clone()),
        ("requires", "./evil.sh".into()),
        ("requires", "a b".into()),
        ("requires", "-evil".into()),
        ("intercept", evil.display().to_string()),
        ("intercept", "../../escaped".into()),
    ] {
        let doc = format!(
            "---\nrunbook:\n  replay: fx\n  {key}:\n  - {}\n---\n```bash\necho hi\n```\n",
            yaml_string(&name)
        );
        test.write("doc.md", &doc);
        let run = test.run_env(&["check", "doc.md"], &env).code(1);
        assert!(
            run.stderr.contains("is not a program name") && run.stderr.contains("doc.md:5:"),
            "{key}: {name}\n{}",
            run.stderr
        );
    }
    // A plain name is looked up and reported, never run; so is a tool
    // that only a relative PATH entry (`.`) would find.
    test.write(
        "doc.md",
        "---\nrunbook:\n  requires: [jq, evil.sh, bash]\n---\n```bash {cwd=/}\ntouch RAN\n```\n",
    );
    let dotted = format!(".:{path}");
    let run = test
        .run_env(&["check", "doc.md"], &[("PATH", dotted.as_str())])
        .code(1);
    assert!(run.stdout.contains("jq: found at"), "{}", run.stdout);
    assert!(run.stdout.contains("evil.sh: NOT FOUND"), "{}", run.stdout);
    assert!(run.stdout.contains("bash: GNU bash"), "{}", run.stdout);
    // A shell that is a path is an unknown shell.
    test.write(
        "shell.md",
        &format!(
            "---\nrunbook:\n  shell: {}\n---\n```shell\necho hi\n```\n",
            evil.display()
        ),
    );
    let run = test.run_env(&["check", "shell.md"], &env).code(1);
    assert!(run.stderr.contains("unknown shell"), "{}", run.stderr);
    assert!(!test.path("RAN").exists(), "check ran {}", test.read("RAN"));
}

#[test]
fn an_intercepted_tool_named_by_a_path_places_no_shim_outside() {
    let test = Test::new();
    test.write("fx/doc.json", "{\"version\": 1, \"calls\": []}\n");
    let outside = test.path("escaped");
    for name in [
        outside.display().to_string(),
        "../../../../../../../../../../tmp/x".into(),
    ] {
        test.write(
            "doc.md",
            &format!(
                "---\nrunbook:\n  replay: fx\n  intercept: [{}]\n---\n```bash\necho hi\n```\n",
                yaml_string(&name)
            ),
        );
        let run = test.run(&["run", "doc.md", "--no-write"]).code(2);
        assert!(
            run.stderr.contains("is not a program name"),
            "{}",
            run.stderr
        );
    }
    assert!(std::fs::symlink_metadata(&outside).is_err());
}

/// Param values that mean something to YAML, a shell or a pipeline.
pub const HOSTILE_VALUES: [(&str, &str); 10] = [
    ("NEWLINES", "a\nb: c\n- run: evil\n"),
    ("QUOTES", "it's \"q\" `id` \\ $HOME"),
    ("SEPARATORS", "a\u{2028}b: 1\u{85}c\u{2029}"),
    ("HASH", "# not a comment"),
    ("ALIAS", "*anchor"),
    ("TAG", "!!python/object/apply:os.system ['id']"),
    ("COLON", "k: v"),
    ("SPACES", "  café ✓ 名前  "),
    // Strings a YAML 1.1 reader would take for a boolean, a number.
    ("YES", "on"),
    ("NUMBER", "1_000"),
];

/// File names that mean something to YAML or a shell, and that a
/// pipeline can still name (as data).
pub const HOSTILE_FILE_NAMES: [&str; 5] = [
    "it's \"quoted\".md",
    "# hash: colon.md",
    "two words & `ticks` $HOME.md",
    "-starts-with-dash.md",
    "café ✓.md",
];

/// A runbook whose front matter holds every hostile value, with a secret.
pub fn hostile_runbook() -> String {
    let mut doc = String::from("---\ntitle: \"x: y # z\"\nrunbook:\n  params:\n");
    for (name, value) in HOSTILE_VALUES {
        doc.push_str(&format!("    {name}: {}\n", yaml_string(value)));
    }
    doc.push_str("  secrets: [TOKEN]\n---\n# Hostile\n\n```bash\necho \"$NEWLINES\"\n```\n");
    doc
}

/// Every hostile runbook exported to GitHub Actions and Azure Pipelines
/// in `test`'s folder: (format, exported file, runbook's file name).
pub fn hostile_exports(test: &Test) -> Vec<(&'static str, PathBuf, String)> {
    let mut exports = Vec::new();
    for (i, file) in HOSTILE_FILE_NAMES.iter().enumerate() {
        let mut doc = hostile_runbook();
        if *file == "café ✓.md" {
            // The macro syntax Azure expands is refused there; GitHub
            // keeps it as data.
            doc = doc.replace("$HOME", "$(id)");
        }
        test.write(file, &doc);
        for format in ["github-actions", "azure-pipelines"] {
            let out = test.path(&format!("export-{i}.{format}.yml"));
            let run = test.run(&[
                "export",
                "--to",
                format,
                "-o",
                out.to_str().unwrap(),
                "--",
                file,
            ]);
            if format == "azure-pipelines" && doc.contains("$(id)") {
                run.code(2);
                continue;
            }
            run.code(0);
            exports.push((format, out, file.to_string()));
        }
    }
    exports
}

/// Runs a pipeline's script with a stand-in `runbook` that records its
/// arguments; returns them.
fn arguments_of(test: &Test, script: &str, env: &[(String, String)]) -> Vec<String> {
    let bin = test.path("fake-bin");
    let record = test.path("argv");
    let fake = test.write(
        "fake-bin/runbook",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{}'\n",
            record.display()
        ),
    );
    executable(&fake);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(test.dir.path())
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let argv = std::fs::read(&record).unwrap();
    String::from_utf8(argv)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

fn read_yaml(path: &Path) -> serde_json::Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn workflows_hold_hostile_names_and_values_as_data_only() {
    let test = Test::new();
    let exports = hostile_exports(&test);
    assert_eq!(exports.len(), 2 * HOSTILE_FILE_NAMES.len() - 1);
    let names: Vec<&str> = HOSTILE_VALUES.iter().map(|(n, _)| *n).collect();
    for (format, path, file) in &exports {
        let pipeline = read_yaml(path);
        let text = std::fs::read_to_string(path).unwrap();
        let expected_value = |name: &str| {
            let value = HOSTILE_VALUES.iter().find(|(n, _)| *n == name).unwrap().1;
            if file == "café ✓.md" {
                value.replace("$HOME", "$(id)")
            } else {
                value.to_string()
            }
        };
        // What runbook runs: the file, each param from the environment.
        let argv_expected = {
            let shown = if file.starts_with('-') {
                format!("./{file}")
            } else {
                file.clone()
            };
            let mut argv = vec!["run".to_string(), shown];
            for name in &names {
                argv.push("--set".into());
                argv.push(format!("{name}={}", expected_value(name)));
            }
            argv
        };
        let env: Vec<(String, String)> = names
            .iter()
            .map(|n| (format!("INPUT_{n}"), expected_value(n)))
            .collect();
        if *format == "github-actions" {
            let top: Vec<&String> = pipeline.as_object().unwrap().keys().collect();
            assert_eq!(top, ["name", "on", "permissions", "jobs"], "{file}");
            let inputs = pipeline["on"]["workflow_dispatch"]["inputs"]
                .as_object()
                .unwrap();
            assert_eq!(inputs.keys().collect::<Vec<_>>(), names, "{file}");
            for name in &names {
                assert_eq!(
                    inputs[*name]["default"],
                    expected_value(name),
                    "{file} {name}"
                );
            }
            let jobs = pipeline["jobs"].as_object().unwrap();
            assert_eq!(jobs.keys().collect::<Vec<_>>(), ["runbook"]);
            let steps = jobs["runbook"]["steps"].as_array().unwrap();
            assert_eq!(steps.len(), 4, "{file}");
            let run = &steps[2];
            assert_eq!(run["name"], format!("Run {file}"));
            let mut env_keys: Vec<String> = names.iter().map(|n| format!("INPUT_{n}")).collect();
            env_keys.push("TOKEN".into());
            let step_env = run["env"].as_object().unwrap();
            assert_eq!(step_env.keys().cloned().collect::<Vec<_>>(), env_keys);
            for name in &names {
                assert_eq!(
                    step_env[&format!("INPUT_{name}")],
                    format!("${{{{ inputs.{name} }}}}")
                );
            }
            assert_eq!(step_env["TOKEN"], "${{ secrets.TOKEN }}");
            let script = run["run"].as_str().unwrap();
            assert!(!script.contains("${{"), "{script}");
            assert_eq!(arguments_of(&test, script, &env), argv_expected, "{file}");
            assert_eq!(steps[3]["with"]["path"], file.as_str());
            for step in steps {
                if let Some(uses) = step["uses"].as_str() {
                    let (_, commit) = uses.split_once('@').unwrap();
                    assert!(
                        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                        "{uses}"
                    );
                }
            }
            assert_eq!(steps[0]["with"]["persist-credentials"], false);
            // The only expressions are the workflow's own.
            let expressions = text.matches("${{").count();
            assert_eq!(expressions, names.len() + 1, "{text}");
        } else {
            let parameters = pipeline["parameters"].as_array().unwrap();
            let declared: Vec<&str> = parameters
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(declared, names, "{file}");
            for (parameter, name) in parameters.iter().zip(&names) {
                assert_eq!(parameter["default"], expected_value(name));
            }
            let steps = pipeline["steps"].as_array().unwrap();
            assert_eq!(steps.len(), 4, "{file}");
            let script = steps[2]["script"].as_str().unwrap();
            assert!(
                !script.contains("${{") && !script.contains("$("),
                "{script}"
            );
            assert_eq!(arguments_of(&test, script, &env), argv_expected, "{file}");
            assert_eq!(steps[2]["env"]["TOKEN"], "$(TOKEN)");
            assert_eq!(steps[3]["publish"], file.as_str());
        }
    }
}

#[test]
fn file_names_a_pipeline_would_read_as_code_are_refused() {
    let test = Test::new();
    // (file name, whether GitHub reads it as code too: Azure always does)
    for (file, on_github) in [
        ("${{ github.token }}.md", true),
        ("two\nlines: evil\n.md", true),
        ("carriage\rreturn.md", true),
        ("separator\u{2028}x.md", true),
        ("x$(touch RAN).md", false),
        ("$[variables.x].md", false),
    ] {
        test.write(file, "```bash\necho hi\n```\n");
        for format in ["github-actions", "azure-pipelines"] {
            let args = ["export", "--to", format, "-o", "out.yml", "--", file];
            if format == "github-actions" && !on_github {
                // Data to GitHub: a shell-quoted word in the script.
                test.run(&args).code(0);
                let workflow = read_yaml(&test.path("out.yml"));
                let step = &workflow["jobs"]["runbook"]["steps"][2];
                let script = step["run"].as_str().unwrap();
                assert_eq!(arguments_of(&test, script, &[]), ["run", file]);
                std::fs::remove_file(test.path("out.yml")).unwrap();
                continue;
            }
            let run = test.run(&args).code(2);
            assert!(
                run.stderr.contains("rename the file"),
                "{file:?}: {}",
                run.stderr
            );
            assert!(!test.path("out.yml").exists());
        }
    }
    assert!(!test.path("RAN").exists());
}

#[test]
fn a_document_cannot_take_the_workflows_token_or_turn_a_secret_into_an_input() {
    let test = Test::new();
    for name in ["GITHUB_TOKEN", "github_token", "GITHUB_X"] {
        test.write(
            "doc.md",
            &format!("---\nrunbook:\n  secrets:\n  - OK\n  - {name}\n---\n```bash\necho hi\n```\n"),
        );
        let run = test
            .run(&["export", "doc.md", "--to", "github-actions"])
            .code(2);
        assert!(run.stderr.contains("doc.md:5:"), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    // A default written as a GitHub expression is a template of
    // runbook's own, never an input: it does not reach the workflow.
    test.write(
        "doc.md",
        "---\nrunbook:\n  params:\n    EXPR: \"${{ secrets.OTHER }}\"\n---\n```bash\necho hi\n```\n",
    );
    for format in ["github-actions", "azure-pipelines"] {
        let run = test.run(&["export", "doc.md", "--to", format]).code(0);
        assert!(!run.stdout.contains("OTHER"), "{}", run.stdout);
    }
    // A param that is also a secret: the pipeline's secret, never an
    // input whose value shows.
    test.write(
        "doc.md",
        "---\nrunbook:\n  params:\n    PASSWORD: hunter2\n    PLAIN: x\n  secrets: [PASSWORD]\n---\n```bash\necho hi\n```\n",
    );
    let run = test
        .run(&["export", "doc.md", "--to", "github-actions"])
        .code(0);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
    let workflow: serde_json::Value = serde_norway::from_str(&run.stdout).unwrap();
    let inputs = workflow["on"]["workflow_dispatch"]["inputs"]
        .as_object()
        .unwrap();
    assert_eq!(inputs.keys().collect::<Vec<_>>(), ["PLAIN"]);
    let step = &workflow["jobs"]["runbook"]["steps"][2];
    assert_eq!(step["env"]["PASSWORD"], "${{ secrets.PASSWORD }}");
    let run = test
        .run(&["export", "doc.md", "--to", "azure-pipelines"])
        .code(0);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
}

#[test]
fn azure_defaults_that_azure_would_expand_are_refused_at_their_line() {
    let test = Test::new();
    for value in ["$(System.AccessToken)", "$[ variables.x ]", "a $(b) c"] {
        test.write(
            "doc.md",
            &format!(
                "---\nrunbook:\n  params:\n    OK: x\n    LEAK: {}\n---\n```bash\necho hi\n```\n",
                yaml_string(value)
            ),
        );
        let run = test
            .run(&["export", "doc.md", "--to", "azure-pipelines"])
            .code(2);
        assert!(run.stderr.contains("doc.md:5:"), "{}", run.stderr);
        // GitHub does not expand them: there they are data.
        let run = test
            .run(&["export", "doc.md", "--to", "github-actions"])
            .code(0);
        let workflow: serde_json::Value = serde_norway::from_str(&run.stdout).unwrap();
        assert_eq!(
            workflow["on"]["workflow_dispatch"]["inputs"]["LEAK"]["default"],
            value
        );
    }
}

#[test]
fn an_exported_notebook_never_holds_a_secrets_value() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  params:\n    PLAIN: visible\n    FROM_ENV: \"e-{{ env.CALLER_TOKEN }}\"\n    API_KEY: param-default-key\n    LATER: \"{{ FROM_ENV }}-later\"\n  secrets: [API_KEY, PASSWORD]\n---\n# Secrets\n\n```bash {#show}\necho \"password is $PASSWORD\"\n```\n",
    );
    // A param built from a secret is refused before anything runs, and its
    // value reaches no export either.
    test.write(
        "derived.md",
        "---\nrunbook:\n  params:\n    API_KEY: param-default-key\n    FROM_SECRET: \"s-{{ API_KEY }}\"\n  secrets: [API_KEY]\n---\n```bash\necho \"$FROM_SECRET\"\n```\n",
    );
    test.run(&["run", "derived.md"]).code(2);
    for format in ["ipynb", "dib"] {
        let run = test.run(&["export", "derived.md", "--to", format]);
        assert!(
            !run.stdout.contains("s-param-default-key"),
            "{format} holds a secret\n{}",
            run.stdout
        );
    }
    let env = [
        ("CALLER_TOKEN", "caller-token-value"),
        ("PASSWORD", "password-value"),
        ("API_KEY", "api-key-value"),
    ];
    // A recorded output that held the secret is masked when recorded.
    test.run_env(
        &["run", "doc.md", "--secret", "PASSWORD=password-value"],
        &env,
    )
    .code(0);
    assert!(test.read("doc.md").contains("[masked:PASSWORD]"));
    for format in ["ipynb", "dib"] {
        let run = test
            .run_env(&["export", "doc.md", "--to", format], &env)
            .code(0);
        for leaked in [
            "caller-token-value",
            "password-value",
            "api-key-value",
            "s-param-default-key",
        ] {
            assert!(
                !run.stdout.contains(leaked),
                "{format} holds {leaked}\n{}",
                run.stdout
            );
        }
        // Export takes no secrets at all.
        test.run_env(
            &[
                "export",
                "doc.md",
                "--to",
                format,
                "--secret",
                "PASSWORD=password-value",
            ],
            &env,
        )
        .code(2);
    }
    let run = test
        .run_env(&["export", "doc.md", "--to", "ipynb"], &env)
        .code(0);
    let notebook: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cells = notebook["cells"].as_array().unwrap();
    let parameters: String = cells
        .iter()
        .find(|cell| cell["id"] == "runbook-parameters")
        .expect("a parameters cell")["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        parameters,
        "export PLAIN=visible\n# FROM_ENV: from the kernel's environment\n# API_KEY: from the kernel's environment\n# LATER: from the kernel's environment"
    );
}
