//! What a PowerShell cell reads and assigns. pwsh cells each run in a
//! process of their own, so a runbook variable reaches them only through
//! the environment (`$env:NAME`), and a variable one pwsh cell assigns is
//! gone in the next.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use crate::diagnostic::Diagnostic;
use crate::document::{Interpreter, Runbook};
use crate::lines::LineIndex;

/// Variables PowerShell sets itself.
const AUTOMATIC: [&str; 22] = [
    "true",
    "false",
    "null",
    "_",
    "psitem",
    "args",
    "input",
    "this",
    "error",
    "lastexitcode",
    "psscriptroot",
    "pscommandpath",
    "host",
    "home",
    "pwd",
    "matches",
    "myinvocation",
    "pid",
    "psversiontable",
    "erroractionpreference",
    "foreach",
    "switch",
];

/// A pwsh cell's variables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PwshVariables {
    /// `$env:NAME` it reads.
    pub env: BTreeSet<String>,
    /// `$name` it reads (lower case, as PowerShell compares them), with
    /// the byte offset of the first read.
    pub reads: Vec<(String, usize)>,
    /// `$name = ...` it assigns (lower case).
    pub assigns: BTreeSet<String>,
}

fn env_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)\$env:([A-Za-z_][A-Za-z0-9_]*)").expect("valid regex"))
}

fn variable_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\$([A-Za-z_][A-Za-z0-9_]*)(:?)").expect("valid regex"))
}

fn assignment_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^\s*(?:\[[^\]]+\]\s*)?\$([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|\+=|-=)[^=]")
            .expect("valid regex")
    })
}

/// Reads a pwsh cell's code (comments are not told apart).
pub fn variables(code: &str) -> PwshVariables {
    let mut found = PwshVariables::default();
    for c in env_re().captures_iter(code) {
        found.env.insert(c[1].to_string());
    }
    for c in assignment_re().captures_iter(code) {
        found.assigns.insert(c[1].to_ascii_lowercase());
    }
    let mut seen = BTreeSet::new();
    for c in variable_re().captures_iter(code) {
        // `$env:X`, `$script:x`: a scope or drive, not a plain variable.
        if !c[2].is_empty() {
            continue;
        }
        let name = c[1].to_ascii_lowercase();
        let at = c.get(0).expect("match").start();
        // A variable the cell assigns itself is its own business.
        if AUTOMATIC.contains(&name.as_str()) || found.assigns.contains(&name) {
            continue;
        }
        if seen.insert(name.clone()) {
            found.reads.push((name, at));
        }
    }
    found
}

/// Warnings for pwsh cells: a `$name` that only an earlier pwsh cell
/// assigns (empty here), and a runbook variable read as `$NAME` rather than
/// `$env:NAME` (also empty).
pub fn warnings(source: &str, runbook: &Runbook, known: &BTreeSet<String>) -> Vec<Diagnostic> {
    let index = LineIndex::new(source);
    let mut assigned_by: Vec<(String, String)> = Vec::new();
    let mut diagnostics = Vec::new();
    for cell in &runbook.cells {
        if cell.interpreter() != Some(Interpreter::Pwsh) || cell.options.skip {
            continue;
        }
        let vars = variables(&cell.body);
        for (name, at) in &vars.reads {
            let line = cell.line + 1 + cell.body[..*at].matches('\n').count();
            let span = crate::analysis::span_in_line(source, &index, line, &format!("${name}"));
            if let Some(known_name) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                diagnostics.push(
                    Diagnostic::warning(
                        format!("${name} in a pwsh cell is a PowerShell variable, not the runbook variable {known_name}: it is empty here"),
                        span,
                    )
                    .label("read here")
                    .help(format!("read it from the environment: $env:{known_name}")),
                );
            } else if let Some((_, definer)) = assigned_by.iter().find(|(n, _)| n == name) {
                diagnostics.push(
                    Diagnostic::warning(
                        format!("${name} is assigned in pwsh cell {definer}, but pwsh cells do not share a process: it is empty here"),
                        span,
                    )
                    .label("read here")
                    .help(format!("print it in cell {definer} and capture it (`capture=NAME`), then read $env:NAME here; or assign it again")),
                );
            }
        }
        for name in vars.assigns {
            if !assigned_by.iter().any(|(n, _)| *n == name) {
                assigned_by.push((name, cell.name()));
            }
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_assignments_and_variables() {
        let vars = variables(
            "$rg = $env:DNS_RG\nWrite-Output \"$rg $Other $true $env:HOME $script:x\"\n$n += 1\n",
        );
        assert_eq!(
            vars.env,
            ["DNS_RG", "HOME"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(
            vars.assigns,
            ["n", "rg"].iter().map(|s| s.to_string()).collect()
        );
        let reads: Vec<&str> = vars.reads.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(reads, ["other"]);
    }
}
