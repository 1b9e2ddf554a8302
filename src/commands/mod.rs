//! What each command of the command line does. `main` hands the parsed
//! command to [`run`]; each file below is one command (or a family).

pub mod demo;
pub mod encrypt;
pub mod eval;
pub mod eval_against;
mod eval_json;
pub mod follow;
pub mod force;
pub mod get;
pub mod inspect;
pub mod login;
pub mod megatron;
pub mod pulls;
pub mod repo;
pub mod token;
pub mod worker;

use crate::cli::{Command, EvalArgs};
use std::process::ExitCode;

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Eval(args) => Ok(run_eval(&args)),
        Command::Megatron(args) => megatron::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Repo(command) => repo::run(command),
        Command::Force(args) => force::run(args),
        Command::Builders(args) => inspect::builders(args),
        Command::Builds(args) => inspect::builds(args),
        Command::Build(args) => inspect::build(args),
        Command::Log(args) => follow::log(args),
        Command::Cancel(args) => inspect::cancel(args),
        Command::Rebuild(args) => inspect::rebuild(args),
        Command::Pulls(args) => pulls::list(args),
        Command::Approve(args) => pulls::approve(args),
        Command::Queue(args) => inspect::queue(args),
        Command::Workers(args) => inspect::workers(args),
        Command::Usage(args) => inspect::usage(args),
        Command::Token(args) => token::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Encrypt(args) => encrypt::run(args),
        Command::Get(args) => get::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

/// `constructicon eval`: here, or with `--against`, on a megatron.
pub fn run_eval(args: &EvalArgs) -> ExitCode {
    match &args.against {
        Some(megatron) => eval_against::run(args, megatron),
        None => eval::run(args),
    }
}
