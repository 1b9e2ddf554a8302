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
    if let Command::Eval(args) = &cli.command {
        // A local eval makes no git connection, and setting the timeouts
        // would start libgit2, whose OpenSSL set-up (reading the system's
        // CA certificates) takes longer than evaluating a big config.
        if args.against.is_some() {
            git_timeouts();
        } else {
            one_malloc_arena();
        }
        return constructicon::commands::run_eval(args);
    }
    git_timeouts();
    match constructicon::commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A remote that accepts a connection and then says nothing would hold a
/// fetch (a poll, a checkout) forever: libgit2 gives up after these. They are
/// process-wide settings, so they are made here, before any thread starts.
fn git_timeouts() {
    // SAFETY: no other thread exists yet to read these settings meanwhile.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(30_000);
        let _ = git2::opts::set_server_timeout_in_milliseconds(120_000);
    }
}

/// An eval's threads mostly take turns, so they can share the main malloc
/// arena. A thread's own arena grows a page or so at a time, each step an
/// `mprotect` call: some 1,400 of them for a 1,000-builder config, about a
/// tenth of the whole eval. A process-wide setting, made before any thread
/// starts.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; no other thread
    // exists yet to allocate meanwhile.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
