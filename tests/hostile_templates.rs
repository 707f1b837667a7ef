//! Hostile templates: nothing a document's templates do can derive text
//! from a secret, write one to disk, or keep runbook busy for long. Every
//! attack runs through `check`, `status`, `run --dry-run`, `run` and
//! `run --json`; then every byte left on disk and printed is searched for
//! the secret and for the forms a template or a tool could turn it into.

use std::time::{Duration, Instant};

use crate::support::{walk, Run, Test};

/// A secret with something for every kind of quoting and encoding.
const SECRET: &str = "Sec'ret \"dq\" $x \\ & é/ü end";

/// What a leak of `value` could look like: the value, and what the
/// templates below would make of it.
fn leak_forms(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).unwrap();
    let mut forms = vec![
        value.to_string(),
        value.to_uppercase(),
        value.to_lowercase(),
        value.chars().rev().collect(),
        value.chars().skip(1).collect(),
        value.chars().take(value.chars().count() - 1).collect(),
        json[1..json.len() - 1].to_string(),
        percent_encoded(value),
        percent_encoded(value).replace("%20", "+"),
        value.replace('\'', r"'\''"),
        value.replace('"', "&#34;"),
        value.replace('&', "&amp;").replace('"', "&quot;"),
    ];
    // A value taken apart one piece per line or per separator.
    forms.push(value.chars().map(|c| format!("{c},")).collect());
    forms.push(value.chars().map(|c| format!("{c}\n")).collect());
    forms.retain(|f| f.chars().count() >= 8);
    forms
}

fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Everything the runs printed and every file below the test's folder.
fn everything(test: &Test, runs: &[&Run]) -> String {
    let mut all = String::new();
    for run in runs {
        all.push_str(&run.stdout);
        all.push_str(&run.stderr);
    }
    for file in walk(test.dir.path()) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(file).unwrap()));
    }
    all
}

/// The leaked forms of `value` found in `text`.
fn leaks(text: &str, value: &str) -> Vec<String> {
    leak_forms(value)
        .into_iter()
        .filter(|form| text.contains(form.as_str()))
        .collect()
}

/// A document whose second cell is `cell`, the secret `S` declared.
fn document(cell: &str) -> String {
    format!("---\nrunbook:\n  secrets: [S]\n---\n```bash\necho first\n```\n\n{cell}\n")
}

/// Runs every command over `doc.md` with the secret given.
fn every_command(test: &Test) -> Vec<Run> {
    let secret = format!("S={SECRET}");
    let env = [("S", SECRET)];
    let mut runs = vec![
        test.run_env(&["check", "doc.md"], &env),
        test.run_env(&["status", "doc.md"], &env),
        test.run_env(&["list", "doc.md"], &env),
        test.run_env(&["run", "doc.md", "--dry-run", "--secret", &secret], &env),
    ];
    runs.push(test.run_env(&["run", "doc.md", "--secret", &secret], &env));
    runs.push(test.run_env(&["run", "doc.md", "--json", "--secret", &secret], &env));
    runs
}

/// Templates that do something with a secret other than place it.
const DERIVATIONS: [&str; 27] = [
    r#"{% set x = S ~ "" %}{{ x }}"#,
    r#"{{ S ~ "" }}"#,
    "{{ S[1:] }}",
    "{{ S[0] }}",
    "{{ S|reverse }}",
    "{{ S|upper }}",
    "{{ S|lower }}",
    "{{ S|string }}",
    "{{ S|safe }}",
    "{{ S|raw }}",
    "{% for c in S %}{{ c }},{% endfor %}",
    "{% for c in S|list %}{{ c }},{% endfor %}",
    "{{ S|urlencode }}",
    "{{ S|tojson }}",
    "{{ S|length }}",
    "{{ S|replace('e', 'E') }}",
    "{{ S|default('x')|upper }}",
    r#"{% if S == "x" %}same{% endif %}"#,
    "{% if S|length > 3 %}long{% endif %}",
    "{{ [S]|join }}",
    r#"{{ {"k": S}|tojson }}"#,
    "{{ (S,)|first|upper }}",
    "{% macro m(x) %}{{ x|upper }}{% endmacro %}{{ m(S) }}",
    "{% macro m() %}{{ caller()|upper }}{% endmacro %}{% call m() %}{{ S }}{% endcall %}",
    "{% filter lower %}{{ S }}{% endfilter %}",
    "{% for k, v in env|items %}{{ v ~ '' }}{% endfor %}",
    "{% for k in env %}{{ env[k]|upper }}{% endfor %}",
];

#[test]
fn deriving_a_secret_in_a_template_is_an_error_and_leaks_nothing() {
    let mut tried = 0;
    for template in DERIVATIONS {
        let test = Test::new();
        test.write(
            "doc.md",
            &document(&format!("```bash\necho {template}\n```")),
        );
        let runs = every_command(&test);
        let all = everything(&test, &runs.iter().collect::<Vec<_>>());
        assert_eq!(leaks(&all, SECRET), Vec::<String>::new(), "{template}");
        // The run stops before any cell runs: the runbook is wrong.
        let run = &runs[4];
        assert_eq!(run.code, 2, "{template}\n{}", run.stderr);
        assert!(
            run.stderr.contains("doc.md:10:") && run.stderr.contains("secret S"),
            "{template}\n{}",
            run.stderr
        );
        assert!(!test.read("doc.md").contains("```output"), "{template}");
        tried += 1;
    }
    assert_eq!(tried, DERIVATIONS.len());
}

#[test]
fn a_secret_in_a_shell_cell_is_a_reference_to_its_variable_in_every_quoting() {
    let test = Test::new();
    test.write(
        "doc.md",
        &document(concat!(
            "```bash\n",
            "printf '[%s]\\n' {{ S }} \"in {{ S }} dq\" 'in {{ S }} sq' $'in {{ S }} ansi'\n",
            "printf '[%s]\\n' ${UNSET:-{{ S }}} $(printf %s {{ S }} | wc -c)\n",
            "cat <<EOF\nheredoc {{ S }} {{ env.S }}\nEOF\n",
            "```\n\n",
            "```pwsh {skip}\nWrite-Output \"{{ S }}\"\n```",
        )),
    );
    let secret = format!("S={SECRET}");
    let dry = test
        .run_env(
            &["run", "doc.md", "--dry-run", "--secret", &secret],
            &[("S", SECRET)],
        )
        .code(0);
    assert!(
        dry.stdout.contains(concat!(
            "printf '[%s]\\n' \"${S}\" \"in ${S} dq\" 'in '\"${S}\"' sq' $'in '\"${S}\"$' ansi'\n",
            "printf '[%s]\\n' ${UNSET:-\"${S}\"} $(printf %s \"${S}\" | wc -c)\n",
            "cat <<EOF\nheredoc ${S} ${S}\nEOF\n",
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("Write-Output \"${env:S}\""),
        "{}",
        dry.stdout
    );
    let run = test
        .run_env(&["run", "doc.md", "--secret", &secret], &[("S", SECRET)])
        .code(0);
    let doc = test.read("doc.md");
    let bytes = SECRET.len().to_string();
    for line in [
        "[[masked:S]]",
        "[in [masked:S] dq]",
        "[in [masked:S] sq]",
        "[in [masked:S] ansi]",
        &format!("[{bytes}]"),
        "heredoc [masked:S] [masked:S]",
    ] {
        assert!(doc.contains(line), "{line}\n{doc}");
    }
    assert_eq!(
        leaks(&everything(&test, &[&dry, &run]), SECRET),
        Vec::<String>::new()
    );
}

#[test]
fn a_secret_where_no_reference_can_stand_is_an_error_naming_the_line() {
    for (cell, why) in [
        (
            "```bash\ncat <<'EOF'\n{{ S }}\nEOF\n```",
            "here-document whose delimiter is quoted",
        ),
        ("```bash\necho $(( {{ S }} + 1 ))\n```", "arithmetic"),
        ("```bash\necho `echo {{ S }}`\n```", "inside backquotes"),
        (
            "```python\nprint(\"{{ S }}\")\n```",
            "os.environ[\"S\"]",
        ),
        (
            "```bash {capture-json=CREDS secret}\necho '{\"password\": \"pw\"}'\n```\n\n```bash\necho {{ CREDS.password }}\n```",
            "jq -r '.password'",
        ),
    ] {
        let test = Test::new();
        test.write("doc.md", &document(cell));
        let secret = format!("S={SECRET}");
        let run = test.run(&["run", "doc.md", "--secret", &secret]).code(2);
        assert!(
            run.stderr.contains("template error") && run.stderr.contains(why),
            "{cell}\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("doc.md:"), "{}", run.stderr);
        assert_eq!(
            leaks(&everything(&test, &[&run]), SECRET),
            Vec::<String>::new()
        );
    }
}

#[test]
fn a_file_cell_refuses_a_secret_direct_or_derived() {
    for body in [
        "password: {{ S }}",
        "password: {{ env.S }}",
        "password: {% filter upper %}{{ S }}{% endfilter %}",
        "password: {% set p = S ~ '' %}{{ p }}",
        "password: {% for c in S %}{{ c }}{% endfor %}",
        "{% macro m(x) %}{{ x }}{% endmacro %}password: {{ m(S) }}",
        "{% for k in env %}{{ env[k] }}{% endfor %}",
    ] {
        let test = Test::new();
        test.write(
            "doc.md",
            &document(&format!("```yaml {{file=out.yaml}}\n{body}\n```")),
        );
        let runs = every_command(&test);
        let run = &runs[4];
        assert_ne!(run.code, 0, "{body}\n{}", run.stderr);
        assert!(!test.path("out.yaml").exists(), "{body}");
        assert!(
            run.stderr.contains("doc.md:")
                && (run
                    .stderr
                    .contains("file cell would write secret S to out.yaml")
                    || run
                        .stderr
                        .contains("file cell would write a secret to out.yaml: S")
                    || run.stderr.contains("transforms secret S")
                    || run
                        .stderr
                        .contains("a file cell never holds a secret, and S is one")),
            "{body}\n{}",
            run.stderr
        );
        let all = everything(&test, &runs.iter().collect::<Vec<_>>());
        assert_eq!(leaks(&all, SECRET), Vec::<String>::new(), "{body}");
    }
}

/// Secrets that tools print in escaped or encoded forms.
const AWKWARD: [&str; 5] = [
    "it's a \"q\" $x \\ & é\nline2 ü",
    "tab\there & more",
    "spaces only here/and/slash",
    "uni é€😀 ctl\u{1} end",
    "a+b=c?d&e#f%g",
];

/// Commands that print `$S` the way shells and tools quote or encode it.
const PRINTERS: &str = r#"set -x; : "$S"; { set +x; } 2>/dev/null
printf '%q\n' "$S"
declare -p S
python3 -c 'import os; print(repr(os.environ["S"]))'
python3 -c 'import os, json; print(json.dumps(os.environ["S"]))'
jq -rn 'env.S|tojson'
jq -rn 'env.S|@uri'
python3 -c 'import os, urllib.parse as u; print(u.quote(os.environ["S"])); print(u.quote_plus(os.environ["S"]))'
"#;

#[test]
fn secrets_are_masked_in_the_forms_shells_and_tools_print_them_in() {
    for tool in ["python3", "jq"] {
        if runbook::tools::find_on_path(tool, None).is_none() {
            eprintln!("skipped: {tool} is not installed");
            return;
        }
    }
    let mut forms_checked = 0;
    for secret in AWKWARD {
        let test = Test::new();
        test.write(
            "doc.md",
            &format!("---\nrunbook:\n  secrets: [S]\n---\n```bash\n{PRINTERS}```\n"),
        );
        // What the tools print, run directly: none of it may be shown.
        let direct = std::process::Command::new("bash")
            .arg("-c")
            .arg(PRINTERS)
            .env("S", secret)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&direct.stdout),
            String::from_utf8_lossy(&direct.stderr)
        );
        let forms: Vec<String> = printed
            .lines()
            .map(|line| line.trim_start_matches('+').trim_start().to_string())
            .filter(|line| line.chars().count() >= 8)
            .collect();
        assert!(forms.len() >= 8, "{printed}");
        let run = test
            .run_env(&["run", "doc.md", "--json"], &[("S", secret)])
            .code(0);
        let plain = test.run_env(&["run", "doc.md"], &[("S", secret)]).code(0);
        let all = everything(&test, &[&run, &plain]);
        for form in &forms {
            assert!(
                !all.contains(form.as_str()),
                "{secret:?} leaked as {form:?}\n{}",
                test.read("doc.md")
            );
            forms_checked += 1;
        }
        assert!(
            test.read("doc.md").matches("[masked:S]").count() >= 8,
            "{}",
            test.read("doc.md")
        );
    }
    assert!(forms_checked >= 40, "{forms_checked}");
}

/// Templates that would run for ages, recurse without end or make
/// gigabytes of text.
const HEAVY: [(&str, &str); 7] = [
    (
        "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}x{% endfor %}{% endfor %}",
        "budget",
    ),
    (
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "recursion limit",
    ),
    ("{{ 'x' * 10 ** 9 }}", "too large"),
    (
        "{% for a in 'x' * 1000 %}{{ 'y' * 100000 }}{% endfor %}",
        "more than 4 MiB",
    ),
    (
        "{% set a = 'x' * 90000000 %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a|length }}",
        "allocates more than 256 MiB",
    ),
    (
        "{{ 'a'|indent(10000000000) }}",
        "allocates more than 256 MiB",
    ),
    (
        "{{ ('x' * 50000000)|list|length }}",
        "allocates more than 256 MiB",
    ),
];

#[test]
fn heavy_templates_end_quickly_with_an_error_naming_the_line() {
    for (template, why) in HEAVY {
        let test = Test::new();
        test.write(
            "doc.md",
            &format!("---\nrunbook:\n  params: {{ P: x }}\n---\n```bash\necho first\n```\n\n```bash\necho {template}\n```\n"),
        );
        for args in [
            &["check", "doc.md"][..],
            &["status", "doc.md"],
            &["list", "doc.md"],
            &["run", "doc.md", "--dry-run"],
            &["run", "doc.md"],
        ] {
            let started = Instant::now();
            let run = test.run(args);
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(8),
                "{template}: {args:?} took {took:?}"
            );
            match args[0] {
                "check" => {
                    assert_eq!(run.code, 1, "{template}\n{}", run.stderr);
                    assert!(
                        run.stderr.contains("doc.md:10") && run.stderr.contains(why),
                        "{template}\n{}",
                        run.stderr
                    );
                }
                "run" if args.len() == 2 => {
                    assert_eq!(run.code, 1, "{template}\n{}", run.stderr);
                    assert!(
                        run.stderr.contains("doc.md:10: template error in cell 2")
                            && run.stderr.contains(why),
                        "{template}\n{}",
                        run.stderr
                    );
                }
                "run" => {
                    assert!(
                        run.stdout.contains("doc.md:9") && run.stdout.contains(why),
                        "{template}\n{}",
                        run.stdout
                    );
                }
                _ => assert_eq!(run.code, 0, "{template}: {args:?}\n{}", run.stderr),
            }
        }
    }
}

#[test]
fn a_cells_timeout_covers_its_rendering() {
    let test = Test::new();
    // Each step searches 100 MB of text: within the fuel and memory
    // budgets, but slow.
    test.write(
        "doc.md",
        "```bash\necho first\n```\n\n```bash {timeout=1s}\necho {% set s = 'x' * 100000000 %}{% for a in 'x' * 5000 %}{% if 'y' in s %}{% endif %}{% endfor %}done\n```\n",
    );
    let started = Instant::now();
    let run = test.run(&["run", "doc.md"]).code(1);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.stderr
            .contains("doc.md:6: cell 2 timed out after 1s rendering its template"),
        "{}",
        run.stderr
    );
    assert!(test.read("doc.md").contains("```output {exit=124}"));
}

#[test]
fn templates_false_runs_braces_exactly_as_written() {
    let test = Test::new();
    test.write(
        "go.md",
        "---\nrunbook:\n  templates: false\n  params:\n    NAME: x\n---\n```bash\nprintf '%s\\n' '{{.ID}}' '{{ NAME }}' '{% if x %}' \"{{ lookup('env', 'HOME') }}\"\n```\n\n```yaml {file=out.txt}\n{{ NAME }}\n```\n",
    );
    test.run(&["check", "go.md"]).code(0);
    let dry = test.run(&["run", "go.md", "--dry-run"]).code(0);
    assert!(dry.stdout.contains("'{{ NAME }}'"), "{}", dry.stdout);
    test.run(&["run", "go.md"]).code(0);
    assert!(
        test.read("go.md").contains(
            "```output\n{{.ID}}\n{{ NAME }}\n{% if x %}\n{{ lookup('env', 'HOME') }}\n```"
        ),
        "{}",
        test.read("go.md")
    );
    assert_eq!(test.read("out.txt"), "{{ NAME }}\n");
    // The same document with templates on renders, and a Go template in
    // it is a template error.
    let on = test.read("go.md").replace("  templates: false\n", "");
    test.write("on.md", &on);
    test.run(&["check", "on.md"]).code(1);
}

#[test]
fn many_slow_templates_share_one_budget_per_document() {
    let test = Test::new();
    // Each rendering counts 100 MB of text thousands of times: within the
    // fuel and memory budgets, and about 10 s alone.
    let slow = "```bash\n{% set s = \"ab\" * 50000000 %}{% for c in s[:9000] %}{{ s|length }}{% endfor %}\n```\n\n";
    test.write("doc.md", &slow.repeat(6));
    for args in [&["check", "doc.md"][..], &["run", "doc.md", "--dry-run"]] {
        let started = Instant::now();
        let run = test.run(args);
        // Six cells at 5 s each, rendered twice by check, would be a
        // minute; one budget is 10 s. The bound only catches that.
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{args:?} took {:?}",
            started.elapsed()
        );
        if args[0] == "check" {
            assert_eq!(run.code, 1, "{}", run.stderr);
            assert!(run.stderr.contains("to render in all"), "{}", run.stderr);
        }
    }
}
