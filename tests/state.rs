//! Single cells, ranges, resume, dependencies, the state file and the lock.

use std::time::Duration;

use crate::support::Test;

fn state(test: &Test, name: &str) -> serde_json::Value {
    serde_json::from_str(&test.read(&format!(".runbook/{name}.md.json"))).unwrap()
}

const CHAIN: &str = "```bash {#a capture=A}\necho a >> ran; echo alpha\n```\n\n```bash {#b capture=B}\necho b >> ran; export REGION=westeurope; echo \"{{ A }}-beta\"\n```\n\n```bash {#c}\necho c >> ran; greet() { echo \"hello $1\"; }\n```\n\n```bash {#d}\necho d >> ran; echo \"$B {{ B }} $REGION\"\n```\n";

#[test]
fn a_changed_cell_runs_alone_with_the_last_runs_variables() {
    let test = Test::new();
    test.write("lab.md", CHAIN);
    test.run(&["run", "lab.md"]).code(0);
    assert_eq!(test.read("ran"), "a\nb\nc\nd\n");
    let first = state(&test, "lab");
    assert_eq!(
        first["captured"],
        serde_json::json!({"A": "alpha", "B": "alpha-beta"})
    );
    assert_eq!(first["env"]["REGION"], "westeurope");
    assert_eq!(first["cells"]["d"]["status"], "passed");

    // Edit cell d, see it as stale, run it alone.
    let edited = test.read("lab.md").replace(
        "echo \"$B {{ B }} $REGION\"",
        "echo \"now $B {{ B }} $REGION\"",
    );
    test.write("lab.md", &edited);
    let status = test.run(&["status", "lab.md", "--json"]).code(0);
    let stale: Vec<bool> = status
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["stale"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(stale, [false, false, false, true]);
    test.run(&["run", "lab.md", "--cell", "d"]).code(0);
    assert_eq!(test.read("ran"), "a\nb\nc\nd\nd\n");
    let doc = test.read("lab.md");
    assert!(
        doc.contains("```output\nnow alpha-beta alpha-beta westeurope\n```"),
        "{doc}"
    );
    assert!(doc.contains("```output\nalpha\n```"), "{doc}");
    let table = test.run(&["status", "lab.md"]).code(0).stdout;
    let row: Vec<&str> = table.lines().nth(4).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["4", "d", "passed", "0"], "{table}");
    assert!(table.starts_with("CELL  ID  LAST RESULT"), "{table}");
    assert!(table.lines().nth(4).unwrap().ends_with("no"), "{table}");
}

#[test]
fn deps_runs_the_chain_that_defines_what_a_cell_uses() {
    let test = Test::new();
    test.write(
        "lab.md",
        &format!("{CHAIN}\n```bash {{#e}}\ngreet e\n```\n"),
    );
    test.run(&["run", "lab.md", "--cell", "d", "--deps"])
        .code(0);
    assert_eq!(test.read("ran"), "a\nb\nd\n");
    std::fs::remove_file(test.path("ran")).unwrap();
    // A shell function cannot be restored from the state: without --deps
    // the run warns, with it the defining cell runs too.
    let run = test.run(&["run", "lab.md", "--cell", "e"]).code(1);
    assert!(
        run.stderr
            .contains("warning: cell e calls greet, a shell function cell c defines"),
        "{}",
        run.stderr
    );
    test.run(&["run", "lab.md", "--cell", "e", "--deps"])
        .code(0);
    assert_eq!(test.read("ran"), "c\n");
    assert!(test.read("lab.md").contains("```output\nhello e\n```"));
}

#[test]
fn a_variable_nobody_provides_is_an_error_naming_its_cell() {
    let test = Test::new();
    test.write("lab.md", CHAIN);
    let run = test.run(&["run", "lab.md", "--cell", "d"]).code(2);
    assert!(
        run.stderr
            .contains("error: cell d needs B, which cell b captures and this run does not have"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("run cell b first (it captures B), pass --set B=VALUE, or add --deps"),
        "{}",
        run.stderr
    );
    assert!(!test.path("ran").exists());
    test.run(&["run", "lab.md", "--cell", "d", "--set", "B=given"])
        .code(0);
    assert!(
        test.read("lab.md").contains("```output\ngiven given \n```"),
        "{}",
        test.read("lab.md")
    );
}

#[test]
fn resume_picks_up_at_the_failed_cell() {
    let test = Test::new();
    test.write(
        "lab.md",
        "```bash {#one capture=ONE}\necho 1 >> ran; echo first\n```\n\n```bash {#two}\necho 2 >> ran; cat needed.txt\n```\n\n```bash {#three}\necho 3 >> ran; echo \"{{ ONE }}\"\n```\n",
    );
    test.run(&["run", "lab.md"]).code(1);
    assert_eq!(test.read("ran"), "1\n2\n");
    assert_eq!(state(&test, "lab")["cells"]["two"]["status"], "failed");
    test.write("needed.txt", "now here\n");
    test.run(&["run", "lab.md", "--resume"]).code(0);
    assert_eq!(test.read("ran"), "1\n2\n2\n3\n");
    let doc = test.read("lab.md");
    assert!(doc.contains("```output\nnow here\n```"), "{doc}");
    assert!(doc.contains("```output\nfirst\n```"), "{doc}");
    let run = test.run(&["run", "lab.md", "--resume"]).code(0);
    assert!(run.stderr.contains("nothing to run"), "{}", run.stderr);
    assert_eq!(test.read("ran"), "1\n2\n2\n3\n");
}

#[test]
fn ranges_and_bad_ids() {
    let test = Test::new();
    test.write("lab.md", CHAIN);
    test.run(&["run", "lab.md", "--to", "b"]).code(0);
    test.run(&["run", "lab.md", "--from", "c", "--to", "4"])
        .code(0);
    assert_eq!(test.read("ran"), "a\nb\nc\nd\n");
    let run = test.run(&["run", "lab.md", "--cell", "nope"]).code(2);
    assert!(
        run.stderr
            .contains("--cell nope: no such cell (cells: a, b, c, d)"),
        "{}",
        run.stderr
    );
    let run = test
        .run(&["run", "lab.md", "--from", "d", "--to", "a"])
        .code(2);
    assert!(
        run.stderr.contains("--from d comes after --to a"),
        "{}",
        run.stderr
    );
}

#[test]
fn secrets_are_never_saved_and_must_be_given_again() {
    let test = Test::new();
    test.write(
        "lab.md",
        "```bash {#login capture=TOKEN secret}\necho \"tok-$(echo 12345)-en\"\n```\n\n```bash {#use}\necho \"using $TOKEN\"\n```\n",
    );
    test.run(&["run", "lab.md"]).code(0);
    let saved = test.read(".runbook/lab.md.json");
    assert!(!saved.contains("tok-12345-en"), "{saved}");
    assert!(!saved.contains("TOKEN\""), "{saved}");
    let run = test.run(&["run", "lab.md", "--cell", "use"]).code(2);
    assert!(
        run.stderr.contains(
            "TOKEN is a secret, and secrets are not kept between runs: pass --secret TOKEN=VALUE"
        ),
        "{}",
        run.stderr
    );
    test.run(&[
        "run",
        "lab.md",
        "--cell",
        "use",
        "--secret",
        "TOKEN=tok-12345-en",
    ])
    .code(0);
    assert!(test
        .read("lab.md")
        .contains("```output\nusing [masked:TOKEN]\n```"));
    assert!(!test.read(".runbook/lab.md.json").contains("tok-12345-en"));
}

#[test]
fn a_second_run_at_once_is_refused_and_a_stale_lock_is_taken_over() {
    let test = Test::new();
    let doc = "```bash\nsleep 1.5; echo slow\n```\n";
    test.write("lab.md", doc);
    let mut first = test
        .command(&["run", "lab.md"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first run to hold the lock.
    let lock = test.path(".runbook/lab.md.lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|s| !s.trim().is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = test.run(&["run", "lab.md"]).code(2);
    assert!(
        second
            .stderr
            .contains("lab.md is being run by another runbook process (pid"),
        "{}",
        second.stderr
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(
        test.read("lab.md"),
        "```bash\nsleep 1.5; echo slow\n```\n```output\nslow\n```\n"
    );
    // A lock file left by a run that was killed holds no lock any more.
    test.write(".runbook/lab.md.lock", "999999\n");
    test.write("lab.md", doc);
    test.run(&["run", "lab.md"]).code(0);
}
