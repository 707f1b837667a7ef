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
    Ok(Settings {
        shell: raw.shell,
        params,
        secrets: raw.secrets,
        requires: raw.requires,
        redact: raw.redact,
        replay: raw.replay,
        intercept: raw.intercept,
    })
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
