//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Execute Markdown runbooks like notebooks",
    after_help = "Examples:
  runbook new lab.md                       a starter runbook to edit
  runbook run lab.md                       run every cell, record outputs in lab.md
  runbook run lab.md --cell deploy --deps  one cell, and what it needs
  runbook run lab.md --replay fixtures/    answer az/kubectl/helm from recordings
  runbook test docs/*.md                   re-run documents, compare their outputs
  runbook check lab.md                     what is wrong, without running"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to use colour: auto (on a terminal, unless NO_COLOR; CLICOLOR_FORCE forces it), always, never
    #[arg(long, global = true, value_enum, default_value_t = crate::terminal::ColorChoice::Auto)]
    pub color: crate::terminal::ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a runbook's cells in order and record their outputs in it
    Run(Box<RunArgs>),
    /// List a runbook's cells: number, id, language, captures, variables used
    List(ListArgs),
    /// Show each cell's last result and whether it changed since
    Status(StatusArgs),
    /// Serve a runbook as a live notebook in the browser
    Serve(Box<ServeArgs>),
    /// Find what is wrong with runbooks without running them
    Check(CheckArgs),
    /// Re-run runbooks in scratch copies and compare outputs with the recorded ones
    Test(TestArgs),
    /// Turn a Jupyter (.ipynb) or Polyglot (.dib) notebook into a runbook
    Import(ImportArgs),
    /// Turn a runbook into a notebook (.ipynb, .dib) or a pipeline (GitHub Actions, Azure Pipelines)
    Export(ExportArgs),
    /// Write a small starter runbook
    New(NewArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the manual page (roff)
    Man,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The runbook to write
    pub file: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The notebook (.ipynb or .dib)
    pub notebook: PathBuf,
    /// The runbook to write
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Ipynb,
    Dib,
    GithubActions,
    AzurePipelines,
    /// `runbook test` over many runbooks as a GitHub Actions matrix
    GithubActionsTest,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The runbook (for `github-actions-test`: a glob of runbooks, such as
    /// 'docs/**/*.md')
    pub file: PathBuf,
    /// What to make of it
    #[arg(long = "to", value_enum)]
    pub to: ExportFormat,
    /// For `github-actions-test`: how many runners share the runbooks
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub partitions: u32,
    /// Where to write it (default: standard output)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The runbooks
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per diagnostic and tool
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The runbooks
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Answer az/kubectl/helm from the cassettes in DIR
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Write the fresh outputs into the documents
    #[arg(long)]
    pub update: bool,
    /// Test only share K of N of the files (stable: by a hash of each path),
    /// so N CI runners split a documentation repository
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    pub partition: Option<(u32, u32)>,
    /// Test this many files at once (default: one per core)
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// What a file with no cell to test is: a failure (default), a warning, or a pass
    #[arg(long, value_enum, default_value_t = NoTests::Fail)]
    pub no_tests: NoTests,
}

/// What `runbook test` makes of a file with nothing to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoTests {
    Fail,
    Warn,
    Pass,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The runbook
    pub file: PathBuf,
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = ServeArgs::DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on; anything but loopback lets other machines reach the page
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Open the page in the default browser
    #[arg(long)]
    pub open: bool,
    /// Set a variable (overrides params)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Read variables from a YAML, JSON or .env file
    #[arg(long = "params", value_name = "FILE")]
    pub params: Vec<PathBuf>,
    /// Set a secret variable (masked everywhere, never written to disk or sent to the page)
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secret: Vec<String>,
    /// Answer yes to cells marked `confirm` instead of asking in the page
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Cap recorded outputs: LINES, SIZE (64KiB) or both (200,64KiB)
    #[arg(long, value_name = "LIMIT")]
    pub max_output: Option<String>,
    /// Answer az/kubectl/helm calls from the cassettes in DIR
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Run the real tools even though the front matter names fixtures
    #[arg(long, conflicts_with = "replay")]
    pub no_replay: bool,
}

impl ServeArgs {
    /// The port tried first (then the next ones, when busy).
    pub const DEFAULT_PORT: u16 = 8808;
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The runbook (or a notebook: .ipynb, .dib)
    pub file: PathBuf,
    /// Set a variable (overrides params)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Read variables from a YAML, JSON or .env file
    #[arg(long = "params", value_name = "FILE")]
    pub params: Vec<PathBuf>,
    /// Set a secret variable (masked everywhere, never written to disk)
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secret: Vec<String>,
    /// Answer yes to cells marked `confirm`
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print each rendered cell and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the document alone
    #[arg(long, conflicts_with = "output")]
    pub no_write: bool,
    /// Write the executed document to FILE instead of the runbook
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when the document would change
    #[arg(long, conflicts_with_all = ["no_write", "output", "diff"])]
    pub check: bool,
    /// Write the outputs, and show what changed in the document
    #[arg(long)]
    pub diff: bool,
    /// Print one JSON event per line instead of the live display
    #[arg(long)]
    pub json: bool,
    /// Cap recorded outputs: LINES, SIZE (64KiB) or both (200,64KiB)
    #[arg(long, value_name = "LIMIT")]
    pub max_output: Option<String>,
    /// Run only this cell (id or number); repeatable
    #[arg(long, value_name = "ID")]
    pub cell: Vec<String>,
    /// Run from this cell on
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Run up to and including this cell
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,
    /// Run from the first cell that failed or did not run last time
    #[arg(long, conflicts_with_all = ["cell", "from"])]
    pub resume: bool,
    /// Also run the cells that define what the chosen cells use
    #[arg(long)]
    pub deps: bool,
    /// Answer az/kubectl/helm calls from the cassettes in DIR
    #[arg(long, value_name = "DIR", conflicts_with = "record")]
    pub replay: Option<PathBuf>,
    /// Run the real tools and record their calls into cassettes in DIR
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Run the real tools even though the front matter names fixtures
    #[arg(long, conflicts_with_all = ["replay", "record"])]
    pub no_replay: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The runbook
    pub file: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The runbook
    pub file: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `K/N` with 1 <= K <= N.
fn parse_partition(text: &str) -> Result<(u32, u32), String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("expected K/N, such as 2/4, got `{text}`"))?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("`{k}` is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("partition {k}/{n}: K must be from 1 to N"));
    }
    Ok((k, n))
}
