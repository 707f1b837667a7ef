//! What cells define and use: the static facts `list`, the undefined
//! variable check and dependency resolution share.

use std::collections::BTreeSet;

use crate::document::{Cell, Runbook};
use crate::template::{shell_references, template_variables};

/// Names the runbook itself can define: parameters, secrets and captures.
pub fn known_names(runbook: &Runbook) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = runbook
        .settings
        .params
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(runbook.settings.secrets.iter().cloned());
    names.extend(captures(runbook));
    names
}

fn captures(runbook: &Runbook) -> impl Iterator<Item = String> + '_ {
    runbook
        .cells
        .iter()
        .filter_map(|c| c.options.capture.as_ref().map(|cap| cap.name.clone()))
}

/// Variables a cell uses: every name its template reads (except `env`),
/// plus `$NAME` references in shell cells to names in `known`.
pub fn uses(cell: &Cell, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = template_variables(&cell.body).unwrap_or_default();
    used.remove("env");
    if cell.interpreter().is_some_and(|i| i.is_posix_shell()) {
        used.extend(
            shell_references(&cell.body)
                .into_iter()
                .filter(|n| known.contains(n)),
        );
    }
    used
}
