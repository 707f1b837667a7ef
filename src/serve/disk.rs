//! The page's changes to the file on disk: a finished cell's output block
//! and an edited cell's code, each spliced into the document as it is on
//! disk at that moment, with the atomic writer. An edit an editor saved is
//! never overwritten: a cell whose code changed on disk while it ran keeps
//! its text, and its output is not recorded.

use std::path::Path;

use crate::atomic::{replace_document, ReplaceError};
use crate::document::{Cell, Runbook};
use crate::parser::parse;
use crate::recorder::output_for;
use crate::writer::{apply, replace_body, Edit};

pub fn read(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

fn parsed(path: &Path, source: &str) -> Result<Runbook, String> {
    parse(source).map_err(|diagnostics| {
        let first = diagnostics
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_default();
        format!("{} does not parse now ({first})", path.display())
    })
}

fn write(path: &Path, before: &str, after: &str) -> Result<(), String> {
    if before == after {
        return Ok(());
    }
    replace_document(path, before.as_bytes(), after.as_bytes()).map_err(|e| match e {
        ReplaceError::Changed(conflict) => format!(
            "{} changed on disk at the same moment; the edit is kept, and this change went to {}",
            path.display(),
            conflict.display()
        ),
        ReplaceError::Io(e) => format!("{}: {e}", path.display()),
    })
}

/// Records what `ran` printed under it, as `runbook run` would.
pub fn record_output(path: &Path, ran: &Cell, text: &str, exit: i32) -> Result<(), String> {
    let source = read(path)?;
    let runbook = parsed(path, &source)?;
    let Some(index) = runbook
        .cells
        .iter()
        .position(|c| c.name() == ran.name() && c.body == ran.body && c.lang == ran.lang)
    else {
        return Err(format!(
            "cell {} changed on disk while it ran; its output was not recorded",
            ran.name()
        ));
    };
    let output = output_for(runbook.cells[index].output.as_ref(), text, exit);
    let edited = apply(
        &source,
        &runbook,
        &[Edit {
            cell: index,
            output,
        }],
    );
    write(path, &source, &edited)
}

/// Replaces the code of the cell named `name`, which must still read
/// `was`, with `body`. Every other byte of the document stays.
pub fn edit_body(path: &Path, name: &str, was: &str, body: &str) -> Result<(), String> {
    let source = read(path)?;
    let runbook = parsed(path, &source)?;
    let Some(index) = runbook.cells.iter().position(|c| c.name() == name) else {
        return Err(format!("no cell {name} in {} now", path.display()));
    };
    if normal(&runbook.cells[index].body) != normal(was) {
        return Err(format!(
            "cell {name} changed on disk since the page showed it; reload to see it"
        ));
    }
    let cannot = || {
        format!("cell {name}: that code cannot be saved in its fence (a line would close it); nothing was written")
    };
    let edited = replace_body(&source, &runbook, index, body).ok_or_else(cannot)?;
    let after = parse(&edited).map_err(|_| cannot())?;
    let same_shape = after.cells.len() == runbook.cells.len()
        && after
            .cells
            .iter()
            .zip(&runbook.cells)
            .enumerate()
            .all(|(i, (a, b))| {
                a.id == b.id
                    && a.lang == b.lang
                    && if i == index {
                        normal(&a.body) == normal(body)
                    } else {
                        a.body == b.body
                    }
            });
    if !same_shape {
        return Err(cannot());
    }
    write(path, &source, &edited)
}

/// Code as compared: `\n` line ends, one final newline at most ignored.
fn normal(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    body.strip_suffix('\n').unwrap_or(&body).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(source: &str, name: &str, body: &str) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.md");
        std::fs::write(&path, source).unwrap();
        let was = parse(source).unwrap().find(name).unwrap().body.clone();
        edit_body(&path, name, &was, body).map(|()| std::fs::read_to_string(&path).unwrap())
    }

    #[test]
    fn an_edit_touches_only_its_cell() {
        let source = "# T\n\n```bash {id=a}\necho one\n```\n\n```output\none\n```\n\n- item\n\n  ```sh\n  echo two\n\n  echo three\n  ```\n";
        assert_eq!(
            edited(source, "a", "echo uno\necho dos\n").unwrap(),
            source.replace("echo one\n", "echo uno\necho dos\n")
        );
        assert_eq!(
            edited(source, "2", "ls\n\npwd").unwrap(),
            source.replace("  echo two\n\n  echo three\n", "  ls\n\n  pwd\n")
        );
        assert_eq!(
            edited(source, "a", "").unwrap(),
            source.replace("echo one\n", "")
        );
    }

    #[test]
    fn an_edit_keeps_crlf() {
        let source = "```bash\r\necho one\r\n```\r\ntext\r\n";
        assert_eq!(
            edited(source, "1", "a\nb\n").unwrap(),
            "```bash\r\na\r\nb\r\n```\r\ntext\r\n"
        );
    }

    #[test]
    fn an_edit_that_would_close_the_fence_is_refused() {
        let source = "```bash\necho one\n```\n\n```sh\ntrue\n```\n";
        let error = edited(source, "1", "echo x\n```\necho y\n").unwrap_err();
        assert!(error.contains("cannot be saved"), "{error}");
        assert!(edited(source, "1", "echo ``` inline\n").is_ok());
    }

    #[test]
    fn an_edit_of_stale_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.md");
        std::fs::write(&path, "```bash\necho new\n```\n").unwrap();
        let error = edit_body(&path, "1", "echo old\n", "echo mine\n").unwrap_err();
        assert!(error.contains("changed on disk"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "```bash\necho new\n```\n"
        );
    }

    #[test]
    fn output_of_a_cell_changed_meanwhile_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.md");
        let ran = parse("```bash\necho a\n```\n").unwrap().cells[0].clone();
        std::fs::write(&path, "```bash\necho b\n```\n").unwrap();
        assert!(record_output(&path, &ran, "a", 0).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "```bash\necho b\n```\n"
        );
        std::fs::write(&path, "Intro added.\n\n```bash\necho a\n```\n").unwrap();
        record_output(&path, &ran, "a", 0).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "Intro added.\n\n```bash\necho a\n```\n```output\na\n```\n"
        );
    }
}
