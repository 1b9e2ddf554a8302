//! The command line: clap types, one variant per command of DESIGN.md's table.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "constructicon",
    version,
    about = "A continuous-integration system whose build descriptions are sandboxed Rhai scripts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: evaluate a repo's constructicon.rhai (merged with a cybertron)
    /// and print its builder graph. Exit 0 when valid, 1 on config errors,
    /// 2 on usage errors.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A repo folder or a constructicon.rhai file.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The maintainers' cybertron.rhai; without it a built-in one with a single
    /// local worker is used.
    #[arg(long, value_name = "FILE")]
    pub cybertron: Option<PathBuf>,
    /// Print the graph and errors as JSON.
    #[arg(long)]
    pub json: bool,
    /// The repo's name (builders are named `<repo>-<builder>`); defaults to the
    /// repo folder's name.
    #[arg(long, value_name = "REPO")]
    pub name: Option<String>,
}
