//! Templated values stay data in every shell context: a property test that
//! generates both the values and the quoting contexts they stand in
//! (nested ones too), renders them, and runs the result with real bash.

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use runbook::quoting::is_number;
use runbook::template::{environment, is_shell_plain, render};

/// Values made of the characters and payloads that matter to a shell.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("$".to_string()),
            Just("`".to_string()),
            Just("\\".to_string()),
            Just("$(touch pwned)".to_string()),
            Just("`touch pwned`".to_string()),
            Just("a[$(touch pwned)]".to_string()),
            Just("x'; touch pwned; '".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just("EOF".to_string()),
            Just("}".to_string()),
            Just("!".to_string()),
            Just(";".to_string()),
            Just("*".to_string()),
            Just("42".to_string()),
            Just("-7".to_string()),
            Just("0x1f".to_string()),
            "[a-z0-9=:/.-]{1,4}",
        ],
        1..6,
    )
    .prop_map(|parts| parts.concat())
}

/// A shell word whose value is the templated value (command
/// substitutions drop trailing newlines, as for any value).
#[derive(Debug, Clone)]
enum Word {
    Bare,
    Double,
    Single,
    AnsiC,
    DefaultBare,
    DefaultDouble,
    Arithmetic,
    Subscript,
    CommandSubstitution(Box<Word>),
    Backquotes(Box<Word>),
}

fn word() -> impl Strategy<Value = Word> {
    let leaf = prop_oneof![
        Just(Word::Bare),
        Just(Word::Double),
        Just(Word::Single),
        Just(Word::AnsiC),
        Just(Word::DefaultBare),
        Just(Word::DefaultDouble),
        Just(Word::Arithmetic),
        Just(Word::Subscript),
    ];
    leaf.prop_recursive(3, 8, 1, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|w| Word::CommandSubstitution(Box::new(w))),
            // Backquotes do not nest without escaping; one level is enough.
            inner.prop_filter_map("no nested backquotes", |w| {
                (!w.has_backquotes()).then(|| Word::Backquotes(Box::new(w)))
            }),
        ]
    })
}

impl Word {
    fn has_backquotes(&self) -> bool {
        match self {
            Word::Backquotes(_) => true,
            Word::CommandSubstitution(inner) => inner.has_backquotes(),
            _ => false,
        }
    }

    fn code(&self) -> String {
        match self {
            Word::Bare => "{{ V }}".into(),
            Word::Double => "\"{{ V }}\"".into(),
            Word::Single => "'{{ V }}'".into(),
            Word::AnsiC => "$'{{ V }}'".into(),
            Word::DefaultBare => "${RB_UNSET:-{{ V }}}".into(),
            Word::DefaultDouble => "\"${RB_UNSET:-{{ V }}}\"".into(),
            Word::Arithmetic => "$(( {{ V }} ))".into(),
            Word::Subscript => "\"${RB_ARRAY[{{ V }}]}\"".into(),
            Word::CommandSubstitution(inner) => format!("\"$(printf '%s' {})\"", inner.code()),
            Word::Backquotes(inner) => format!("\"`printf '%s' {}`\"", inner.code()),
        }
    }

    /// What the word expands to, or `None` where the value must be refused.
    fn expect(&self, v: &str, plain_only: bool) -> Option<String> {
        if plain_only && !is_shell_plain(v) {
            return None;
        }
        match self {
            // Bash pairs single quotes inside "${...}" but keeps them.
            Word::DefaultDouble if !is_shell_plain(v) => None,
            Word::Arithmetic => is_number(v).then(|| arithmetic(v)),
            // RB_ARRAY=(zero one two ...): a number picks an element.
            Word::Subscript => is_number(v).then(|| element(v)),
            Word::CommandSubstitution(inner) => inner
                .expect(v, plain_only)
                .map(|s| s.trim_end_matches('\n').to_string()),
            Word::Backquotes(inner) => inner
                .expect(v, true)
                .map(|s| s.trim_end_matches('\n').to_string()),
            _ => Some(v.to_string()),
        }
    }
}

fn arithmetic(v: &str) -> String {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).unwrap(),
        None => digits.parse::<i64>().unwrap(),
    };
    (if negative { -n } else { n }).to_string()
}

fn element(v: &str) -> String {
    let n: i64 = arithmetic(v).parse().unwrap();
    // A negative index counts from the end of the 3 elements.
    match n {
        0 => "zero".into(),
        1 => "one".into(),
        2 => "two".into(),
        -1 => "two".into(),
        -2 => "one".into(),
        -3 => "zero".into(),
        _ => String::new(),
    }
}

/// Where the word stands in the script.
#[derive(Debug, Clone)]
enum Place {
    Argument,
    HereDocument,
    LiteralHereDocument,
    Comment,
    Let,
    LetTwice,
    TestOperand,
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        Just(Place::Argument),
        Just(Place::HereDocument),
        Just(Place::LiteralHereDocument),
        Just(Place::Comment),
        Just(Place::Let),
        Just(Place::LetTwice),
        Just(Place::TestOperand),
    ]
}

/// The script, and what it must print (`None`: the value must be refused).
fn case(place: &Place, word: &Word, v: &str) -> (String, Option<String>) {
    let ends_heredoc = v.split('\n').any(|l| l == "EOF");
    let prelude = "RB_ARRAY=(zero one two)\n";
    let (body, expected) = match place {
        Place::Argument => (
            format!("printf '<%s>\\n' {}\n", word.code()),
            word.expect(v, false).map(|s| format!("<{s}>\n")),
        ),
        Place::HereDocument => (
            format!(
                "cat <<EOF\n<$(printf '%s' {})>\n<{{{{ V }}}}>\nEOF\n",
                word.code()
            ),
            word.expect(v, false)
                .filter(|_| !ends_heredoc)
                .map(|s| format!("<{}>\n<{v}>\n", s.trim_end_matches('\n'))),
        ),
        Place::LiteralHereDocument => (
            "cat <<'EOF'\n<{{ V }}>\nEOF\n".to_string(),
            (!ends_heredoc).then(|| format!("<{v}>\n")),
        ),
        Place::Comment => (
            "# deploying {{ V }}\nprintf '<done>\\n'\n".to_string(),
            is_shell_plain(v).then(|| "<done>\n".to_string()),
        ),
        Place::Let => (
            "let n={{ V }}\nprintf '<%s>\\n' \"$n\"\n".to_string(),
            is_number(v).then(|| format!("<{}>\n", arithmetic(v))),
        ),
        Place::LetTwice => (
            "{ let n={{ V }}+{{ V }}; }\nprintf '<%s>\\n' \"$n\"\n".to_string(),
            is_number(v).then(|| {
                let n: i64 = arithmetic(v).parse().unwrap();
                format!("<{}>\n", 2 * n)
            }),
        ),
        Place::TestOperand => (
            "if [[ {{ V }} -eq 42 ]]; then echo '<yes>'; else echo '<no>'; fi\n".to_string(),
            is_number(v).then(|| {
                if arithmetic(v) == "42" {
                    "<yes>\n".to_string()
                } else {
                    "<no>\n".to_string()
                }
            }),
        ),
    };
    (format!("{prelude}{body}"), expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn values_stay_data_in_every_quoting_context(v in value(), word in word(), place in place()) {
        let dir = tempfile::tempdir().unwrap();
        let env = environment();
        let vars: BTreeMap<String, minijinja::Value> = [("V".to_string(), minijinja::Value::from(v.clone()))].into();
        let (template, expected) = case(&place, &word, &v);
        let rendered = render(&env, &template, &vars, true);
        let Some(expected) = expected else {
            prop_assert!(rendered.is_err(), "{v:?} must be refused in\n{template}\nbut rendered\n{}", rendered.unwrap());
            return Ok(());
        };
        let script = match rendered {
            Ok(script) => script,
            Err(error) => {
                prop_assert!(false, "{v:?} refused in\n{template}\n{error:?}");
                unreachable!()
            }
        };
        let output = Command::new("bash").arg("-c").arg(&script).current_dir(dir.path()).output().unwrap();
        prop_assert!(!dir.path().join("pwned").exists(), "ran a value as code:\n{script}");
        prop_assert!(output.status.success(), "{script}\n{}", String::from_utf8_lossy(&output.stderr));
        prop_assert_eq!(String::from_utf8(output.stdout).unwrap(), expected, "{}", script);
    }
}

#[test]
fn a_value_that_would_end_a_here_document_is_refused() {
    let env = environment();
    let vars: BTreeMap<String, minijinja::Value> = [(
        "V".to_string(),
        minijinja::Value::from("x\nEOF\ntouch pwned\n"),
    )]
    .into();
    for template in [
        "cat <<EOF\n{{ V }}\nEOF\n",
        "cat <<'EOF'\n{{ V }}\nEOF\n",
        "cat <<-EOF\n\t{{ V }}\n\tEOF\n",
        "cat <<EOF\n$(printf %s {{ V }})\nEOF\n",
    ] {
        let error = render(&env, template, &vars, true).unwrap_err();
        assert!(
            error.message.contains("would end the here-document"),
            "{template}: {error:?}"
        );
    }
    // Elsewhere the same value is just text.
    let script = render(&env, "printf '%s' {{ V }}", &vars, true).unwrap();
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "x\nEOF\ntouch pwned\n"
    );
}

#[test]
fn each_hole_a_hostile_value_found_is_closed() {
    // Captured values inside backquotes, $'...', $(( )) and subscripts ran
    // `touch`; each is refused (or, for $'...', escaped) now.
    let env = environment();
    for (template, payload) in [
        ("echo `echo {{ V }}`", "$(touch pwned)"),
        ("echo \"`echo {{ V }}`\"", "x`touch pwned`"),
        ("echo $(( {{ V }} ))", "a[$(touch pwned)]"),
        ("a=(1 2); echo ${a[{{ V }}]}", "a[$(touch pwned)]"),
        ("a[{{ V }}]=1", "$(touch pwned)"),
        ("# note {{ V }}", "x\ntouch pwned"),
        ("let n={{ V }}", "a[$(touch pwned)]"),
    ] {
        let vars: BTreeMap<String, minijinja::Value> =
            [("V".to_string(), minijinja::Value::from(payload))].into();
        let error = render(&env, template, &vars, true).unwrap_err();
        assert!(
            error
                .message
                .starts_with("invalid operation: a value stands"),
            "{template}: {error:?}"
        );
        assert!(
            !error.message.contains("pwned"),
            "the value is not echoed: {error:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let vars: BTreeMap<String, minijinja::Value> = [(
        "V".to_string(),
        minijinja::Value::from("'; touch pwned; echo '\\"),
    )]
    .into();
    let script = render(&env, "printf '%s' $'{{ V }}'", &vars, true).unwrap();
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "'; touch pwned; echo '\\"
    );
    assert!(!dir.path().join("pwned").exists());
}
