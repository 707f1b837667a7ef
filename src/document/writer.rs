//! Splices output blocks into a runbook's original bytes. Nothing is
//! re-serialised: edits are byte ranges applied back to front, so every
//! byte outside the touched output blocks stays as it was.

use std::ops::Range;

use crate::document::{Cell, Runbook};
use crate::lines::{line_end, next_line_start, normalize_line_endings};

/// What a cell's output block should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Lines joined by `\n`, no final newline, no ANSI escapes.
    pub text: String,
    pub exit: i32,
    /// Marked `{literal}`: compared exactly, never as wildcards.
    pub literal: bool,
}

impl Output {
    /// The block a cell's output gets: none for empty output with exit 0.
    /// Output that looks like wildcards is marked literal, so what a cell
    /// printed is never later taken as a pattern.
    pub fn block(text: String, exit: i32) -> Option<Output> {
        if text.is_empty() && exit == 0 {
            None
        } else {
            let literal = crate::snapshot::has_wildcards(&text);
            Some(Output {
                text,
                exit,
                literal,
            })
        }
    }
}

/// A change to one cell's output block: `Some` writes it, `None` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Index of the cell in `Runbook::cells`.
    pub cell: usize,
    pub output: Option<Output>,
}

/// Applies edits to `source`, which `runbook` was parsed from. An edit whose
/// output equals the recorded block leaves that block's bytes alone.
pub fn apply(source: &str, runbook: &Runbook, edits: &[Edit]) -> String {
    let mut splices: Vec<(Range<usize>, String)> = edits
        .iter()
        .filter_map(|edit| splice(runbook, &runbook.cells[edit.cell], edit.output.as_ref()))
        .collect();
    splices.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut text = source.to_string();
    for (range, replacement) in splices {
        text.replace_range(range, &replacement);
    }
    text
}

fn splice(
    runbook: &Runbook,
    cell: &Cell,
    output: Option<&Output>,
) -> Option<(Range<usize>, String)> {
    let newline = runbook.newline;
    match (&cell.output, output) {
        (Some(old), Some(new))
            if old.text == new.text && old.exit == new.exit && old.literal == new.literal =>
        {
            None
        }
        (Some(old), Some(new)) => Some((old.span.clone(), render(new, &cell.prefix, newline))),
        (None, Some(new)) => Some((
            cell.insert_at..cell.insert_at,
            format!("{newline}{}", render(new, &cell.prefix, newline)),
        )),
        (Some(old), None) => Some((cell.insert_at..old.span.end, String::new())),
        (None, None) => None,
    }
}

/// Replaces the code between a cell's fences with `body`, each line behind
/// the cell's container prefix; every other byte stays. `None` when the
/// cell has no closing fence line to keep. The caller re-parses the result
/// to check the new code did not change the document's structure.
pub fn replace_body(source: &str, runbook: &Runbook, cell: usize, body: &str) -> Option<String> {
    let cell = &runbook.cells[cell];
    let opening_end = next_line_start(source, cell.span.start);
    if opening_end == line_end(source, cell.span.start) {
        return None;
    }
    let closing_start = source[..cell.insert_at].rfind(['\n', '\r'])? + 1;
    if closing_start < opening_end {
        return None;
    }
    let newline = runbook.newline;
    let body = normalize_line_endings(body);
    let body = body.strip_suffix('\n').unwrap_or(&body);
    let mut text = String::new();
    if !body.is_empty() {
        for line in body.split('\n') {
            if line.is_empty() {
                text.push_str(cell.prefix.trim_end());
            } else {
                text.push_str(&cell.prefix);
                text.push_str(line);
            }
            text.push_str(newline);
        }
    }
    let mut edited = source.to_string();
    edited.replace_range(opening_end..closing_start, &text);
    Some(edited)
}

/// An output block's lines, each behind `prefix`, without a final newline.
pub fn render(output: &Output, prefix: &str, newline: &str) -> String {
    let fence = fence_for(&output.text);
    let info = match (output.exit, output.literal) {
        (0, false) => "output".to_string(),
        (0, true) => "output {literal}".to_string(),
        (exit, false) => format!("output {{exit={exit}}}"),
        (exit, true) => format!("output {{exit={exit} literal}}"),
    };
    let mut lines = vec![format!("{prefix}{fence}{info}")];
    if !output.text.is_empty() {
        for line in output.text.split('\n') {
            if line.is_empty() {
                lines.push(prefix.trim_end().to_string());
            } else {
                lines.push(format!("{prefix}{line}"));
            }
        }
    }
    lines.push(format!("{prefix}{fence}"));
    lines.join(newline)
}

/// A backtick fence longer than any backtick run in `text` (at least 3).
pub fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn set(cell: usize, text: &str, exit: i32) -> Edit {
        Edit {
            cell,
            output: Some(Output {
                text: text.into(),
                exit,
                literal: false,
            }),
        }
    }

    fn write(source: &str, edits: &[Edit]) -> String {
        apply(source, &parse(source).unwrap(), edits)
    }

    #[test]
    fn inserts_directly_under_the_cell() {
        let doc = "# T\n\n```bash\necho hi\n```\n\nafter\n";
        assert_eq!(
            write(doc, &[set(0, "hi", 0)]),
            "# T\n\n```bash\necho hi\n```\n```output\nhi\n```\n\nafter\n"
        );
    }

    #[test]
    fn replaces_and_removes_an_existing_block() {
        let doc = "```sh\nfalse\n```\n\n~~~~output\nold\n~~~~\ntail";
        assert_eq!(
            write(doc, &[set(0, "new", 1)]),
            "```sh\nfalse\n```\n\n```output {exit=1}\nnew\n```\ntail"
        );
        assert_eq!(write(doc, &[set(0, "old", 0)]), doc);
        assert_eq!(
            write(
                doc,
                &[Edit {
                    cell: 0,
                    output: None
                }]
            ),
            "```sh\nfalse\n```\ntail"
        );
    }

    #[test]
    fn grows_the_fence_past_backticks_in_the_output() {
        let doc = "```bash\ncat README.md\n```\n";
        let written = write(doc, &[set(0, "````rust\nfn main() {}\n````", 0)]);
        assert_eq!(
            written,
            "```bash\ncat README.md\n```\n`````output\n````rust\nfn main() {}\n````\n`````\n"
        );
        let reparsed = parse(&written).unwrap();
        assert_eq!(reparsed.cells.len(), 1);
        assert_eq!(
            reparsed.cells[0].output.as_ref().unwrap().text,
            "````rust\nfn main() {}\n````"
        );
    }

    #[test]
    fn repeats_the_container_prefix() {
        let doc = "> ```bash\n> echo a\n> ```\n\n- step\n\n  ```bash\n  echo b\n  ```\n";
        let written = write(doc, &[set(0, "a\n\nz", 0), set(1, "b", 0)]);
        assert_eq!(
            written,
            "> ```bash\n> echo a\n> ```\n> ```output\n> a\n>\n> z\n> ```\n\n- step\n\n  ```bash\n  echo b\n  ```\n  ```output\n  b\n  ```\n"
        );
        let reparsed = parse(&written).unwrap();
        assert_eq!(reparsed.cells[0].output.as_ref().unwrap().text, "a\n\nz");
        assert_eq!(reparsed.cells[1].output.as_ref().unwrap().text, "b");
    }

    #[test]
    fn keeps_crlf_bom_and_a_missing_final_newline() {
        let doc = "\u{feff}# T\r\n\r\n```bash\r\necho hi\r\n```";
        let written = write(doc, &[set(0, "hi\nthere", 0)]);
        assert_eq!(
            written,
            "\u{feff}# T\r\n\r\n```bash\r\necho hi\r\n```\r\n```output\r\nhi\r\nthere\r\n```"
        );
        let reparsed = parse(&written).unwrap();
        assert_eq!(reparsed.cells[0].output.as_ref().unwrap().text, "hi\nthere");
        assert_eq!(
            apply(
                &written,
                &reparsed,
                &[Edit {
                    cell: 0,
                    output: None
                }]
            ),
            doc
        );
    }
}
