//! minijinja templating of cells: the environment, shell-safe quoting of
//! values in shell cells, and the static analysis of which variables a cell
//! uses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use regex::Regex;

use crate::quoting;

/// Template names starting with this are rendered with shell quoting.
const SHELL_PREFIX: &str = "shell:";

/// Characters a value may hold and still be pasted into shell code unquoted.
pub fn is_shell_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c))
}

/// Quotes a value for POSIX shells unless it is plain.
pub fn shell_quote(value: &str) -> String {
    if is_shell_plain(value) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The environment every cell is rendered in: strict undefined variables,
/// `{## ##}` comments (since `${#var}` is bash), trailing newlines kept,
/// and the `raw` filter to opt out of quoting.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_syntax(
        SyntaxConfig::builder()
            .comment_delimiters("{##", "##}")
            .build()
            .expect("valid delimiters"),
    );
    env.set_auto_escape_callback(|name| {
        if name.starts_with(SHELL_PREFIX) {
            AutoEscape::Custom("shell")
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| {
        if state.auto_escape() == AutoEscape::Custom("shell") && !value.is_safe() {
            if value.is_undefined() || value.is_none() {
                return minijinja::escape_formatter(out, state, value);
            }
            out.write_str(&shell_quote(&value.to_string()))
                .map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
                })
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_filter("raw", |value: Value| {
        Value::from_safe_string(value.to_string())
    });
    let escaper = |escape: fn(&str) -> String| {
        move |value: Value| {
            if value.is_safe() {
                value
            } else {
                Value::from_safe_string(escape(&value.to_string()))
            }
        }
    };
    env.add_filter("__rb_single", escaper(quoting::escape_single));
    env.add_filter("__rb_double", escaper(quoting::escape_double));
    env.add_filter("__rb_heredoc", escaper(quoting::escape_heredoc));
    env.add_filter("__rb_ansi_c", escaper(quoting::escape_ansi_c));
    env.add_filter("__rb_literal", escaper(str::to_string));
    env.add_filter("__rb_arith", |value: Value| {
        let text = value.to_string();
        if value.is_safe() || quoting::is_number(&text) {
            return Ok(Value::from_safe_string(text));
        }
        Err(refusal(
            "stands in arithmetic ($(( )), (( )), let, an array subscript or a [[ -eq ]] operand), where names and subscripts run as code; a value there must be a whole number",
        ))
    });
    env.add_filter("__rb_plain", |value: Value, place: String| {
        let text = value.to_string();
        if value.is_safe() || is_shell_plain(&text) {
            return Ok(Value::from_safe_string(text));
        }
        Err(refusal(&format!(
            "stands {place}, where no quoting holds every value; a value there must be plain ([A-Za-z0-9_./:@%+=,-] only)"
        )))
    });
    env.add_filter(
        "__rb_ends",
        |value: Value, delimiter: String, strip_tabs: bool| {
            let terminator = quoting::Terminator {
                delimiter,
                strip_tabs,
            };
            if terminator.ends_in(&value.to_string()) {
                return Err(refusal(&format!(
                    "holds the line `{}`, which would end the here-document and run what follows",
                    terminator.delimiter
                )));
            }
            Ok(value)
        },
    );
    env
}

/// The error for a value no quoting can hold where it stands. The value
/// itself is not shown: it may be a secret.
fn refusal(why: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("a value {why}"),
    )
}

/// Rewrites each `{{ expr }}` of shell code that stands inside quotes, a
/// here-document or a place no quoting can hold, to pass through the
/// escaping (or refusing) filter for that place.
fn escape_by_context(template: &str) -> String {
    let mut out = template.to_string();
    for (start, context) in quoting::contexts(template).into_iter().rev() {
        let mut filters: Vec<String> = match &context.quoting {
            quoting::Quoting::Unquoted => Vec::new(),
            quoting::Quoting::LiteralHeredoc => vec!["__rb_literal".into()],
            quoting::Quoting::Single => vec!["__rb_single".into()],
            quoting::Quoting::Double => vec!["__rb_double".into()],
            quoting::Quoting::AnsiC => vec!["__rb_ansi_c".into()],
            quoting::Quoting::Heredoc => vec!["__rb_heredoc".into()],
            quoting::Quoting::Arithmetic => vec!["__rb_arith".into()],
            quoting::Quoting::PlainOnly(place) => {
                vec![format!("__rb_plain({})", serde_json::Value::from(*place))]
            }
        };
        for t in &context.heredocs {
            let delimiter = serde_json::Value::from(t.delimiter.as_str());
            filters.push(format!("__rb_ends({delimiter}, {})", t.strip_tabs));
        }
        if filters.is_empty() {
            continue;
        }
        let Some(length) = template[start..].find("}}") else {
            continue;
        };
        let inner = &template[start + 2..start + length];
        let (open, inner) = match inner.strip_prefix(['-', '+']) {
            Some(rest) => (&inner[..1], rest),
            None => ("", inner),
        };
        let (inner, close) = match inner.strip_suffix(['-', '+']) {
            Some(rest) => (rest, &inner[inner.len() - 1..]),
            None => (inner, ""),
        };
        let rewritten = format!(
            "{{{{{open} ({}) | {} {close}}}}}",
            inner.trim(),
            filters.join(" | ")
        );
        out.replace_range(start..start + length + 2, &rewritten);
    }
    out
}

/// A template error with the 1-based line within the template, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(error: minijinja::Error) -> TemplateError {
        let mut message = error.kind().to_string();
        if let Some(detail) = error.detail() {
            message = format!("{message}: {detail}");
        }
        TemplateError {
            message,
            line: error.line(),
        }
    }
}

/// Renders a template with `vars`; `shell` turns on quoting of values.
pub fn render(
    env: &Environment<'static>,
    template: &str,
    vars: &BTreeMap<String, Value>,
    shell: bool,
) -> Result<String, TemplateError> {
    if !has_template(template) {
        return Ok(template.to_string());
    }
    if shell {
        let escaped = escape_by_context(template);
        let compiled = env.template_from_named_str("shell:cell", &escaped)?;
        Ok(compiled.render(vars)?)
    } else {
        let compiled = env.template_from_named_str("file:cell", template)?;
        Ok(compiled.render(vars)?)
    }
}

/// Variables a template reads (top-level names only), or its syntax error.
pub fn template_variables(template: &str) -> Result<BTreeSet<String>, TemplateError> {
    if !has_template(template) {
        return Ok(BTreeSet::new());
    }
    let env = shared_environment();
    let compiled = env.template_from_str(template)?;
    Ok(compiled.undeclared_variables(false).into_iter().collect())
}

fn shared_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(environment)
}

/// Names a shell cell reads as `$NAME` or `${NAME...}`.
pub fn shell_references(code: &str) -> BTreeSet<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").expect("valid regex"));
    re.captures_iter(code).map(|c| c[1].to_string()).collect()
}

/// 1-based line of the template where `name` is first used, if found.
pub fn line_of_use(template: &str, name: &str) -> Option<usize> {
    let offset = offset_of_use(template, name)?;
    Some(template[..offset].matches('\n').count() + 1)
}

/// Byte offset of the first `{{`/`{%` that reads `name`, if found.
pub fn offset_of_use(template: &str, name: &str) -> Option<usize> {
    let re = Regex::new(&format!(r"(\{{\{{|\{{%)[^}}]*\b{}\b", regex::escape(name))).ok()?;
    Some(re.find(template)?.start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect()
    }

    #[test]
    fn quotes_values_in_shell_cells_only() {
        let env = environment();
        let v = vars(&[("A", "rg-dev"), ("B", "$(touch x)"), ("C", "it's")]);
        let out = render(
            &env,
            "echo {{ A }} {{ B }} {{ C }} {{ B | raw }}\n",
            &v,
            true,
        )
        .unwrap();
        assert_eq!(out, "echo rg-dev '$(touch x)' 'it'\\''s' $(touch x)\n");
        let out = render(
            &env,
            "echo \"{{ B }}\" '{{ C }}' \"{{- A -}}\"\ncat <<EOF\n{{ B }}\nEOF\n",
            &v,
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            "echo \"\\$(touch x)\" 'it'\\''s' \"rg-dev\"\ncat <<EOF\n\\$(touch x)\nEOF\n"
        );
        let out = render(&env, "name: {{ B }}", &v, false).unwrap();
        assert_eq!(out, "name: $(touch x)");
    }

    #[test]
    fn undefined_is_an_error_and_bash_syntax_survives() {
        let env = environment();
        let err = render(&env, "echo ok\necho {{ NOPE }}", &BTreeMap::new(), true).unwrap_err();
        assert_eq!(err.line, Some(2));
        let code = "echo ${#arr[@]} {{ A }}";
        assert_eq!(
            render(&env, code, &vars(&[("A", "x")]), true).unwrap(),
            "echo ${#arr[@]} x"
        );
    }

    #[test]
    fn finds_used_variables() {
        let used =
            template_variables("{{ A }} {% for x in L %}{{ x.y }}{{ env.HOME }}{% endfor %}")
                .unwrap();
        assert_eq!(
            used,
            ["A", "L", "env"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(
            shell_references("echo $A ${B:-x} $1 $$"),
            ["A", "B"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(line_of_use("a\nb {{ X }}\n", "X"), Some(2));
    }
}

/// A stand-in for a value a text must not show: a capture only a run can
/// know (for dry runs and checks, printed `<NAME.field>`) or a secret
/// (printed `[masked:NAME.field]`). Any field of it is another stand-in.
#[derive(Debug)]
pub struct Placeholder {
    pub name: String,
    pub secret: bool,
}

impl Placeholder {
    pub fn value(name: &str, secret: bool) -> Value {
        Value::from_object(Placeholder {
            name: name.to_string(),
            secret,
        })
    }
}

impl minijinja::value::Object for Placeholder {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        let name = match key.as_str() {
            Some(field) => format!("{}.{field}", self.name),
            None => format!("{}[{key}]", self.name),
        };
        Some(Placeholder::value(&name, self.secret))
    }

    fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.secret {
            write!(f, "[masked:{}]", self.name)
        } else {
            write!(f, "<{}>", self.name)
        }
    }
}

/// The `{{ ... }}` expressions of a template that read one of `names`, as
/// (the name, the expression's source): what they render to is derived
/// from a secret.
pub fn expressions_reading(template: &str, names: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + length]
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+'])
            .trim();
        rest = &rest[start + length + 2..];
        let Ok(used) = template_variables(&format!("{{{{ {inner} }}}}")) else {
            continue;
        };
        if let Some(name) = used.iter().find(|n| names.contains(*n)) {
            found.push((name.clone(), inner.to_string()));
        }
    }
    found
}

/// Whether a text holds template syntax at all; plain text renders as is.
pub fn has_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}
