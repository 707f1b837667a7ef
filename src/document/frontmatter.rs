//! The `runbook:` section of a document's YAML front matter. Other keys
//! belong to other tools (a static site's `title:`) and are left alone.

use serde::Deserialize;
use serde_json::Value;

/// Settings a runbook declares for itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Interpreter for `shell` cells (default `bash`).
    pub shell: Option<String>,
    /// Default parameters in declaration order; values may template
    /// earlier parameters.
    pub params: Vec<(String, Value)>,
    pub secrets: Vec<String>,
    pub requires: Vec<String>,
    pub redact: Vec<Redaction>,
    /// Fixture folder to replay from, relative to the runbook.
    pub replay: Option<String>,
    /// Tools answered from fixtures (default `az`, `kubectl`, `helm`).
    pub intercept: Option<Vec<String>>,
    /// `templates: false`: cells and file cells run and are written
    /// exactly as written, `{{ }}` and `{% %}` included.
    pub verbatim: bool,
}

/// A rule applied to outputs before they are recorded or compared.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    pub regex: String,
    pub with: String,
}

/// The front matter as a whole; keys other than `runbook` are ignored.
#[derive(Deserialize)]
struct Document {
    runbook: Option<RawSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    shell: Option<String>,
    #[serde(default)]
    params: serde_norway::Mapping,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    redact: Vec<Redaction>,
    replay: Option<String>,
    intercept: Option<Vec<String>>,
    templates: Option<bool>,
}

/// A problem in the front matter; `line` is 1-based within the YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatterError {
    pub message: String,
    pub line: Option<usize>,
}

/// serde's "unknown field `shel`, expected one of `shell`, ..." with the
/// closest expected field named: "did you mean `shell`?".
fn with_suggestion(message: String) -> String {
    let Some(at) = message.find("unknown field `") else {
        return message;
    };
    let rest = &message[at + "unknown field `".len()..];
    let Some((wrong, expected)) = rest.split_once('`') else {
        return message;
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match crate::suggest::closest(wrong, known) {
        Some(k) => format!("{message}; did you mean `{k}`?"),
        None => message,
    }
}

/// Reads the `runbook:` key of a front matter's YAML text.
pub fn parse_settings(yaml: &str) -> Result<Settings, FrontMatterError> {
    let error = |e: serde_norway::Error| FrontMatterError {
        line: e.location().map(|l| l.line()),
        message: with_suggestion(crate::diagnostic::without_location(e.to_string())),
    };
    if yaml.trim().is_empty() {
        return Ok(Settings::default());
    }
    // A document may open with `---` for other reasons (a thematic break);
    // only a YAML mapping, or text that mentions our key, is front matter.
    match serde_norway::from_str::<serde_norway::Value>(yaml) {
        Ok(serde_norway::Value::Mapping(_)) => {}
        Err(e) if yaml.contains("runbook:") => return Err(error(e)),
        _ => return Ok(Settings::default()),
    }
    let document: Document = serde_norway::from_str(yaml).map_err(error)?;
    let Some(raw) = document.runbook else {
        return Ok(Settings::default());
    };
    let mut params = Vec::new();
    for (key, value) in raw.params {
        let Some(name) = key.as_str() else {
            return Err(FrontMatterError {
                message: format!("parameter names must be strings, found {key:?}"),
                line: key_line(yaml, "params"),
            });
        };
        let value: Value = serde_json::to_value(&value).map_err(|e| FrontMatterError {
            message: format!("parameter {name}: {e}"),
            line: key_line(yaml, name),
        })?;
        params.push((name.to_string(), value));
    }
    for (name, _) in &params {
        if !is_identifier(name) {
            return Err(name_error(yaml, "params", name, "param"));
        }
    }
    for name in &raw.secrets {
        if !is_identifier(name) {
            return Err(name_error(yaml, "secrets", name, "secret"));
        }
    }
    for (key, names) in [
        ("requires", &raw.requires),
        ("intercept", &raw.intercept.clone().unwrap_or_default()),
    ] {
        if let Some(name) = names.iter().find(|n| !is_program_name(n)) {
            return Err(FrontMatterError {
                message: format!(
                    "`{}` in {key} is not a program name: name a tool to look up on PATH, never a path",
                    name.escape_debug()
                ),
                line: item_line(yaml, key, name),
            });
        }
    }
    Ok(Settings {
        shell: raw.shell,
        params,
        secrets: raw.secrets,
        requires: raw.requires,
        redact: raw.redact,
        replay: raw.replay,
        intercept: raw.intercept,
        verbatim: raw.templates == Some(false),
    })
}

/// Whether `name` can name a variable everywhere a runbook's variables
/// go: an environment variable, a template name, a workflow's input and
/// secret (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a plain program name, looked up on PATH (`kubectl`,
/// `python3`, `docker-compose`, `g++`): no folder, no space, no option.
pub fn is_program_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

/// A param or secret name that is not an identifier, at its line.
fn name_error(yaml: &str, key: &str, name: &str, what: &str) -> FrontMatterError {
    FrontMatterError {
        message: format!(
            "{what} name `{}` is not an identifier: use letters, digits and _, not starting with a digit",
            name.escape_debug()
        ),
        line: item_line(yaml, key, name),
    }
}

/// 1-based line of `name` under `key:` (a mapping key or a list item),
/// else the line of `key:` itself.
fn item_line(yaml: &str, key: &str, name: &str) -> Option<usize> {
    let start = key_line(yaml, key)?;
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let key_indent = indent(lines[start - 1]);
    let first = name.lines().next().unwrap_or("");
    let found = (start - 1..lines.len())
        .take_while(|&i| {
            let line = lines[i];
            i + 1 == start
                || line.trim().is_empty()
                || indent(line) > key_indent
                || (indent(line) == key_indent && line.trim_start().starts_with('-'))
        })
        .find(|&i| !first.is_empty() && lines[i].contains(first))
        .map(|i| i + 1);
    found.or(Some(start))
}

/// 1-based line of the first `key:` in a YAML text, for messages.
pub fn key_line(yaml: &str, key: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| line.trim_start().starts_with(&format!("{key}:")))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_runbook_key() {
        let yaml = "title: Lab\nrunbook:\n  shell: sh\n  params:\n    B: 2\n    A: \"x-{{ B }}\"\n  secrets: [S]\n";
        let settings = parse_settings(yaml).unwrap();
        assert_eq!(settings.shell.as_deref(), Some("sh"));
        assert_eq!(
            settings.params,
            vec![
                ("B".into(), Value::from(2)),
                ("A".into(), Value::from("x-{{ B }}"))
            ]
        );
        assert_eq!(settings.secrets, vec!["S".to_string()]);
        assert_eq!(parse_settings("title: x\n").unwrap(), Settings::default());
    }

    #[test]
    fn names_must_be_identifiers_and_tools_plain_program_names() {
        for good in ["A", "_x", "RG_AKS2"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "1X", "X-Y", "a b", "café", "${{ x }}", "A: x\n  y"] {
            assert!(!is_identifier(bad), "{bad}");
        }
        for good in ["az", "python3", "docker-compose", "g++", "kubectl.exe"] {
            assert!(is_program_name(good), "{good}");
        }
        for bad in [
            "",
            "./x",
            "/tmp/x",
            "../bin/sh",
            "a b",
            "-x",
            ".x",
            "..",
            "x/y",
        ] {
            assert!(!is_program_name(bad), "{bad}");
        }
        let err = parse_settings("runbook:\n  params:\n    OK: 1\n    X-Y: 2\n  secrets: [S]\n")
            .unwrap_err();
        assert_eq!(err.line, Some(4), "{}", err.message);
        let err = parse_settings("runbook:\n  params:\n    OK: 1\n  secrets:\n  - S\n  - 1X\n")
            .unwrap_err();
        assert_eq!(err.line, Some(6), "{}", err.message);
        let err = parse_settings("runbook:\n  requires: [az, ./evil.sh]\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{}", err.message);
        assert!(
            err.message.contains("not a program name"),
            "{}",
            err.message
        );
        let err = parse_settings("runbook:\n  intercept:\n    - az\n    - /tmp/x\n").unwrap_err();
        assert_eq!(err.line, Some(4), "{}", err.message);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = parse_settings("title: x\nrunbook:\n  shel: bash\n").unwrap_err();
        assert!(
            err.message.contains("unknown field `shel`"),
            "{}",
            err.message
        );
        assert_eq!(err.line, Some(3));
        let err = parse_settings("runbook: [\n").unwrap_err();
        assert!(err.line.is_some());
        assert_eq!(parse_settings("Foo\n").unwrap(), Settings::default());
    }
}
