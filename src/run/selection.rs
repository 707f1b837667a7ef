//! Which cells a run executes: all of them, some by id or number, a range,
//! the rest after a failure (`--resume`), plus their dependencies.

use std::collections::BTreeSet;

use crate::analysis::with_dependencies;
use crate::document::Runbook;
use crate::events::Status;
use crate::state::State;

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub cells: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub resume: bool,
    pub deps: bool,
}

impl Selection {
    /// Whether the run covers less than the whole runbook.
    pub fn is_partial(&self) -> bool {
        !self.cells.is_empty() || self.from.is_some() || self.to.is_some() || self.resume
    }
}

fn index_of(runbook: &Runbook, key: &str, flag: &str) -> Result<usize, String> {
    runbook.find(key).map(|c| c.number - 1).ok_or_else(|| {
        let ids: Vec<String> = runbook.cells.iter().map(|c| c.name()).collect();
        let hint = crate::suggest::did_you_mean(key, ids.iter().map(String::as_str));
        format!(
            "{flag} {key}: no such cell ({hint}cells: {})",
            ids.join(", ")
        )
    })
}

/// The cells to run, in document order.
pub fn select(
    runbook: &Runbook,
    selection: &Selection,
    state: &State,
) -> Result<Vec<usize>, String> {
    let count = runbook.cells.len();
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    for key in &selection.cells {
        chosen.insert(index_of(runbook, key, "--cell")?);
    }
    let ranged = selection.from.is_some() || selection.to.is_some() || selection.resume;
    if ranged {
        let mut start = match &selection.from {
            Some(key) => index_of(runbook, key, "--from")?,
            None => 0,
        };
        if selection.resume {
            let first_open = runbook.cells.iter().position(|cell| {
                !cell.options.skip
                    && !state
                        .cells
                        .get(&cell.name())
                        .is_some_and(|r| matches!(r.status, Status::Passed | Status::Skipped))
            });
            start = start.max(first_open.unwrap_or(count));
        }
        let end = match &selection.to {
            Some(key) => index_of(runbook, key, "--to")? + 1,
            None => count,
        };
        if let (Some(from), Some(to)) = (&selection.from, &selection.to) {
            if start >= end {
                return Err(format!("--from {from} comes after --to {to}"));
            }
        }
        chosen.extend(start..end.max(start));
    }
    if !selection.is_partial() {
        chosen.extend(0..count);
    }
    Ok(if selection.deps {
        with_dependencies(runbook, &chosen)
    } else {
        chosen.into_iter().collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    const DOC: &str = "```bash {#a capture=A}\necho a\n```\n\n```bash {#b capture=B}\necho {{ A }}\n```\n\n```bash {#c}\nhelper() { echo hi; }\nLOCAL=1\n```\n\n```bash {#d}\necho \"$B $LOCAL\"; helper\n```\n\n```bash {#e}\necho e\n```\n";

    fn names(indices: &[usize]) -> Vec<usize> {
        indices.iter().map(|i| i + 1).collect()
    }

    #[test]
    fn selects_cells_ranges_and_dependencies() {
        let runbook = parse(DOC).unwrap();
        let state = State::default();
        let pick = |s: Selection| names(&select(&runbook, &s, &state).unwrap());
        assert_eq!(pick(Selection::default()), [1, 2, 3, 4, 5]);
        assert_eq!(
            pick(Selection {
                cells: vec!["d".into(), "1".into()],
                ..Default::default()
            }),
            [1, 4]
        );
        assert_eq!(
            pick(Selection {
                from: Some("b".into()),
                to: Some("d".into()),
                ..Default::default()
            }),
            [2, 3, 4]
        );
        assert_eq!(
            pick(Selection {
                to: Some("b".into()),
                ..Default::default()
            }),
            [1, 2]
        );
        assert_eq!(
            pick(Selection {
                cells: vec!["d".into()],
                deps: true,
                ..Default::default()
            }),
            [1, 2, 3, 4]
        );
        assert_eq!(
            pick(Selection {
                cells: vec!["e".into()],
                deps: true,
                ..Default::default()
            }),
            [5]
        );
        assert!(select(
            &runbook,
            &Selection {
                cells: vec!["zz".into()],
                ..Default::default()
            },
            &state
        )
        .unwrap_err()
        .contains("no such cell (cells: a, b, c, d, e)"));
    }

    #[test]
    fn resume_starts_at_the_first_cell_that_did_not_pass() {
        let runbook = parse(DOC).unwrap();
        let mut state = State::default();
        for (name, status) in [
            ("a", Status::Passed),
            ("b", Status::Passed),
            ("c", Status::Failed),
        ] {
            state.cells.insert(
                name.into(),
                crate::state::CellRecord {
                    number: 0,
                    status,
                    exit: 0,
                    duration_ms: 0,
                    finished_at: String::new(),
                    script_hash: String::new(),
                },
            );
        }
        let resume = Selection {
            resume: true,
            ..Default::default()
        };
        assert_eq!(
            names(&select(&runbook, &resume, &state).unwrap()),
            [3, 4, 5]
        );
    }
}
