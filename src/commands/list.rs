//! `runbook list`: one row per cell.

use serde::Serialize;

use crate::analysis::{known_names, uses};
use crate::document::Runbook;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub id: Option<String>,
    pub lang: String,
    pub captures: Vec<String>,
    pub uses: Vec<String>,
    pub line: usize,
    pub first_line: String,
}

pub fn rows(runbook: &Runbook) -> Vec<Row> {
    let known = known_names(runbook);
    runbook
        .cells
        .iter()
        .map(|cell| Row {
            number: cell.number,
            id: cell.id.clone(),
            lang: cell.lang.clone(),
            captures: cell
                .options
                .capture
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            uses: uses(cell, &known).into_iter().collect(),
            line: cell.line,
            first_line: cell.first_line().to_string(),
        })
        .collect()
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let mut lines = vec![
        ["#", "ID", "LANG", "CAPTURES", "USES", "LINE", "FIRST LINE"]
            .map(String::from)
            .to_vec(),
    ];
    for row in rows {
        lines.push(vec![
            row.number.to_string(),
            row.id.clone().unwrap_or_else(|| "-".into()),
            row.lang.clone(),
            dash(&row.captures),
            dash(&row.uses),
            row.line.to_string(),
            row.first_line.clone(),
        ]);
    }
    crate::table::render(&lines, &[0, 5])
}
