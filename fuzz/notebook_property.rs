// The property of the `notebook` fuzz target, shared word for word with
// its bounded twin in `tests/hostile_notebooks.rs` (both `include!` it):
// for any notebook, what its import runs is exactly the visible source of
// its code cells, in order, with no attribute, no file cell, nothing
// rendered as a template, and no front matter but `templates: false`; the
// images it writes stay in the runbook's folder.

/// A notebook from fuzzer text: a notebook (JSON), or, to reach deeper,
/// cells separated by NUL bytes: a first character `m` makes a markdown
/// cell, `r` a raw cell, `k` a code cell whose first line is its kernel
/// name, `p` a code cell with runbook metadata whose kept bytes are its
/// part after a `|`, `h` the kept document head; anything else a code cell.
pub fn notebook_from(text: &str) -> serde_json::Value {
    use serde_json::{json, Value};
    if let Ok(notebook) = serde_json::from_str::<Value>(text) {
        if notebook["cells"].is_array() {
            return notebook;
        }
    }
    let mut cells = Vec::new();
    let mut metadata = json!({"kernelspec": {"name": "bash", "language": "bash"}});
    for part in text.split('\0') {
        let (kind, rest) = part.split_at(part.chars().next().map_or(0, char::len_utf8));
        match kind {
            "m" => cells.push(json!({"cell_type": "markdown", "metadata": {}, "source": rest})),
            "r" => cells.push(json!({"cell_type": "raw", "metadata": {}, "source": rest})),
            "h" => metadata["runbook"] = json!({"version": 1, "head": rest, "tail": rest}),
            "k" => {
                let (kernel, source) = rest.split_once('\n').unwrap_or((rest, ""));
                cells.push(json!({"cell_type": "code", "metadata": {"polyglot_notebook": {"kernelName": kernel}}, "outputs": [], "source": source}));
            }
            "p" => {
                let (source, raw) = rest.split_once('|').unwrap_or((rest, rest));
                let piece = json!({"raw": raw, "lang": "bash", "info": raw.lines().next().unwrap_or(""), "name": "1", "code": source, "output": null});
                cells.push(json!({"cell_type": "code", "metadata": {"runbook": {"piece": piece, "before": raw, "raw": raw}}, "outputs": [], "source": source}));
            }
            _ => cells.push(json!({"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": rest}], "source": part})),
        }
    }
    json!({"metadata": metadata, "nbformat": 4, "cells": cells})
}

/// The visible source of each code cell, as a notebook editor shows it.
pub fn visible(notebook: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    notebook["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| text(&c["source"]).replace("\r\n", "\n").replace('\r', "\n"))
        .collect()
}

/// Whether importing `notebook` runs exactly its visible code cells.
pub fn check(notebook: &serde_json::Value) -> Result<(), String> {
    use runbook::document::CellKind;
    let Ok(read) = runbook::notebook::import(&notebook.to_string(), false, "nb") else {
        // Refused with a message: nothing runs.
        return Ok(());
    };
    let doc = &read.markdown;
    let runbook = runbook::parser::parse(doc).map_err(|d| format!("{d:?}\n{doc}"))?;
    let verbatim = runbook::frontmatter::Settings {
        verbatim: true,
        ..Default::default()
    };
    if runbook.front_matter.is_some() && runbook.settings != verbatim {
        return Err(format!("front matter from a notebook:\n{doc}"));
    }
    let visible = visible(notebook);
    let mut at = 0;
    for cell in &runbook.cells {
        if !matches!(cell.kind, CellKind::Code { .. }) {
            return Err(format!("a file cell from a notebook:\n{doc}"));
        }
        if cell.options != Default::default() {
            return Err(format!("an attribute from a notebook:\n{doc}"));
        }
        if runbook::template::has_template(cell.template_text()) {
            return Err(format!("a cell rendered as a template:\n{doc}"));
        }
        let body = cell.body.strip_suffix('\n').unwrap_or(&cell.body);
        // The next visible code cell it can be: its source, or its source
        // without a `#!kernel` first line.
        let found = visible[at..].iter().position(|v| {
            let v = v.strip_suffix('\n').unwrap_or(v);
            v == body
                || v.split_once('\n').is_some_and(|(first, rest)| {
                    first.starts_with("#!") && rest.strip_suffix('\n').unwrap_or(rest) == body
                })
        });
        match found {
            Some(found) => at += found + 1,
            None => return Err(format!("{body:?} is not a visible code cell after {at}:\n{doc}")),
        }
    }
    for (name, _) in &read.files {
        if name.contains('/') || name.starts_with('.') {
            return Err(format!("an image named {name:?}"));
        }
    }
    Ok(())
}
