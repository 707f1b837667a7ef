//! `runbook status`: each cell's last result from the state file, and
//! whether its script changed since (stale), like a notebook's execution
//! counts.

use serde::Serialize;

use crate::events::Status;
use crate::loader::Loaded;
use crate::run::template::{environment, render_cell};
use crate::state::{hash, State};
use crate::vars::{initial, Overrides, Vars};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub id: Option<String>,
    /// `None`: the cell never ran.
    pub last: Option<Status>,
    pub exit: Option<i32>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Whether the script as it renders now differs from the one that ran;
    /// `None` when that cannot be told (it never ran, or does not render
    /// without values this state does not keep, such as secrets).
    pub stale: Option<bool>,
}

pub fn rows(loaded: &Loaded, state: &State) -> Vec<Row> {
    let mut vars = initial(&loaded.runbook.settings, &Overrides::default()).unwrap_or_default();
    for (name, value) in &state.captured {
        vars.set(name, value.clone(), false);
    }
    rows_with(loaded, state, &vars)
}

/// The rows, cells rendered with `vars` (secrets standing in as
/// `[masked:NAME]`, as runs hash them) to tell which are stale.
pub fn rows_with(loaded: &Loaded, state: &State, vars: &Vars) -> Vec<Row> {
    crate::run::template::with_document_budget(|| rows_within_budget(loaded, state, vars))
}

fn rows_within_budget(loaded: &Loaded, state: &State, vars: &Vars) -> Vec<Row> {
    let env = environment();
    let masker = vars.masker();
    let values = vars.public_template_values();
    loaded
        .runbook
        .cells
        .iter()
        .map(|cell| {
            let record = state.cells.get(&cell.name());
            let rendered = render_cell(&env, cell, &values)
                .ok()
                .map(|r| masker.mask(&r));
            Row {
                number: cell.number,
                id: cell.id.clone(),
                last: record.map(|r| r.status),
                exit: record.map(|r| r.exit),
                finished_at: record.map(|r| r.finished_at.clone()),
                duration_ms: record.map(|r| r.duration_ms),
                stale: match (record, rendered) {
                    (Some(r), Some(text)) => Some(hash(&text) != r.script_hash),
                    _ => None,
                },
            }
        })
        .collect()
}

pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "CELL",
        "ID",
        "LAST RESULT",
        "EXIT",
        "FINISHED (UTC)",
        "TOOK",
        "CHANGED SINCE",
    ]
    .map(String::from)
    .to_vec()];
    for row in rows {
        let last = match row.last {
            None => "never run".to_string(),
            Some(status) => status.name().to_string(),
        };
        lines.push(vec![
            row.number.to_string(),
            row.id.clone().unwrap_or_else(|| "-".into()),
            last,
            row.exit.map_or("-".into(), |e| e.to_string()),
            row.finished_at.clone().unwrap_or_else(|| "-".into()),
            row.duration_ms.map_or("-".into(), |ms| {
                crate::duration::format_duration(std::time::Duration::from_millis(ms))
            }),
            match row.stale {
                Some(true) => "stale".into(),
                Some(false) => "no".into(),
                None => "?".into(),
            },
        ]);
    }
    crate::table::render(&lines, &[0])
}
