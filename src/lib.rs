//! runbook executes Markdown runbooks the way a notebook executes cells and
//! records each cell's output back into the document.
//!
//! The parts, one folder each: [`document`] (the pure parser, the model
//! and the writer that splices outputs into the original bytes), [`run`]
//! (the executor, its kernels, variables, templates, secrets, state and
//! sinks), [`replay`] (cassettes and shims), [`notebooks`] (notebooks and
//! pipelines in and out), [`serve`] (the live notebook in the browser) and
//! [`commands`] (one module a command).

pub mod cli;
pub mod commands;
pub mod diagnostic;
pub mod document;
pub mod error;
pub mod notebooks;
pub mod replay;
pub mod run;
pub mod serve;

// Each part's modules, also by their own names.
pub use commands::{check, list, status, table, testing};
pub use document::{
    atomic, attrs, duration, frontmatter, lines, loader, parser, paths, pieces, snapshot, suggest,
    writer,
};
pub use notebooks::{notebook, workflow};
pub use replay::{cassette, interceptor, shim};
pub use run::{
    analysis, events, executor, kernel, lock, output, preflight, procs, pwsh, quoting, recorder,
    secrets, selection, state, template, terminal, tools, vars,
};

use std::io::IsTerminal;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    if let Some(code) = shim::main_if_shim() {
        return code;
    }
    let cli = Cli::parse();
    terminal::set_color_choice(cli.color);
    if !matches!(cli.command, Command::Run(_)) {
        // Like other command-line tools, end quietly when the reader of
        // the output goes away (`runbook list x.md | head -1`). A run
        // instead carries on: it has processes to end and outputs to record.
        // SAFETY: restoring a signal's default disposition; no memory effects.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprint!("{}", error.render(color_on_stderr()));
            error.exit_code()
        }
    }
}

/// Rows as JSON lines, or as the table `table` lays out.
fn print_rows<T: serde::Serialize>(rows: &[T], json: bool, table: fn(&[T]) -> String) {
    if json {
        for row in rows {
            println!("{}", serde_json::to_string(row).expect("rows serialise"));
        }
    } else {
        print!("{}", table(rows));
    }
}

/// Writes an export to `output`, or prints it.
fn write_export(output: Option<&std::path::Path>, text: &str) -> Result<i32> {
    match output {
        Some(path) => {
            atomic::write(path, text.as_bytes()).map_err(|e| error::Error::io(path, e))?
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// A pipeline export refused: at the front matter entry at fault, or as a
/// plain error when the file's path is.
fn refused_export(loaded: &loader::Loaded, refusal: workflow::Refusal) -> error::Error {
    let Some(name) = refusal.name else {
        return error::Error::Usage(refusal.message);
    };
    let front = loaded.runbook.front_matter.clone().unwrap_or(0..0);
    let span = match loaded.source[front.clone()].find(&format!("{name}:")) {
        Some(_) => loaded.front_matter_key(&name),
        None => loaded.source[front.clone()]
            .find(&name)
            .map_or(front.clone(), |at| {
                front.start + at..front.start + at + name.len()
            }),
    };
    error::Error::Document {
        path: loaded.path.display().to_string(),
        source_text: loaded.source.clone(),
        diagnostics: vec![diagnostic::Diagnostic::error(refusal.message, span)],
    }
}

fn color_on_stderr() -> bool {
    terminal::color(std::io::stderr().is_terminal())
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => commands::run::run(&args),
        Command::Serve(args) => commands::serve::serve(&args),
        Command::Check(args) => {
            let reports: Vec<check::Report> = args.files.iter().map(|f| check::check(f)).collect();
            Ok(check::print(&reports, args.json, color_on_stderr()))
        }
        Command::Test(args) => {
            let options = testing::Options {
                replay: args.replay.clone(),
                update: args.update,
                jobs: args
                    .jobs
                    .map(usize::from)
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                color: terminal::color(std::io::stdout().is_terminal()),
                no_tests: args.no_tests,
            };
            let files: Vec<std::path::PathBuf> = match args.partition {
                Some(share) => {
                    let mine: Vec<_> = args
                        .files
                        .iter()
                        .filter(|f| testing::in_partition(f, share))
                        .cloned()
                        .collect();
                    eprintln!(
                        "partition {}/{}: {} of {} files",
                        share.0,
                        share.1,
                        mine.len(),
                        args.files.len()
                    );
                    mine
                }
                None => args.files.clone(),
            };
            let results = testing::test_files(&files, &options);
            Ok(testing::print(&results, &options))
        }
        Command::Import(args) => {
            // A link counts as a file, even one whose target is missing.
            if std::fs::symlink_metadata(&args.output).is_ok() {
                let folder = paths::folder_of(&args.output);
                if !notebook::stays_in(&args.output, folder) {
                    return Err(error::Error::Usage(format!(
                        "{} links outside {}; not written",
                        args.output.display(),
                        folder.display()
                    )));
                }
                if !args.force {
                    return Err(error::Error::Usage(format!(
                        "{} exists; pass --force to replace it",
                        args.output.display()
                    )));
                }
            }
            let read = notebook::read(&args.notebook)?;
            for note in &read.notes {
                eprintln!("{}: {note}", args.notebook.display());
            }
            notebook::write_files(&read.files, paths::folder_of(&args.output), args.force)?;
            atomic::write(&args.output, read.markdown.as_bytes())
                .map_err(|e| error::Error::io(&args.output, e))?;
            let parsed = parser::parse(&read.markdown).ok();
            if let Some(runbook) = &parsed {
                // What will not work as the notebook meant it (pwsh cells
                // do not share variables), said now.
                let known = analysis::known_names(runbook);
                let warnings = pwsh::warnings(&read.markdown, runbook, &known);
                eprint!(
                    "{}",
                    diagnostic::render_all(
                        &warnings,
                        &args.output.display().to_string(),
                        &read.markdown,
                        color_on_stderr()
                    )
                );
            }
            let cells = parsed.map_or(0, |r| r.cells.len());
            let plural = if cells == 1 { "" } else { "s" };
            eprintln!("wrote {} ({cells} cell{plural})", args.output.display());
            Ok(0)
        }
        Command::Export(args) => {
            if args.to == cli::ExportFormat::GithubActionsTest {
                let pattern = args.file.to_string_lossy();
                let text = workflow::github_actions_test(&pattern, args.partitions)
                    .map_err(error::Error::Usage)?;
                return write_export(args.output.as_deref(), &text);
            }
            let loaded = loader::load(&args.file)?;
            let text = match args.to {
                cli::ExportFormat::Ipynb => {
                    let notebook = notebook::to_ipynb(&loaded.source, &loaded.runbook);
                    serde_json::to_string_pretty(&notebook).expect("notebooks serialise") + "\n"
                }
                cli::ExportFormat::Dib => notebook::to_dib(&loaded.source, &loaded.runbook),
                cli::ExportFormat::GithubActions => {
                    let title = paths::name_of(&loaded.path);
                    workflow::github_actions(&loaded.path, &loaded.runbook, &title)
                        .map_err(|refusal| refused_export(&loaded, refusal))?
                }
                cli::ExportFormat::AzurePipelines => {
                    workflow::azure_pipelines(&loaded.path, &loaded.runbook)
                        .map_err(|refusal| refused_export(&loaded, refusal))?
                }
                cli::ExportFormat::GithubActionsTest => unreachable!("exported above"),
            };
            write_export(args.output.as_deref(), &text)
        }
        Command::New(args) => {
            if args.file.exists() && !args.force {
                return Err(error::Error::Usage(format!(
                    "{} exists; pass --force to replace it",
                    args.file.display()
                )));
            }
            atomic::write(&args.file, commands::new::STARTER.as_bytes())
                .map_err(|e| error::Error::io(&args.file, e))?;
            eprintln!(
                "wrote {}: `runbook check {0}`, then `runbook run {0}`",
                args.file.display()
            );
            Ok(0)
        }
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "runbook", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .map_err(|e| error::Error::Usage(format!("cannot write the manual page: {e}")))?;
            Ok(0)
        }
        Command::Status(args) => {
            let loaded = loader::load(&args.file)?;
            let state = state::load_for(&loaded.path).map_err(error::Error::Usage)?;
            print_rows(&status::rows(&loaded, &state), args.json, status::table);
            Ok(0)
        }
        Command::List(args) => {
            let loaded = loader::load(&args.file)?;
            print_rows(&list::rows(&loaded.runbook), args.json, list::table);
            Ok(0)
        }
    }
}
