//! The info string of a fenced block: its language word and the
//! Pandoc/Quarto-style brace list of attributes (`{#id key=value flag}`).

use std::ops::Range;

/// A parsed info string. Spans are byte ranges within the info string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InfoString {
    pub lang: String,
    pub lang_span: Range<usize>,
    /// Whether a brace list was present (even an empty one).
    pub braces: Option<Range<usize>>,
    pub attrs: Vec<Attr>,
}

/// One entry of a brace list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub key: String,
    /// `None` for a bare flag such as `skip`.
    pub value: Option<String>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    pub message: String,
    pub span: Range<usize>,
    pub help: Option<String>,
}

impl InfoString {
    pub fn get(&self, key: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.key == key)
    }
}

/// Parses an info string such as `bash {id=oidc capture=URL timeout=2m}`.
///
/// The language is the first word; a brace list may follow it (words in
/// between are ignored, as static site generators put titles there). A list
/// may also stand alone with the language as its first class: `{.bash #x}`.
pub fn parse_info(info: &str) -> Result<InfoString, AttrError> {
    let start = info.len() - info.trim_start().len();
    let mut parsed = InfoString::default();
    let rest_start = if info[start..].starts_with('{') {
        start
    } else {
        let len = info[start..]
            .find(|c: char| c.is_whitespace() || c == '{')
            .unwrap_or(info.len() - start);
        parsed.lang = info[start..start + len].to_string();
        parsed.lang_span = start..start + len;
        start + len
    };
    let Some(open) = info[rest_start..].find('{').map(|i| rest_start + i) else {
        return Ok(parsed);
    };
    let close = parse_braces(info, open, &mut parsed.attrs)?;
    parsed.braces = Some(open..close);
    let trailing = &info[close..];
    if !trailing.trim().is_empty() {
        let at = close + (trailing.len() - trailing.trim_start().len());
        return Err(AttrError {
            message: "unexpected text after the attribute list".into(),
            span: at..info.trim_end().len(),
            help: Some("attributes go inside the braces".into()),
        });
    }
    if parsed.lang.is_empty() {
        if let Some(pos) = parsed.attrs.iter().position(|a| a.key == ".") {
            let class = parsed.attrs.remove(pos);
            parsed.lang = class.value.unwrap_or_default();
            parsed.lang_span = class.span;
        }
    }
    Ok(parsed)
}

/// Reads the list that opens at `open`; returns the offset after its `}`.
fn parse_braces(info: &str, open: usize, attrs: &mut Vec<Attr>) -> Result<usize, AttrError> {
    let bytes = info.as_bytes();
    let mut i = open + 1;
    loop {
        // The same whitespace ends a token and is skipped between tokens
        // (a vertical tab or a non-ASCII space too), so every pass moves on.
        while let Some(c) = info[i..].chars().next().filter(|c| c.is_whitespace()) {
            i += c.len_utf8();
        }
        if i >= bytes.len() {
            return Err(AttrError {
                message: "unterminated attribute list".into(),
                span: open..info.len(),
                help: Some("close the list with `}`".into()),
            });
        }
        if bytes[i] == b'}' {
            return Ok(i + 1);
        }
        let token_start = i;
        let mut text = String::new();
        while i < bytes.len() {
            let c = info[i..].chars().next().expect("in bounds");
            match c {
                '}' => break,
                c if c.is_whitespace() => break,
                '"' | '\'' => {
                    let quote = c;
                    let quote_at = i;
                    i += 1;
                    loop {
                        let Some(q) = info[i..].chars().next() else {
                            return Err(AttrError {
                                message: "unterminated quoted value".into(),
                                span: quote_at..info.len(),
                                help: Some(format!("close the value with {quote}")),
                            });
                        };
                        i += q.len_utf8();
                        if q == quote {
                            break;
                        }
                        if q == '\\' && quote == '"' {
                            if let Some(escaped) = info[i..].chars().next() {
                                text.push(escaped);
                                i += escaped.len_utf8();
                                continue;
                            }
                        }
                        text.push(q);
                    }
                }
                c => {
                    text.push(c);
                    i += c.len_utf8();
                }
            }
        }
        attrs.push(token(text, token_start..i)?);
    }
}

fn token(text: String, span: Range<usize>) -> Result<Attr, AttrError> {
    if let Some(id) = text.strip_prefix('#') {
        return Ok(Attr {
            key: "id".into(),
            value: Some(id.to_string()),
            span,
        });
    }
    if let Some(class) = text.strip_prefix('.') {
        return Ok(Attr {
            key: ".".into(),
            value: Some(class.to_string()),
            span,
        });
    }
    match text.split_once('=') {
        Some(("", _)) => Err(AttrError {
            message: "attribute without a name".into(),
            span,
            help: Some("write `name=value`".into()),
        }),
        Some((key, value)) => Ok(Attr {
            key: key.to_string(),
            value: Some(value.to_string()),
            span,
        }),
        None => Ok(Attr {
            key: text,
            value: None,
            span,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(info: &str) -> (String, Vec<(String, Option<String>)>) {
        let parsed = parse_info(info).unwrap();
        let attrs = parsed.attrs.into_iter().map(|a| (a.key, a.value)).collect();
        (parsed.lang, attrs)
    }

    #[test]
    fn plain_language() {
        assert_eq!(pairs("bash"), ("bash".into(), vec![]));
        assert_eq!(pairs("  yaml title=x "), ("yaml".into(), vec![]));
        assert_eq!(pairs(""), ("".into(), vec![]));
    }

    #[test]
    fn brace_list() {
        let (lang, attrs) =
            pairs(r#"bash {id=oidc capture=URL timeout=2m skip "k=v w" note="a \"b\""}"#);
        assert_eq!(lang, "bash");
        let expected = [
            ("id", Some("oidc")),
            ("capture", Some("URL")),
            ("timeout", Some("2m")),
            ("skip", None),
            ("k", Some("v w")),
            ("note", Some("a \"b\"")),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(attrs, expected);
    }

    #[test]
    fn hash_id_and_class_language() {
        assert_eq!(
            pairs("{.bash #setup}"),
            ("bash".into(), vec![("id".into(), Some("setup".into()))])
        );
        assert_eq!(pairs("sh{#x}").1, vec![("id".into(), Some("x".into()))]);
    }

    #[test]
    fn spans_point_into_the_info_string() {
        let info = "bash {id=a  capture=B}";
        let parsed = parse_info(info).unwrap();
        assert_eq!(&info[parsed.attrs[1].span.clone()], "capture=B");
        assert_eq!(parsed.braces, Some(5..info.len()));
    }

    #[test]
    fn errors() {
        // Found by fuzzing: a vertical tab once looped forever.
        assert!(parse_info("{\u{b}:").is_err());
        assert!(parse_info("bash {id=a\u{a0}skip}").is_ok());
        let err = parse_info("bash {id=a").unwrap_err();
        assert_eq!(err.message, "unterminated attribute list");
        assert_eq!(err.span, 5..10);
        let err = parse_info("bash {id='a}").unwrap_err();
        assert_eq!(err.message, "unterminated quoted value");
        let err = parse_info("bash {id=a} extra").unwrap_err();
        assert_eq!(err.span, 12..17);
        let err = parse_info("bash {=a}").unwrap_err();
        assert_eq!(err.message, "attribute without a name");
    }
}
