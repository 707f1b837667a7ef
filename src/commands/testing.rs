//! `runbook test`: documentation that tests itself. Each runbook runs in a
//! scratch copy of its folder (replaying fixtures when it has them), and
//! each cell's fresh output is compared with the block recorded under it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use regex::Regex;

use crate::loader::{load, Loaded};
use crate::snapshot::{diff, matches};
use crate::writer::{apply, Edit, Output};

/// How to test.
#[derive(Debug, Clone)]
pub struct Options {
    pub replay: Option<PathBuf>,
    pub update: bool,
    pub jobs: usize,
    pub color: bool,
    /// What a file with no cell to run is.
    pub no_tests: crate::cli::NoTests,
}

/// The verdict on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellVerdict {
    pub name: String,
    pub outcome: Outcome,
    /// Why it failed (or was updated), with a diff where there is one.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// Did not run, as the document records: an earlier cell's recorded
    /// failure stops the run there, and this cell has no output recorded.
    Skipped,
    /// Mismatched, and `--update` wrote the fresh output.
    Updated,
}

/// The verdicts on one runbook, or why it could not be tested.
#[derive(Debug)]
pub struct FileResult {
    pub path: PathBuf,
    pub cells: Vec<CellVerdict>,
    pub error: Option<String>,
    pub updated: bool,
    /// The file has no cell that runs: nothing was tested.
    pub empty: bool,
}

/// A cell's fresh result, from the run's JSON events.
#[derive(Debug, Clone)]
struct Fresh {
    text: Option<String>,
    exit: i32,
    status: String,
}

pub fn test_files(files: &[PathBuf], options: &Options) -> Vec<FileResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<FileResult>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, files.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = files.get(i) else { break };
                let result = test_file(path, options);
                results.lock().expect("not poisoned")[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every file tested"))
        .collect()
}

fn test_file(path: &Path, options: &Options) -> FileResult {
    let mut result = FileResult {
        path: path.to_path_buf(),
        cells: Vec::new(),
        error: None,
        updated: false,
        empty: false,
    };
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            result.error = Some(error.render(options.color));
            return result;
        }
    };
    result.empty = !loaded
        .runbook
        .cells
        .iter()
        .any(|cell| cell.interpreter().is_some() && !cell.options.skip);
    if result.empty {
        return result;
    }
    match run_in_scratch(&loaded, options) {
        Ok(fresh) => compare(&loaded, &fresh, options, &mut result),
        Err(message) => result.error = Some(message),
    }
    result
}

/// Whether `path` falls in share `k` of `n` (1-based): a hash of the path
/// as given, so every runner that is given the same list agrees.
pub fn in_partition(path: &Path, (k, n): (u32, u32)) -> bool {
    let text = path.to_string_lossy().replace('\\', "/");
    let hash = crate::state::hash(&text);
    let number = u64::from_str_radix(&hash[..15], 16).unwrap_or(0);
    number % u64::from(n) == u64::from(k - 1)
}

/// Copies the runbook's folder, runs the copy with `--json`, and returns
/// each cell's fresh result by index.
fn run_in_scratch(loaded: &Loaded, options: &Options) -> Result<Vec<Option<Fresh>>, String> {
    let scratch = tempfile::Builder::new()
        .prefix("runbook-test-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let folder = loaded.folder();
    copy_folder(&folder, scratch.path())
        .map_err(|e| format!("cannot copy {}: {e}", folder.display()))?;
    let name = loaded
        .path
        .file_name()
        .ok_or("the runbook path has no file name")?;
    let replay = match (&options.replay, &loaded.runbook.settings.replay) {
        (Some(dir), _) => Some(std::path::absolute(dir).map_err(|e| e.to_string())?),
        (None, Some(dir)) => {
            Some(std::path::absolute(folder.join(dir)).map_err(|e| e.to_string())?)
        }
        (None, None) => None,
    };
    let binary =
        std::env::current_exe().map_err(|e| format!("cannot find the runbook binary: {e}"))?;
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg(scratch.path().join(name))
        .args(["--json", "--no-write"])
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &replay {
        // Against fixtures nothing real is touched, so confirmations hold.
        command.arg("--replay").arg(dir).arg("--yes");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot start runbook: {e}"))?;
    if output.status.code() == Some(2) {
        return Err(String::from_utf8_lossy(&output.stderr).replace(
            &scratch.path().display().to_string(),
            &folder.display().to_string(),
        ));
    }
    let mut fresh: Vec<Option<Fresh>> = vec![None; loaded.runbook.cells.len()];
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["event"] != "cell-finished" {
            continue;
        }
        let Some(index) = event["index"].as_u64().map(|i| i as usize) else {
            continue;
        };
        if let Some(slot) = fresh.get_mut(index) {
            *slot = Some(Fresh {
                text: event["recorded"].as_str().map(str::to_string),
                exit: event["exit"].as_i64().unwrap_or(0) as i32,
                status: event["status"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    Ok(fresh)
}

fn compare(loaded: &Loaded, fresh: &[Option<Fresh>], options: &Options, result: &mut FileResult) {
    let rules: Vec<(Regex, String)> = loaded
        .runbook
        .settings
        .redact
        .iter()
        .filter_map(|r| Regex::new(&r.regex).ok().map(|re| (re, r.with.clone())))
        .collect();
    let redact = |text: &str| {
        rules.iter().fold(text.to_string(), |t, (re, with)| {
            re.replace_all(&t, with.as_str()).into_owned()
        })
    };
    let mut edits = Vec::new();
    // The cell whose failure, as recorded, ended the run.
    let mut stopped_at: Option<String> = None;
    for (index, cell) in loaded.runbook.cells.iter().enumerate() {
        if cell.options.skip || !cell.options.record_output || cell.interpreter().is_none() {
            continue;
        }
        let name = cell.name();
        let Some(fresh) = &fresh[index] else {
            let verdict = match (&stopped_at, &cell.output) {
                (Some(at), None) => CellVerdict {
                    name,
                    outcome: Outcome::Skipped,
                    detail: format!("not run: the run stops at cell {at}, as recorded"),
                },
                _ => CellVerdict {
                    name,
                    outcome: Outcome::Failed,
                    detail: "did not run (an earlier cell failed)".into(),
                },
            };
            result.cells.push(verdict);
            continue;
        };
        if fresh.status == "skipped" {
            continue;
        }
        let text = fresh.text.clone().unwrap_or_default();
        let (recorded_text, recorded_exit, literal) = match &cell.output {
            Some(block) => (redact(&block.text), block.exit, block.literal),
            None => (String::new(), 0, false),
        };
        let same_text = if literal {
            recorded_text == text
        } else {
            matches(&recorded_text, &text)
        };
        let passed = recorded_exit == fresh.exit && same_text;
        if passed && fresh.status != "passed" && !cell.options.continue_on_error {
            stopped_at = Some(name.clone());
        }
        let mut detail = String::new();
        if !passed {
            if recorded_exit != fresh.exit {
                detail.push_str(&format!(
                    "exit status: recorded {recorded_exit}, fresh {}\n",
                    fresh.exit
                ));
            }
            if cell.output.is_none() {
                detail.push_str("no output is recorded under this cell; the fresh output is:\n");
                detail.push_str(&text);
                detail.push('\n');
            } else if !same_text {
                detail.push_str(&diff(&recorded_text, &text, options.color));
            }
            edits.push(Edit {
                cell: index,
                output: Output::block(text, fresh.exit),
            });
        }
        let outcome = match (passed, options.update) {
            (true, _) => Outcome::Passed,
            (false, true) => Outcome::Updated,
            (false, false) => Outcome::Failed,
        };
        result.cells.push(CellVerdict {
            name,
            outcome,
            detail,
        });
    }
    if options.update && !edits.is_empty() {
        let updated = apply(&loaded.source, &loaded.runbook, &edits);
        match crate::atomic::write_if_changed(&loaded.path, updated.as_bytes()) {
            Ok(changed) => result.updated = changed,
            Err(e) => {
                result.error = Some(format!("{}: {e}", loaded.path.display()));
                for cell in &mut result.cells {
                    if cell.outcome == Outcome::Updated {
                        cell.outcome = Outcome::Failed;
                    }
                }
            }
        }
    }
}

/// Copies a folder's tree, leaving out dot-folders and files, `target` and
/// `node_modules`.
pub fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') || name_text == "target" || name_text == "node_modules" {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_folder(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Prints the results and the `N passed, M failed, K skipped` summary;
/// returns the exit status: 1 when a cell failed (with `--update`, when
/// one failed that could not be updated) or a file had no cell to run
/// (unless `--no-tests` says otherwise), 2 when a file could not be
/// tested at all, else 0.
pub fn print(results: &[FileResult], options: &Options) -> i32 {
    let (mut passed, mut failed, mut skipped, mut updated, mut broken) = (0, 0, 0, 0, 0);
    let mut empty = 0;
    for result in results {
        let name = result.path.display();
        out_line(&format!("test {name}"));
        if result.empty {
            match options.no_tests {
                crate::cli::NoTests::Fail => {
                    empty += 1;
                    out_line(&format!(
                        "{name}: FAILED: no cell to run, so nothing was tested (--no-tests=warn or =pass allows it)"
                    ));
                }
                crate::cli::NoTests::Warn => {
                    out_line(&format!(
                        "{name}: warning: no cell to run, so nothing was tested"
                    ));
                }
                crate::cli::NoTests::Pass => {}
            }
            continue;
        }
        if let Some(error) = &result.error {
            broken += 1;
            crate::terminal::out(error);
            out_line(&format!("{name}: could not be tested"));
            if result.cells.is_empty() {
                continue;
            }
        }
        for cell in &result.cells {
            let mark = match cell.outcome {
                Outcome::Passed => {
                    passed += 1;
                    "ok"
                }
                Outcome::Failed => {
                    failed += 1;
                    "FAILED"
                }
                Outcome::Skipped => {
                    skipped += 1;
                    "skipped"
                }
                Outcome::Updated => {
                    updated += 1;
                    "updated"
                }
            };
            out_line(&format!("  cell {} ... {mark}", cell.name));
            for line in cell.detail.lines() {
                out_line(&format!("    {line}"));
            }
        }
        if result.updated {
            out_line(&format!("{name}: updated with the fresh outputs"));
        }
    }
    if updated > 0 {
        out_line(&format!("{updated} updated"));
    }
    if empty > 0 {
        out_line(&format!("{empty} file(s) with no cell to run"));
    }
    // Last, alone on its line: CI summaries read it.
    out_line(&format!(
        "{passed} passed, {failed} failed, {skipped} skipped"
    ));
    if failed > 0 || empty > 0 {
        1
    } else if broken > 0 {
        2
    } else {
        0
    }
}

fn out_line(text: &str) {
    crate::terminal::out(&format!("{text}\n"));
}
