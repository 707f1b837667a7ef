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
use crate::lines::{first_terminator, line_end, lone_cr_as_lf, normalize_line_endings, LineIndex};

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

/// The extensions runbook reads, as GitHub does. YAML metadata blocks are
/// not among them: pulldown-cmark would take a `---` ... `---` pair anywhere
/// for one, hiding the code between from runbook while a renderer shows it.
/// Front matter is found first, at the very start only (see
/// [`front_matter`]), and the rest is parsed on its own.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM
}

/// The front matter block a document starts with (after a BOM): its span,
/// fences included, and its YAML.
fn front_matter(source: &str, base: usize) -> Option<(Range<usize>, String)> {
    let mut events = Parser::new_ext(
        &source[base..],
        options() | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS,
    )
    .into_offset_iter();
    let (Event::Start(Tag::MetadataBlock(_)), range) = events.next()? else {
        return None;
    };
    if range.start != 0 {
        return None;
    }
    let mut yaml = String::new();
    for (event, _) in events {
        match event {
            Event::Text(text) => yaml.push_str(&text),
            _ => break,
        }
    }
    Some((range.start + base..range.end + base, yaml))
}

/// Where the Markdown after the front matter (and a BOM) starts.
fn body_start(source: &str) -> (usize, Option<(Range<usize>, String)>) {
    let base = if source.starts_with('\u{feff}') { 3 } else { 0 };
    match front_matter(source, base) {
        Some((range, yaml)) => (range.end, Some((range, yaml))),
        None => (base, None),
    }
}

/// A fenced block's language, as CommonMark reads it: the info string's
/// first word, ended by a space, tab or other ASCII whitespace, or by the
/// `{` of an attribute list. (Unicode spaces such as U+00A0 are part of
/// the word, as a renderer takes them.)
pub fn language(info: &str) -> &str {
    let info = info.trim_start_matches(is_markdown_space);
    let end = info
        .find(|c: char| is_markdown_space(c) || c == '{')
        .unwrap_or(info.len());
    &info[..end]
}

fn is_markdown_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}')
}

/// How many fenced blocks of a document would be cells (by the language of
/// their info string, or a `file=`), whether or not the document parses:
/// for counts that agree with the file when it has errors.
pub fn count_cells(source: &str) -> usize {
    let source = &lone_cr_as_lf(source);
    let (start, _) = body_start(source);
    Parser::new_ext(&source[start..], options())
        .filter(|event| match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                interpreter_for(language(info), Interpreter::Bash).is_some()
                    || info.contains("file=")
            }
            _ => false,
        })
        .count()
}

/// Parses a runbook. All problems found are returned together.
///
/// A lone `\r` ends a line, as in CommonMark: the document is read with
/// each one as `\n` (at the same offset, so every span is the original's),
/// and a cell's body has `\n` line ends whatever the document uses.
pub fn parse(source: &str) -> Result<Runbook, Vec<Diagnostic>> {
    let newline = first_terminator(source);
    let source = &lone_cr_as_lf(source);
    let mut state = State {
        source,
        index: LineIndex::new(source),
        runbook: Runbook {
            newline,
            ..Runbook::default()
        },
        shell: Interpreter::Bash,
        ids: HashMap::new(),
        diagnostics: Vec::new(),
        code_end: 0,
    };
    let (start, front_matter) = body_start(source);
    if let Some((range, yaml)) = front_matter {
        state.front_matter(range, &yaml);
    }
    // Each open element's most recent child, to attach output blocks only
    // to a cell that is their previous sibling.
    let mut stack: Vec<Last> = vec![Last::Other];
    let mut code: Option<(Range<usize>, String, String, Last)> = None;
    let mut footnotes = 0;
    let mut html: Option<usize> = None;
    for (event, range) in Parser::new_ext(&source[start..], options()).into_offset_iter() {
        let range = range.start + start..range.end + start;
        match event {
            Event::Start(tag) => {
                let top = stack.last_mut().expect("root frame");
                let previous = std::mem::replace(top, Last::Other);
                match tag {
                    Tag::CodeBlock(CodeBlockKind::Fenced(info)) => {
                        code = Some((range, info.to_string(), String::new(), previous))
                    }
                    Tag::FootnoteDefinition(_) => footnotes += 1,
                    Tag::HtmlBlock => html = Some(range.start),
                    _ => {}
                }
                stack.push(Last::Other);
            }
            Event::End(end) => {
                stack.pop();
                let last = match end {
                    TagEnd::CodeBlock => match code.take() {
                        Some((range, info, body, previous)) => {
                            let context = Context {
                                info,
                                previous,
                                in_footnote: footnotes > 0,
                            };
                            state.fenced_block(range, body, context)
                        }
                        None => Last::Other,
                    },
                    TagEnd::FootnoteDefinition => {
                        footnotes -= 1;
                        Last::Other
                    }
                    TagEnd::HtmlBlock => {
                        if let Some(start) = html.take() {
                            state.html_block(start..range.end);
                        }
                        Last::Other
                    }
                    _ => Last::Other,
                };
                *stack.last_mut().expect("root frame") = last;
            }
            Event::Text(text) => {
                if let Some((_, _, body, _)) = code.as_mut() {
                    body.push_str(&text);
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

/// What the parser knows about a fenced block beyond its bytes.
struct Context {
    /// The info string as a renderer reads it: escapes and character
    /// references resolved.
    info: String,
    /// The block's previous sibling.
    previous: Last,
    /// Whether the block stands in a footnote definition.
    in_footnote: bool,
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
    /// Where the last fenced block read ends.
    code_end: usize,
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
        let start = self.index.offset_of_line(line).min(self.source.len());
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
        if last_line > open && !src[..range.end].ends_with(['\n', '\r']) {
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
            prefix: expand_tabs(&src[last_line..prefix_end]),
            insert_at: line_end(src, last_line),
        }
    }

    /// Where pulldown-cmark and CommonMark renderers read a fenced block's
    /// tabs differently, why. A closing fence followed by a tab closes the
    /// block for CommonMark but not for pulldown-cmark, which then runs
    /// on; and a tab in the indentation of a block in a list, a
    /// blockquote or an indent is expanded differently by each (what the
    /// block holds, or whether it goes on, then depends on the reader).
    /// Fences at the left margin keep their tabs as code: nothing to read.
    fn tab_ambiguity(
        &self,
        range: &Range<usize>,
        fence: &Fence,
        body: &str,
    ) -> Option<&'static str> {
        let src = self.source;
        let fence_char = char::from(src.as_bytes()[fence.open]);
        let fence_len =
            src[fence.open..].len() - src[fence.open..].trim_start_matches(fence_char).len();
        let closes_with_tab = body.lines().any(|line| {
            let unindented = line.trim_start_matches(' ');
            let rest = unindented.trim_start_matches(fence_char);
            line.len() - unindented.len() <= 3
                && unindented.len() - rest.len() >= fence_len
                && rest.contains('\t')
                && rest.trim_matches([' ', '\t']).is_empty()
        });
        if closes_with_tab {
            return Some("a line in this fence's block is a closing fence followed by a tab: CommonMark renderers end the block there, the Markdown parser runbook uses does not");
        }
        let first_line = self.index.line_start(fence.open);
        let opening_prefix = &src[first_line..fence.open];
        if opening_prefix.contains('\t') {
            return Some(TABS_IN_CONTAINERS);
        }
        // Its other lines: a tab that starts left of where the fence stands
        // is (partly) taken by the containers or the fence's indent.
        let width = opening_prefix.chars().count();
        let first = self.index.line(fence.open);
        let last = self.index.line(range.end.saturating_sub(1).max(fence.open));
        let lines = self.index.line(src.len());
        // The line after an unclosed block too: whether it goes on depends on
        // how that line's indent is read.
        let after = usize::from(fence.closing_line.is_none());
        let tabbed = (first + 1..=(last + after).min(lines)).any(|line| {
            let start = self.index.offset_of_line(line);
            src[start..line_end(src, start)]
                .chars()
                .take(width)
                .any(|c| c == '\t')
        });
        tabbed.then_some(TABS_IN_CONTAINERS)
    }

    /// Whether the lines right above a fence (up to a blank line or the
    /// code block before) hold an
    /// HTML line and a blockquote or list: CommonMark 0.31 and
    /// pulldown-cmark continue the paragraph above with the HTML line
    /// lazily, cmark-gfm starts an HTML block there that runs to the next
    /// blank line and takes the fence in.
    fn after_lazy_html(&self, open: usize) -> bool {
        let src = self.source;
        let first = self.index.line(open);
        let opening_prefix = &src[self.index.line_start(open)..open];
        let mut html = false;
        let mut container = !opening_prefix.trim().is_empty();
        for line in (1..first).rev() {
            let start = self.index.offset_of_line(line);
            if start < self.code_end {
                break;
            }
            let text = &src[start..line_end(src, start)];
            if text.trim_matches([' ', '\t', '>']).is_empty() {
                break;
            }
            let unindented = text.trim_start_matches([' ', '\t']);
            html |= unindented
                .trim_start_matches([' ', '\t', '>'])
                .starts_with('<');
            container |= unindented.starts_with('>') || starts_list_item(unindented);
        }
        html && container
    }

    /// Where the first blank line at or after `offset` starts (the end of
    /// the text when none follows).
    fn blank_line_after(&self, offset: usize) -> usize {
        let src = self.source;
        let mut start = self.index.line_start(offset.min(src.len()));
        while start < src.len() {
            let end = line_end(src, start);
            if start >= offset && src[start..end].trim_matches([' ', '\t', '>']).is_empty() {
                return start;
            }
            start = crate::lines::next_line_start(src, start);
        }
        src.len()
    }

    /// HTML blocks whose extent renderers disagree on, refused when a
    /// fence is at stake, since the reader's renderer decides whether it
    /// is code:
    /// - `<textarea>` and `<search>` start a block that ends at their
    ///   closing tag in CommonMark 0.31 (and pulldown-cmark); before 0.31
    ///   (GitHub's renderer) one that ends at the next blank line, or none,
    ///   when a paragraph is open;
    /// - an HTML line right above the block (see the comment below);
    /// - `<pre>`, `<script>`, `<style>` blocks closed by another of their
    ///   end tags.
    fn html_block(&mut self, range: Range<usize>) {
        let text = &self.source[range.clone()];
        let first = text.lines().next().unwrap_or("");
        let tag = first
            .trim_start_matches([' ', '\t', '>'])
            .trim_start_matches(|c: char| c.is_ascii_digit() || "-*+.) ".contains(c))
            .to_ascii_lowercase();
        let version_dependent = ["<textarea", "<search"].iter().any(|name| {
            tag.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '>', '/']))
        });
        let holds_a_fence = text.contains("```") || text.contains("~~~");
        let end = line_end(self.source, range.start);
        // Before 0.31 these tags cannot interrupt a paragraph, which then
        // runs on to the next blank line: a fence in that stretch is read
        // one way or the other.
        // An HTML line in it may start a block of its own that runs past
        // blank lines (`<?php`, `<!--`): then everything after is at stake.
        let mut stretch = &self.source[range.start..self.blank_line_after(range.end)];
        if stretch
            .lines()
            .skip(1)
            .any(|line| line.trim_start_matches([' ', '\t', '>']).starts_with('<'))
        {
            stretch = &self.source[range.start..];
        }
        if version_dependent && (stretch.contains("```") || stretch.contains("~~~")) {
            self.diagnostics.push(
                Diagnostic::error(
                    "this HTML block hides a fence that renderers before CommonMark 0.31 (GitHub's among them) show as code",
                    range.start..end,
                )
                .help("put a blank line after the HTML, or close it before the code block"),
            );
            return;
        }
        // An HTML line right above: whether it continues a paragraph
        // lazily (CommonMark 0.31, commonmark.js, pulldown-cmark) or starts
        // an HTML block of its own that ends at the next blank line
        // (cmark-gfm, after a blockquote or list) decides whether this
        // block hides the fence.
        let line = self.index.line(range.start);
        if holds_a_fence && line > 1 {
            let above = self.index.offset_of_line(line - 1);
            let above = &self.source[above..line_end(self.source, above)];
            if above.trim_start_matches([' ', '\t', '>']).starts_with('<') {
                self.diagnostics.push(
                    Diagnostic::error(
                        "this HTML block hides a fence for some CommonMark renderers and not for others, as they read the HTML line above it differently",
                        range.start..end,
                    )
                    .help("put a blank line between the HTML lines and the code block"),
                );
                return;
            }
        }
        // A `<pre>`, `<script>`, `<style>` or `<textarea>` block ends, for
        // CommonMark, at the first line holding any of their end tags, in
        // any case; pulldown-cmark waits for the start tag's own end tag,
        // as written, and reads on.
        let starts_raw = ["<pre", "<script", "<style", "<textarea"]
            .iter()
            .any(|name| {
                tag.strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '>']))
            });
        let mut lines: Vec<String> = text.lines().map(str::to_ascii_lowercase).collect();
        lines.pop();
        let ends_earlier = lines.iter().any(|line| {
            ["</pre>", "</script>", "</style>", "</textarea>"]
                .iter()
                .any(|end| line.contains(end))
        });
        if starts_raw && ends_earlier && holds_a_fence {
            self.diagnostics.push(
                Diagnostic::error(
                    "this HTML block ends earlier for CommonMark renderers than for the Markdown parser runbook uses, and a fence follows that end",
                    range.start..end,
                )
                .help("close the HTML element with its own end tag, as written in its start tag"),
            );
        }
    }

    fn fenced_block(&mut self, range: Range<usize>, body: String, context: Context) -> Last {
        let last = self.read_fenced_block(range.clone(), body, context);
        self.code_end = range.end;
        last
    }

    fn read_fenced_block(&mut self, range: Range<usize>, body: String, context: Context) -> Last {
        let previous = context.previous;
        // CommonMark shows U+0000 as U+FFFD; so does the body that runs.
        let body = normalize_line_endings(&body).replace('\0', "\u{fffd}");
        let fence = self.fence(&range, &body);
        let raw_info = &self.source[fence.info.clone()];
        let word = language(raw_info);
        let executable = interpreter_for(word, self.shell).is_some();
        let parsed = parse_info(raw_info);
        let is_file_cell = matches!(&parsed, Ok(info) if info.get("file").is_some() && !executable);
        let is_output = word == "output";
        let runs = executable || is_file_cell;

        // A renderer resolves escapes and character references in the info
        // string (`b&#97;sh` shows as a bash block): runbook reads the info
        // string as written, so one that reads otherwise is refused when
        // either reading could make the block a cell or an output block.
        let shown = context.info.trim_matches(is_markdown_space);
        if shown != raw_info.trim_matches(is_markdown_space) {
            let shown_word = language(shown);
            let matters = |word: &str, info: &str| {
                interpreter_for(word, self.shell).is_some()
                    || word == "output"
                    || info.contains("file=")
            };
            if matters(word, raw_info) || matters(shown_word, shown) {
                self.diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "this fence's info string is written with escapes or character references, and shows as `{shown}`"
                        ),
                        fence.info.clone(),
                    )
                    .help("write the language and attributes plainly, as they should show"),
                );
            }
            return Last::Other;
        }

        if let Some(message) = self.tab_ambiguity(&range, &fence, &body) {
            if runs || is_output || swallows_a_fence(&body) {
                self.diagnostics
                    .push(Diagnostic::error(message, fence.open..fence.info.end).help(
                        "indent with spaces, and end the closing fence's line without a tab",
                    ));
                return Last::Other;
            }
        }

        if (runs || is_output) && self.after_lazy_html(fence.open) {
            self.diagnostics.push(
                Diagnostic::error(
                    "this fence follows an HTML line in a blockquote or list without a blank line between: some CommonMark renderers show the block as code, others as part of the HTML",
                    fence.open..fence.info.end,
                )
                .help("put a blank line before the code block"),
            );
            return Last::Other;
        }

        if context.in_footnote && (runs || is_output) {
            self.diagnostics.push(
                Diagnostic::error(
                    "this fence stands in a footnote definition, which a renderer shows at the end of the page, or not at all when nothing refers to it",
                    fence.open..fence.info.end,
                )
                .help("move the block out of the footnote"),
            );
            return Last::Other;
        }

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
            templated: !self.runbook.settings.verbatim,
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

/// Whether a line starts with a list marker: `-`, `*`, `+`, or up to nine
/// digits and `.` or `)`, then a space, a tab or the line's end.
fn starts_list_item(line: &str) -> bool {
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = if digits > 0 && digits <= 9 {
        line[digits..].strip_prefix(['.', ')'])
    } else {
        line.strip_prefix(['-', '*', '+'])
    };
    rest.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// A closing fence's prefix with its tabs as the spaces they stand for
/// (tab stops of 4, as CommonMark reads indentation), so the lines written
/// behind it are indented alike whatever reads them.
fn expand_tabs(prefix: &str) -> String {
    let mut expanded = String::new();
    for c in prefix.chars() {
        if c == '\t' {
            let width = 4 - expanded.chars().count() % 4;
            expanded.push_str(&" ".repeat(width));
        } else {
            expanded.push(c);
        }
    }
    expanded
}

const TABS_IN_CONTAINERS: &str = "this fence stands in a list, a blockquote or an indent, and tabs indent its lines, which CommonMark renderers and the Markdown parser runbook uses expand differently";

/// Whether an unclosed block's content holds something that looks like a
/// fence, i.e. the missing close hides blocks that follow.
fn swallows_a_fence(body: &str) -> bool {
    body.lines().any(|line| {
        let line = line.trim_start_matches([' ', '\t', '>']);
        line.starts_with("```") || line.starts_with("~~~")
    })
}
