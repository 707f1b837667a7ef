//! Notebooks in and out: Jupyter (`.ipynb`) and Polyglot Notebooks
//! (`.dib`) to a runbook, outputs kept; a runbook to `.ipynb`.

use serde_json::{json, Value};

use crate::document::{Interpreter, Runbook};
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
    let default_kernel = notebook["metadata"]["kernelspec"]["language"]
        .as_str()
        .or_else(|| notebook["metadata"]["language_info"]["name"].as_str())
        .or_else(|| notebook["metadata"]["kernelspec"]["name"].as_str())
        .unwrap_or("bash");
    let cells = notebook["cells"]
        .as_array()
        .ok_or("not a Jupyter notebook: no `cells` list")?;
    let mut imported = Vec::new();
    for cell in cells {
        let mut source = text(&cell["source"]);
        match cell["cell_type"].as_str() {
            Some("markdown") | Some("raw") => imported.push(Imported::Markdown(source)),
            Some("code") => {
                let mut kernel = cell_kernel(cell, default_kernel).to_string();
                if let Some(rest) = source.strip_prefix("#!") {
                    let (magic, body) = rest.split_once('\n').unwrap_or((rest, ""));
                    if !magic.contains(' ') {
                        kernel = magic.trim().to_string();
                        source = body.to_string();
                    }
                }
                imported.push(Imported::Code {
                    lang: language(&kernel),
                    source,
                    output: outputs(&cell["outputs"]),
                    images: images(&cell["outputs"]),
                });
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
        let lang = language(&cell.kernel);
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
/// header keeps, each exactly as it was unless the file changed it.
/// `None` when the file did not come from runbook.
pub fn dib_to_runbook(text: &str) -> Option<String> {
    let (meta, cells) = parse_dib(text);
    let kept = &meta?[KEY];
    let head = kept["head"].as_str()?.to_string();
    let pieces: Vec<Piece> = serde_json::from_value(kept["pieces"].clone()).ok()?;
    let mut cells = cells
        .into_iter()
        .filter(|c| !c.text.trim().is_empty())
        .peekable();
    let mut edited = Vec::new();
    let mut aligned = true;
    for piece in pieces {
        let shown = match &piece {
            Piece::Prose { raw } => pieces::prose_text(raw).to_string(),
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
        let is_markdown = |c: &DibCell| matches!(c.kernel.as_str(), "markdown" | "md");
        match (piece, cells.peek()) {
            (Piece::Prose { raw }, Some(cell)) if aligned && is_markdown(cell) => {
                let cell = cells.next().expect("peeked");
                edited.push(Edited::Prose {
                    kept: Some(raw),
                    text: cell.text,
                });
            }
            (Piece::Code(code), Some(cell)) if aligned && !is_markdown(cell) => {
                let cell = cells.next().expect("peeked");
                // A .dib holds no outputs: the recorded one stays while the
                // code does.
                let output = (cell.text == code.code)
                    .then(|| code.output.clone())
                    .flatten();
                edited.push(Edited::Code {
                    info: code.info.clone(),
                    kept: Some(code),
                    code: cell.text,
                    output,
                });
            }
            _ => aligned = false,
        }
    }
    for cell in cells {
        edited.push(match cell.kernel.as_str() {
            "markdown" | "md" => Edited::Prose {
                kept: None,
                text: cell.text,
            },
            kernel => Edited::Code {
                kept: None,
                info: language(kernel),
                code: cell.text,
                output: None,
            },
        });
    }
    Some(pieces::join(&head, &edited))
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

/// Writes an import's images into `folder`.
pub fn write_files(files: &Files, folder: &std::path::Path) -> crate::error::Result<()> {
    for (name, bytes) in files {
        let path = folder.join(name);
        crate::atomic::write(&path, bytes).map_err(|e| crate::error::Error::io(&path, e))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// A notebook read as a runbook.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub markdown: String,
    /// What the import has to say (magics it could not translate).
    pub notes: Vec<String>,
    /// Images to write beside the runbook, which links them.
    pub files: Files,
}

/// A notebook (`.ipynb`, or `.dib` when `dib`) as runbook text, with what
/// the import has to say (magics it could not translate).
pub fn import(text: &str, dib: bool, stem: &str) -> Result<Read, String> {
    if dib {
        if let Some(markdown) = dib_to_runbook(text) {
            return Ok(Read {
                markdown,
                ..Read::default()
            });
        }
        let import = from_dib(text);
        let notes = import
            .reported
            .iter()
            .map(|(line, magic)| {
                format!("line {line}: `{magic}` has no meaning in a runbook; it stays in its cell")
            })
            .collect();
        let mut markdown = String::new();
        if !import.params.is_empty() || !import.secrets.is_empty() {
            markdown.push_str("---\nrunbook:\n");
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
        markdown.push_str(&to_markdown(&import.cells));
        return Ok(Read {
            markdown,
            notes,
            files: Vec::new(),
        });
    }
    let notebook: Value =
        serde_json::from_str(text).map_err(|e| format!("not a Jupyter notebook: {e}"))?;
    if let Some(markdown) = ipynb_to_runbook(&notebook) {
        return Ok(Read {
            markdown,
            ..Read::default()
        });
    }
    let (markdown, files) = to_markdown_with_images(&from_ipynb(text)?, stem);
    Ok(Read {
        markdown,
        notes: Vec::new(),
        files,
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
pub fn to_markdown_with_images(cells: &[Imported], stem: &str) -> (String, Files) {
    let mut parts = Vec::new();
    let mut files = Vec::new();
    for cell in cells {
        match cell {
            Imported::Markdown(text) => {
                parts.push(as_prose(text.trim_end_matches('\n')));
            }
            Imported::Code {
                lang,
                source,
                output,
                images,
            } => {
                let source = source.strip_suffix('\n').unwrap_or(source);
                let fence = fence_for(source);
                let mut block = format!("{fence}{lang}\n{source}\n{fence}");
                if let Some(output) = output {
                    block.push('\n');
                    block.push_str(&render(output, "", "\n"));
                }
                parts.push(block);
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
        let class = if word.is_empty() { "text" } else { word };
        text.replace_range(cell.info_span.clone(), &format!("{{.{class}}}"));
    }
    text
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
    for piece in &cut.pieces {
        let (kernel, text) = match piece {
            Piece::Prose { raw } => ("markdown", pieces::prose_text(raw)),
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
/// exactly as it was, unless the notebook changed it. `None` when the
/// notebook did not come from runbook.
pub fn ipynb_to_runbook(notebook: &Value) -> Option<String> {
    let kept = notebook["metadata"][KEY].as_object()?;
    let head = kept.get("head")?.as_str()?.to_string();
    let mut edited = Vec::new();
    for cell in notebook["cells"].as_array()? {
        let source = text(&cell["source"]);
        let keep = &cell["metadata"][KEY];
        if keep["parameters"].as_bool() == Some(true) {
            continue;
        }
        match cell["cell_type"].as_str() {
            Some("markdown") | Some("raw") => edited.push(Edited::Prose {
                kept: keep["raw"].as_str().map(str::to_string),
                text: source,
            }),
            Some("code") => {
                if let Some(before) = keep["before"].as_str() {
                    edited.push(Edited::Prose {
                        kept: Some(before.to_string()),
                        text: String::new(),
                    });
                }
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
                let info = piece
                    .as_ref()
                    .map_or_else(|| language(cell_kernel(cell, "bash")), |p| p.info.clone());
                edited.push(Edited::Code {
                    kept: piece,
                    info,
                    code: source.strip_suffix('\n').unwrap_or(&source).to_string(),
                    output,
                });
            }
            _ => {}
        }
    }
    if let Some(tail) = kept.get("tail").and_then(Value::as_str) {
        edited.push(Edited::Prose {
            kept: Some(tail.to_string()),
            text: String::new(),
        });
    }
    Some(pieces::join(&head, &edited))
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
    fn imports_polyglot_dib() {
        let dib = "#!meta\n\n{\"kernelInfo\":{\"defaultKernelName\":\"pwsh\"}}\n\n#!markdown\n\n# Title\n\nSome text.\n\n#!pwsh\n\nGet-AzContext\n\n#!csharp\n\nConsole.WriteLine(1);\n";
        assert_eq!(
            to_markdown(&from_dib(dib).cells),
            "# Title\n\nSome text.\n\n```pwsh\nGet-AzContext\n```\n\n```csharp\nConsole.WriteLine(1);\n```\n"
        );
    }
}
