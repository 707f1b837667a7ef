//! Masking secret values as `[masked:NAME]` in everything the tool shows
//! or writes: recorded outputs, terminal echo, JSON events, the state file
//! and error messages.
//!
//! Every non-empty secret is masked, however short (a short one is reported
//! by [`Masker::add`] so the caller can warn). A multi-line secret is also
//! known in its CRLF form, a secret with characters JSON escapes also in
//! its escaped form, and a secret JSON capture by every string inside it.
//! A secret of at least [`SHORT`] characters is also known in the forms
//! shells and tools print a value in (see [`encoded_forms`]): bash's
//! `set -x`, `printf %q` and `declare -p` quoting, JSON with non-ASCII
//! and DEL escaped, Python's `repr`, `ascii()` and bytes `repr`, and URL
//! encoding.
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

/// A piece of text being masked: text still to mask, or a mark.
enum Part {
    Text(String),
    Mark(String),
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
        if value.chars().count() >= SHORT {
            forms.extend(encoded_forms(value));
            // Recorded output is masked as printed, then cleaned (control
            // characters and `\r` overwrites) and masked again: the cleaned
            // forms find a secret that shows whole only once cleaned.
            let stripped: Vec<String> = forms
                .iter()
                .map(|form| crate::run::output::clean(form))
                .filter(|form| form.chars().count() >= SHORT)
                .collect();
            forms.extend(stripped);
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
    /// values, which would otherwise cut into tokens and longer secrets. A
    /// mark already in `text` (`[masked:NAME]` of a name this masker
    /// knows) is left as it is, so text can be masked twice.
    pub fn mask(&self, text: &str) -> String {
        let (long, short): (Vec<_>, Vec<_>) = self
            .values
            .iter()
            .partition(|(_, v)| v.chars().count() >= SHORT);
        let mut parts = self.marked(text);
        let replace = |parts: Vec<Part>, value: &str, name: &str| -> Vec<Part> {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Text(text) if text.contains(value) => {
                        for (i, piece) in text.split(value).enumerate() {
                            if i > 0 {
                                out.push(Part::Mark(format!("[masked:{name}]")));
                            }
                            out.push(Part::Text(piece.to_string()));
                        }
                    }
                    part => out.push(part),
                }
            }
            out
        };
        for (name, value) in long {
            parts = replace(parts, value, name);
        }
        for (re, name) in shapes() {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Text(text) if re.is_match(&text) => {
                        let mut from = 0;
                        for found in re.find_iter(&text) {
                            out.push(Part::Text(text[from..found.start()].to_string()));
                            out.push(Part::Mark(format!("[masked:{name}]")));
                            from = found.end();
                        }
                        out.push(Part::Text(text[from..].to_string()));
                    }
                    part => out.push(part),
                }
            }
            parts = out;
        }
        for (name, value) in short {
            parts = replace(parts, value, name);
        }
        parts
            .into_iter()
            .map(|part| match part {
                Part::Text(text) | Part::Mark(text) => text,
            })
            .collect()
    }

    /// `text` cut into the marks of names this masker knows and the text
    /// between them.
    fn marked(&self, text: &str) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut searched = 0;
        while let Some(at) = rest[searched..].find("[masked:").map(|i| i + searched) {
            let after = &rest[at + "[masked:".len()..];
            let names = self
                .values
                .iter()
                .map(|(name, _)| name.as_str())
                .chain(shapes().iter().map(|(_, name)| *name));
            let mark = names
                .filter(|name| after.starts_with(name) && after[name.len()..].starts_with(']'))
                .map(|name| "[masked:".len() + name.len() + 1)
                .max();
            match mark {
                Some(len) => {
                    parts.push(Part::Text(rest[..at].to_string()));
                    parts.push(Part::Mark(rest[at..at + len].to_string()));
                    rest = &rest[at + len..];
                    searched = 0;
                }
                None => searched = at + 1,
            }
        }
        parts.push(Part::Text(rest.to_string()));
        parts
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

/// The forms shells and tools print `value` in, without the quotes around
/// them: `set -x` and `'...'` quoting (`'\''` for a quote), `printf %q`
/// (backslashes before specials, or `$'...'` with `\n`, `\E`, octal),
/// `declare -p` (`"..."` with `\"`, `\$`, `\\`), JSON with everything
/// beyond printable ASCII as `\uXXXX` (Python's `json.dumps`) or with only
/// control characters and DEL escaped (jq's `@json`), in lower- or
/// upper-case hex, Python's `repr`, `ascii()` and the `repr` of the UTF-8
/// bytes (`s.encode()`), and URL encoding (`%20` or `+` for a space; `/`
/// kept or encoded; JavaScript's `encodeURIComponent`). Forms equal to the
/// value are left out.
pub fn encoded_forms(value: &str) -> Vec<String> {
    let mut forms = vec![
        value.replace('\'', r"'\''"),
        backslash_quoted(value),
        ansi_c_quoted(value),
        crate::quoting::escape_double(value),
        json_escaped(value, true, false),
        json_escaped(value, true, true),
        json_escaped(value, false, false),
        json_escaped(value, false, true),
        python_repr(value, false),
        python_repr(value, true),
        python_bytes_repr(value),
    ];
    for keep in ["", "/", "!*'()"] {
        for plus in [false, true] {
            forms.push(percent_encoded(value, keep, plus, false));
            forms.push(percent_encoded(value, keep, plus, true));
        }
    }
    let mut unique: Vec<String> = Vec::new();
    for form in forms {
        if form != value && !unique.contains(&form) {
            unique.push(form);
        }
    }
    unique
}

/// bash's `printf %q` of a value without control characters.
fn backslash_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for (i, c) in value.chars().enumerate() {
        if " !\"$&()*,;<>?[\\]^`{|}'\t\n".contains(c) || (i == 0 && "~#".contains(c)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// bash's `$'...'` quoting (`printf %q`, `declare -p`, `set -x` of a
/// value with control characters).
fn ansi_c_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            '\u{7}' => out.push_str(r"\a"),
            '\u{8}' => out.push_str(r"\b"),
            '\u{b}' => out.push_str(r"\v"),
            '\u{c}' => out.push_str(r"\f"),
            '\u{1b}' => out.push_str(r"\E"),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// JSON string contents as `json.dumps` writes them (`ascii`: every
/// character outside printable ASCII as `\uXXXX`, surrogate pairs above
/// U+FFFF) or as jq's `@json` does (`!ascii`: control characters and DEL
/// escaped, the rest as it is); `upper` for upper-case hex digits.
fn json_escaped(value: &str, ascii: bool, upper: bool) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    let unit = |out: &mut String, unit: u16| {
        if upper {
            out.push_str(&format!("\\u{unit:04X}"));
        } else {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    };
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\u{8}' => out.push_str(r"\b"),
            '\u{c}' => out.push_str(r"\f"),
            c if c.is_ascii_control() => unit(&mut out, c as u16),
            c if c.is_ascii() || !ascii => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for &u in c.encode_utf16(&mut units).iter() {
                    unit(&mut out, u);
                }
            }
        }
    }
    out
}

/// The quote Python's `repr` puts around a text: `"` when it holds a `'`
/// and no `"`, `'` otherwise.
fn python_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// Whether Python's `str.isprintable` is false for a character beyond
/// Latin-1 (the common ones: separators, format characters, private use).
fn python_unprintable(c: char) -> bool {
    matches!(c as u32,
        0x1680 | 0x180e | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064
        | 0x2066..=0x206f | 0x3000 | 0xfeff | 0xfff9..=0xfffb | 0x600..=0x605
        | 0x61c | 0x6dd | 0x70f | 0xe000..=0xf8ff | 0xf0000..)
}

/// A character as Python escapes it: `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
fn python_escape(out: &mut String, c: char) {
    match c as u32 {
        n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
        n @ 0x100..=0xffff => out.push_str(&format!("\\u{n:04x}")),
        n => out.push_str(&format!("\\U{n:08x}")),
    }
}

/// Python's `repr` of a string, without its quotes; with `ascii`, its
/// `ascii()`, every character beyond ASCII escaped.
fn python_repr(value: &str, ascii: bool) -> String {
    let quote = python_quote(value.contains('\''), value.contains('"'));
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                python_escape(&mut out, c)
            }
            c if ascii && !c.is_ascii() => python_escape(&mut out, c),
            c if python_unprintable(c) => python_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Python's `repr` of the UTF-8 bytes of a string (`s.encode()`), without
/// the `b` and the quotes: bytes beyond printable ASCII as `\xNN`.
fn python_bytes_repr(value: &str) -> String {
    let quote = python_quote(value.contains('\''), value.contains('"'));
    let mut out = String::with_capacity(value.len() * 4);
    for byte in value.bytes() {
        match byte {
            b'\\' => out.push_str(r"\\"),
            b'\n' => out.push_str(r"\n"),
            b'\t' => out.push_str(r"\t"),
            b'\r' => out.push_str(r"\r"),
            b if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            b if !(0x20..0x7f).contains(&b) => out.push_str(&format!("\\x{b:02x}")),
            b => out.push(char::from(b)),
        }
    }
    out
}

/// Percent-encoding of the UTF-8 bytes of `value`: unreserved characters
/// (and those of `keep`) as they are, a space as `+` with `plus`.
fn percent_encoded(value: &str, keep: &str, plus: bool, lower: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || "-_.~".contains(c) || keep.contains(c) {
            out.push(c);
        } else if c == ' ' && plus {
            out.push('+');
        } else {
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                if lower {
                    out.push_str(&format!("%{byte:02x}"));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    out
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
    fn masking_twice_leaves_marks_alone() {
        let mut masker = Masker::default();
        masker.add("PASSWORD", "hunter22");
        masker.add("M", "as");
        masker.add("SECRET", "masked");
        let once = masker.mask("hunter22 as masked [masked:OTHER]");
        assert_eq!(
            once,
            "[masked:PASSWORD] [masked:M] [masked:SECRET] [[masked:SECRET]:OTHER]"
        );
        assert_eq!(masker.mask(&once), once);
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
    fn encoded_forms_are_masked() {
        let mut masker = Masker::default();
        masker.add("S", "it's a \"q\" é\nx");
        for printed in [
            "'it'\\''s a \"q\" é\nx'",
            r#"$'it\'s a "q" é\nx'"#,
            r#""it's a \"q\" \u00e9\nx""#,
            r#"'it\'s a "q" é\nx'"#,
            "it%27s%20a%20%22q%22%20%C3%A9%0Ax",
            "it%27s+a+%22q%22+%C3%A9%0Ax",
        ] {
            assert!(masker.mask(printed).contains("[masked:S]"), "{printed}");
        }
        let mut short = Masker::default();
        short.add("S", "a b");
        assert_eq!(short.mask("a%20b a\\ b"), "a%20b a\\ b");
    }

    #[test]
    fn python_and_json_escapes_of_non_ascii_are_masked() {
        let mut masker = Masker::default();
        masker.add("S", "pässwörd");
        masker.add("Q", "it's 😀\u{7f}\u{200b}");
        for printed in [
            // bytes repr, ascii() and json.dumps (ensure_ascii).
            r"b'p\xc3\xa4ssw\xc3\xb6rd'",
            r"'p\xe4ssw\xf6rd'",
            r#""p\u00e4ssw\u00f6rd""#,
            r#""p\u00E4ssw\u00F6rd""#,
            r#"b"it's \xf0\x9f\x98\x80\x7f\xe2\x80\x8b""#,
            r#""it's \U0001f600\x7f\u200b""#,
            r#""it's 😀\x7f\u200b""#,
            r#""it's \ud83d\ude00\u007f\u200b""#,
            // jq's @json: DEL escaped, the rest as it is.
            "\"it's 😀\\u007f\u{200b}\"",
        ] {
            assert!(masker.mask(printed).contains("[masked:"), "{printed}");
            assert_eq!(masker.mask(printed).matches("[masked:").count(), 1);
        }
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
