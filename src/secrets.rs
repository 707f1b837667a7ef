//! Masking secret values as `[masked:NAME]` in everything the tool shows
//! or writes: recorded outputs, terminal echo, JSON events, the state file
//! and error messages.

use std::sync::OnceLock;

use regex::Regex;

/// Known secret values plus the shapes of tokens that are secrets whatever
/// their name (JWTs, Azure AD client secrets).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// (name, value), longest values first so overlapping ones mask fully.
    values: Vec<(String, String)>,
}

fn shapes() -> &'static [(Regex, &'static str)] {
    static SHAPES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    SHAPES.get_or_init(|| {
        vec![
            (
                Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
                    .expect("valid regex"),
                "JWT",
            ),
            (
                Regex::new(r"\b[A-Za-z0-9_.-]{3}8Q~[A-Za-z0-9_.~-]{31,34}").expect("valid regex"),
                "AZURE_CLIENT_SECRET",
            ),
        ]
    })
}

impl Masker {
    /// Adds a secret. Values shorter than 4 characters are not masked: they
    /// would blot out ordinary text and protect nothing.
    pub fn add(&mut self, name: &str, value: &str) {
        let value = value.trim_end_matches(['\n', '\r']);
        if value.chars().count() < 4 || self.values.iter().any(|(_, v)| v == value) {
            return;
        }
        self.values.push((name.to_string(), value.to_string()));
        self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    }

    pub fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (name, value) in &self.values {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), &format!("[masked:{name}]"));
            }
        }
        for (re, name) in shapes() {
            if re.is_match(&text) {
                text = re
                    .replace_all(&text, format!("[masked:{name}]"))
                    .into_owned();
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_and_token_shapes() {
        let mut masker = Masker::default();
        masker.add("PASSWORD", "hunter22");
        masker.add("SHORT", "ab");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let azure = "abc8Q~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh";
        let text = format!("pw=hunter22 ab token {jwt} secret {azure}");
        assert_eq!(
            masker.mask(&text),
            "pw=[masked:PASSWORD] ab token [masked:JWT] secret [masked:AZURE_CLIENT_SECRET]"
        );
    }
}
