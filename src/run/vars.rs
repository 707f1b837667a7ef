//! Variables: front matter params, `--params FILE`, `--set`, `--secret`
//! and captures, in that order of precedence (later wins). Each is both an
//! environment variable for later cells and a template value.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::frontmatter::Settings;
use crate::secrets::Masker;
use crate::template::{environment, render, Target};

/// One variable's value and whether it is a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub value: Value,
    pub secret: bool,
}

impl Var {
    /// The value as an environment variable holds it: strings as they are,
    /// anything else as compact JSON.
    pub fn env_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The variables of a run, by name.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: BTreeMap<String, Var>,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn set(&mut self, name: &str, value: Value, secret: bool) {
        self.map.insert(name.to_string(), Var { value, secret });
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.map.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// Template values: every variable plus `env`, the caller's
    /// environment. A secret (and `env.NAME` of a secret's name) is a
    /// [`crate::template::Secret`]: its name, never its value, so no
    /// template can derive text from it.
    pub fn template_values(&self) -> BTreeMap<String, minijinja::Value> {
        let secrets = self.secret_names();
        let mut values: BTreeMap<String, minijinja::Value> = self
            .map
            .iter()
            .map(|(k, v)| {
                let value = if v.secret {
                    crate::template::Secret::value(k)
                } else {
                    minijinja::Value::from_serialize(&v.value)
                };
                (k.clone(), value)
            })
            .collect();
        if secrets.is_empty() {
            values.insert("env".into(), caller_env().clone());
            return values;
        }
        let env = caller_env_map().iter().map(|(k, v)| {
            let value = if secrets.contains(k) {
                crate::template::Secret::value(k)
            } else {
                minijinja::Value::from(v.as_str())
            };
            (k.clone(), value)
        });
        values.insert("env".into(), minijinja::Value::from_iter(env));
        values
    }

    /// Template values whose rendering can be shown, hashed and kept: the
    /// same as [`Vars::template_values`], since no secret's value is ever
    /// among them.
    pub fn public_template_values(&self) -> BTreeMap<String, minijinja::Value> {
        self.template_values()
    }

    /// Names of the secret variables.
    pub fn secret_names(&self) -> std::collections::BTreeSet<String> {
        self.map
            .iter()
            .filter(|(_, v)| v.secret)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Template values for checks and dry runs: every capture of the
    /// runbook not held yet as a stand-in (`<NAME>`), or as a secret when
    /// it captures one.
    pub fn with_placeholders(
        &self,
        runbook: &crate::document::Runbook,
    ) -> BTreeMap<String, minijinja::Value> {
        let mut values = self.public_template_values();
        for cell in &runbook.cells {
            if let Some(capture) = &cell.options.capture {
                values.entry(capture.name.clone()).or_insert_with(|| {
                    if capture.secret {
                        crate::template::Secret::value(&capture.name)
                    } else {
                        crate::template::Placeholder::value(&capture.name)
                    }
                });
            }
        }
        values
    }

    /// A masker knowing every secret value held (each string inside a JSON
    /// secret too), and the names of those shorter than
    /// [`crate::secrets::SHORT`] characters.
    pub fn masker_and_short(&self) -> (Masker, Vec<String>) {
        let mut masker = Masker::default();
        let mut short = Vec::new();
        for (name, var) in &self.map {
            if var.secret {
                short.extend(masker.add_json(name, &var.value));
            }
        }
        (masker, short)
    }

    /// A masker knowing every secret value held.
    pub fn masker(&self) -> Masker {
        self.masker_and_short().0
    }
}

/// The caller's environment as a template value, read once: it does not
/// change during a run, and cells ask for template values one by one.
fn caller_env() -> &'static minijinja::Value {
    static ENV: std::sync::OnceLock<minijinja::Value> = std::sync::OnceLock::new();
    ENV.get_or_init(|| minijinja::Value::from_serialize(caller_env_map()))
}

/// The caller's environment, read once.
fn caller_env_map() -> &'static BTreeMap<String, String> {
    static ENV: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| std::env::vars().collect())
}

/// Values given on the command line or in a params file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--params FILE` entries then `--set` entries, in order.
    pub values: Vec<(String, Value)>,
    /// `--secret K=V`.
    pub secrets: Vec<(String, String)>,
}

/// Reads a `--params` file: `.json`, `.env` (`K=V` lines), or YAML. Every
/// name must be a variable name, as in the front matter and `--set`.
pub fn read_params_file(path: &Path) -> Result<Vec<(String, Value)>, String> {
    let values = read_params_values(path)?;
    if let Some((name, _)) = values
        .iter()
        .find(|(name, _)| !crate::parser::is_variable_name(name))
    {
        return Err(format!(
            "{}: `{}` is not a variable name: use letters, digits and _, not starting with a digit",
            path.display(),
            name.escape_debug()
        ));
    }
    Ok(values)
}

fn read_params_values(path: &Path) -> Result<Vec<(String, Value)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display();
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if extension == "env" || path.file_name().is_some_and(|n| n == ".env") {
        return parse_dotenv(&text).map_err(|e| format!("{name}: {e}"));
    }
    let value: Value = if extension == "json" {
        serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?
    } else {
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        serde_json::to_value(yaml).map_err(|e| format!("{name}: {e}"))?
    };
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(format!("{name}: expected a mapping of names to values")),
    }
}

/// `KEY=value` lines; `#` comments, `export ` prefixes and quotes allowed.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", i + 1));
        };
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            value
        };
        values.push((key.trim().to_string(), Value::String(value.to_string())));
    }
    Ok(values)
}

/// Splits `K=V` from `--set`/`--secret`.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if crate::parser::is_variable_name(key) => {
            Ok((key.to_string(), value.to_string()))
        }
        Some((key, _)) => Err(format!(
            "`{}` is not a variable name: use letters, digits and _, not starting with a digit",
            key.escape_debug()
        )),
        None => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

/// A parameter whose default could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub name: String,
    pub message: String,
}

/// The variables a run starts with: params (defaults rendered in order,
/// each seeing the ones before it), overridden by `overrides`, plus secrets.
pub fn initial(settings: &Settings, overrides: &Overrides) -> Result<Vars, ParamError> {
    let mut vars = Vars::default();
    let given: BTreeMap<&str, &Value> = overrides
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let env = environment();
    for (name, default) in &settings.params {
        let value = match given.get(name.as_str()) {
            Some(v) => (*v).clone(),
            None => match default {
                Value::String(template) => {
                    let rendered = render(&env, template, &vars.template_values(), Target::Param)
                        .map_err(|e| ParamError {
                        name: name.clone(),
                        message: e.message,
                    })?;
                    Value::String(rendered)
                }
                other => other.clone(),
            },
        };
        vars.set(name, value, settings.secrets.contains(name));
    }
    for (name, value) in &overrides.values {
        vars.set(name, value.clone(), settings.secrets.contains(name));
    }
    for (name, value) in &overrides.secrets {
        vars.set(name, Value::String(value.clone()), true);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_template_earlier_params_and_overrides_win() {
        let settings = Settings {
            params: vec![
                ("ENVIRONMENT".into(), Value::from("dev")),
                ("RG".into(), Value::from("rg-{{ ENVIRONMENT }}-aks")),
                ("COUNT".into(), Value::from(3)),
            ],
            ..Settings::default()
        };
        let vars = initial(&settings, &Overrides::default()).unwrap();
        assert_eq!(vars.get("RG").unwrap().env_text(), "rg-dev-aks");
        assert_eq!(vars.get("COUNT").unwrap().env_text(), "3");
        let overrides = Overrides {
            values: vec![("ENVIRONMENT".into(), Value::from("prod"))],
            secrets: vec![("TOKEN".into(), "s3cret-value".into())],
        };
        let vars = initial(&settings, &overrides).unwrap();
        assert_eq!(vars.get("RG").unwrap().env_text(), "rg-prod-aks");
        assert!(vars.get("TOKEN").unwrap().secret);
        assert_eq!(vars.masker().mask("x s3cret-value"), "x [masked:TOKEN]");
    }

    #[test]
    fn a_param_using_a_later_one_is_an_error() {
        let settings = Settings {
            params: vec![
                ("A".into(), Value::from("{{ B }}")),
                ("B".into(), Value::from("b")),
            ],
            ..Settings::default()
        };
        let err = initial(&settings, &Overrides::default()).unwrap_err();
        assert_eq!(err.name, "A");
    }

    #[test]
    fn dotenv() {
        let values = parse_dotenv("# c\nexport A=1\nB=\"two words\"\n\nC='x=y'\n").unwrap();
        assert_eq!(
            values,
            vec![
                ("A".into(), Value::from("1")),
                ("B".into(), Value::from("two words")),
                ("C".into(), Value::from("x=y"))
            ]
        );
        assert!(parse_dotenv("nonsense").is_err());
    }
}
