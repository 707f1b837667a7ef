//! Notebooks in and out: Jupyter (`.ipynb`) and Polyglot Notebooks
//! (`.dib`) to a runbook, outputs kept; a runbook to `.ipynb`.

use serde_json::{json, Value};

use crate::document::{CellKind, Runbook};
use crate::writer::{fence_for, render, Output};

/// A cell of an imported notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Markdown(String),
    Code {
        lang: String,
        source: String,
        output: Option<Output>,
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
                let mut kernel = cell["metadata"]["polyglot_notebook"]["kernelName"]
                    .as_str()
                    .or_else(|| cell["metadata"]["dotnet_interactive"]["language"].as_str())
                    .unwrap_or(default_kernel)
                    .to_string();
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
                });
            }
            _ => {}
        }
    }
    Ok(imported)
}

/// The text a cell printed, as an output block.
fn outputs(outputs: &Value) -> Option<Output> {
    let mut text = String::new();
    let mut exit = 0;
    for output in outputs.as_array()? {
        match output["output_type"].as_str() {
            Some("stream") => text.push_str(&self::text(&output["text"])),
            Some("execute_result") | Some("display_data") => {
                let plain = self::text(&output["data"]["text/plain"]);
                text.push_str(&plain);
                if !plain.is_empty() && !plain.ends_with('\n') {
                    text.push('\n');
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

/// Reads a Polyglot Notebook `.dib`: `#!meta` holds JSON, `#!markdown`
/// prose, and `#!<kernel>` code.
pub fn from_dib(text: &str) -> Vec<Imported> {
    let mut imported = Vec::new();
    let mut kernel: Option<String> = None;
    let mut body = String::new();
    let flush = |kernel: &Option<String>, body: &mut String, imported: &mut Vec<Imported>| {
        let content = body.trim_matches('\n').to_string();
        body.clear();
        match kernel.as_deref() {
            None | Some("meta") => {}
            Some(_) if content.is_empty() => {}
            Some("markdown") => imported.push(Imported::Markdown(format!("{content}\n"))),
            Some(other) => imported.push(Imported::Code {
                lang: language(other),
                source: format!("{content}\n"),
                output: None,
            }),
        }
    };
    for line in text.lines() {
        let marker = line.trim_end();
        if let Some(name) = marker
            .strip_prefix("#!")
            .filter(|n| !n.is_empty() && !n.contains(' '))
        {
            flush(&kernel, &mut body, &mut imported);
            kernel = Some(name.to_string());
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&kernel, &mut body, &mut imported);
    imported
}

/// The runbook text for imported cells.
pub fn to_markdown(cells: &[Imported]) -> String {
    let mut parts = Vec::new();
    for cell in cells {
        match cell {
            Imported::Markdown(text) => {
                parts.push(as_prose(text.trim_end_matches('\n')));
            }
            Imported::Code {
                lang,
                source,
                output,
            } => {
                let source = source.strip_suffix('\n').unwrap_or(source);
                let fence = fence_for(source);
                let mut block = format!("{fence}{lang}\n{source}\n{fence}");
                if let Some(output) = output {
                    block.push('\n');
                    block.push_str(&render(output, "", "\n"));
                }
                parts.push(block);
            }
        }
    }
    parts.join("\n\n") + "\n"
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

/// A runbook as a Jupyter notebook: prose between cells becomes markdown
/// cells; code cells keep their recorded output; file cells stay prose.
pub fn to_ipynb(source: &str, runbook: &Runbook) -> Value {
    let mut cells = Vec::new();
    let mut cursor = runbook.front_matter.as_ref().map_or(0, |r| r.end);
    let prose = |from: usize, to: usize, cells: &mut Vec<Value>| {
        let text = source[from.min(to)..to].trim_matches(['\n', '\r', '\u{feff}']);
        if !text.trim().is_empty() {
            let id = format!("prose-{}", cells.len() + 1);
            cells.push(
                json!({"cell_type": "markdown", "id": id, "metadata": {}, "source": lines(text)}),
            );
        }
    };
    for cell in &runbook.cells {
        if let CellKind::File { .. } = cell.kind {
            continue;
        }
        let start = source[..cell.span.start].rfind('\n').map_or(0, |i| i + 1);
        prose(cursor, start, &mut cells);
        let outputs: Vec<Value> = cell
            .output
            .iter()
            .filter(|o| !o.text.is_empty())
            .map(|o| json!({"output_type": "stream", "name": "stdout", "text": lines(&format!("{}\n", o.text))}))
            .collect();
        cells.push(json!({
            "cell_type": "code",
            "execution_count": null,
            "id": cell.name(),
            "metadata": {
                "polyglot_notebook": {"kernelName": cell.interpreter().map_or("bash", |i| i.program())},
                "runbook": {"lang": cell.lang, "info": source[cell.info_span.clone()].trim()},
            },
            "outputs": outputs,
            "source": lines(cell.body.strip_suffix('\n').unwrap_or(&cell.body)),
        }));
        cursor = cell.output.as_ref().map_or(cell.insert_at, |o| o.span.end);
    }
    prose(cursor, source.len(), &mut cells);
    json!({
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Bash", "language": "bash", "name": "bash"},
            "language_info": {"name": "bash"}
        },
        "nbformat": 4,
        "nbformat_minor": 5
    })
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
            to_markdown(&from_dib(dib)),
            "# Title\n\nSome text.\n\n```pwsh\nGet-AzContext\n```\n\n```csharp\nConsole.WriteLine(1);\n```\n"
        );
    }
}
