//! Shell-safe templating: where in the shell's quoting each `{{ ... }}`
//! stands, so a value can be escaped for exactly that place. Outside quotes
//! a value is single-quoted; inside single quotes its `'` are spliced out;
//! inside double quotes and here-documents `$`, backquote and backslash
//! are escaped. Whatever a value holds, it stays data.

/// The quoting in force at a position of shell code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    Unquoted,
    Single,
    Double,
    /// The body of a here-document whose delimiter is not quoted.
    Heredoc(Terminator),
    /// The body of a here-document with a quoted delimiter: no expansion.
    LiteralHeredoc(Terminator),
}

/// The line that ends a here-document: a value holding it would end the
/// document early and run what follows as code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminator {
    pub delimiter: String,
    /// `<<-`: leading tabs are stripped before comparing.
    pub strip_tabs: bool,
}

impl Terminator {
    /// Whether a line of `value` would end the here-document.
    pub fn ends_in(&self, value: &str) -> bool {
        value.split('\n').any(|line| {
            let line = if self.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            line == self.delimiter
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Plain code (top level or inside `$(...)`), with its open parentheses.
    Code {
        parens: usize,
        nested: bool,
    },
    Backquote,
    Single,
    Double,
}

/// The context of every `{{` in `template`, by byte offset.
pub fn contexts(template: &str) -> Vec<(usize, Context)> {
    let bytes = template.as_bytes();
    let mut stack = vec![Frame::Code {
        parens: 0,
        nested: false,
    }];
    let mut pending: Vec<(String, bool, bool)> = Vec::new();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &template[i..];
        if rest.starts_with("{{") {
            let context = match stack.last().expect("base frame") {
                Frame::Single => Context::Single,
                Frame::Double => Context::Double,
                _ => Context::Unquoted,
            };
            found.push((i, context));
            i += rest.find("}}").map_or(rest.len(), |e| e + 2);
            continue;
        }
        if rest.starts_with("{%") {
            i += rest.find("%}").map_or(rest.len(), |e| e + 2);
            continue;
        }
        let top = *stack.last().expect("base frame");
        let c = bytes[i];
        match top {
            Frame::Single => {
                if c == b'\'' {
                    stack.pop();
                }
            }
            Frame::Double | Frame::Code { .. } | Frame::Backquote => match c {
                b'\\' => i += 1,
                b'`' if top == Frame::Backquote => {
                    stack.pop();
                }
                b'`' => stack.push(Frame::Backquote),
                b'$' if rest.starts_with("$(") => {
                    stack.push(Frame::Code {
                        parens: 0,
                        nested: true,
                    });
                    i += 1;
                }
                b'"' if top == Frame::Double => {
                    stack.pop();
                }
                // Inside double quotes nothing else is special here.
                _ if top == Frame::Double => {}
                b'\'' => stack.push(Frame::Single),
                b'"' => stack.push(Frame::Double),
                b'(' => {
                    if let Some(Frame::Code { parens, .. }) = stack.last_mut() {
                        *parens += 1;
                    }
                }
                b')' => match stack.last_mut() {
                    Some(Frame::Code {
                        parens: 0,
                        nested: true,
                    }) => {
                        stack.pop();
                    }
                    Some(Frame::Code { parens, .. }) if *parens > 0 => *parens -= 1,
                    _ => {}
                },
                b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b';' => {
                    // A comment runs to the end of the line.
                    i += rest.find('\n').unwrap_or(rest.len());
                    continue;
                }
                b'<' if rest.starts_with("<<<") => {
                    i += 3;
                    continue;
                }
                b'<' if rest.starts_with("<<") => {
                    if let Some((delimiter, quoted, strip_tabs, length)) =
                        heredoc_operator(&rest[2..])
                    {
                        pending.push((delimiter, quoted, strip_tabs));
                        i += 2 + length;
                        continue;
                    }
                }
                b'\n' if !pending.is_empty() => {
                    i += 1;
                    for (delimiter, quoted, strip_tabs) in std::mem::take(&mut pending) {
                        i = heredoc_body(template, i, &delimiter, quoted, strip_tabs, &mut found);
                    }
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    found
}

/// Reads `-? WORD` after `<<`: (delimiter, quoted, strip tabs, bytes used).
fn heredoc_operator(text: &str) -> Option<(String, bool, bool, usize)> {
    let strip_tabs = text.starts_with('-');
    let after_dash = usize::from(strip_tabs);
    let trimmed = text[after_dash..].trim_start_matches([' ', '\t']);
    let skipped = text.len() - trimmed.len();
    let end = trimmed
        .find(|c: char| c.is_whitespace() || ";|&<>()".contains(c))
        .unwrap_or(trimmed.len());
    let word = &trimmed[..end];
    if word.is_empty() {
        return None;
    }
    let quoted = word.contains(['\'', '"', '\\']);
    let delimiter: String = word
        .chars()
        .filter(|c| !matches!(c, '\'' | '"' | '\\'))
        .collect();
    Some((delimiter, quoted, strip_tabs, skipped + end))
}

/// Records templates in a here-document body starting at `start`; returns
/// the offset after its delimiter line.
fn heredoc_body(
    template: &str,
    start: usize,
    delimiter: &str,
    quoted: bool,
    strip_tabs: bool,
    found: &mut Vec<(usize, Context)>,
) -> usize {
    let terminator = Terminator {
        delimiter: delimiter.to_string(),
        strip_tabs,
    };
    let context = if quoted {
        Context::LiteralHeredoc(terminator)
    } else {
        Context::Heredoc(terminator)
    };
    let mut at = start;
    while at < template.len() {
        let line_end = template[at..].find('\n').map_or(template.len(), |e| at + e);
        let line = &template[at..line_end];
        let candidate = if strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        };
        if candidate == delimiter {
            return (line_end + 1).min(template.len());
        }
        let mut offset = 0;
        while let Some(pos) = line[offset..].find("{{") {
            found.push((at + offset + pos, context.clone()));
            offset += pos + 2;
        }
        at = line_end + 1;
    }
    template.len()
}

/// A value inside `'...'`: each `'` closes the quote, adds one, reopens it.
pub fn escape_single(value: &str) -> String {
    value.replace('\'', r"'\''")
}

/// A value inside `"..."`: `\`, `$`, backquote and `"` lose their meaning.
pub fn escape_double(value: &str) -> String {
    escape(value, &['\\', '$', '`', '"'])
}

/// A value in an unquoted here-document body.
pub fn escape_heredoc(value: &str) -> String {
    escape(value, &['\\', '$', '`'])
}

fn escape(value: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Context::*;

    /// Contexts by name, here-documents without their terminators.
    fn kinds(template: &str) -> Vec<&'static str> {
        contexts(template)
            .into_iter()
            .map(|(_, c)| match c {
                Unquoted => "unquoted",
                Single => "single",
                Double => "double",
                Heredoc(_) => "heredoc",
                LiteralHeredoc(_) => "literal",
            })
            .collect()
    }

    #[test]
    fn finds_the_quoting_of_each_expression() {
        assert_eq!(
            kinds("echo {{ A }} '{{ B }}' \"x {{ C }}\""),
            ["unquoted", "single", "double"]
        );
        assert_eq!(
            kinds("echo \"$(cat {{ A }}) {{ B }}\""),
            ["unquoted", "double"]
        );
        assert_eq!(
            kinds("echo `ls {{ A }}` \"`ls {{ B }}`\""),
            ["unquoted", "unquoted"]
        );
        assert_eq!(kinds("echo \\'{{ A }}"), ["unquoted"]);
        assert_eq!(kinds("# it's a comment\necho {{ A }}"), ["unquoted"]);
        assert_eq!(kinds("echo $((1 + 2)) {{ A }}"), ["unquoted"]);
    }

    #[test]
    fn here_documents() {
        let code = "cat <<EOF | kubectl apply -f -\nname: {{ A }}\nEOF\ncat <<'RAW'\n{{ B }}\nRAW\ncat <<-X\n\t{{ C }}\n\tX\necho {{ D }}";
        assert_eq!(kinds(code), ["heredoc", "literal", "heredoc", "unquoted"]);
        assert_eq!(kinds("cat <<< \"{{ A }}\""), ["double"]);
    }

    #[test]
    fn terminators() {
        let found = contexts("cat <<-END\n\t{{ A }}\n\tEND\n");
        let Heredoc(terminator) = &found[0].1 else {
            panic!("{found:?}")
        };
        assert!(terminator.ends_in("x\n\t\tEND\ny"));
        assert!(!terminator.ends_in("x END"));
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_single("it's"), r"it'\''s");
        assert_eq!(
            escape_double(r#"$(x) `y` "z" \"#),
            r#"\$(x) \`y\` \"z\" \\"#
        );
        assert_eq!(escape_heredoc("$HOME \"q\""), "\\$HOME \"q\"");
    }
}
