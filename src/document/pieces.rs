//! A runbook cut into the pieces a notebook holds, each with its exact
//! bytes, so that md → notebook → md gives back the same document.
//!
//! The front matter stands apart; then prose and code cells alternate.
//! A code cell's piece runs from the start of its opening fence line to
//! the end of its output block (or of its closing fence line); prose is
//! everything between, file cells included (they stay prose in a
//! notebook). A notebook shows each piece's editable text (the prose, the
//! cell's code and output) and keeps the exact bytes beside it; reading
//! back, a piece whose text was not edited gets its exact bytes again, and
//! an edited one is written anew.

use serde::{Deserialize, Serialize};

use crate::document::{CellKind, Runbook};
use crate::writer::{fence_for, render, Output};

/// One piece of a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Piece {
    /// Text between cells, exactly as written.
    Prose {
        raw: String,
    },
    Code(CodePiece),
}

/// A code cell as a notebook needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePiece {
    /// The fenced block and its output block, exactly as written.
    pub raw: String,
    /// The language word (`bash`, `az`, `pwsh`).
    pub lang: String,
    /// The whole info string (`bash {id=oidc capture=OIDC_URL}`).
    pub info: String,
    /// The cell's id or number.
    pub name: String,
    /// The code, without its final newline.
    pub code: String,
    /// The recorded output block, if any.
    pub output: Option<OutputText>,
}

impl CodePiece {
    /// Whether its block is a cell marked `skip`, which never runs: a
    /// notebook shows it as markdown, not as a code cell.
    pub fn is_skipped(&self) -> bool {
        crate::parser::parse(&self.raw).is_ok_and(|r| r.cells.len() == 1 && r.cells[0].options.skip)
    }
}

/// An output block's text and exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputText {
    pub text: String,
    pub exit: i32,
}

/// A runbook as pieces, with its front matter apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pieces {
    /// Everything before the first piece: a BOM and the front matter.
    pub head: String,
    pub pieces: Vec<Piece>,
}

/// Cuts `source` (which `runbook` was parsed from) into pieces.
pub fn cut(source: &str, runbook: &Runbook) -> Pieces {
    let head_end = match &runbook.front_matter {
        Some(front) => {
            let end = front.end;
            let rest = &source[end..];
            end + if rest.starts_with("\r\n") {
                2
            } else {
                usize::from(rest.starts_with('\n'))
            }
        }
        None if source.starts_with('\u{feff}') => '\u{feff}'.len_utf8(),
        None => 0,
    };
    let mut pieces = Vec::new();
    let mut cursor = head_end;
    for cell in &runbook.cells {
        if let CellKind::File { .. } = cell.kind {
            continue;
        }
        let start = cell.block_start(source).max(cursor);
        let end = cell.block_end();
        if start > cursor {
            pieces.push(Piece::Prose {
                raw: source[cursor..start].to_string(),
            });
        }
        pieces.push(Piece::Code(CodePiece {
            raw: source[start..end].to_string(),
            lang: cell.lang.clone(),
            info: source[cell.info_span.clone()].trim().to_string(),
            name: cell.name(),
            code: cell
                .body
                .strip_suffix('\n')
                .unwrap_or(&cell.body)
                .to_string(),
            output: cell.output.as_ref().map(|o| OutputText {
                text: o.text.clone(),
                exit: o.exit,
            }),
        }));
        cursor = end;
    }
    if cursor < source.len() {
        pieces.push(Piece::Prose {
            raw: source[cursor..].to_string(),
        });
    }
    Pieces {
        head: source[..head_end].to_string(),
        pieces,
    }
}

/// The text a notebook shows for prose: without the blank lines around it.
pub fn prose_text(raw: &str) -> &str {
    raw.trim_matches(['\n', '\r'])
}

/// Puts a document together again from pieces as a notebook gives them
/// back: for each piece, the text shown now, which is the piece's own
/// unless it was edited.
pub fn join(head: &str, pieces: &[Edited]) -> String {
    let mut out = head.to_string();
    let mut anew = false;
    for piece in pieces {
        anew = !piece.unedited();
        match piece {
            Edited::Prose { kept, text } => match kept {
                Some(raw) if piece.unedited() => out.push_str(raw),
                _ => {
                    separate(&mut out);
                    out.push_str(text.trim_matches('\n'));
                    out.push_str("\n\n");
                }
            },
            Edited::Code {
                kept,
                info,
                code,
                output,
            } => match kept {
                Some(kept) if piece.unedited() => out.push_str(&kept.raw),
                _ => {
                    separate(&mut out);
                    let fence = fence_for(code);
                    // Like a kept piece, it ends without its last line end.
                    out.push_str(&format!("{fence}{info}\n{code}\n{fence}"));
                    if let Some(output) = output
                        .as_ref()
                        .and_then(|o| Output::block(o.text.clone(), o.exit))
                    {
                        out.push('\n');
                        out.push_str(&render(&output, "", "\n"));
                    }
                }
            },
        }
    }
    if anew && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

impl Edited {
    /// Whether the notebook gives the piece back as it was.
    pub fn unedited(&self) -> bool {
        match self {
            Edited::Prose { kept, text } => kept
                .as_ref()
                .is_some_and(|raw| prose_text(raw) == text.trim_matches(['\n', '\r'])),
            Edited::Code {
                kept, code, output, ..
            } => kept
                .as_ref()
                .is_some_and(|k| k.code == *code && k.output == *output),
        }
    }
}

/// Ends the text so far with a blank line, so a new block stands apart.
fn separate(out: &mut String) {
    if out.is_empty() || out.ends_with("\n\n") {
        return;
    }
    if out.ends_with('\n') {
        out.push('\n');
    } else {
        out.push_str("\n\n");
    }
}

/// A piece as a notebook gives it back: what it shows now, and the piece
/// it came from (if the notebook kept it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    Prose {
        kept: Option<String>,
        text: String,
    },
    Code {
        kept: Option<CodePiece>,
        info: String,
        code: String,
        output: Option<OutputText>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn unedited(pieces: &Pieces) -> Vec<Edited> {
        pieces
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Prose { raw } => Edited::Prose {
                    kept: Some(raw.clone()),
                    text: prose_text(raw).to_string(),
                },
                Piece::Code(code) => Edited::Code {
                    kept: Some(code.clone()),
                    info: code.info.clone(),
                    code: code.code.clone(),
                    output: code.output.clone(),
                },
            })
            .collect()
    }

    #[test]
    fn cut_and_joined_unedited_is_the_same_document() {
        for doc in [
            "---\ntitle: x\n---\n# T\n\n```bash {#a}\necho a\n```\n```output\na\n```\n\ntext\n",
            "\u{feff}```sh\ntrue\n```\n\n\n```bash\nfalse\n```\n\n~~~output {exit=1}\n~~~\nend",
            "- item\n\n  ```bash\n  echo x\n  ```\n\n```yaml {file=x.yaml}\na: 1\n```\n",
            "no cells at all\n",
            "",
        ] {
            let runbook = parse(doc).unwrap();
            let pieces = cut(doc, &runbook);
            assert_eq!(join(&pieces.head, &unedited(&pieces)), doc, "{doc:?}");
        }
    }

    #[test]
    fn an_edited_cell_is_written_anew_and_the_rest_kept() {
        let doc = "# T\n\n```bash {#a}\necho a\n```\n```output\na\n```\n\nafter\n";
        let pieces = cut(doc, &parse(doc).unwrap());
        let mut edited = unedited(&pieces);
        if let Edited::Code { code, output, .. } = &mut edited[1] {
            *code = "echo b".into();
            *output = Some(OutputText {
                text: "b".into(),
                exit: 0,
            });
        }
        assert_eq!(
            join(&pieces.head, &edited),
            "# T\n\n```bash {#a}\necho b\n```\n```output\nb\n```\n\nafter\n"
        );
    }
}
