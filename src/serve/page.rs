//! The page's model of a document: prose rendered to sanitised HTML, each
//! cell with its code, last result, stale flag, recorded output and the
//! problems found at it. Built from the file as it is on disk, the state
//! of the last runs and what the live kernels did; it holds no secret.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::analysis::undefined_variables;
use crate::commands::run::secrets_without_value;
use crate::diagnostic::{Diagnostic, Severity};
use crate::document::{CellKind, Runbook};
use crate::loader::Loaded;
use crate::preflight::preflight;
use crate::state::State;
use crate::status::rows_with;
use crate::vars::Vars;

use super::live::{Live, LiveCell};

#[derive(Debug, Serialize)]
pub struct Model {
    pub file: String,
    /// Prose and cells in document order.
    pub pieces: Vec<Piece>,
    pub cells: Vec<CellView>,
    /// Problems that belong to no cell (front matter, a file that does
    /// not parse), and what stopped the last request to run.
    pub problems: Vec<Problem>,
    #[serde(flatten)]
    pub live: Live,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Piece {
    Prose { html: String },
    Cell { index: usize },
}

#[derive(Debug, Serialize)]
pub struct CellView {
    pub index: usize,
    pub number: usize,
    pub name: String,
    pub id: Option<String>,
    pub lang: String,
    /// The info string after the language (`{id=x capture=Y}`).
    pub attributes: String,
    /// For a file cell, the path it writes.
    pub file: Option<String>,
    pub body: String,
    pub line: usize,
    /// The last result: from this server's runs, else the state file.
    pub status: Option<String>,
    pub exit: Option<i32>,
    pub duration_ms: Option<u64>,
    /// Changed since it last ran (`None`: cannot tell).
    pub stale: Option<bool>,
    /// The output block recorded in the document.
    pub output: Option<OutputView>,
    /// What this server's last run of the cell printed and said.
    pub run: Option<LiveCell>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct OutputView {
    pub text: String,
    pub exit: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub line: usize,
    pub error: bool,
    pub message: String,
}

impl Problem {
    pub fn from(diagnostic: &Diagnostic, source: &str) -> Problem {
        let line = source[..diagnostic.span.start.min(source.len())]
            .matches('\n')
            .count()
            + 1;
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str(&format!(" (help: {help})"));
        }
        Problem {
            line,
            error: diagnostic.severity == Severity::Error,
            message,
        }
    }
}

/// What else a model needs besides the document.
pub struct Context<'a> {
    pub state: &'a State,
    pub vars: &'a Vars,
    pub intercepted: &'a [String],
}

/// The model of a document that parsed.
pub fn model(loaded: &Loaded, context: &Context, live: Live) -> Model {
    let runbook = &loaded.runbook;
    let all: Vec<usize> = (0..runbook.cells.len()).collect();
    let defined: BTreeSet<String> = context.vars.names().into_iter().collect();
    let mut cell_problems: Vec<Vec<Problem>> = vec![Vec::new(); runbook.cells.len()];
    let mut general = Vec::new();
    // Everything at once, where a run stops at the first kind it finds.
    // A missing secret is left to the password field that asks for it.
    let mut diagnostics = undefined_variables(&loaded.source, runbook, &all, &defined);
    // The page asks `confirm` cells; no terminal is needed.
    diagnostics.extend(preflight(loaded, &all, true, context.intercepted));
    for diagnostic in diagnostics {
        let problem = Problem::from(&diagnostic, &loaded.source);
        match cell_at(runbook, diagnostic.span.start) {
            Some(i) => cell_problems[i].push(problem),
            None => general.push(problem),
        }
    }
    let rows = rows_with(loaded, context.state, context.vars);
    let mut live = live;
    live.missing_secrets = secrets_without_value(runbook, &defined);
    let cells = runbook
        .cells
        .iter()
        .zip(rows)
        .zip(cell_problems)
        .map(|((cell, row), problems)| {
            let name = cell.name();
            // A cell renumbered or edited since is not the one that ran; only
            // what was said of the run (its output was not recorded) stays.
            let run = live.cells.get(&name).and_then(|r| {
                if r.body == cell.body {
                    Some(r.clone())
                } else {
                    r.message.as_ref().map(|message| LiveCell {
                        message: Some(message.clone()),
                        ..LiveCell::default()
                    })
                }
            });
            let info = &loaded.source[cell.info_span.clone()];
            CellView {
                index: cell.number - 1,
                number: cell.number,
                id: cell.id.clone(),
                lang: cell.lang.clone(),
                attributes: info
                    .trim_start()
                    .strip_prefix(cell.lang.as_str())
                    .unwrap_or(info)
                    .trim()
                    .to_string(),
                file: match &cell.kind {
                    CellKind::File { path, .. } => Some(path.clone()),
                    CellKind::Code { .. } => None,
                },
                body: cell.body.clone(),
                line: cell.line,
                status: run
                    .as_ref()
                    .and_then(|r| r.status.clone())
                    .or_else(|| row.last.map(|s| s.name().to_string())),
                exit: run.as_ref().and_then(|r| r.exit).or(row.exit),
                duration_ms: run.as_ref().and_then(|r| r.duration_ms).or(row.duration_ms),
                stale: row.stale,
                output: cell.output.as_ref().map(|o| OutputView {
                    text: o.text.clone(),
                    exit: o.exit,
                }),
                run,
                problems,
                name,
            }
        })
        .collect();
    Model {
        file: loaded.display(),
        pieces: pieces(&loaded.source, runbook),
        cells,
        problems: general,
        live,
    }
}

/// The model of a document that does not parse: its problems alone.
pub fn broken(file: String, source: &str, diagnostics: &[Diagnostic], live: Live) -> Model {
    Model {
        file,
        pieces: Vec::new(),
        cells: Vec::new(),
        problems: diagnostics
            .iter()
            .map(|d| Problem::from(d, source))
            .collect(),
        live,
    }
}

/// The cell whose block holds byte `at`.
fn cell_at(runbook: &Runbook, at: usize) -> Option<usize> {
    runbook
        .cells
        .iter()
        .position(|cell| (cell.span.start..=cell.block_end()).contains(&at))
}

/// Prose between cells, as HTML, and the cells in order. A cell's piece
/// runs from its opening fence to the end of its output block.
fn pieces(source: &str, runbook: &Runbook) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut at = runbook.front_matter.as_ref().map_or(0, |f| f.end);
    for (index, cell) in runbook.cells.iter().enumerate() {
        let start = cell.block_start(source);
        if start > at {
            push_prose(&mut pieces, &source[at..start]);
        }
        pieces.push(Piece::Cell { index });
        at = cell.block_end().max(start);
    }
    if at < source.len() {
        push_prose(&mut pieces, &source[at..]);
    }
    pieces
}

fn push_prose(pieces: &mut Vec<Piece>, markdown: &str) {
    if markdown.trim().is_empty() {
        return;
    }
    pieces.push(Piece::Prose {
        html: prose_html(markdown),
    });
}

/// Markdown to HTML, sanitised: a runbook from the internet may hold raw
/// HTML, and this page can run commands.
pub fn prose_html(markdown: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut unsafe_html = String::new();
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .url_relative(ammonia::UrlRelative::Custom(Box::new(beside_runbook)))
        .clean(&unsafe_html)
        .to_string()
}

/// A relative link or image (`lab-output-1.png`, `/api/stop`) points into
/// the server's `/files/` route, which serves images beside the runbook
/// and nothing else; anchors stay.
fn beside_runbook(url: &str) -> Option<std::borrow::Cow<'_, str>> {
    if url.starts_with('#') {
        return Some(url.into());
    }
    Some(format!("/files/{}", url.trim_start_matches('/')).into())
}

/// The content type of an image the page may show from beside the
/// runbook; `None` for anything else (SVG included: it can hold script).
pub fn image_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_loses_its_scripts() {
        let html = prose_html(
            "# Lab\n\n<script>fetch('/api/run',{method:'POST'})</script>\n\n<img src=x onerror=\"alert(1)\">\n\n[a](javascript:alert(1)) <a href=\"#\" onclick=\"x()\">b</a>\n\n<details><summary>more</summary>\n\n*kept*\n\n</details>\n",
        );
        assert!(html.contains("<h1>Lab</h1>"), "{html}");
        assert!(
            html.contains("<details>") && html.contains("<em>kept</em>"),
            "{html}"
        );
        for bad in ["<script", "onerror", "onclick", "javascript:", "fetch("] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
    }

    #[test]
    fn pieces_alternate_prose_and_cells() {
        let source = "---\nrunbook: {}\n---\n# Title\n\n```bash\necho hi\n```\n\n```output\nhi\n```\n\nBetween.\n\n```sh {id=b}\ntrue\n```\nEnd.\n";
        let runbook = crate::parser::parse(source).unwrap();
        let kinds: Vec<String> = pieces(source, &runbook)
            .iter()
            .map(|p| match p {
                Piece::Prose { html } => html.trim().to_string(),
                Piece::Cell { index } => format!("cell {index}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "<h1>Title</h1>",
                "cell 0",
                "<p>Between.</p>",
                "cell 1",
                "<p>End.</p>"
            ]
        );
    }
}
