//! Shell-safe templating: where in the shell's quoting each `{{ ... }}`
//! stands, so a value can be escaped for exactly that place. Outside quotes
//! a value is single-quoted; inside single quotes its `'` are spliced out;
//! inside `$'...'` its `\` and `'` are escaped; inside double quotes and
//! here-documents `$`, backquote and backslash are escaped. Where no
//! quoting can hold a value (backquotes, arithmetic, array subscripts,
//! comments), only a plain value (or a number, in arithmetic) is let
//! through. Inside a here-document, no value may hold its end line,
//! however deeply it is nested. Whatever a value holds, it stays data.

/// The quoting in force at a position of shell code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quoting {
    Unquoted,
    Single,
    Double,
    /// `$'...'`.
    AnsiC,
    /// The body of a here-document whose delimiter is not quoted.
    Heredoc,
    /// The body of a here-document with a quoted delimiter: no expansion.
    LiteralHeredoc,
    /// `$(( ))`, `(( ))`, `$[ ]`, `let`, array subscripts, `[[ -eq ]]`
    /// operands: names and subscripts there are evaluated as code, so only
    /// a number is safe.
    Arithmetic,
    /// Backquotes and comments: no quoting holds every value, so only a
    /// plain one is safe. The text names the place.
    PlainOnly(&'static str),
}

/// Where a `{{` stands: its quoting, and the here-documents it is inside
/// (whose end lines no value may hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub quoting: Quoting,
    pub heredocs: Vec<Terminator>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// Plain code (top level or inside `$(...)`), with its open parentheses.
    Code {
        parens: usize,
        nested: bool,
    },
    Backquote,
    Single,
    Double,
    AnsiC,
    /// `$(( ))` or `(( ))` with its open parentheses; `$[ ]` with brackets.
    Arith {
        parens: usize,
        brackets: bool,
    },
    /// An array subscript `name[...]`, with its open brackets; `word`
    /// when it stands in a word of code, which a blank ends.
    Subscript {
        depth: usize,
        word: bool,
    },
    /// `${ ... }` with its open braces; `offset` once a `:` substring
    /// offset has begun.
    Param {
        offset: bool,
    },
    /// `[[ ... ]]`.
    Test,
    /// A here-document body.
    Heredoc {
        terminator: Terminator,
        quoted: bool,
    },
}

/// The context of every `{{` in `template`, by byte offset.
pub fn contexts(template: &str) -> Vec<(usize, Context)> {
    Scanner {
        text: template,
        bytes: template.as_bytes(),
        stack: vec![Frame::Code {
            parens: 0,
            nested: false,
        }],
        pending: Vec::new(),
        found: Vec::new(),
    }
    .scan()
}

struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    stack: Vec<Frame>,
    /// Here-documents opened on the current line, to start at its end.
    pending: Vec<(Terminator, bool)>,
    found: Vec<(usize, Context)>,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const ARITHMETIC_TESTS: [&str; 6] = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

impl Scanner<'_> {
    fn top(&self) -> &Frame {
        self.stack.last().expect("base frame")
    }

    fn heredocs(&self) -> Vec<Terminator> {
        self.stack
            .iter()
            .filter_map(|f| match f {
                Frame::Heredoc { terminator, .. } => Some(terminator.clone()),
                _ => None,
            })
            .collect()
    }

    /// The quoting a `{{` at `i` stands in.
    fn quoting_at(&self, i: usize) -> Quoting {
        let quoting = self.innermost_quoting(i);
        // Backquotes undo one level of backslashes before the command in
        // them is read: no escaping inside them holds, at any depth.
        if self.stack.contains(&Frame::Backquote) && quoting != Quoting::Arithmetic {
            return Quoting::PlainOnly("inside backquotes");
        }
        quoting
    }

    fn innermost_quoting(&self, i: usize) -> Quoting {
        let inherited = |stack: &[Frame]| {
            // `${X:-{{ V }}}` is quoted as the place the `${` stands in.
            // Within double quotes or a here-document, bash still pairs
            // single quotes inside `${...}` but keeps them: no escaping
            // gives back a value holding one.
            match stack
                .iter()
                .rev()
                .find(|f| !matches!(f, Frame::Param { .. }))
            {
                Some(Frame::Double | Frame::Heredoc { quoted: false, .. }) => {
                    Quoting::PlainOnly("inside ${...} within double quotes or a here-document")
                }
                Some(Frame::Backquote) => Quoting::PlainOnly("inside backquotes"),
                Some(Frame::Arith { .. } | Frame::Subscript { .. }) => Quoting::Arithmetic,
                _ => Quoting::Unquoted,
            }
        };
        match self.top() {
            Frame::Single => Quoting::Single,
            Frame::Double => Quoting::Double,
            Frame::AnsiC => Quoting::AnsiC,
            Frame::Arith { .. } | Frame::Subscript { .. } | Frame::Param { offset: true } => {
                Quoting::Arithmetic
            }
            Frame::Backquote => Quoting::PlainOnly("inside backquotes"),
            Frame::Heredoc { quoted: true, .. } => Quoting::LiteralHeredoc,
            Frame::Heredoc { quoted: false, .. } => Quoting::Heredoc,
            Frame::Param { offset: false } => inherited(&self.stack),
            Frame::Test if self.beside_arithmetic_test(i) => Quoting::Arithmetic,
            Frame::Test => Quoting::Unquoted,
            Frame::Code { .. } if self.in_let(i) => Quoting::Arithmetic,
            Frame::Code { .. } => Quoting::Unquoted,
        }
    }

    /// Whether the place (looking through `${...}`) is double-quoted or a
    /// here-document body, where `'` and `$'` are not quotes.
    fn within_double_quotes(&self) -> bool {
        matches!(
            self.stack
                .iter()
                .rev()
                .find(|f| !matches!(f, Frame::Param { .. })),
            Some(Frame::Double | Frame::Heredoc { .. })
        )
    }

    /// Whether the word before or after the `{{ }}` at `i` is `-eq` and
    /// the like, inside `[[ ]]`.
    fn beside_arithmetic_test(&self, i: usize) -> bool {
        let before = self.text[..i].split_whitespace().next_back().unwrap_or("");
        let after_end = self.text[i..]
            .find("}}")
            .map_or(self.text.len(), |e| i + e + 2);
        let after = self.text[after_end..]
            .split_whitespace()
            .next()
            .unwrap_or("");
        ARITHMETIC_TESTS.contains(&before) || ARITHMETIC_TESTS.contains(&after)
    }

    /// Whether the simple command around `i` is `let`.
    fn in_let(&self, i: usize) -> bool {
        let start = self.text[..i]
            .rfind(['\n', ';', '|', '&', '('])
            .map_or(0, |s| s + 1);
        self.text[start..i]
            .split_whitespace()
            .find(|w| !matches!(*w, "{" | "!" | "then" | "do" | "else" | "time"))
            == Some("let")
    }

    fn scan(mut self) -> Vec<(usize, Context)> {
        let mut i = 0;
        let mut line_start = true;
        while i < self.bytes.len() {
            if line_start {
                if let Some(end) = self.heredoc_end(i) {
                    i = end;
                    continue;
                }
            }
            line_start = false;
            let rest = &self.text[i..];
            if rest.starts_with("{{") {
                let context = Context {
                    quoting: self.quoting_at(i),
                    heredocs: self.heredocs(),
                };
                self.found.push((i, context));
                i += rest.find("}}").map_or(rest.len(), |e| e + 2);
                continue;
            }
            if rest.starts_with("{%") {
                i += rest.find("%}").map_or(rest.len(), |e| e + 2);
                continue;
            }
            let c = self.bytes[i];
            if c == b'\n' {
                line_start = true;
                if matches!(self.top(), Frame::Code { .. } | Frame::Test)
                    && !self.pending.is_empty()
                {
                    for (terminator, quoted) in std::mem::take(&mut self.pending).into_iter().rev()
                    {
                        self.stack.push(Frame::Heredoc { terminator, quoted });
                    }
                }
                i += 1;
                continue;
            }
            i += self.step(i, c, rest);
        }
        self.found
    }

    /// At the start of a line inside a here-document: if the line ends
    /// it, pops it and returns the offset after the line.
    fn heredoc_end(&mut self, i: usize) -> Option<usize> {
        let Frame::Heredoc { terminator, .. } = self.top() else {
            return None;
        };
        let line_end = self.text[i..].find('\n').map_or(self.text.len(), |e| i + e);
        let line = &self.text[i..line_end];
        let candidate = if terminator.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        };
        if candidate != terminator.delimiter {
            return None;
        }
        self.stack.pop();
        // A following here-document on the same `<<` line starts here.
        Some((line_end + 1).min(self.text.len()))
    }

    /// Reads one character (or operator) at `i`; returns how far to move.
    fn step(&mut self, i: usize, c: u8, rest: &str) -> usize {
        let top = self.top().clone();
        match top {
            Frame::Single => {
                if c == b'\'' {
                    self.stack.pop();
                }
                1
            }
            Frame::AnsiC => match c {
                b'\\' => 2,
                b'\'' => {
                    self.stack.pop();
                    1
                }
                _ => 1,
            },
            Frame::Heredoc { quoted: true, .. } => 1,
            Frame::Heredoc { quoted: false, .. } | Frame::Double => match c {
                b'\\' => 2,
                b'"' if top == Frame::Double => {
                    self.stack.pop();
                    1
                }
                b'`' => {
                    self.stack.push(Frame::Backquote);
                    1
                }
                b'$' => self.dollar(rest),
                _ => 1,
            },
            Frame::Param { offset } => match c {
                b'\\' => 2,
                b'}' => {
                    self.stack.pop();
                    1
                }
                b'[' if !offset => {
                    self.stack.push(Frame::Subscript {
                        depth: 0,
                        word: false,
                    });
                    1
                }
                b':' if !offset && !rest[1..].starts_with(['-', '=', '?', '+']) => {
                    *self.stack.last_mut().expect("param") = Frame::Param { offset: true };
                    1
                }
                b'\'' if !self.within_double_quotes() => {
                    self.stack.push(Frame::Single);
                    1
                }
                b'"' => {
                    self.stack.push(Frame::Double);
                    1
                }
                b'`' => {
                    self.stack.push(Frame::Backquote);
                    1
                }
                b'$' => self.dollar(rest),
                _ => 1,
            },
            Frame::Arith { parens, brackets } => match c {
                b'(' => {
                    *self.stack.last_mut().expect("arith") = Frame::Arith {
                        parens: parens + 1,
                        brackets,
                    };
                    1
                }
                b')' if parens > 0 && !brackets => {
                    *self.stack.last_mut().expect("arith") = Frame::Arith {
                        parens: parens - 1,
                        brackets,
                    };
                    1
                }
                b')' if rest.starts_with("))") && !brackets => {
                    self.stack.pop();
                    2
                }
                b']' if brackets => {
                    self.stack.pop();
                    1
                }
                b'$' => self.dollar(rest),
                b'`' => {
                    self.stack.push(Frame::Backquote);
                    1
                }
                _ => 1,
            },
            Frame::Subscript { depth, word } => match c {
                b'[' => {
                    *self.stack.last_mut().expect("subscript") = Frame::Subscript {
                        depth: depth + 1,
                        word,
                    };
                    1
                }
                b']' if depth > 0 => {
                    *self.stack.last_mut().expect("subscript") = Frame::Subscript {
                        depth: depth - 1,
                        word,
                    };
                    1
                }
                b']' => {
                    self.stack.pop();
                    1
                }
                b' ' | b'\t' | b';' | b'|' | b'&' if word => {
                    self.stack.pop();
                    0
                }
                b'$' => self.dollar(rest),
                b'`' => {
                    self.stack.push(Frame::Backquote);
                    1
                }
                _ => 1,
            },
            Frame::Code { .. } | Frame::Backquote | Frame::Test => self.code(i, c, rest, &top),
        }
    }

    /// After a `$`: `$((`, `$(`, `$[`, `${`, `$'`.
    fn dollar(&mut self, rest: &str) -> usize {
        if rest.starts_with("$((") {
            self.stack.push(Frame::Arith {
                parens: 0,
                brackets: false,
            });
            3
        } else if rest.starts_with("$(") {
            self.stack.push(Frame::Code {
                parens: 0,
                nested: true,
            });
            2
        } else if rest.starts_with("$[") {
            self.stack.push(Frame::Arith {
                parens: 0,
                brackets: true,
            });
            2
        } else if rest.starts_with("${") {
            self.stack.push(Frame::Param { offset: false });
            2
        } else if rest.starts_with("$'") && !self.within_double_quotes() {
            self.stack.push(Frame::AnsiC);
            2
        } else {
            1
        }
    }

    fn code(&mut self, i: usize, c: u8, rest: &str, top: &Frame) -> usize {
        let word_start = i == 0
            || matches!(
                self.bytes[i - 1],
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'('
            );
        match c {
            b'\\' => 2,
            b'`' if *top == Frame::Backquote => {
                self.stack.pop();
                1
            }
            b'`' => {
                self.stack.push(Frame::Backquote);
                1
            }
            b'$' => self.dollar(rest),
            b'\'' => {
                self.stack.push(Frame::Single);
                1
            }
            b'"' => {
                self.stack.push(Frame::Double);
                1
            }
            b'(' if rest.starts_with("((") && word_start => {
                self.stack.push(Frame::Arith {
                    parens: 0,
                    brackets: false,
                });
                2
            }
            b'[' if rest.starts_with("[[") && word_start && *top != Frame::Test => {
                self.stack.push(Frame::Test);
                2
            }
            b']' if rest.starts_with("]]") && *top == Frame::Test => {
                self.stack.pop();
                2
            }
            b'[' if i > 0 && is_name_byte(self.bytes[i - 1]) => {
                self.stack.push(Frame::Subscript {
                    depth: 0,
                    word: true,
                });
                1
            }
            b'(' => {
                if let Some(Frame::Code { parens, .. }) = self.stack.last_mut() {
                    *parens += 1;
                }
                1
            }
            b')' => {
                match self.stack.last_mut() {
                    Some(Frame::Code {
                        parens: 0,
                        nested: true,
                    }) => {
                        self.stack.pop();
                    }
                    Some(Frame::Code { parens, .. }) if *parens > 0 => *parens -= 1,
                    _ => {}
                }
                1
            }
            b'#' if word_start => {
                // A comment runs to the end of the line; a value there
                // with a line break would run as code.
                let end = rest.find('\n').unwrap_or(rest.len());
                let mut offset = 0;
                while let Some(pos) = rest[offset..end].find("{{") {
                    let context = Context {
                        quoting: Quoting::PlainOnly("in a comment"),
                        heredocs: self.heredocs(),
                    };
                    self.found.push((i + offset + pos, context));
                    offset += pos + 2;
                }
                end
            }
            b'<' if rest.starts_with("<<<") => 3,
            b'<' if rest.starts_with("<<") => match heredoc_operator(&rest[2..]) {
                Some((delimiter, quoted, strip_tabs, length)) => {
                    self.pending.push((
                        Terminator {
                            delimiter,
                            strip_tabs,
                        },
                        quoted,
                    ));
                    2 + length
                }
                None => 1,
            },
            _ => 1,
        }
    }
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

/// A value inside `$'...'`: only `\` and `'` mean anything there.
pub fn escape_ansi_c(value: &str) -> String {
    escape(value, &['\\', '\''])
}

/// Whether a value is a plain integer, the one thing safe in arithmetic
/// (a name there is looked up and its value evaluated, subscripts and all).
pub fn is_number(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let hex = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"));
    match hex {
        Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quotings by name, in order.
    fn kinds(template: &str) -> Vec<&'static str> {
        contexts(template)
            .into_iter()
            .map(|(_, c)| match c.quoting {
                Quoting::Unquoted => "unquoted",
                Quoting::Single => "single",
                Quoting::Double => "double",
                Quoting::AnsiC => "ansi-c",
                Quoting::Heredoc => "heredoc",
                Quoting::LiteralHeredoc => "literal",
                Quoting::Arithmetic => "arith",
                Quoting::PlainOnly(_) => "plain",
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
            ["plain", "plain"]
        );
        assert_eq!(kinds("echo \\'{{ A }}"), ["unquoted"]);
        assert_eq!(
            kinds("# it's a {{ B }}\necho {{ A }}"),
            ["plain", "unquoted"]
        );
        assert_eq!(kinds("echo $((1 + 2)) {{ A }}"), ["unquoted"]);
        assert_eq!(
            kinds("echo $(( {{ A }} + 1 )) $[{{ B }}] ; (( n = {{ C }} )); let x={{ D }}+{{ E }}; {{ F }}"),
            ["arith", "arith", "arith", "arith", "arith", "unquoted"]
        );
        assert_eq!(
            kinds("a[{{ A }}]=1; echo \"${a[{{ B }}]}\" ${s:{{ C }}:2} ${x:-{{ D }}} \"${x:-{{ E }}}\""),
            ["arith", "arith", "arith", "unquoted", "plain"]
        );
        assert_eq!(
            kinds("echo $'a{{ A }}b' \"$'{{ B }}'\""),
            ["ansi-c", "double"]
        );
        assert_eq!(
            kinds("[[ $n -eq {{ A }} ]] && [[ {{ B }} == x ]]"),
            ["arith", "unquoted"]
        );
        assert_eq!(kinds("echo x[1] {{ A }}"), ["unquoted"]);
    }

    #[test]
    fn here_documents() {
        let code = "cat <<EOF | kubectl apply -f -\nname: {{ A }}\nEOF\ncat <<'RAW'\n{{ B }}\nRAW\ncat <<-X\n\t{{ C }}\n\tX\necho {{ D }}";
        assert_eq!(kinds(code), ["heredoc", "literal", "heredoc", "unquoted"]);
        assert_eq!(kinds("cat <<< \"{{ A }}\""), ["double"]);
        let nested = "cat <<EOF\n$(printf %s {{ A }}) `echo {{ B }}` $(( {{ C }} ))\nEOF\n";
        assert_eq!(kinds(nested), ["unquoted", "plain", "arith"]);
        let found = contexts(nested);
        assert!(found.iter().all(|(_, c)| c.heredocs.len() == 1));
        assert_eq!(
            kinds("cat <<A <<B\n{{ X }}\nA\n'{{ Y }}'\nB\necho {{ Z }}"),
            ["heredoc", "heredoc", "unquoted"]
        );
    }

    #[test]
    fn terminators() {
        let found = contexts("cat <<-END\n\t{{ A }}\n\tEND\n");
        let terminator = &found[0].1.heredocs[0];
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
        assert_eq!(escape_ansi_c(r"a'b\n"), r"a\'b\\n");
        assert!(is_number("42") && is_number("-7") && is_number("0x1F"));
        assert!(
            !is_number("a[$(touch x)]") && !is_number("") && !is_number("0x") && !is_number("N")
        );
    }
}
