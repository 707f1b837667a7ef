//! Differential test against a real CommonMark renderer: the cells runbook
//! finds in a document are exactly the fenced blocks `cmark-gfm` (the
//! renderer behind GitHub) shows as code with a cell language, with the same
//! code, byte for byte, and nothing else is a cell.
//!
//! The documents compared are the CommonMark spec's examples (alone, between
//! two cells, and with their `ruby` blocks made `bash` blocks), checked also
//! against the HTML the spec itself expects, and a seeded, generated corpus
//! of hostile layouts: HTML blocks and comments around fences, CR, CRLF and
//! LF line endings mixed, nested lists and blockquotes with lazy lines,
//! indented code, unclosed and mismatched fences, tabs, link reference
//! definitions, setext headings, front-matter-looking `---` blocks, footnotes,
//! tables, a BOM, NUL bytes and other odd characters.
//!
//! A document may also be refused, with an error about its fences naming
//! file:line: then nothing of it runs. Refusals are counted and bounded, so
//! the comparison cannot pass by refusing everything. Into every document
//! runbook reads, an output block is written under each cell, and the
//! written document is compared again and read back.
//!
//! The figures are printed (`-- --nocapture`). `RUNBOOK_COMMONMARK_DOCUMENTS`
//! (default 4000) and `RUNBOOK_COMMONMARK_FIRST_SEED` (default 0) choose the
//! generated documents, for a longer run.
//!
//! The test needs `cmark-gfm` on the PATH (`apt-get install -y cmark-gfm`);
//! without it, it says so and checks nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use runbook::attrs::parse_info;
use runbook::parser::parse;
use runbook::writer::{apply, Edit, Output};

use crate::support::{data, Test};

/// Languages that make a fenced block a cell (SPEC "Cells"; `shell` is the
/// front matter's shell, bash when there is none).
const CELL_LANGUAGES: &[&str] = &[
    "bash",
    "sh",
    "shell",
    "zsh",
    "pwsh",
    "powershell",
    "python",
    "python3",
    "az",
    "kubectl",
    "helm",
];

/// A code block as a renderer shows it: its info string and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    info: String,
    code: String,
}

/// What counts as the block's language: the info string's first word,
/// ended by CommonMark's whitespace (space, tab, line ends, form feed,
/// vertical tab) or by the `{` of runbook's attribute list.
fn language(info: &str) -> &str {
    let info = info.trim_start_matches([' ', '\t']);
    let end = info
        .find([' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '{'])
        .unwrap_or(info.len());
    &info[..end]
}

/// Whether a block the renderer shows would be a cell: a cell language, or
/// a `file=` attribute in braces after another language.
fn is_cell(info: &str) -> bool {
    let word = language(info);
    CELL_LANGUAGES.contains(&word) || (!word.is_empty() && info.contains("file="))
}

fn oracle_available() -> bool {
    Command::new("cmark-gfm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The code blocks cmark-gfm shows, in document order, with the GFM
/// extensions runbook reads (tables, strikethrough, task lists, footnotes).
fn render(markdown: &str) -> Vec<Shown> {
    let mut child = Command::new("cmark-gfm")
        .args(["-t", "xml", "--sourcepos"])
        .args(["-e", "table", "-e", "strikethrough", "-e", "tasklist"])
        .args(["-e", "footnotes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cmark-gfm starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = markdown.as_bytes().to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("cmark-gfm runs");
    writer.join().unwrap().expect("cmark-gfm reads its input");
    assert!(output.status.success(), "cmark-gfm failed on {markdown:?}");
    code_blocks_in_xml(&String::from_utf8(output.stdout).expect("UTF-8 XML"))
}

/// `<code_block sourcepos=".." info=".." xml:space="preserve">code</code_block>`
/// elements, sorted by where they start in the source (footnote
/// definitions are rendered at the end, but run where they stand).
fn code_blocks_in_xml(xml: &str) -> Vec<Shown> {
    let mut blocks = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<code_block") {
        rest = &rest[at..];
        let tag_end = rest.find('>').expect("tag closes");
        let tag = &rest[..tag_end];
        let attribute = |name: &str| -> Option<String> {
            let key = format!(" {name}=\"");
            let start = tag.find(&key)? + key.len();
            let len = tag[start..].find('"')?;
            Some(unescape(&tag[start..start + len]))
        };
        let position = attribute("sourcepos").expect("sourcepos");
        let (line, column) = position.split('-').next().unwrap().split_once(':').unwrap();
        let start: (usize, usize) = (line.parse().unwrap(), column.parse().unwrap());
        let info = attribute("info").unwrap_or_default();
        let (code, next) = if tag.ends_with('/') {
            (String::new(), tag_end + 1)
        } else {
            let close = rest.find("</code_block>").expect("element closes");
            (unescape(&rest[tag_end + 1..close]), close)
        };
        blocks.push((start, Shown { info, code }));
        rest = &rest[next..];
    }
    blocks.sort_by_key(|(start, _)| *start);
    blocks.into_iter().map(|(_, shown)| shown).collect()
}

/// `<pre><code class="language-X">code</code></pre>` in the spec's HTML.
fn code_blocks_in_html(html: &str) -> Vec<Shown> {
    let pattern =
        regex::Regex::new(r#"(?s)<pre><code(?: class="language-([^"]*)")?>(.*?)</code></pre>"#)
            .unwrap();
    pattern
        .captures_iter(html)
        .map(|c| Shown {
            info: c.get(1).map_or(String::new(), |m| unescape(m.as_str())),
            code: unescape(&c[2]),
        })
        .collect()
}

/// Undoes the escaping of XML and HTML text: the named entities cmark
/// writes and numeric references.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').expect("entity ends");
        let entity = &rest[1..end];
        let decoded = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            numeric => {
                let number = numeric.strip_prefix('#').expect("known entity");
                let value = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                    None => number.parse().unwrap(),
                };
                char::from_u32(value).unwrap()
            }
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// How runbook read a document.
#[derive(Debug)]
enum Read {
    /// The cells, as (language, body), and where the front matter ends.
    Cells(Vec<(String, String)>, usize),
    /// Refused, with these messages.
    Refused(Vec<String>),
}

fn read(markdown: &str) -> Read {
    match parse(markdown) {
        Ok(runbook) => Read::Cells(
            runbook
                .cells
                .iter()
                .map(|cell| (cell.lang.clone(), cell.body.clone()))
                .collect(),
            runbook.front_matter.map_or(0, |range| range.end),
        ),
        Err(diagnostics) => Read::Refused(diagnostics.into_iter().map(|d| d.message).collect()),
    }
}

fn expected(shown: &[Shown]) -> Vec<(String, String)> {
    shown
        .iter()
        .filter(|block| is_cell(&block.info))
        .map(|block| (language(&block.info).to_string(), block.code.clone()))
        .collect()
}

/// Writes an output block under every cell, as a run does, and checks the
/// written document: the renderer shows the same cells, runbook reads them
/// back with their outputs, and removing the outputs gives back the
/// original bytes.
fn write_outputs(
    markdown: &str,
    cells: &[(String, String)],
    shown: impl Fn(&str) -> Vec<Shown>,
) -> Result<(), String> {
    let runbook = parse(markdown).map_err(|d| format!("{d:?}"))?;
    let text = |i: usize| format!("out {i}\n\n```\nend");
    let edits: Vec<Edit> = (0..cells.len())
        .map(|i| Edit {
            cell: i,
            output: Some(Output {
                text: text(i),
                exit: 0,
                literal: false,
            }),
        })
        .collect();
    let written = apply(markdown, &runbook, &edits);
    let reread = match read(&written) {
        Read::Cells(reread, body_start) => {
            let again = expected(&shown(&written[body_start..]));
            if again != reread {
                return Err(format!(
                    "written as {written:?}, shown as cells: {again:?}, read as {reread:?}"
                ));
            }
            reread
        }
        Read::Refused(messages) => {
            return Err(format!("written as {written:?}, refused: {messages:?}"))
        }
    };
    if reread != cells {
        return Err(format!("written as {written:?}, read as {reread:?}"));
    }
    let runbook = parse(&written).expect("read above");
    for (i, cell) in runbook.cells.iter().enumerate() {
        let output = cell.output.as_ref().map(|o| o.text.clone());
        if output != Some(text(i)) {
            return Err(format!(
                "written as {written:?}, cell {i}'s output read as {output:?}"
            ));
        }
    }
    // Removing the outputs again gives what removing them from the
    // original gives (the original itself when it had none).
    let removals: Vec<Edit> = (0..cells.len())
        .map(|cell| Edit { cell, output: None })
        .collect();
    let removed = apply(&written, &runbook, &removals);
    let original = parse(markdown).expect("read above");
    let bare = apply(markdown, &original, &removals);
    if removed != bare {
        return Err(format!(
            "written as {written:?}, removing the outputs gave {removed:?}, not {bare:?}"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    documents: usize,
    refused: usize,
    /// Why documents were refused: each message's first words, counted.
    reasons: std::collections::BTreeMap<String, usize>,
    cells: usize,
    disagreements: Vec<String>,
}

impl Tally {
    /// Compares runbook's reading of `markdown` with what `shown` shows of
    /// it. A renderer knows no front matter: it is shown the text after
    /// the front matter runbook found.
    fn compare(&mut self, name: &str, markdown: &str, shown: impl Fn(&str) -> Vec<Shown>) {
        self.documents += 1;
        match read(markdown) {
            Read::Cells(cells, body_start) => {
                let expected = expected(&shown(&markdown[body_start..]));
                self.cells += cells.len();
                if cells != expected {
                    self.disagreements.push(format!(
                        "{name}: {markdown:?}\n  shown as cells: {expected:?}\n  runbook's cells: {cells:?}"
                    ));
                } else if !cells.is_empty() {
                    if let Err(problem) = write_outputs(markdown, &cells, render) {
                        self.disagreements
                            .push(format!("{name}: {markdown:?}\n  {problem}"));
                    }
                }
            }
            Read::Refused(messages) => {
                self.refused += 1;
                for message in &messages {
                    let reason: String = message.split(' ').take(6).collect::<Vec<_>>().join(" ");
                    *self.reasons.entry(reason).or_default() += 1;
                }
                // A refusal runs nothing. It must be about the fences or
                // the front matter, or about an attribute list that is
                // malformed as the renderer shows it.
                let shown = shown(markdown);
                let malformed = shown
                    .iter()
                    .any(|block| is_cell(&block.info) && parse_info(&block.info).is_err());
                if !malformed
                    && !messages
                        .iter()
                        .all(|m| m.contains("fence") || m.contains("front matter"))
                {
                    let expected = expected(&shown);
                    self.disagreements.push(format!(
                        "{name}: {markdown:?}\n  shown as cells: {expected:?}\n  refused for: {messages:?}"
                    ));
                }
            }
        }
    }

    #[track_caller]
    fn check(&self, what: &str) {
        eprintln!(
            "{what}: {} documents compared, {} cells agreed, {} refused, {} disagreements",
            self.documents,
            self.cells,
            self.refused,
            self.disagreements.len()
        );
        for (reason, count) in &self.reasons {
            eprintln!("  refused {count} times: {reason} ...");
        }
        let shown: Vec<&String> = self.disagreements.iter().take(20).collect();
        assert!(
            self.disagreements.is_empty(),
            "{what}: {} disagreements with cmark-gfm, the first:\n{}",
            self.disagreements.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[derive(serde::Deserialize)]
struct Example {
    number: usize,
    markdown: String,
}

#[derive(serde::Deserialize)]
struct Expected {
    number: usize,
    html: String,
}

fn skip_without_oracle() -> bool {
    if oracle_available() {
        return false;
    }
    eprintln!(
        "SKIPPED: cmark-gfm is not installed, so the cells were not compared with a CommonMark \
         renderer (install it with `apt-get install -y cmark-gfm`)"
    );
    true
}

#[test]
fn the_spec_examples_have_the_cells_cmark_gfm_and_the_spec_show() {
    if skip_without_oracle() {
        return;
    }
    let json = std::fs::read_to_string(data("commonmark-spec-0.31.2.json")).unwrap();
    let examples: Vec<Example> = serde_json::from_str(&json).unwrap();
    let json = std::fs::read_to_string(data("commonmark-spec-0.31.2-html.json")).unwrap();
    let html: Vec<Expected> = serde_json::from_str(&json).unwrap();
    assert_eq!(examples.len(), html.len());
    let mut against_renderer = Tally::default();
    let mut against_spec = Tally::default();
    let cell = "```bash\necho cell\n```\n";
    for (example, expected) in examples.iter().zip(&html) {
        let number = example.number;
        assert_eq!(expected.number, number);
        let md = &example.markdown;
        against_renderer.compare(&format!("example {number}"), md, render);
        against_spec.compare(&format!("example {number}"), md, |_| {
            code_blocks_in_html(&expected.html)
        });
        let between = format!("{cell}\n{md}\n\n{cell}");
        against_renderer.compare(&format!("example {number} between cells"), &between, render);
        if md.contains("ruby") {
            let bash = md.replace("ruby", "bash");
            against_renderer.compare(&format!("example {number} as bash"), &bash, render);
            against_spec.compare(&format!("example {number} as bash"), &bash, |_| {
                code_blocks_in_html(&expected.html.replace("ruby", "bash"))
            });
        }
    }
    against_renderer.check("spec examples against cmark-gfm");
    against_spec.check("spec examples against the spec's HTML");
    assert!(against_renderer.documents > 1300);
    assert!(against_renderer.cells > 1200);
}

/// splitmix64: a small deterministic generator, so a failure is replayed
/// by its seed. A mild one never picks the layouts runbook refuses on
/// sight (tabs, footnotes, character references), so that half the corpus
/// is documents runbook reads, and their cells are compared.
struct Rng {
    state: u64,
    mild: bool,
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            mild: seed.is_multiple_of(2),
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn allows(&self, item: &str) -> bool {
        !self.mild || !(item.contains('\t') || item.contains("[^") || item.contains("&#"))
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        loop {
            let item = items[self.below(items.len())];
            if self.allows(item) {
                return item;
            }
        }
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
}

const INFO: &[&str] = &[
    "bash",
    "bash",
    "sh",
    " bash",
    "bash {timeout=1m}",
    "bash{timeout=1m}",
    "shell",
    "python",
    "kubectl",
    "az",
    "yaml {file=out.yaml}",
    "text",
    "output",
    "",
    "bash ```",
    "bash `x`",
    "bash ~~~",
    "Bash",
    "bash\t{confirm}",
    "b&#97;sh",
    "ba\\sh",
    "bash\u{a0}",
    "{.bash}",
    "sh # title",
    "console",
];

const CODE: &[&str] = &[
    "echo hi",
    "echo hi",
    "echo hi",
    "echo \"$HOME\" | tr a-z A-Z",
    "cat <<EOF",
    "EOF",
    "x=1; y=2",
    "",
    "  indented",
    "\ttabbed",
    "```",
    "~~~",
    "````",
    "``` bash",
    "-->",
    "</div>",
    "<!--",
    "> quoted",
    "- item",
    "    deep",
    "echo \u{0} nul",
    "echo \u{b}\u{c} vt ff",
    "echo \u{a0}\u{2028}",
    "echo é",
    "\u{feff}bom",
    "\\```",
    "[^1]: x",
    "---",
    "| a | b |",
];

const PROSE: &[&str] = &[
    "Some text.",
    "text with `code` and *emphasis*",
    "see[^1] and [link]",
    "see [^note]",
    "<!-- a comment -->",
    "<!--",
    "-->",
    "end of comment -->",
    "<div>",
    "</div>",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    "<textarea>",
    "<?php",
    "?>",
    "<!DOCTYPE html>",
    "<![CDATA[",
    "]]>",
    "<custom-tag>",
    "<search>",
    "<details>",
    "# heading",
    "===",
    "---",
    "***",
    "...",
    "key: value",
    "[link]: /url",
    "[link]:",
    "/url 'title",
    "[^1]: a note",
    "[^note]:",
    "| a | b |",
    "|---|---|",
    "- [ ] task",
    "    indented code",
    "\tindented code",
    "~~strike~~",
    "a \u{0} nul",
    "\u{feff}",
    "",
];

/// Container markers: what opens a container on the first line and what
/// continues it on the next ones.
const CONTAINERS: &[(&str, &str)] = &[
    ("", ""),
    ("", ""),
    ("", ""),
    ("", ""),
    ("", ""),
    ("", ""),
    ("> ", "> "),
    ("- ", "  "),
    ("> ", "> "),
    (">", ">"),
    ("- ", "  "),
    ("* ", "  "),
    ("1. ", "   "),
    ("10) ", "    "),
    ("> - ", ">   "),
    ("- > ", "  > "),
    ("> > ", "> > "),
    ("-\t", "\t"),
    ("- ", "\t"),
    ("[^1]: ", "    "),
    ("[^note]: ", "    "),
    ("  ", "  "),
    ("    ", "    "),
];

/// A fenced block, mostly well formed, sometimes with one of the twists
/// that decide whether and where it closes.
fn fence_block(rng: &mut Rng) -> Vec<String> {
    let indent = if rng.percent(80) {
        ""
    } else {
        rng.pick(&[" ", "  ", "   ", "    ", "\t"])
    };
    let char = if rng.percent(80) { "`" } else { "~" };
    let len = if rng.percent(80) { 3 } else { 4 + rng.below(2) };
    let fence = char.repeat(len);
    let mut lines = vec![format!("{indent}{fence}{}", rng.pick(INFO))];
    for _ in 0..rng.below(4) {
        lines.push(rng.pick(CODE).to_string());
    }
    if rng.percent(96) {
        let close_indent = if rng.percent(80) {
            ""
        } else {
            rng.pick(&[" ", "   ", "    ", "\t"])
        };
        let close_len = match rng.below(25) {
            0 => len.saturating_sub(1),
            1 => len + 1,
            _ => len,
        };
        let close_char = match (rng.percent(96), char) {
            (true, _) => char,
            (false, "`") => "~",
            _ => "`",
        };
        let trailing = if rng.percent(85) {
            ""
        } else {
            rng.pick(&[" ", "  ", "\t", " x"])
        };
        lines.push(format!(
            "{close_indent}{}{trailing}",
            close_char.repeat(close_len)
        ));
    }
    lines
}

fn block(rng: &mut Rng) -> Vec<String> {
    match rng.below(10) {
        0..=4 => fence_block(rng),
        5 | 6 => (0..1 + rng.below(3))
            .map(|_| rng.pick(PROSE).to_string())
            .collect(),
        7 => vec![String::new()],
        8 => vec![
            "---".to_string(),
            "title: x".to_string(),
            rng.pick(&["---", "...", ""]).to_string(),
        ],
        _ => vec![format!(
            "{}{}",
            rng.pick(&["    ", "\t", "  "]),
            rng.pick(&["```bash", "echo indented", "~~~sh"])
        )],
    }
}

/// A generated document: blocks in containers, lines ended by LF, CRLF or
/// CR (one of them, or a mix).
fn document(rng: &mut Rng) -> String {
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let (first, next) = loop {
            let (first, next) = CONTAINERS[rng.below(CONTAINERS.len())];
            if rng.allows(first) && rng.allows(next) {
                break (first, next);
            }
        };
        let nested = rng.percent(5);
        for (i, line) in block(rng).into_iter().enumerate() {
            let prefix = if i == 0 { first } else { next };
            let prefix = if nested && i > 0 {
                format!("{next}{next}")
            } else {
                prefix.to_string()
            };
            if i > 0 && rng.percent(5) {
                // A lazy continuation line, or one that leaves the container.
                lines.push(line);
            } else {
                lines.push(format!("{prefix}{line}"));
            }
        }
        if rng.percent(50) {
            lines.push(String::new());
        }
    }
    let endings = match rng.below(5) {
        0 | 1 => vec!["\n"],
        2 => vec!["\r\n"],
        3 => vec!["\r"],
        _ => vec!["\n", "\r\n", "\r"],
    };
    let mut text = String::new();
    if rng.percent(5) {
        text.push('\u{feff}');
    }
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        text.push_str(line);
        if i < last || rng.percent(80) {
            text.push_str(endings[rng.below(endings.len())]);
        }
    }
    text
}

#[test]
fn generated_hostile_layouts_have_the_cells_cmark_gfm_shows() {
    if skip_without_oracle() {
        return;
    }
    let documents: usize = std::env::var("RUNBOOK_COMMONMARK_DOCUMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000);
    let first: u64 = std::env::var("RUNBOOK_COMMONMARK_FIRST_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut tally = Tally::default();
    for seed in first..first + documents as u64 {
        let mut rng = Rng::new(seed);
        let doc = document(&mut rng);
        tally.compare(&format!("seed {seed}"), &doc, render);
    }
    tally.check("generated documents against cmark-gfm");
    // The corpus is hostile: many of its documents leave a fence open or
    // use a layout renderers disagree on, and are refused. The rest must
    // be enough to compare.
    assert!(
        tally.cells > documents / 5,
        "too few cells: {}",
        tally.cells
    );
    assert!(
        tally.refused * 10 < documents * 6,
        "too many refused: {}",
        tally.refused
    );
}

#[test]
fn a_document_with_lone_cr_line_ends_runs_its_cells_and_keeps_its_line_ends() {
    let test = Test::new();
    let doc = "# T\r\r```bash\recho one\rprintf 'two\\n'\r```\r\r- step\r\r  ```sh\r  echo three\r  ```\r\rafter\r";
    test.write("doc.md", doc);
    test.run(&["run", "doc.md"]).code(0);
    let written = "# T\r\r```bash\recho one\rprintf 'two\\n'\r```\r```output\rone\rtwo\r```\r\r- step\r\r  ```sh\r  echo three\r  ```\r  ```output\r  three\r  ```\r\rafter\r";
    assert_eq!(test.read("doc.md"), written);
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), written, "a second run changes nothing");
}

#[test]
fn layouts_renderers_read_differently_are_refused_before_anything_runs() {
    let test = Test::new();
    for (doc, line) in [
        (
            "text[^1]\n\n[^1]: note\n\n    ```bash\n    touch ran\n    ```\n",
            5,
        ),
        ("```b&#97;sh\ntouch ran\n```\n", 1),
        ("- step\n\n\t```bash\n\ttouch ran\n\t```\n", 3),
        ("```bash\ntouch ran\n```\t\n\n```bash\ntouch ran\n```\n", 1),
        ("> text\n</pre>\n> ```bash\n> touch ran\n> ```\n", 3),
        ("<textarea>\n\n```bash\ntouch ran\n```\n", 1),
    ] {
        test.write("doc.md", doc);
        let run = test.run(&["run", "doc.md"]).code(2);
        assert!(
            run.stderr.contains(&format!("doc.md:{line}:")),
            "{doc:?}: {}",
            run.stderr
        );
        assert!(!test.path("ran").exists(), "{doc:?} ran a cell");
    }
}
