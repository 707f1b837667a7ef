//! Notebooks in and out: Jupyter (`.ipynb`) and Polyglot Notebooks
//! (`.dib`) to a runbook, outputs kept; a runbook to `.ipynb`.

use serde_json::{json, Value};

use crate::document::{Interpreter, Runbook};
use crate::notebooks::shown::{
    differs, interpreter_of, is_word, kept_code, kept_prose, kept_skipped, line_breaks,
    prose_block, shown_front_matter, trusted_head, Runs,
};
use crate::pieces::{self, CodePiece, Edited, OutputText, Piece};
use crate::writer::{fence_for, render, Output};

/// A cell of an imported notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Markdown(String),
    Code {
        lang: String,
        source: String,
        output: Option<Output>,
        /// Images the cell displayed: (file extension, bytes).
        images: Vec<(String, Vec<u8>)>,
    },
}

/// The language word a notebook kernel name becomes.
fn language(kernel: &str) -> String {
    match kernel.to_ascii_lowercase().as_str() {
        "pwsh" | "powershell" | ".net-pwsh" => "pwsh".into(),
        "python" | "python3" | "ipython" => "python".into(),
        "bash" | "shell" | "sh" => "bash".into(),
        "csharp" | "c#" | ".net-csharp" => "csharp".into(),
        "fsharp" | "f#" | ".net-fsharp" => "fsharp".into(),
        other => other.trim_start_matches(".net-").to_string(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// Reads a Jupyter notebook (nbformat 4), including Polyglot Notebooks
/// saved as `.ipynb` (per-cell kernels in the cell metadata or a `#!kernel`
/// first line).
pub fn from_ipynb(json_text: &str) -> Result<Vec<Imported>, String> {
    let notebook: Value =
        serde_json::from_str(json_text).map_err(|e| format!("not a Jupyter notebook: {e}"))?;
    Ok(visible_cells(&notebook, &mut Vec::new())?
        .into_iter()
        .map(|(_, cell)| cell)
        .collect())
}

/// The cells a reader of the notebook sees, each with its 1-based
/// position: markdown and raw cells as prose, code cells with the
/// language their kernel names (a name that is not a plain word becomes
/// `text`, which never runs, and is noted) and their source as Jupyter
/// shows it (`\r` line ends are line breaks there too).
fn visible_cells(
    notebook: &Value,
    notes: &mut Vec<String>,
) -> Result<Vec<(usize, Imported)>, String> {
    let default_kernel = notebook["metadata"]["kernelspec"]["language"]
        .as_str()
        .or_else(|| notebook["metadata"]["language_info"]["name"].as_str())
        .or_else(|| notebook["metadata"]["kernelspec"]["name"].as_str())
        .unwrap_or("bash");
    let cells = notebook["cells"]
        .as_array()
        .ok_or("not a Jupyter notebook: no `cells` list")?;
    let mut imported = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let number = index + 1;
        let mut source = line_breaks(&text(&cell["source"]));
        match cell["cell_type"].as_str() {
            Some("markdown") | Some("raw") => {
                imported.push((number, Imported::Markdown(source)));
            }
            Some("code") => {
                let mut kernel = cell_kernel(cell, default_kernel).to_string();
                if let Some(rest) = source.strip_prefix("#!") {
                    let (magic, body) = rest.split_once('\n').unwrap_or((rest, ""));
                    if is_word(magic.trim_end()) {
                        kernel = magic.trim_end().to_string();
                        source = body.to_string();
                    }
                }
                let lang = match is_word(kernel.trim()) {
                    true => language(kernel.trim()),
                    false => {
                        notes.push(format!(
                            "cell {number}: its kernel {kernel:?} is not a language name; the cell is kept as text and does not run"
                        ));
                        "text".to_string()
                    }
                };
                if interpreter_of(&lang).is_some() && crate::template::has_template(&source) {
                    notes.push(format!(
                        "cell {number}: its code holds `{{{{` or `{{%`; it runs as written, since the runbook says `templates: false`"
                    ));
                }
                imported.push((
                    number,
                    Imported::Code {
                        lang,
                        source,
                        output: outputs(&cell["outputs"]),
                        images: images(&cell["outputs"]),
                    },
                ));
            }
            _ => {}
        }
    }
    Ok(imported)
}

/// The images a cell displayed, decoded: (file extension, bytes).
fn images(outputs: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let mut found = Vec::new();
    for output in outputs.as_array().into_iter().flatten() {
        let data = &output["data"];
        for (mime, ext) in [
            ("image/png", "png"),
            ("image/jpeg", "jpg"),
            ("image/gif", "gif"),
        ] {
            let encoded: String = text(&data[mime]).split_whitespace().collect();
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes())
            {
                if !bytes.is_empty() {
                    found.push((ext.to_string(), bytes));
                }
            }
        }
        let svg = text(&data["image/svg+xml"]);
        if !svg.is_empty() {
            found.push(("svg".to_string(), svg.into_bytes()));
        }
    }
    found
}

/// The text a cell printed, as an output block.
fn outputs(outputs: &Value) -> Option<Output> {
    let mut text = String::new();
    let mut exit = 0;
    for output in outputs.as_array()? {
        match output["output_type"].as_str() {
            Some("stream") => text.push_str(&self::text(&output["text"])),
            Some("execute_result") | Some("display_data") => {
                let data = &output["data"];
                let plain = self::text(&data["text/plain"]);
                text.push_str(&plain);
                if !plain.is_empty() && !plain.ends_with('\n') {
                    text.push('\n');
                }
                // Rich output with no text form is noted, never dropped
                // silently (images are written beside the runbook).
                if plain.is_empty() && !data["text/html"].is_null() {
                    text.push_str("[runbook: an HTML output with no text form was left out]\n");
                }
            }
            Some("error") => {
                exit = 1;
                let traceback: Vec<String> = output["traceback"]
                    .as_array()
                    .map(|lines| {
                        lines
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let traceback = if traceback.is_empty() {
                    format!(
                        "{}: {}",
                        output["ename"].as_str().unwrap_or("Error"),
                        output["evalue"].as_str().unwrap_or("")
                    )
                } else {
                    traceback.join("\n")
                };
                text.push_str(&crate::output::clean(&traceback));
                text.push('\n');
            }
            _ => {}
        }
    }
    Output::block(
        crate::output::clean(text.strip_suffix('\n').unwrap_or(&text)),
        exit,
    )
}

/// Kernel names (and aliases) Polyglot Notebooks knows without being told,
/// with `markdown`/`md`; a `.dib`'s `#!meta` header adds its own.
const DIB_KERNELS: [&str; 18] = [
    "markdown",
    "md",
    "csharp",
    "c#",
    "fsharp",
    "f#",
    "pwsh",
    "powershell",
    "javascript",
    "js",
    "html",
    "sql",
    "kql",
    "mermaid",
    "http",
    "value",
    "python",
    "bash",
];

/// A cell of a `.dib` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DibCell {
    pub kernel: String,
    pub text: String,
    /// 1-based line of the text's first line.
    pub line: usize,
}

/// Splits a `.dib` file as Polyglot Notebooks does: an optional `#!meta`
/// JSON header, then cells that start only at a line that is exactly `#!`
/// and a kernel name or alias it knows. Any other `#!` line (a magic
/// command such as `#!time`) stays in its cell.
pub fn parse_dib(text: &str) -> (Option<Value>, Vec<DibCell>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = 0;
    while at < lines.len() && lines[at].trim().is_empty() {
        at += 1;
    }
    let mut meta = None;
    if lines.get(at).map(|l| l.trim_end()) == Some("#!meta") {
        let mut json = String::new();
        at += 1;
        while at < lines.len() && !lines[at].starts_with("#!") {
            json.push_str(lines[at]);
            json.push('\n');
            at += 1;
        }
        meta = serde_json::from_str::<Value>(json.trim()).ok();
    }
    // Each name or alias, with the kernel it stands for.
    let mut known: Vec<(String, String)> = DIB_KERNELS
        .iter()
        .map(|k| (k.to_string(), k.to_string()))
        .collect();
    if let Some(items) = meta
        .as_ref()
        .and_then(|m| m["kernelInfo"]["items"].as_array())
    {
        for item in items {
            let Some(name) = item["name"].as_str() else {
                continue;
            };
            known.push((name.to_string(), name.to_string()));
            for alias in item["aliases"].as_array().into_iter().flatten() {
                known.extend(alias.as_str().map(|a| (a.to_string(), name.to_string())));
            }
        }
    }
    let mut cells: Vec<DibCell> = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(at) {
        let kernel = line
            .trim_end()
            .strip_prefix("#!")
            .and_then(|n| known.iter().find(|(k, _)| k == n))
            .map(|(_, kernel)| kernel.clone());
        if let Some(kernel) = kernel {
            cells.push(DibCell {
                kernel,
                text: String::new(),
                line: i + 2,
            });
            continue;
        }
        if let Some(cell) = cells.last_mut() {
            if cell.text.is_empty() && line.trim().is_empty() {
                // Blank lines before the text: its first line comes later.
                cell.line += 1;
                continue;
            }
            cell.text.push_str(line);
            cell.text.push('\n');
        }
    }
    for cell in &mut cells {
        cell.text = cell.text.trim_end_matches('\n').to_string();
    }
    (meta, cells)
}

/// What a `.dib` import adds to the front matter, and says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DibImport {
    pub cells: Vec<Imported>,
    /// `#!set --name X --value @input:"..."`: (X, prompt).
    pub params: Vec<(String, String)>,
    /// `#!set --name X --value @password:"..."`.
    pub secrets: Vec<String>,
    /// Each magic with no runbook meaning, once: (line, magic).
    pub reported: Vec<(usize, String)>,
    /// What else the import has to say, naming the cell's line.
    pub notes: Vec<String>,
}

/// Reads a Polyglot Notebook `.dib` written by anyone: `#!markdown` prose,
/// `#!<kernel>` code. `#!set ... @input:`/`@password:` become params and
/// secrets (in a pwsh cell the line becomes `$X = $env:X`, since runbook
/// passes values through the environment); other magics stay and are
/// reported.
pub fn from_dib(text: &str) -> DibImport {
    let (_, cells) = parse_dib(text);
    let mut import = DibImport::default();
    let mut seen = Vec::new();
    for cell in cells {
        if cell.text.trim().is_empty() {
            continue;
        }
        let lang = match is_word(&cell.kernel) {
            true => language(&cell.kernel),
            false => {
                import.notes.push(format!(
                    "line {}: its kernel {:?} is not a language name; the cell is kept as text and does not run",
                    cell.line, cell.kernel
                ));
                "text".to_string()
            }
        };
        if lang == "markdown" || lang == "md" {
            import
                .cells
                .push(Imported::Markdown(format!("{}\n", cell.text)));
            continue;
        }
        let mut source = String::new();
        for (offset, line) in cell.text.lines().enumerate() {
            let trimmed = line.trim_start();
            if let Some(magic) = trimmed.strip_prefix("#!") {
                if let Some((name, value)) = set_magic(magic) {
                    match value {
                        SetValue::Input(prompt) => import.params.push((name.clone(), prompt)),
                        SetValue::Password => import.secrets.push(name.clone()),
                    }
                    if lang == "pwsh" {
                        source.push_str(&format!("${name} = $env:{name}\n"));
                    }
                    continue;
                }
                let word = magic.split_whitespace().next().unwrap_or("").to_string();
                if !seen.contains(&word) {
                    seen.push(word);
                    import
                        .reported
                        .push((cell.line + offset, format!("#!{magic}")));
                }
            }
            source.push_str(line);
            source.push('\n');
        }
        import.cells.push(Imported::Code {
            lang,
            source,
            output: None,
            images: Vec::new(),
        });
    }
    import
}

enum SetValue {
    Input(String),
    Password,
}

/// `set --name X --value @input:"prompt"` (or `@password:`).
fn set_magic(magic: &str) -> Option<(String, SetValue)> {
    let words = shell_words::split(magic).ok()?;
    if words.first().map(String::as_str) != Some("set") {
        return None;
    }
    let value_of = |flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
            .cloned()
    };
    let name = value_of("--name")?;
    if !crate::parser::is_variable_name(&name) {
        return None;
    }
    let value = value_of("--value")?;
    if let Some(prompt) = value.strip_prefix("@input:") {
        Some((name, SetValue::Input(prompt.trim_matches('"').to_string())))
    } else if value.starts_with("@password:") {
        Some((name, SetValue::Password))
    } else {
        None
    }
}

/// A `.dib` that runbook exported, back as the runbook: the pieces its
/// header keeps, each exactly as it was unless the file changed it, and
/// only where it shows exactly what the file shows (what is not is noted
/// in `notes` and written from the file). With what the file's code cells
/// run, and whether its front matter is shown. `None` when the file did
/// not come from runbook.
fn dib_kept(text: &str, notes: &mut Vec<String>) -> Option<(String, Runs, bool)> {
    let (meta, cells) = parse_dib(text);
    let kept = &meta?[KEY];
    let head = kept["head"].as_str()?.to_string();
    let pieces: Vec<Piece> = serde_json::from_value(kept["pieces"].clone()).ok()?;
    let is_markdown = |c: &DibCell| matches!(c.kernel.as_str(), "markdown" | "md");
    let mut cells: Vec<DibCell> = cells
        .into_iter()
        .filter(|c| !c.text.trim().is_empty())
        .collect();
    let first_markdown = cells
        .first()
        .filter(|c| is_markdown(c))
        .map(|c| c.text.as_str());
    let (head, shown_first) = trusted_head(&head, first_markdown, notes);
    if shown_first {
        cells.remove(0);
    }
    let lang_of = |c: &DibCell| match is_word(&c.kernel) {
        true => language(&c.kernel),
        false => "text".to_string(),
    };
    let expected: Runs = cells
        .iter()
        .filter(|c| !is_markdown(c))
        .filter_map(|c| interpreter_of(&lang_of(c)).map(|i| (Some(i), c.text.clone())))
        .collect();
    let mut cells = cells.into_iter().peekable();
    let mut edited = Vec::new();
    let mut aligned = true;
    for piece in pieces {
        let shown = match &piece {
            Piece::Prose { raw } => pieces::prose_text(raw).to_string(),
            Piece::Code(code) if code.is_skipped() => pieces::prose_text(&code.raw).to_string(),
            Piece::Code(code) => code.code.clone(),
        };
        if shown.trim().is_empty() {
            if let Piece::Prose { raw } = piece {
                edited.push(Edited::Prose {
                    kept: Some(raw),
                    text: String::new(),
                });
            }
            continue;
        }
        let line = cells.peek().map_or(0, |c| c.line);
        match (piece, cells.peek()) {
            (Piece::Prose { raw }, Some(cell)) if aligned && is_markdown(cell) => {
                let cell = cells.next().expect("peeked");
                edited.push(kept_prose(
                    Some(raw),
                    &cell.text,
                    &format!("line {line}"),
                    notes,
                ));
            }
            (Piece::Code(code), Some(cell))
                if aligned && is_markdown(cell) && code.is_skipped() =>
            {
                let cell = cells.next().expect("peeked");
                edited.push(kept_skipped(
                    code,
                    &cell.text,
                    &format!("line {line}"),
                    notes,
                ));
            }
            (Piece::Code(code), Some(cell))
                if aligned && !is_markdown(cell) && !code.is_skipped() =>
            {
                let cell = cells.next().expect("peeked");
                // A .dib holds no outputs: the recorded one stays while the
                // code does.
                let output = (cell.text == code.code)
                    .then(|| code.output.clone())
                    .flatten();
                let lang = lang_of(&cell);
                edited.push(kept_code(
                    Some(code),
                    &lang,
                    cell.text,
                    output,
                    &format!("line {line}"),
                    notes,
                ));
            }
            _ => aligned = false,
        }
    }
    for cell in cells {
        edited.push(match is_markdown(&cell) {
            true => kept_prose(None, &cell.text, "", notes),
            false => {
                let lang = lang_of(&cell);
                kept_code(None, &lang, cell.text, None, "", notes)
            }
        });
    }
    let shown = !head.is_empty() && !head.chars().all(|c| c == '\u{feff}');
    Some((pieces::join(&head, &edited), expected, shown))
}

/// Whether a path names a notebook rather than a runbook.
pub fn is_notebook(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ipynb") | Some("dib")
    )
}

/// Reads a notebook file as runbook text, with what the import has to say.
pub fn read(path: &std::path::Path) -> crate::error::Result<Read> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::io(path, e))?;
    let dib = path.extension().is_some_and(|e| e == "dib");
    let stem = crate::paths::name_of(path);
    import(&text, dib, &stem)
        .map_err(|e| crate::error::Error::Usage(format!("{}: {e}", path.display())))
}

/// Writes an import's images into `folder`: never through a link that
/// leaves it, and never over a file that holds other bytes unless
/// `force`. Nothing is written when any of them cannot be.
pub fn write_files(
    files: &Files,
    folder: &std::path::Path,
    force: bool,
) -> crate::error::Result<()> {
    let mut writes = Vec::new();
    for (name, bytes) in files {
        let path = folder.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            if !stays_in(&path, folder) {
                return Err(crate::error::Error::Usage(format!(
                    "{} links outside {}; not written",
                    path.display(),
                    folder.display()
                )));
            }
            if std::fs::read(&path).is_ok_and(|existing| existing == *bytes) {
                continue;
            }
            if !force {
                return Err(crate::error::Error::Usage(format!(
                    "{} exists; pass --force to replace it",
                    path.display()
                )));
            }
        }
        writes.push((path, bytes));
    }
    for (path, bytes) in writes {
        crate::atomic::write(&path, bytes).map_err(|e| crate::error::Error::io(&path, e))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Whether a write to `path` (links followed) lands in `folder`.
pub fn stays_in(path: &std::path::Path, folder: &std::path::Path) -> bool {
    let Ok(target) = crate::atomic::resolve(path) else {
        return false;
    };
    let parent = crate::paths::folder_of(&target);
    match (parent.canonicalize(), folder.canonicalize()) {
        (Ok(parent), Ok(folder)) => parent.starts_with(folder),
        _ => false,
    }
}

/// A notebook read as a runbook.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub markdown: String,
    /// What the import has to say (magics it could not translate, runbook
    /// metadata left out), each naming its cell.
    pub notes: Vec<String>,
    /// Images to write beside the runbook, which links them.
    pub files: Files,
}

/// A notebook (`.ipynb`, or `.dib` when `dib`) as runbook text, with what
/// the import has to say (magics it could not translate).
///
/// What the runbook runs is exactly the visible source of the notebook's
/// code cells: the bytes runbook's export keeps in the metadata are used
/// only where they give exactly that; otherwise the import is made from
/// what the notebook shows, and says so.
pub fn import(text: &str, dib: bool, stem: &str) -> Result<Read, String> {
    let mut notes = Vec::new();
    let (fresh, expected, files, front) = if dib {
        let mut kept_notes = Vec::new();
        let kept = dib_kept(text, &mut kept_notes);
        if let Some(read) = kept_read(kept, kept_notes, &mut notes) {
            return Ok(read);
        }
        // Read as an editor shows it: a lone `\r` is a line break too.
        let import = from_dib(&line_breaks(text));
        notes.extend(import.notes.iter().cloned());
        notes.extend(import.reported.iter().map(|(line, magic)| {
            format!("line {line}: `{magic}` has no meaning in a runbook; it stays in its cell")
        }));
        let mut markdown = String::new();
        let verbatim = holds_templates(&import.cells);
        let front = !import.params.is_empty() || !import.secrets.is_empty() || verbatim;
        if front {
            markdown.push_str("---\nrunbook:\n");
            if verbatim {
                markdown.push_str(VERBATIM);
            }
            if !import.params.is_empty() {
                markdown.push_str("  params:\n");
                for (name, prompt) in &import.params {
                    let prompt = serde_json::Value::from(prompt.as_str());
                    markdown.push_str(&format!("    {name}: \"\"  # asked for: {prompt}\n"));
                }
            }
            if !import.secrets.is_empty() {
                markdown.push_str(&format!("  secrets: [{}]\n", import.secrets.join(", ")));
            }
            markdown.push_str("---\n");
        }
        let (body, files) = to_markdown_with_images(&import.cells, stem);
        markdown.push_str(&body);
        (markdown, runs_of(&import.cells), files, front)
    } else {
        let notebook: Value =
            serde_json::from_str(text).map_err(|e| format!("not a Jupyter notebook: {e}"))?;
        let mut kept_notes = Vec::new();
        let kept = ipynb_kept(&notebook, &mut kept_notes);
        if let Some(read) = kept_read(kept, kept_notes, &mut notes) {
            return Ok(read);
        }
        let cells: Vec<Imported> = visible_cells(&notebook, &mut notes)?
            .into_iter()
            .map(|(_, cell)| cell)
            .collect();
        let (body, files) = to_markdown_with_images(&cells, stem);
        let verbatim = holds_templates(&cells);
        let markdown = match verbatim {
            true => format!("---\nrunbook:\n{VERBATIM}---\n{body}"),
            false => body,
        };
        (markdown, runs_of(&cells), files, verbatim)
    };
    if let Some(why) = differs(&fresh, &expected, front) {
        return Err(format!("cannot be read safely as a runbook: {why}"));
    }
    Ok(Read {
        markdown: fresh,
        notes,
        files,
    })
}

/// The blank lines a kept cell had before it, when the metadata keeps
/// only blank lines there (anything else could hide text).
fn push_blank_before(keep: &Value, edited: &mut Vec<Edited>) {
    if let Some(before) = keep["before"].as_str() {
        if before.trim().is_empty() {
            edited.push(Edited::Prose {
                kept: Some(before.to_string()),
                text: String::new(),
            });
        }
    }
}

/// The document runbook's export kept in a notebook, when it runs exactly
/// the notebook's visible cells; otherwise `None`, with why in `notes`.
fn kept_read(
    kept: Option<(String, Runs, bool)>,
    kept_notes: Vec<String>,
    notes: &mut Vec<String>,
) -> Option<Read> {
    let (markdown, expected, front) = kept?;
    match differs(&markdown, &expected, front) {
        None => Some(Read {
            markdown,
            notes: kept_notes,
            files: Vec::new(),
        }),
        Some(why) => {
            notes.extend(kept_notes);
            notes.push(format!(
                "the runbook metadata it keeps does not match its cells ({why}); imported from what it shows"
            ));
            None
        }
    }
}

/// The front matter line that makes cells run exactly as written.
const VERBATIM: &str = "  templates: false\n";

/// Whether a code cell of a notebook holds what runbook would otherwise
/// render as a template: a notebook runs its code as shown, so its
/// runbook turns templates off.
fn holds_templates(cells: &[Imported]) -> bool {
    cells.iter().any(|cell| match cell {
        Imported::Code { lang, source, .. } => {
            interpreter_of(lang).is_some() && crate::template::has_template(source)
        }
        Imported::Markdown(_) => false,
    })
}

/// The runbook text for imported cells.
pub fn to_markdown(cells: &[Imported]) -> String {
    to_markdown_with_images(cells, "notebook").0
}

/// Files an import writes beside the runbook: (file name, bytes).
pub type Files = Vec<(String, Vec<u8>)>;

/// The runbook text for imported cells, and the images they displayed,
/// named `STEM-output-N.EXT` and linked under their cells.
///
/// What runs is exactly the code cells: a markdown cell's code blocks
/// become examples that never run, a markdown cell that would reach into
/// what follows (an open fence, an open HTML comment) or be read as front
/// matter is shown as a text block instead, and each code cell's fence is
/// longer than any in its code.
pub fn to_markdown_with_images(cells: &[Imported], stem: &str) -> (String, Files) {
    let stem = file_stem(stem);
    let mut parts = Vec::new();
    let mut files = Vec::new();
    for cell in cells {
        match cell {
            Imported::Markdown(text) => {
                let text = text.trim_end_matches(['\n', '\r']);
                if !text.trim().is_empty() {
                    parts.push(prose_block(text, parts.is_empty()));
                }
            }
            Imported::Code {
                lang,
                source,
                output,
                images,
            } => {
                parts.push(code_block(lang, source, output.as_ref()));
                for (ext, bytes) in images {
                    let name = format!("{stem}-output-{}.{ext}", files.len() + 1);
                    parts.push(format!("![output]({name})"));
                    files.push((name, bytes.clone()));
                }
            }
        }
    }
    (parts.join("\n\n") + "\n", files)
}

/// A code cell's block: a plain language word, the code in a fence
/// longer than any it holds, and its output.
fn code_block(lang: &str, source: &str, output: Option<&Output>) -> String {
    let lang = if is_word(lang) { lang } else { "text" };
    let source = line_breaks(source);
    let source = source.strip_suffix('\n').unwrap_or(&source);
    let fence = fence_for(source);
    let mut block = format!("{fence}{lang}\n{source}\n{fence}");
    if let Some(output) = output {
        block.push('\n');
        block.push_str(&render(output, "", "\n"));
    }
    block
}

/// An image's file name part: the notebook's name with anything but
/// `[A-Za-z0-9._-]` made `_` and no leading dot, so the link reads as one
/// and the file stays a visible file in the folder.
fn file_stem(stem: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let clean: String = stem
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.trim_matches(['_', '.']).is_empty() {
        "notebook".to_string()
    } else {
        clean.to_string()
    }
}

/// What the visible code cells of an import run.
fn runs_of(cells: &[Imported]) -> Runs {
    cells
        .iter()
        .filter_map(|cell| match cell {
            Imported::Code { lang, source, .. } => {
                let interpreter = interpreter_of(lang)?;
                let source = line_breaks(source);
                let code = source.strip_suffix('\n').unwrap_or(&source).to_string();
                Some((Some(interpreter), code))
            }
            Imported::Markdown(_) => None,
        })
        .collect()
}

fn lines(text: &str) -> Value {
    Value::Array(text.split_inclusive('\n').map(Value::from).collect())
}

/// How a notebook should name a runbook's kernels: a Jupyter bash kernel
/// when every cell is shell, python3 when every cell is Python, and
/// Polyglot Notebooks' kernel info when PowerShell is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Bash,
    Python,
    Polyglot,
}

fn flavour(runbook: &Runbook) -> Flavour {
    let interpreters: Vec<Interpreter> = runbook
        .cells
        .iter()
        .filter_map(|c| c.interpreter())
        .collect();
    if interpreters.contains(&Interpreter::Pwsh) {
        Flavour::Polyglot
    } else if !interpreters.is_empty() && interpreters.iter().all(|i| *i == Interpreter::Python) {
        Flavour::Python
    } else {
        Flavour::Bash
    }
}

/// The kernel name a cell of `lang` has in a notebook.
fn kernel_name(lang: &str) -> &'static str {
    match crate::document::interpreter_for(lang, Interpreter::Bash) {
        Some(Interpreter::Pwsh) => "pwsh",
        Some(Interpreter::Python) => "python",
        Some(Interpreter::Sh) => "sh",
        Some(Interpreter::Zsh) => "zsh",
        _ => "bash",
    }
}

/// The metadata key runbook keeps its pieces under.
const KEY: &str = "runbook";

/// A runbook as a Jupyter notebook: prose between cells becomes markdown
/// cells; code cells keep their recorded output; file cells stay prose.
/// Each cell keeps its exact bytes in its metadata, and the front matter
/// is kept in the notebook's, so importing it gives the runbook back.
pub fn to_ipynb(source: &str, runbook: &Runbook) -> Value {
    let cut = pieces::cut(source, runbook);
    let mut cells = Vec::new();
    if let Some(front) = shown_front_matter(&cut.head) {
        cells.push(json!({
            "cell_type": "markdown",
            "id": "runbook-front-matter",
            "metadata": {KEY: {"front_matter": true}},
            "source": lines(&front),
        }));
    }
    if let Some(parameters) = parameters_cell(runbook) {
        cells.push(parameters);
    }
    let mut before: Option<String> = None;
    for piece in &cut.pieces {
        match piece {
            Piece::Prose { raw } if pieces::prose_text(raw).trim().is_empty() => {
                before = Some(raw.clone());
            }
            Piece::Prose { raw } => {
                let id = format!("prose-{}", cells.len() + 1);
                cells.push(json!({
                    "cell_type": "markdown",
                    "id": id,
                    "metadata": {KEY: {"raw": raw}},
                    "source": lines(pieces::prose_text(raw)),
                }));
            }
            Piece::Code(code) if code.is_skipped() => {
                // Never run: shown as the markdown block it is.
                let mut keep = json!({"piece": code});
                if let Some(raw) = before.take() {
                    keep["before"] = Value::from(raw);
                }
                cells.push(json!({
                    "cell_type": "markdown",
                    "id": cell_id(&code.name, cells.len()),
                    "metadata": {KEY: keep},
                    "source": lines(pieces::prose_text(&code.raw)),
                }));
            }
            Piece::Code(code) => {
                let outputs: Vec<Value> = code
                    .output
                    .iter()
                    .filter(|o| !o.text.is_empty())
                    .map(|o| json!({"output_type": "stream", "name": "stdout", "text": lines(&format!("{}\n", o.text))}))
                    .collect();
                let mut keep = json!({"piece": code});
                if let Some(raw) = before.take() {
                    keep["before"] = Value::from(raw);
                }
                cells.push(json!({
                    "cell_type": "code",
                    "execution_count": null,
                    "id": cell_id(&code.name, cells.len()),
                    "metadata": {
                        "polyglot_notebook": {"kernelName": kernel_name(&code.lang)},
                        KEY: keep,
                    },
                    "outputs": outputs,
                    "source": lines(&code.code),
                }));
            }
        }
    }
    let mut metadata = match flavour(runbook) {
        Flavour::Bash => json!({
            "kernelspec": {"display_name": "Bash", "language": "bash", "name": "bash"},
            "language_info": {"name": "bash", "file_extension": ".sh", "mimetype": "text/x-sh"},
        }),
        Flavour::Python => json!({
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }),
        Flavour::Polyglot => json!({
            "kernelspec": {"display_name": ".NET (PowerShell)", "language": "PowerShell", "name": ".net-pwsh"},
            "language_info": {"name": "polyglot-notebook"},
            "polyglot_notebook": {"kernelInfo": kernel_info(runbook)},
        }),
    };
    metadata[KEY] = json!({"version": 1, "head": cut.head, "tail": before});
    json!({
        "cells": cells,
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": 5
    })
}

/// For a shell notebook, a first cell that exports the front matter's
/// params (defaults rendered), tagged `parameters` so papermill can
/// override them: cells run by a Jupyter kernel see the same variables as
/// under runbook. Importing the notebook leaves it out again.
fn parameters_cell(runbook: &Runbook) -> Option<Value> {
    if flavour(runbook) != Flavour::Bash || runbook.settings.params.is_empty() {
        return None;
    }
    let vars = crate::vars::initial(&runbook.settings, &crate::vars::Overrides::default()).ok()?;
    let mut code = String::new();
    // Only values the document itself holds: a secret, or a param made
    // from the caller's environment or from a secret, is left to the
    // kernel's environment and never written into the notebook.
    let mut withheld: std::collections::BTreeSet<&str> = runbook
        .settings
        .secrets
        .iter()
        .map(String::as_str)
        .collect();
    for (name, default) in &runbook.settings.params {
        let reads = match default {
            Value::String(template) => {
                crate::template::template_variables(template).unwrap_or_default()
            }
            _ => Default::default(),
        };
        if withheld.contains(name.as_str())
            || reads
                .iter()
                .any(|r| r == "env" || withheld.contains(r.as_str()))
        {
            withheld.insert(name);
            code.push_str(&format!("# {name}: from the kernel's environment\n"));
            continue;
        }
        let value = vars.get(name).map(|v| v.env_text()).unwrap_or_default();
        code.push_str(&format!(
            "export {name}={}\n",
            crate::template::shell_quote(&value)
        ));
    }
    Some(json!({
        "cell_type": "code",
        "execution_count": null,
        "id": "runbook-parameters",
        "metadata": {"tags": ["parameters"], KEY: {"parameters": true}},
        "outputs": [],
        "source": lines(code.trim_end()),
    }))
}

/// A notebook cell id: the cell's id when it is one Jupyter accepts
/// (1 to 64 of `[A-Za-z0-9-_]`), else one made from its position.
fn cell_id(name: &str, position: usize) -> String {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid && name.parse::<usize>().is_err() {
        name.to_string()
    } else {
        format!("cell-{}", position + 1)
    }
}

/// Polyglot Notebooks' `kernelInfo`: the default kernel and every kernel
/// the runbook's cells use.
fn kernel_info(runbook: &Runbook) -> Value {
    let mut names: Vec<&str> = runbook
        .cells
        .iter()
        .filter(|c| c.interpreter().is_some())
        .map(|c| kernel_name(&c.lang))
        .collect();
    names.sort_unstable();
    names.dedup();
    let default = if names.contains(&"pwsh") {
        "pwsh"
    } else {
        names.first().copied().unwrap_or("pwsh")
    };
    let items: Vec<Value> = names
        .iter()
        .map(|name| {
            let language = match *name {
                "pwsh" => "PowerShell",
                "python" => "Python",
                other => other,
            };
            json!({"name": name, "languageName": language, "aliases": []})
        })
        .chain(std::iter::once(
            json!({"name": "markdown", "languageName": "Markdown", "aliases": ["md"]}),
        ))
        .collect();
    json!({"defaultKernelName": default, "items": items})
}

/// A runbook as a Polyglot Notebook `.dib`: a `#!meta` header with the
/// kernel info (and the runbook's pieces, so importing it gives the
/// runbook back), then `#!markdown` and `#!<kernel>` cells. A `.dib`
/// holds no outputs; the recorded ones travel in the header.
pub fn to_dib(source: &str, runbook: &Runbook) -> String {
    let cut = pieces::cut(source, runbook);
    let meta = json!({
        "kernelInfo": kernel_info(runbook),
        KEY: {"version": 1, "head": cut.head, "pieces": cut.pieces},
    });
    let mut out = format!(
        "#!meta\n\n{}\n",
        serde_json::to_string(&meta).expect("serialises")
    );
    if let Some(front) = shown_front_matter(&cut.head) {
        out.push_str(&format!("\n#!markdown\n\n{front}\n"));
    }
    for piece in &cut.pieces {
        let (kernel, text) = match piece {
            Piece::Prose { raw } => ("markdown", pieces::prose_text(raw)),
            Piece::Code(code) if code.is_skipped() => ("markdown", pieces::prose_text(&code.raw)),
            Piece::Code(code) => (kernel_name(&code.lang), code.code.as_str()),
        };
        if text.trim().is_empty() {
            continue;
        }
        out.push_str(&format!("\n#!{kernel}\n\n{text}\n"));
    }
    out
}

/// A notebook that runbook exported, back as the runbook: each piece
/// exactly as it was, unless the notebook changed it, and only where it
/// shows exactly what the notebook shows (what is not is noted in `notes`
/// and written from the notebook). With what the notebook's code cells
/// run, and whether its front matter is shown. `None` when the notebook
/// did not come from runbook.
fn ipynb_kept(notebook: &Value, notes: &mut Vec<String>) -> Option<(String, Runs, bool)> {
    let kept = notebook["metadata"][KEY].as_object()?;
    let head = kept.get("head")?.as_str()?.to_string();
    let cells = notebook["cells"].as_array()?;
    let visible: std::collections::BTreeMap<usize, Imported> =
        visible_cells(notebook, &mut Vec::new())
            .ok()?
            .into_iter()
            .collect();
    let first_markdown = match visible.get(&1) {
        Some(Imported::Markdown(text)) if cells[0]["cell_type"] == "markdown" => {
            Some(text.as_str())
        }
        _ => None,
    };
    let (head, shown_first) = trusted_head(&head, first_markdown, notes);
    // The parameters cell runbook's export adds, left out when it is
    // exactly what the front matter's params give.
    let parameters = crate::parser::parse(&head)
        .ok()
        .and_then(|r| parameters_cell(&r))
        .map(|c| text(&c["source"]));
    let mut expected = Runs::new();
    let mut edited = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let number = index + 1;
        let name = format!("cell {number}");
        if index == 0 && shown_first {
            continue;
        }
        let keep = &cell["metadata"][KEY];
        let Some(shown) = visible.get(&number) else {
            continue;
        };
        match shown {
            Imported::Markdown(source) => {
                push_blank_before(keep, &mut edited);
                let piece: Option<CodePiece> = serde_json::from_value(keep["piece"].clone()).ok();
                edited.push(match piece {
                    Some(piece) if piece.is_skipped() => kept_skipped(piece, source, &name, notes),
                    _ => kept_prose(
                        keep["raw"].as_str().map(str::to_string),
                        source,
                        &name,
                        notes,
                    ),
                });
            }
            Imported::Code { lang, source, .. } => {
                let code = source.strip_suffix('\n').unwrap_or(source).to_string();
                if keep["parameters"].as_bool() == Some(true) {
                    if parameters.as_deref() == Some(source.as_str()) {
                        continue;
                    }
                    notes.push(format!(
                        "{name}: it is marked as the parameters cell but is not the front matter's params; it runs"
                    ));
                }
                if let Some(interpreter) = interpreter_of(lang) {
                    expected.push((Some(interpreter), code.clone()));
                }
                push_blank_before(keep, &mut edited);
                let piece: Option<CodePiece> = serde_json::from_value(keep["piece"].clone()).ok();
                let output = outputs(&cell["outputs"]).map(|o| OutputText {
                    text: o.text,
                    exit: o.exit,
                });
                // An output the notebook shows as recorded keeps its exit status.
                let output = match (&piece, output) {
                    (Some(p), Some(o)) if p.output.as_ref().is_some_and(|k| k.text == o.text) => {
                        p.output.clone()
                    }
                    (Some(p), None) if p.output.as_ref().is_some_and(|k| k.text.is_empty()) => {
                        p.output.clone()
                    }
                    (_, other) => other,
                };
                edited.push(kept_code(piece, lang, code, output, &name, notes));
            }
        }
    }
    if let Some(tail) = kept.get("tail").and_then(Value::as_str) {
        if tail.trim().is_empty() {
            edited.push(Edited::Prose {
                kept: Some(tail.to_string()),
                text: String::new(),
            });
        }
    }
    let shown = !head.is_empty() && !head.chars().all(|c| c == '\u{feff}');
    Some((pieces::join(&head, &edited), expected, shown))
}

fn cell_kernel<'a>(cell: &'a Value, default: &'a str) -> &'a str {
    cell["metadata"]["polyglot_notebook"]["kernelName"]
        .as_str()
        .or_else(|| cell["metadata"]["dotnet_interactive"]["language"].as_str())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_jupyter_with_outputs() {
        let notebook = r##"{"metadata": {"kernelspec": {"language": "bash", "name": "bash"}}, "nbformat": 4, "cells": [
            {"cell_type": "markdown", "source": ["# Lab\n", "Intro."]},
            {"cell_type": "code", "source": "echo hi", "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]},
            {"cell_type": "code", "source": "#!pwsh\nGet-Date", "metadata": {}, "outputs": []},
            {"cell_type": "code", "source": ["false"], "outputs": [{"output_type": "error", "ename": "E", "evalue": "x", "traceback": ["\u001b[31mboom\u001b[0m"]}]}
        ]}"##;
        let cells = from_ipynb(notebook).unwrap();
        assert_eq!(
            to_markdown(&cells),
            "# Lab\nIntro.\n\n```bash\necho hi\n```\n```output\nhi\n```\n\n```pwsh\nGet-Date\n```\n\n```bash\nfalse\n```\n```output {exit=1}\nboom\n```\n"
        );
    }

    #[test]
    fn kernel_names_are_plain_words_or_text() {
        assert!(is_word("bash") && is_word("c#") && is_word(".net-pwsh"));
        for name in ["", "bash {file=x}", "bash`", "bash\nrm", "a/b", "x{"] {
            assert!(!is_word(name), "{name:?}");
        }
        let cells = from_ipynb(r#"{"metadata": {"kernelspec": {"language": "bash {skip}"}}, "cells": [{"cell_type": "code", "source": "ls"}]}"#).unwrap();
        assert_eq!(to_markdown(&cells), "```text\nls\n```\n");
    }

    #[test]
    fn image_names_stay_plain_files() {
        assert_eq!(file_stem("lab.v2"), "lab.v2");
        assert_eq!(file_stem("my notebook"), "my_notebook");
        assert_eq!(file_stem("a)\n```bash"), "a_____bash");
        assert_eq!(file_stem(".."), "notebook");
        assert_eq!(file_stem(".hidden"), "hidden");
    }

    #[test]
    fn imports_polyglot_dib() {
        let dib = "#!meta\n\n{\"kernelInfo\":{\"defaultKernelName\":\"pwsh\"}}\n\n#!markdown\n\n# Title\n\nSome text.\n\n#!pwsh\n\nGet-AzContext\n\n#!csharp\n\nConsole.WriteLine(1);\n";
        assert_eq!(
            to_markdown(&from_dib(dib).cells),
            "# Title\n\nSome text.\n\n```pwsh\nGet-AzContext\n```\n\n```csharp\nConsole.WriteLine(1);\n```\n"
        );
    }
}
