//! Markdown to [`Runbook`]: a pure function of the text, no I/O.
//!
//! pulldown-cmark finds the blocks; this module classifies fenced blocks into
//! cells, file cells, output blocks and prose, reads their attribute lists,
//! and records the byte spans the writer needs.

use std::collections::HashMap;
use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use crate::attrs::{parse_info, Attr, InfoString};
use crate::diagnostic::Diagnostic;
use crate::document::{
    interpreter_for, Capture, Cell, CellKind, CellOptions, Expect, Interpreter, OutputBlock,
    Runbook,
};
use crate::duration::parse_duration;
use crate::frontmatter::parse_settings;
use crate::lines::{line_end, LineIndex};

/// Attributes a cell understands, for messages.
pub const KNOWN_ATTRIBUTES: &[&str] = &[
    "id",
    "capture",
    "capture-json",
    "secret",
    "timeout",
    "retries",
    "retry-delay",
    "expect",
    "continue-on-error",
    "cwd",
    "confirm",
    "skip",
    "output",
    "file",
    "mode",
];

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_GFM
}

/// Parses a runbook. All problems found are returned together.
/// How many fenced blocks of a document would be cells (by the language of
/// their info string, or a `file=`), whether or not the document parses:
/// for counts that agree with the file when it has errors.
pub fn count_cells(source: &str) -> usize {
    Parser::new_ext(source, options())
        .filter(|event| match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let word = info
                    .trim_start()
                    .split(|c: char| c.is_whitespace() || c == '{')
                    .next()
                    .unwrap_or("");
                interpreter_for(word, Interpreter::Bash).is_some() || info.contains("file=")
            }
            _ => false,
        })
        .count()
}

pub fn parse(source: &str) -> Result<Runbook, Vec<Diagnostic>> {
    let base = if source.starts_with('\u{feff}') { 3 } else { 0 };
    let mut state = State {
        source,
        index: LineIndex::new(source),
        runbook: Runbook {
            newline: if source.split('\n').next().is_some_and(|l| l.ends_with('\r')) {
                "\r\n"
            } else {
                "\n"
            },
            ..Runbook::default()
        },
        shell: Interpreter::Bash,
        ids: HashMap::new(),
        diagnostics: Vec::new(),
    };
    // Each open element's most recent child, to attach output blocks only
    // to a cell that is their previous sibling.
    let mut stack: Vec<Last> = vec![Last::Other];
    let mut metadata: Option<(Range<usize>, String)> = None;
    let mut code: Option<(Range<usize>, String, Last)> = None;
    for (event, range) in Parser::new_ext(&source[base..], options()).into_offset_iter() {
        let range = range.start + base..range.end + base;
        match event {
            Event::Start(tag) => {
                let top = stack.last_mut().expect("root frame");
                let previous = std::mem::replace(top, Last::Other);
                match tag {
                    Tag::MetadataBlock(_) => metadata = Some((range, String::new())),
                    Tag::CodeBlock(CodeBlockKind::Fenced(_)) => {
                        code = Some((range, String::new(), previous))
                    }
                    _ => {}
                }
                stack.push(Last::Other);
            }
            Event::End(end) => {
                stack.pop();
                let last = match end {
                    TagEnd::MetadataBlock(_) => {
                        if let Some((range, yaml)) = metadata.take() {
                            state.front_matter(range, &yaml);
                        }
                        Last::Other
                    }
                    TagEnd::CodeBlock => match code.take() {
                        Some((range, body, previous)) => state.fenced_block(range, body, previous),
                        None => Last::Other,
                    },
                    _ => Last::Other,
                };
                *stack.last_mut().expect("root frame") = last;
            }
            Event::Text(text) => {
                if let Some((_, body, _)) = code.as_mut() {
                    body.push_str(&text);
                } else if let Some((_, yaml)) = metadata.as_mut() {
                    yaml.push_str(&text);
                } else {
                    *stack.last_mut().expect("root frame") = Last::Other;
                }
            }
            _ => *stack.last_mut().expect("root frame") = Last::Other,
        }
    }
    if state.diagnostics.iter().any(Diagnostic::is_error) {
        Err(state.diagnostics)
    } else {
        Ok(state.runbook)
    }
}

#[derive(Debug, Clone, Copy)]
enum Last {
    Other,
    Cell(usize),
}

struct State<'a> {
    source: &'a str,
    index: LineIndex,
    runbook: Runbook,
    shell: Interpreter,
    ids: HashMap<String, usize>,
    diagnostics: Vec<Diagnostic>,
}

/// The facts about a fence's lines the classifier needs.
struct Fence {
    open: usize,
    info: Range<usize>,
    /// Start of the closing fence line, if the block is closed by a fence.
    closing_line: Option<usize>,
    prefix: String,
    insert_at: usize,
}

impl State<'_> {
    fn front_matter(&mut self, range: Range<usize>, yaml: &str) {
        let starts_document = self.source[..range.start]
            .trim_start_matches('\u{feff}')
            .is_empty();
        if !starts_document {
            return;
        }
        self.runbook.front_matter = Some(range.clone());
        let first_yaml_line = self.index.line(range.start) + 1;
        match parse_settings(yaml) {
            Ok(settings) => {
                if let Some(shell) = &settings.shell {
                    match Interpreter::from_name(shell) {
                        Some(interpreter) => self.shell = interpreter,
                        None => {
                            let line = crate::frontmatter::key_line(yaml, "shell").unwrap_or(1);
                            self.error_at_line(
                                first_yaml_line + line - 1,
                                format!("unknown shell `{shell}`"),
                                Some("use bash, sh, zsh, pwsh or python".into()),
                            );
                        }
                    }
                }
                self.runbook.settings = settings;
            }
            Err(error) => {
                let line = first_yaml_line + error.line.unwrap_or(1) - 1;
                self.error_at_line(
                    line,
                    format!("invalid front matter: {}", error.message),
                    None,
                );
            }
        }
    }

    fn error_at_line(&mut self, line: usize, message: String, help: Option<String>) {
        let start = self
            .source
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum::<usize>();
        let start = start.min(self.source.len());
        let end = line_end(self.source, start);
        // The caret goes on the line's first token (a YAML key), not on its
        // indent: `parms` in `  parms:`.
        let line_text = &self.source[start..end];
        let token_start = start + (line_text.len() - line_text.trim_start().len());
        let token_end = self.source[token_start..end]
            .find([':', ' '])
            .map_or(end, |at| token_start + at)
            .max(token_start + usize::from(token_start < end));
        let mut diagnostic = Diagnostic::error(message, token_start..token_end.min(end));
        diagnostic.help = help;
        self.diagnostics.push(diagnostic);
    }

    fn fence(&self, range: &Range<usize>, body: &str) -> Fence {
        let src = self.source;
        let open = range.start;
        let fence_char = src.as_bytes()[open];
        let fence_len = src[open..].bytes().take_while(|&b| b == fence_char).count();
        let info = open + fence_len..line_end(src, open);
        let last_line = self.index.line_start(range.end.saturating_sub(1).max(open));
        let mut closing_line = None;
        let mut prefix_end = last_line;
        if last_line > open && !src[..range.end].ends_with('\n') {
            let line = &src[last_line..line_end(src, last_line)];
            let fence_at = line.len() - line.trim_start_matches([' ', '\t', '>']).len();
            let fence = &line[fence_at..];
            let run = fence.bytes().take_while(|&b| b == fence_char).count();
            // A closing fence stands in the same blockquotes as the opening
            // one; `> ```` closes nothing at the top level.
            let opening_prefix = &src[self.index.line_start(open)..open];
            let same_quotes =
                line[..fence_at].matches('>').count() == opening_prefix.matches('>').count();
            // pulldown-cmark has the last word on what closes a fence (it
            // does not take `` ```\t``, say): if the line is still part of
            // the content, the block is not closed.
            let last_content_line = body
                .trim_end_matches('\n')
                .rsplit('\n')
                .next()
                .unwrap_or("");
            let is_content = !body.is_empty() && last_content_line.trim() == fence.trim();
            if run >= fence_len && fence[run..].trim().is_empty() && same_quotes && !is_content {
                closing_line = Some(last_line);
                prefix_end = last_line + fence_at;
            }
        }
        Fence {
            open,
            info,
            closing_line,
            prefix: src[last_line..prefix_end].to_string(),
            insert_at: line_end(src, last_line),
        }
    }

    fn fenced_block(&mut self, range: Range<usize>, body: String, previous: Last) -> Last {
        let body = body.replace("\r\n", "\n");
        let fence = self.fence(&range, &body);
        let raw_info = &self.source[fence.info.clone()];
        let word = raw_info
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == '{')
            .next()
            .unwrap_or("");
        let executable = interpreter_for(word, self.shell).is_some();
        let parsed = parse_info(raw_info);
        let is_file_cell = matches!(&parsed, Ok(info) if info.get("file").is_some() && !executable);
        let is_output = word == "output";
        let runs = executable || is_file_cell;

        if fence.closing_line.is_none() {
            let at_eof = range.end >= self.source.len();
            if runs || is_output {
                let what = if at_eof {
                    "this fence is never closed and swallows the rest of the file"
                } else {
                    "this fence is not closed before its container ends"
                };
                self.diagnostics.push(
                    Diagnostic::error(what, fence.open..fence.info.end)
                        .label("opened here")
                        .help("close the block with a matching fence"),
                );
                return Last::Other;
            }
            if at_eof && swallows_a_fence(&body) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "this fence is never closed and swallows the rest of the file",
                        fence.open..fence.info.end,
                    )
                    .label("opened here")
                    .help("close the block with a matching fence"),
                );
            }
            return Last::Other;
        }

        if is_output {
            let exit_attr = parsed
                .as_ref()
                .ok()
                .and_then(|info| info.get("exit").map(|a| a.value.clone()));
            let exit = match &exit_attr {
                None => Some(0),
                Some(value) => value
                    .as_deref()
                    .and_then(|v| v.parse::<i32>().ok())
                    .filter(|n| (0..=255).contains(n)),
            };
            let Some(exit) = exit else {
                self.diagnostics.push(
                    Diagnostic::error(
                        "`exit` of an output block must be a number from 0 to 255",
                        fence.info.clone(),
                    )
                    .help("write it as ```output {exit=1}"),
                );
                return Last::Other;
            };
            let literal = parsed
                .as_ref()
                .is_ok_and(|info| info.get("literal").is_some());
            let mut attached = false;
            if let Last::Cell(index) = previous {
                let line_start = self.index.line_start(fence.open);
                let cell = &self.runbook.cells[index];
                let gap = &self.source[cell.insert_at.min(line_start)..line_start];
                if cell.output.is_none() && gap.chars().all(|c| c.is_whitespace() || c == '>') {
                    let text = body.strip_suffix('\n').unwrap_or(&body).to_string();
                    self.runbook.cells[index].output = Some(OutputBlock {
                        span: line_start..fence.insert_at,
                        text,
                        exit,
                        literal,
                        line: self.index.line(fence.open),
                    });
                    attached = true;
                }
            }
            if !attached && exit_attr.is_some() {
                self.diagnostics.push(
                    Diagnostic::error(
                        "this output block has an exit status, but no cell stands right above it",
                        fence.info.clone(),
                    )
                    .help("an `output {exit=N}` block records a cell's result: put it directly under the cell, with only blank lines between"),
                );
            }
            return Last::Other;
        }

        let info = match parsed {
            Ok(info) => info,
            Err(error) => {
                if !executable
                    && raw_info.contains("file=")
                    && crate::template::has_template(raw_info)
                {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "a file cell's path cannot be a template",
                            fence.info.clone(),
                        )
                        .help("name the file plainly; template its contents instead"),
                    );
                    return Last::Other;
                }
                if executable || raw_info.contains("file=") {
                    let start = fence.info.start;
                    let mut diagnostic = Diagnostic::error(
                        error.message,
                        start + error.span.start..start + error.span.end,
                    );
                    diagnostic.help = error.help;
                    self.diagnostics.push(diagnostic);
                }
                return Last::Other;
            }
        };
        if !runs {
            return Last::Other;
        }
        self.cell(fence, info, body)
    }

    fn cell(&mut self, fence: Fence, info: InfoString, body: String) -> Last {
        let number = self.runbook.cells.len() + 1;
        let at = fence.info.start;
        let mut reader = AttrReader {
            offset: at,
            diagnostics: &mut self.diagnostics,
        };
        let mut options = CellOptions::default();
        let mut id = None;
        let mut file = None;
        let mut mode = None;
        let mut capture: Option<(String, bool, Range<usize>)> = None;
        let mut secret = None;
        for attr in &info.attrs {
            match attr.key.as_str() {
                "." => {}
                "id" => id = reader.id(attr),
                "capture" | "capture-json" => {
                    if capture.is_some() {
                        reader.error(
                            attr,
                            "a cell captures one variable",
                            "keep one of `capture` and `capture-json`",
                        );
                    } else if let Some(name) = reader.variable(attr) {
                        capture = Some((name, attr.key == "capture-json", reader.span(attr)));
                    }
                }
                "secret" => secret = reader.flag(attr).then(|| reader.span(attr)),
                "timeout" => options.timeout = reader.duration(attr),
                "retry-delay" => {
                    options.retry_delay = reader.duration(attr).unwrap_or(options.retry_delay)
                }
                "retries" => options.retries = reader.number(attr).unwrap_or(0),
                "expect" => match attr.value.as_deref() {
                    Some("any") => options.expect = Expect::Any,
                    _ => {
                        if let Some(code) = reader.number::<i32>(attr) {
                            options.expect = Expect::Code(code);
                        }
                    }
                },
                "continue-on-error" => options.continue_on_error = reader.flag(attr),
                "cwd" => options.cwd = reader.value(attr).map(str::to_string),
                "confirm" => options.confirm = reader.flag(attr),
                "skip" => options.skip = reader.flag(attr),
                "output" => match attr.value.as_deref() {
                    Some("none") => options.record_output = false,
                    _ => reader.error(
                        attr,
                        "`output` takes the value `none`",
                        "write `output=none`",
                    ),
                },
                "file" => file = reader.value(attr).map(str::to_string),
                "mode" => {
                    if let Some(value) = reader.value(attr) {
                        match u32::from_str_radix(value, 8) {
                            Ok(bits) if bits <= 0o7777 => mode = Some(bits),
                            _ => reader.error(
                                attr,
                                format!("invalid file mode `{value}`"),
                                "write an octal mode such as `mode=0600`",
                            ),
                        }
                    }
                }
                unknown => reader.error(
                    attr,
                    format!("unknown attribute `{unknown}`"),
                    format!(
                        "{}known attributes: {}",
                        crate::suggest::did_you_mean(unknown, KNOWN_ATTRIBUTES.iter().copied()),
                        KNOWN_ATTRIBUTES.join(", ")
                    ),
                ),
            }
        }
        if let Some((name, json, _)) = capture {
            options.capture = Some(Capture {
                name,
                json,
                secret: secret.is_some(),
            });
        } else if let Some(span) = secret {
            self.diagnostics.push(
                Diagnostic::error(
                    "`secret` marks a captured variable, but this cell captures none",
                    span,
                )
                .help("add `capture=NAME`"),
            );
        }
        let executable = interpreter_for(&info.lang, self.shell);
        let kind = match (executable, file) {
            (Some(interpreter), None) => CellKind::Code { interpreter },
            (Some(_), Some(_)) => {
                let attr = info.get("file").expect("file attribute present");
                self.diagnostics.push(
                    Diagnostic::error(
                        "`file` makes a file cell, but this block's language runs as code",
                        at + attr.span.start..at + attr.span.end,
                    )
                    .help("give the block the file's language, e.g. ```yaml {file=manifest.yaml}"),
                );
                return Last::Other;
            }
            (None, path) => {
                let path = path.unwrap_or_default();
                let attr = info.get("file").expect("file attribute present");
                let span = at + attr.span.start..at + attr.span.end;
                if crate::template::has_template(&path) {
                    self.diagnostics.push(
                        Diagnostic::error("a file cell's path cannot be a template", span)
                            .help("name the file plainly; template its contents instead"),
                    );
                    return Last::Other;
                }
                if let Some(why) = crate::paths::escapes(&path) {
                    self.diagnostics.push(
                        Diagnostic::error(format!("file path `{path}` {why}"), span)
                            .help("file cells write inside the runbook's folder only: give a path relative to it, without `..` leading out"),
                    );
                    return Last::Other;
                }
                CellKind::File { path, mode }
            }
        };
        if mode.is_some() && matches!(kind, CellKind::Code { .. }) {
            let attr = info.get("mode").expect("mode attribute present");
            self.diagnostics.push(Diagnostic::error(
                "`mode` applies to file cells only",
                at + attr.span.start..at + attr.span.end,
            ));
        }
        if let Some(id) = &id {
            let line = self.index.line(fence.open);
            if let Some(first) = self.ids.insert(id.clone(), line) {
                let attr = info.get("id").expect("id attribute present");
                self.diagnostics.push(
                    Diagnostic::error(
                        format!("duplicate cell id `{id}`"),
                        at + attr.span.start..at + attr.span.end,
                    )
                    .label("used again here")
                    .help(format!("`{id}` is first used by the cell on line {first}")),
                );
                self.ids.insert(id.clone(), first);
            }
        }
        self.runbook.cells.push(Cell {
            number,
            id,
            lang: info.lang,
            kind,
            options,
            body,
            line: self.index.line(fence.open),
            span: fence.open..fence.insert_at,
            info_span: fence.info,
            insert_at: fence.insert_at,
            prefix: fence.prefix,
            output: None,
        });
        Last::Cell(number - 1)
    }
}

/// Reads typed values out of attributes, reporting problems with spans
/// made absolute by `offset`.
struct AttrReader<'d> {
    offset: usize,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl AttrReader<'_> {
    fn span(&self, attr: &Attr) -> Range<usize> {
        self.offset + attr.span.start..self.offset + attr.span.end
    }

    fn error(&mut self, attr: &Attr, message: impl Into<String>, help: impl Into<String>) {
        let span = self.span(attr);
        self.diagnostics
            .push(Diagnostic::error(message, span).help(help));
    }

    fn value<'a>(&mut self, attr: &'a Attr) -> Option<&'a str> {
        match attr.value.as_deref() {
            Some(value) if !value.is_empty() => Some(value),
            _ => {
                self.error(
                    attr,
                    format!("`{}` needs a value", attr.key),
                    format!("write `{}=VALUE`", attr.key),
                );
                None
            }
        }
    }

    fn flag(&mut self, attr: &Attr) -> bool {
        match attr.value.as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.error(
                    attr,
                    format!("`{}` is a flag, not `{other}`", attr.key),
                    format!("write `{}` alone", attr.key),
                );
                false
            }
        }
    }

    fn id(&mut self, attr: &Attr) -> Option<String> {
        let value = self.value(attr)?;
        let valid = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !value.chars().all(|c| c.is_ascii_digit());
        if valid {
            Some(value.to_string())
        } else {
            self.error(
                attr,
                format!("invalid cell id `{value}`"),
                "ids use letters, digits, `_`, `-` and `.`, and are not plain numbers",
            );
            None
        }
    }

    fn variable(&mut self, attr: &Attr) -> Option<String> {
        let value = self.value(attr)?;
        if is_variable_name(value) {
            Some(value.to_string())
        } else {
            self.error(
                attr,
                format!("invalid variable name `{value}`"),
                "names start with a letter or `_` and hold letters, digits and `_`",
            );
            None
        }
    }

    fn duration(&mut self, attr: &Attr) -> Option<std::time::Duration> {
        let value = self.value(attr)?;
        let duration = parse_duration(value);
        if duration.is_none() {
            self.error(
                attr,
                format!("invalid duration `{value}`"),
                "write a duration such as `30s`, `2m` or `1h`",
            );
        }
        duration
    }

    fn number<T: std::str::FromStr>(&mut self, attr: &Attr) -> Option<T> {
        let value = self.value(attr)?;
        let number = value.parse().ok();
        if number.is_none() {
            self.error(
                attr,
                format!("`{}` needs a number, not `{value}`", attr.key),
                format!("write `{}=N`", attr.key),
            );
        }
        number
    }
}

/// Whether a name can be an environment variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether an unclosed block's content holds something that looks like a
/// fence, i.e. the missing close hides blocks that follow.
fn swallows_a_fence(body: &str) -> bool {
    body.lines().any(|line| {
        let line = line.trim_start_matches([' ', '\t', '>']);
        line.starts_with("```") || line.starts_with("~~~")
    })
}
