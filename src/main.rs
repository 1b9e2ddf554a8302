//! The `constructicon` binary: parse the command line, run the command, map
//! the outcome to an exit code.
//!
//! Exit codes: 0 success; 1 the command ran and found errors (a config with
//! errors, a failed build); 2 usage errors (bad arguments, missing files).

use clap::Parser;
use constructicon::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => constructicon::eval_command::run(&args),
        command => match constructicon::commands::run(command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
