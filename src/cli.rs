//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Execute Markdown runbooks like notebooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a runbook's cells: number, id, language, captures, variables used
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The runbook
    pub file: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}
