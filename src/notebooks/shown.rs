//! What a notebook shows, as runbook text, and whether the bytes a
//! notebook keeps for a lossless round trip run exactly that.
//!
//! A reader of a notebook sees the source of its code cells and the text
//! of its markdown cells; runbook's export also keeps each piece's exact
//! bytes, info string and front matter in metadata no viewer shows. The
//! rule here: what runs is the visible code cells, in order. Markdown
//! becomes prose that runs nothing and leaves nothing open; a language is
//! a plain word; kept bytes count only where they run exactly what is
//! shown, with options that do not change where, how long or with what
//! environment the code runs.

use crate::document::{CellKind, Interpreter};
use crate::pieces::{self, CodePiece, Edited, OutputText};
use crate::writer::fence_for;

/// What runs: each code cell's interpreter and code, in order.
pub type Runs = Vec<(Option<Interpreter>, String)>;

/// Whether a kernel or language name is a plain word that can stand
/// alone as a fence's info string (`bash`, `c#`, `.net-pwsh`, `f#`).
pub fn is_word(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '#'))
}

/// Text with `\r\n` and lone `\r` line ends read as line breaks, as
/// notebook editors show them.
pub fn line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// A markdown cell as prose that holds no cell and ends where it ends.
/// Prose that opens the document (`first`) and starts with `---` is a
/// text block too: with prose after it, it could close as front matter.
pub fn prose_block(markdown: &str, first: bool) -> String {
    let prose = as_prose(markdown);
    let opens_front_matter = first && prose.trim_start_matches('\u{feff}').starts_with("---");
    if stands_alone(&prose) && !opens_front_matter {
        prose
    } else {
        as_text_block(markdown)
    }
}

/// Text shown as a text block that runs nothing, whatever it holds.
fn as_text_block(text: &str) -> String {
    let text = line_breaks(text);
    let fence = fence_for(&text);
    format!("{fence}text\n{text}\n{fence}")
}

/// Whether prose, put first in a document, holds no cell, is not front
/// matter, and leaves a code block after it a code block of its own.
fn stands_alone(prose: &str) -> bool {
    let probe = format!("{prose}\n\n```bash\nprobe\n```\n");
    crate::parser::parse(&probe).is_ok_and(|runbook| {
        runbook.front_matter.is_none()
            && runbook.cells.len() == 1
            && runbook.cells[0].body == "probe\n"
            && runbook.cells[0].options == crate::document::CellOptions::default()
    })
}

/// The interpreter a code block with this language word runs with.
pub fn interpreter_of(lang: &str) -> Option<Interpreter> {
    if !is_word(lang) {
        return None;
    }
    let probe = format!("```{lang}\nprobe\n```\n");
    crate::parser::parse(&probe)
        .ok()
        .and_then(|r| r.cells.first().and_then(|c| c.interpreter()))
}

/// Why `markdown` does not run exactly `expected`, if it does not: the
/// cells that run are the visible code cells, in order, none with a
/// working directory outside the folder, and nothing else runs. A cell
/// is rendered as a template only under front matter the notebook shows
/// (`head_allowed`), which says the document is a runbook.
pub fn differs(markdown: &str, expected: &Runs, head_allowed: bool) -> Option<String> {
    let runbook = match crate::parser::parse(markdown) {
        Ok(runbook) => runbook,
        Err(diagnostics) => {
            return Some(format!(
                "it does not read as a runbook: {}",
                diagnostics
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default()
            ))
        }
    };
    if runbook.front_matter.is_some() && !head_allowed {
        return Some("it would add front matter".into());
    }
    let mut runs = Vec::new();
    for cell in &runbook.cells {
        let Some(interpreter) = cell.interpreter() else {
            continue;
        };
        if cell.options.skip {
            // Never runs: a visible code cell it stands for would be missing below.
            continue;
        }
        if !hidden_options_harmless(&cell.options) {
            return Some(format!(
                "cell {} has options that change where, how long or with what environment code runs",
                cell.name()
            ));
        }
        if !head_allowed && crate::run::template::has_template(cell.template_text()) {
            return Some(format!(
                "cell {} would be rendered as a template, which the notebook does not say",
                cell.name()
            ));
        }
        let code = cell.body.strip_suffix('\n').unwrap_or(&cell.body);
        runs.push((Some(interpreter), code.to_string()));
    }
    if runs.len() != expected.len() {
        return Some(format!(
            "it runs {} code cells where the notebook shows {}",
            runs.len(),
            expected.len()
        ));
    }
    for (n, (run, shown)) in runs.iter().zip(expected).enumerate() {
        if run.1 != shown.1 || !same_shell(run.0, shown.0) {
            return Some(format!(
                "its code cell {} is not the one the notebook shows",
                n + 1
            ));
        }
    }
    None
}

/// Whether two interpreters run a notebook's shell cell alike (a `shell`
/// cell runs with the front matter's shell; a notebook calls it bash).
fn same_shell(a: Option<Interpreter>, b: Option<Interpreter>) -> bool {
    let shell = |i: Option<Interpreter>| {
        matches!(
            i,
            Some(Interpreter::Bash) | Some(Interpreter::Sh) | Some(Interpreter::Zsh)
        )
    };
    a == b || (shell(a) && shell(b))
}

/// Whether a relative path stays in the runbook's folder.
fn inside(path: &str) -> bool {
    let path = std::path::Path::new(path);
    path.is_relative()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// A notebook's markdown, with every fenced block that would run (or be
/// written as a file) turned into a plain example: its info string becomes
/// the Pandoc class form `{.bash}`, which shows as code but never runs.
fn as_prose(markdown: &str) -> String {
    let Ok(runbook) = crate::parser::parse(markdown) else {
        return markdown.to_string();
    };
    let mut text = markdown.to_string();
    for cell in runbook.cells.iter().rev() {
        let info = &markdown[cell.info_span.clone()];
        let word = info
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == '{')
            .next()
            .unwrap_or("");
        let class = if is_word(word) { word } else { "text" };
        text.replace_range(cell.info_span.clone(), &format!("{{.{class}}}"));
    }
    text
}

/// The head (BOM and front matter) a notebook keeps, when the notebook
/// shows it: a head that is not only front matter is left out, and so is
/// front matter with `runbook:` settings unless the notebook's first cell
/// is a markdown cell showing it (as runbook's export writes). Returns the
/// head to use, and whether the first cell was that cell.
pub fn trusted_head(
    head: &str,
    first_markdown: Option<&str>,
    notes: &mut Vec<String>,
) -> (String, bool) {
    if head.is_empty() {
        return (String::new(), false);
    }
    if !is_head(head) {
        notes.push(
            "the document head it keeps in its metadata is not only front matter; it is left out"
                .into(),
        );
        return (String::new(), false);
    }
    match shown_front_matter(head) {
        None => (head.to_string(), false),
        Some(cell)
            if first_markdown.map(|t| t.trim_matches(['\n', '\r'])) == Some(cell.as_str()) =>
        {
            (head.to_string(), true)
        }
        Some(_) => {
            notes.push("the runbook front matter it keeps in its metadata is not shown in the notebook; it is left out".into());
            (String::new(), false)
        }
    }
}

/// Whether a kept head is only an optional BOM and front matter.
fn is_head(head: &str) -> bool {
    let body = head.strip_prefix('\u{feff}').unwrap_or(head);
    if body.is_empty() {
        return true;
    }
    let Ok(runbook) = crate::parser::parse(head) else {
        return false;
    };
    match (&runbook.front_matter, runbook.cells.is_empty()) {
        (Some(front), true) => {
            let start = head.len() - body.len();
            front.start == start && matches!(&head[front.end..], "" | "\n" | "\r\n")
        }
        _ => false,
    }
}

/// The markdown cell that shows a head's front matter in a notebook,
/// when it holds `runbook:` settings (front matter for other tools, such
/// as a site's `title:`, changes nothing runbook does).
pub fn shown_front_matter(head: &str) -> Option<String> {
    let runbook = crate::parser::parse(head).ok()?;
    let front = runbook.front_matter.clone()?;
    if runbook.settings == crate::frontmatter::Settings::default() {
        return None;
    }
    let text = &head[front];
    let fence = fence_for(text);
    Some(format!("{fence}yaml\n{text}\n{fence}"))
}

/// A prose piece, with its kept bytes only when they are what the
/// notebook shows and hold no code cell, nothing leaving the folder, and
/// nothing that reaches into what follows.
pub fn kept_prose(raw: Option<String>, shown: &str, cell: &str, notes: &mut Vec<String>) -> Edited {
    let shown = line_breaks(shown);
    if let Some(raw) = raw {
        if line_breaks(pieces::prose_text(&raw)) == shown.trim_matches('\n') {
            if prose_ok(&raw) {
                // The same lines as shown: the kept bytes, line ends and all.
                return Edited::Prose {
                    text: pieces::prose_text(&raw).to_string(),
                    kept: Some(raw),
                };
            }
            notes.push(format!(
                "{cell}: the markdown its runbook metadata keeps would run or write what the notebook does not show; written from the notebook"
            ));
        }
    }
    Edited::Prose {
        kept: None,
        text: prose_block(shown.trim_matches('\n'), false),
    }
}

/// Whether kept prose is safe to restore byte for byte.
fn prose_ok(raw: &str) -> bool {
    let Ok(runbook) = crate::parser::parse(raw) else {
        return false;
    };
    runbook.front_matter.is_none()
        && runbook.cells.iter().all(|c| match &c.kind {
            CellKind::File { path, mode } => plain_file(path, *mode),
            CellKind::Code { .. } => false,
        })
        && closes(raw, runbook.cells.len())
}

/// Whether a file cell kept in prose writes an ordinary file: inside the
/// folder, with no hidden part on its way (`.git/hooks/...`, `.envrc`)
/// and no execute permission, so that what a reader of the rendered
/// markdown takes for an example never becomes something that runs.
fn plain_file(path: &str, mode: Option<u32>) -> bool {
    inside(path)
        && std::path::Path::new(path)
            .components()
            .all(|c| !c.as_os_str().to_string_lossy().starts_with('.'))
        && mode.is_none_or(|m| m & 0o111 == 0)
}

/// Whether a code block after `text` is still a code block of its own:
/// `text` (holding `cells` cells) leaves nothing open.
fn closes(text: &str, cells: usize) -> bool {
    let probe = format!("{text}\n\n```bash\nprobe\n```\n");
    crate::parser::parse(&probe).is_ok_and(|runbook| {
        runbook.front_matter.is_none()
            && runbook.cells.len() == cells + 1
            && runbook.cells[cells].body == "probe\n"
            && runbook.cells[cells].options == crate::document::CellOptions::default()
    })
}

/// A code cell, with the bytes and info string its runbook metadata
/// keeps only when they run exactly the code the notebook shows, with
/// the kernel it shows, never skipped and never outside the folder.
pub fn kept_code(
    piece: Option<CodePiece>,
    lang: &str,
    code: String,
    output: Option<OutputText>,
    cell: &str,
    notes: &mut Vec<String>,
) -> Edited {
    let code = line_breaks(&code);
    let code = code.strip_suffix('\n').unwrap_or(&code).to_string();
    let plain = if is_word(lang) { lang } else { "text" };
    let Some(piece) = piece else {
        return Edited::Code {
            kept: None,
            info: plain.to_string(),
            code,
            output,
        };
    };
    if piece.code == code {
        if piece_ok(&piece, lang) && info_ok(&piece.info, lang) {
            return Edited::Code {
                info: piece.info.clone(),
                kept: Some(piece),
                code,
                output,
            };
        }
        notes.push(format!(
            "{cell}: the runbook metadata it keeps does not run exactly what the notebook shows; it is left out"
        ));
        return Edited::Code {
            kept: None,
            info: plain.to_string(),
            code,
            output,
        };
    }
    // Edited in the notebook: written anew, with the kept attributes when
    // they only say how the code shown runs.
    let info = match info_ok(&piece.info, lang) {
        true => piece.info.clone(),
        false => {
            notes.push(format!(
                "{cell}: the attributes its runbook metadata keeps ({}) would change what runs; they are left out",
                piece.info
            ));
            plain.to_string()
        }
    };
    Edited::Code {
        kept: None,
        info,
        code,
        output,
    }
}

/// Whether a code cell would run as the notebook shows it: not skipped,
/// not outside the folder, with the notebook's kernel, retried for an
/// hour at most, capturing nothing into a variable that changes how
/// later cells' programs run (`PATH`, `LD_PRELOAD`, `BASH_ENV`, or any
/// variable already in the environment).
fn runs_as_shown(cell: &crate::document::Cell, lang: &str) -> bool {
    cell.interpreter().is_some()
        && same_shell(cell.interpreter(), interpreter_of(lang))
        && !cell.options.skip
        && hidden_options_harmless(&cell.options)
}

/// Whether options a reader of a notebook does not see leave what runs,
/// where, and for how long, as the reader expects.
fn hidden_options_harmless(options: &crate::document::CellOptions) -> bool {
    let retrying = options.retry_delay.saturating_mul(options.retries);
    options.cwd.as_deref().is_none_or(inside)
        && retrying <= std::time::Duration::from_secs(3600)
        && options
            .capture
            .as_ref()
            .is_none_or(|capture| !steers_programs(&capture.name))
}

/// Whether a variable, exported to later cells, changes how their
/// programs run: one a capture may never set (`crate::kernel::reserved`),
/// one the environment already has, or one that points tools at other
/// settings or credentials.
fn steers_programs(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["BASH_", "AZURE_", "SSH_"];
    crate::kernel::reserved(name).is_some()
        || name == "GLOBIGNORE"
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || std::env::var_os(name).is_some()
}

/// Whether a kept code piece's bytes run exactly its code, as shown.
fn piece_ok(piece: &CodePiece, lang: &str) -> bool {
    let Ok(runbook) = crate::parser::parse(&piece.raw) else {
        return false;
    };
    runbook.front_matter.is_none()
        && runbook.cells.len() == 1
        && runs_as_shown(&runbook.cells[0], lang)
        && runbook.cells[0].body == format!("{}\n", piece.code)
        && closes(&piece.raw, 1)
}

/// Whether a kept info string only says how the code shown runs.
fn info_ok(info: &str, lang: &str) -> bool {
    if info.contains(['`', '\n', '\r']) {
        return false;
    }
    let probe = format!("```{info}\nprobe\n```\n");
    crate::parser::parse(&probe).is_ok_and(|runbook| {
        runbook.front_matter.is_none()
            && runbook.cells.len() == 1
            && runs_as_shown(&runbook.cells[0], lang)
            && runbook.cells[0].body == "probe\n"
    })
}

/// A skipped cell, which a notebook shows as a markdown cell holding its
/// block: its bytes kept when they are what the notebook shows and a
/// skipped cell, else the markdown as prose.
pub fn kept_skipped(piece: CodePiece, shown: &str, cell: &str, notes: &mut Vec<String>) -> Edited {
    let skipped = crate::parser::parse(&piece.raw).is_ok_and(|r| {
        r.front_matter.is_none()
            && r.cells.len() == 1
            && r.cells[0].options.skip
            && r.cells[0].body == format!("{}\n", piece.code)
    }) && closes(&piece.raw, 1);
    let shown = line_breaks(shown);
    if line_breaks(pieces::prose_text(&piece.raw)) == shown.trim_matches('\n') {
        if skipped {
            return Edited::Code {
                info: piece.info.clone(),
                code: piece.code.clone(),
                output: piece.output.clone(),
                kept: Some(piece),
            };
        }
        notes.push(format!(
            "{cell}: the cell its runbook metadata keeps would run what the notebook shows as markdown; written from the notebook"
        ));
    }
    Edited::Prose {
        kept: None,
        text: prose_block(shown.trim_matches('\n'), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_that_would_reach_into_the_next_cell_is_a_text_block() {
        assert_eq!(prose_block("# Title\n\nText.", false), "# Title\n\nText.");
        assert_eq!(
            prose_block("```bash\nls\n```", false),
            "```{.bash}\nls\n```"
        );
        assert_eq!(prose_block("```\nopen", false), "````text\n```\nopen\n````");
        assert_eq!(prose_block("<!--", false), "```text\n<!--\n```");
        assert_eq!(
            prose_block("---\nrunbook:\n  shell: x\n---", false),
            "```text\n---\nrunbook:\n  shell: x\n---\n```"
        );
        // First in a document, `---` could close as front matter with the
        // prose after it.
        assert_eq!(prose_block("---\n#!", true), "```text\n---\n#!\n```");
        assert_eq!(prose_block("---\n#!", false), "---\n#!");
    }

    #[test]
    fn a_kept_head_counts_only_when_shown() {
        let mut notes = Vec::new();
        let head = "---\nrunbook:\n  shell: zsh\n---\n";
        let shown = shown_front_matter(head).unwrap();
        assert_eq!(
            trusted_head(head, Some(&shown), &mut notes),
            (head.to_string(), true)
        );
        assert_eq!(
            trusted_head(head, Some("other"), &mut notes),
            (String::new(), false)
        );
        let title = "---\ntitle: x\n---\n";
        assert_eq!(
            trusted_head(title, None, &mut notes),
            (title.to_string(), false)
        );
        let code = "---\ntitle: x\n---\n```bash\nls\n```\n";
        assert_eq!(trusted_head(code, None, &mut notes), (String::new(), false));
        assert_eq!(notes.len(), 2, "{notes:?}");
    }
}
