//! Secrets of every shape, planted in one run, never reach a byte runbook
//! writes: the document, the state file, the cassette, the terminal,
//! `--json`, temp files, or the command lines of the processes it starts.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{executable, walk, Test};

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";

/// Every planted secret, as it must never appear.
const PLANTED: [&str; 13] = [
    "pw-json-s3cret",
    "PW-JSON-S3CRET",
    "svc-admin-user",
    "tok-in-array-1",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "failing-s3cret-value",
    "slow-s3cret-value",
    "not-json-s3cret-value",
    "given-s3cret-value",
    "env-s3cret-value",
    "split-across-writes-s3cret",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
];

fn document() -> String {
    // No secret stands whole in the document: each is put together by the
    // cell that prints it, so any whole one found was leaked by runbook.
    let json = r#"{"user":"svc-admin-'"user"'","password":"pw-json-'"s3cret"'","list":["tok-in-array-'"1"'"]}"#;
    format!(
        r#"---
runbook:
  secrets: [FROM_ENV]
---
```bash {{capture-json=CREDS secret}}
echo '{json}'
```

```bash
echo "user $(jq -r .user <<<"$CREDS") pass $(jq -r .password <<<"$CREDS")"
echo "compact $CREDS"
echo "$FROM_ENV $GIVEN {{{{ GIVEN }}}} pin=$PIN" >&2
```

```bash
# The key, in pieces across writes, lines and streams.
printf -- '-----BEGIN PRIVATE KEY-----\nMIIEv'; sleep 0.2
printf 'QIBADANBgkqhkiG9w0BAQEFAASC\n%s%s\n' BKcwggSjAgEAAoIB AQC7VJTUt9Us8cKj; sleep 0.2
printf -- '-----END PRIVATE KEY-----\n'
printf '%s\n' "$KEY" >&2
printf 'split-across-'; sleep 0.2; printf 'writes-s3cret\n'
printf 'token %s%s\n' eyJhbGciOiJSUzI1NiJ9.eyJzdWIi OiJ4In0.c2lnbmF0dXJl
```

```bash
# Many lines around the key, so the cap cuts through it.
seq 1 3; printf '%s\n' "$KEY"; seq 1 50; printf '%s\n' "$KEY"; seq 1 3
```

```bash {{capture=FAILING secret continue-on-error}}
echo failing-"s3cret"-value; exit 3
```

```bash {{capture=SLOW secret timeout=1s continue-on-error}}
echo slow-"s3cret"-value; sleep 30
```

```bash {{capture-json=BAD secret continue-on-error}}
echo not-json-"s3cret"-value
```

```bash
echo "$FAILING $SLOW $BAD" >&2
```

```pwsh
Write-Output "{{{{ GIVEN }}}}"
```
"#
    )
}

/// A stand-in `pwsh` that takes a while, prints its code and its arguments.
fn fake_pwsh(test: &Test) -> String {
    test.write(
        "bin/pwsh",
        "#!/bin/bash\nsleep 0.5\necho \"args: $*\"\ncat\n",
    );
    executable(&test.path("bin/pwsh"));
    format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    )
}

/// Runs runbook, sampling the command lines of its child processes while
/// it runs; returns (stdout, stderr, command lines seen).
fn run_watching(test: &Test, args: &[&str], env: &[(&str, &str)]) -> (String, String, Vec<String>) {
    let mut command = test.command(args);
    command
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut seen = Vec::new();
    while child.try_wait().unwrap().is_none() {
        seen.extend(descendants_cmdlines(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    (out.join().unwrap(), err.join().unwrap(), seen)
}

/// The command lines of `root`'s descendants. A child caught between fork
/// and exec still shows `root`'s own command line (the caller's, with the
/// `--secret` the caller typed): that one is not the child's, and is left
/// out.
fn descendants_cmdlines(root: u32) -> Vec<String> {
    let own = std::fs::read(format!("/proc/{root}/cmdline")).unwrap_or_default();
    let mut parents = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.insert(pid, ppid);
        }
    }
    let mut found = Vec::new();
    for (&pid, _) in parents.iter() {
        let mut at = pid;
        while let Some(&parent) = parents.get(&at) {
            if parent == root {
                if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                    if cmdline != own {
                        found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
                    }
                }
                break;
            }
            at = parent;
        }
    }
    found
}

#[test]
fn planted_secrets_of_every_shape_leak_nowhere() {
    let test = Test::new();
    test.write("doc.md", &document());
    let path = fake_pwsh(&test);
    let env = [("FROM_ENV", "env-s3cret-value"), ("PATH", path.as_str())];
    let key = format!("KEY={PEM}");
    let mut everything = String::new();
    let mut commands = Vec::new();
    let mut trials = 0;
    for extra in [&["--json"][..], &[][..], &["--max-output", "6"][..]] {
        let mut args = vec![
            "run",
            "doc.md",
            "--secret",
            "GIVEN=given-s3cret-value",
            "--secret",
            &key,
            "--secret",
            "PIN=42x",
            "--secret",
            "SPLIT=split-across-writes-s3cret",
        ];
        args.extend_from_slice(extra);
        let (stdout, stderr, seen) = run_watching(&test, &args, &env);
        assert!(
            stderr.contains("warning: secret PIN is shorter than 4 characters"),
            "{stderr}"
        );
        everything.push_str(&stdout);
        everything.push_str(&stderr);
        commands.extend(seen);
        trials += 1;
    }
    // Every file the runs left: document, state, temp files, all of it.
    for entry in walk(test.dir.path()) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    assert!(!commands.is_empty(), "no child process was seen");
    let commands = commands.join("\n");
    let mut leaks = Vec::new();
    for secret in PLANTED.iter().chain(["42x"].iter()) {
        if everything.contains(secret) {
            leaks.push(format!("{secret} in output or files"));
        }
        if commands.contains(secret) {
            leaks.push(format!("{secret} in a command line"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:?} ({trials} runs)");
    // And what stands in their place says which secret it was.
    let doc = test.read("doc.md");
    for expected in [
        "user [masked:CREDS.user] pass [masked:CREDS.password]",
        "compact [masked:CREDS]",
        "[masked:FROM_ENV] [masked:GIVEN] [masked:GIVEN] pin=[masked:PIN]",
        "[masked:SPLIT]\ntoken [masked:JWT]",
        "[masked:FAILING]",
        "[masked:SLOW]",
        "[masked:BAD]",
    ] {
        assert!(doc.contains(expected), "{expected}\n{doc}");
    }
    assert!(doc.matches("[masked:KEY]").count() >= 2, "{doc}");
}

#[test]
fn a_file_cell_never_writes_a_secret_from_any_source() {
    let test = Test::new();
    // The value comes through an environment secret the template reads
    // via `env`, which no variable name gives away.
    test.write(
        "doc.md",
        "---\nrunbook:\n  secrets: [FROM_ENV]\n---\n```yaml {file=out.yaml}\npassword: {{ env.FROM_ENV }}\n```\n",
    );
    let run = test
        .run_env(&["run", "doc.md"], &[("FROM_ENV", "env-s3cret-value")])
        .code(2);
    assert!(!test.path("out.yaml").exists());
    assert!(
        run.stderr
            .contains("a file cell never holds a secret, and FROM_ENV is one"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("env-s3cret-value"));
    // A --secret value that a param's template carries into the file.
    test.write(
        "doc2.md",
        "---\nrunbook:\n  params:\n    CONN: \"host=db;pw={{ PW }}\"\n---\n```yaml {file=out2.yaml}\nconn: {{ CONN }}\n```\n",
    );
    let run = test.run(&[
        "run",
        "doc2.md",
        "--secret",
        "PW=given-s3cret-value",
        "--set",
        "PW2=x",
    ]);
    assert_ne!(run.code, 0);
    assert!(!test.path("out2.yaml").exists(), "{}", run.stderr);
    assert!(!run.stderr.contains("given-s3cret-value"), "{}", run.stderr);
}

#[test]
fn check_does_not_echo_a_secret_in_a_syntax_error() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  secrets: [TOKEN]\n---\n```bash\nif [ {{ env.TOKEN }} ]; then\n```\n",
    );
    let run = test.run_env(&["check", "doc.md"], &[("TOKEN", "tok-s3cret-value")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("bash syntax"), "{}", run.stderr);
    assert!(!run.stderr.contains("tok-s3cret-value") && !run.stdout.contains("tok-s3cret-value"));
}

#[test]
fn state_hashes_do_not_depend_on_secret_values() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho \"{{ PW }}\" | wc -c\n```\n");
    test.run(&["run", "doc.md", "--secret", "PW=one-s3cret"])
        .code(0);
    let first = test.read(".runbook/doc.md.json");
    test.run(&["run", "doc.md", "--secret", "PW=another-s3cret"])
        .code(0);
    let second = test.read(".runbook/doc.md.json");
    let hash = |text: &str| {
        let state: serde_json::Value = serde_json::from_str(text).unwrap();
        state["cells"]["1"]["script_hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A hash of the text with the secret in it would differ (and could be
    // guessed at); a hash of the text with `[masked:PW]` in its place does not.
    assert_eq!(hash(&first), hash(&second));
    assert!(!first.contains("s3cret") && !second.contains("s3cret"));
}

#[test]
fn a_recorded_call_with_a_masked_secret_replays() {
    let test = Test::new();
    test.write("bin/az", "#!/bin/bash\necho \"logged in as $4\"\n");
    executable(&test.path("bin/az"));
    let path = format!(
        "{}:{}",
        test.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    test.write(
        "doc.md",
        "```az\naz login --password {{ PW }} svc-user\n```\n",
    );
    test.run_env(
        &[
            "run",
            "doc.md",
            "--record",
            "fixtures",
            "--secret",
            "PW=rec-s3cret-value",
        ],
        &[("PATH", &path)],
    )
    .code(0);
    let cassette = test.read("fixtures/doc.json");
    assert!(
        cassette.contains("[masked:PW]") && !cassette.contains("rec-s3cret-value"),
        "{cassette}"
    );
    // Replayed without the tool, with the same secret and with another.
    for value in ["rec-s3cret-value", "rotated-s3cret-value"] {
        let secret = format!("PW={value}");
        let run = test.run(&["run", "doc.md", "--replay", "fixtures", "--secret", &secret]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(test.read("doc.md").contains("logged in as svc-user"));
    }
}
