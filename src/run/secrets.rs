//! Masking secret values as `[masked:NAME]` in everything the tool shows
//! or writes: recorded outputs, terminal echo, JSON events, the state file
//! and error messages.
//!
//! Every non-empty secret is masked, however short (a short one is reported
//! by [`Masker::add`] so the caller can warn). A multi-line secret is also
//! known in its CRLF form, a secret with characters JSON escapes also in
//! its escaped form, and a secret JSON capture by every string inside it.
//! Streamed output is masked with [`LiveMask`], which holds back text that
//! could be the start of a secret until the rest has arrived.

use std::sync::OnceLock;

use regex::Regex;

/// Secrets shorter than this are masked, but reported as short: masking
/// them may hide ordinary text too.
pub const SHORT: usize = 4;

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
    /// Adds a secret; returns whether it is shorter than [`SHORT`]
    /// characters (masked all the same). An empty value has nothing to hide.
    pub fn add(&mut self, name: &str, value: &str) -> bool {
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return false;
        }
        let mut forms = vec![value.to_string()];
        if value.contains('\n') {
            forms.push(value.replace("\r\n", "\n").replace('\n', "\r\n"));
            forms.push(value.replace("\r\n", "\n"));
        }
        let escaped = serde_json::to_string(value).expect("strings serialise");
        let escaped = &escaped[1..escaped.len() - 1];
        if escaped != value {
            forms.push(escaped.to_string());
        }
        for form in forms {
            if !self.values.iter().any(|(_, v)| *v == form) {
                self.values.push((name.to_string(), form));
            }
        }
        self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        value.chars().count() < SHORT
    }

    /// Adds every secret another masker knows.
    pub fn merge(&mut self, other: Masker) {
        for (name, value) in other.values {
            if !self.values.iter().any(|(_, v)| *v == value) {
                self.values.push((name, value));
            }
        }
        self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    }

    /// Adds a secret JSON value: its compact and pretty forms, and every
    /// string inside it, named by its path (`CREDS.password`). Returns the
    /// names of the short strings.
    pub fn add_json(&mut self, name: &str, value: &serde_json::Value) -> Vec<String> {
        let mut short = Vec::new();
        if let serde_json::Value::String(text) = value {
            if self.add(name, text) {
                short.push(name.to_string());
            }
            return short;
        }
        self.add(name, &value.to_string());
        self.add(
            name,
            &serde_json::to_string_pretty(value).expect("values serialise"),
        );
        let mut leaves = Vec::new();
        string_leaves(name, value, &mut leaves);
        for (path, text) in leaves {
            if self.add(&path, &text) {
                short.push(path);
            }
        }
        short
    }

    /// Known values first (longest first), then token shapes, then short
    /// values, which would otherwise cut into tokens and longer secrets.
    pub fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        let (long, short): (Vec<_>, Vec<_>) = self
            .values
            .iter()
            .partition(|(_, v)| v.chars().count() >= SHORT);
        for (name, value) in long {
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
        for (name, value) in short {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), &format!("[masked:{name}]"));
            }
        }
        text
    }

    /// Whether `text` holds a known secret or a token shape.
    pub fn reveals(&self, text: &str) -> bool {
        self.mask(text) != text
    }

    /// Length in bytes of the longest end of `text` that is the beginning
    /// of a secret: that much must wait for what follows before it can be
    /// shown, or be left out where nothing follows.
    pub fn partial_at_end(&self, text: &str) -> usize {
        let mut longest = 0;
        for (_, value) in &self.values {
            let window = text.len().min(value.len() - 1);
            let mut from = text.len() - window;
            while !text.is_char_boundary(from) {
                from += 1;
            }
            for (offset, _) in text[from..].char_indices() {
                let tail = &text[from + offset..];
                if tail.len() > longest && value.starts_with(tail) {
                    longest = tail.len();
                    break;
                }
            }
        }
        longest
    }

    /// Length in bytes of the longest beginning of `text` that is the end
    /// of a secret.
    pub fn partial_at_start(&self, text: &str) -> usize {
        let mut longest = 0;
        for (_, value) in &self.values {
            let window = text.len().min(value.len() - 1);
            let mut to = window;
            while !text.is_char_boundary(to) {
                to -= 1;
            }
            let mut ends: Vec<usize> = text[..to].char_indices().map(|(i, _)| i).skip(1).collect();
            ends.push(to);
            for &end in ends.iter().rev() {
                let head = &text[..end];
                if head.len() > longest && value.ends_with(head) {
                    longest = head.len();
                    break;
                }
            }
        }
        longest
    }
}

fn string_leaves(path: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(text) => out.push((path.to_string(), text.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(&format!("{path}[{i}]"), item, out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                string_leaves(&format!("{path}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

/// Longest a line may grow before it is shown without its end.
const LONG_LINE: usize = 64 * 1024;

/// Masks output as it streams: whole lines only (a token shape is matched
/// within a line), and never the first part of a secret whose rest has not
/// arrived yet, so a secret split across writes, lines or chunks is masked
/// whole.
#[derive(Debug, Default)]
pub struct LiveMask {
    pending: Vec<u8>,
}

impl LiveMask {
    /// Takes more bytes; returns the masked text that can be shown now.
    pub fn push(&mut self, bytes: &[u8], masker: &Masker) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let end = match self.pending.iter().rposition(|&b| b == b'\n' || b == b'\r') {
            Some(at) => at + 1,
            None if self.pending.len() > LONG_LINE => utf8_end(&self.pending),
            None => return None,
        };
        let text = String::from_utf8_lossy(&self.pending[..end]).into_owned();
        let masked = masker.mask(&text);
        let hold = masker.partial_at_end(&masked);
        let shown = masked[..masked.len() - hold].to_string();
        let mut rest = masked.as_bytes()[masked.len() - hold..].to_vec();
        rest.extend_from_slice(&self.pending[end..]);
        self.pending = rest;
        (!shown.is_empty()).then_some(shown)
    }

    /// Everything still held, masked.
    pub fn flush(&mut self, masker: &Masker) -> Option<String> {
        let pending = std::mem::take(&mut self.pending);
        (!pending.is_empty()).then(|| masker.mask(&String::from_utf8_lossy(&pending)))
    }
}

/// The end of the longest prefix of `bytes` that does not split a UTF-8
/// character.
fn utf8_end(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_and_token_shapes() {
        let mut masker = Masker::default();
        assert!(!masker.add("PASSWORD", "hunter22"));
        assert!(masker.add("SHORT", "ab"));
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let azure = "abc8Q~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh";
        let text = format!("pw=hunter22 ab token {jwt} secret {azure}");
        assert_eq!(
            masker.mask(&text),
            "pw=[masked:PASSWORD] [masked:SHORT] token [masked:JWT] secret [masked:AZURE_CLIENT_SECRET]"
        );
    }

    #[test]
    fn json_secrets_mask_every_string_inside() {
        let mut masker = Masker::default();
        let value = serde_json::json!({"user": "admin-user", "password": "p@ss\"word", "n": 3, "tags": ["k1"]});
        let short = masker.add_json("CREDS", &value);
        assert_eq!(short, vec!["CREDS.tags[0]".to_string()]);
        assert_eq!(masker.mask(&value.to_string()), "[masked:CREDS]");
        assert_eq!(
            masker.mask("u=admin-user p=p@ss\"word escaped=p@ss\\\"word k1"),
            "u=[masked:CREDS.user] p=[masked:CREDS.password] escaped=[masked:CREDS.password] [masked:CREDS.tags[0]]"
        );
    }

    #[test]
    fn partial_secrets_at_either_end() {
        let mut masker = Masker::default();
        masker.add("KEY", "-----BEGIN KEY-----\nabc\n-----END KEY-----");
        assert_eq!(masker.partial_at_end("x\n-----BEGIN KEY-----\n"), 20);
        assert_eq!(masker.partial_at_end("x\n"), 0);
        assert_eq!(masker.partial_at_start("abc\n-----END KEY-----\nafter"), 21);
        assert_eq!(masker.partial_at_start("after"), 0);
    }

    #[test]
    fn live_masking_holds_a_secret_split_across_chunks_and_lines() {
        let mut masker = Masker::default();
        masker.add("KEY", "-----BEGIN KEY-----\nabc\n-----END KEY-----");
        let mut live = LiveMask::default();
        let mut shown = String::new();
        for chunk in [
            "before\n-----BEG",
            "IN KEY-----\n",
            "ab",
            "c\n-----END KEY-----\nafter\n",
        ] {
            if let Some(text) = live.push(chunk.as_bytes(), &masker) {
                assert!(!text.contains("BEGIN"), "{text:?}");
                shown.push_str(&text);
            }
        }
        shown.push_str(&live.flush(&masker).unwrap_or_default());
        assert_eq!(shown, "before\n[masked:KEY]\nafter\n");
    }
}
