//! Templated values stay data in every shell context: a property test that
//! renders arbitrary values into shell code and runs it with real bash.

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use runbook::template::{environment, render};

/// Values made of the characters that matter to a shell.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("$".to_string()),
            Just("`".to_string()),
            Just("\\".to_string()),
            Just("$(touch pwned)".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just("EOF".to_string()),
            Just("!".to_string()),
            Just(";".to_string()),
            Just("*".to_string()),
            "[a-z0-9=:/.-]{1,4}",
        ],
        1..8,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn values_print_back_exactly_in_every_quoting_context(v in value()) {
        let dir = tempfile::tempdir().unwrap();
        let env = environment();
        let vars: BTreeMap<String, minijinja::Value> = [("V".to_string(), minijinja::Value::from(v.clone()))].into();
        // Each line prints the value between markers, in a different context.
        let template = "printf '<%s>\\n' {{ V }}\nprintf '<%s>\\n' \"{{ V }}\"\nprintf '<%s>\\n' 'x{{ V }}x'\nprintf '<%s>\\n' \"$(printf '%s' {{ V }})\"\ncat <<EOF\n<{{ V }}>\nEOF\n";
        let script = match render(&env, template, &vars, true) {
            Ok(script) => script,
            Err(error) => {
                // The one refusal: a value with a line that would end the
                // here-document.
                prop_assert!(v.split('\n').any(|l| l == "EOF"), "{v:?}: {error:?}");
                prop_assert!(error.message.contains("would end the here-document"), "{error:?}");
                return Ok(());
            }
        };
        let output = Command::new("bash").arg("-c").arg(&script).current_dir(dir.path()).output().unwrap();
        prop_assert!(output.status.success(), "{script}\n{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        // $(...) drops trailing newlines, as it would for any value.
        let substituted = v.trim_end_matches('\n');
        let expected = format!("<{v}>\n<{v}>\n<x{v}x>\n<{substituted}>\n<{v}>\n");
        prop_assert_eq!(stdout, expected, "{}", script);
        prop_assert!(!dir.path().join("pwned").exists());
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
