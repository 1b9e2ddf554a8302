//! `constructicon worker`: claim builds from a megatron and run them until
//! SIGINT or SIGTERM.

use crate::cli::WorkerArgs;
use crate::process::{init_tracing, shutdown_flag};
use anyhow::{bail, Context as _};
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    init_tracing("info");
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the token from {}", file.display()))?
            .trim()
            .to_string(),
        (None, None) => {
            bail!("a worker needs its token: --token, --token-file or CONSTRUCTICON_TOKEN")
        }
    };
    let config = crate::worker::WorkerConfig {
        megatron: args.address.megatron.clone(),
        name: args.name.clone(),
        token,
        workdir: args.workdir.clone(),
        claim_wait: Duration::from_millis(args.claim_wait_ms),
        kill_grace: Duration::from_millis(args.kill_grace_ms),
        max_backoff: Duration::from_secs(5),
        log_queue_bytes: args.log_queue_kb << 10,
        spool_bytes: args.spool_mb << 20,
    };
    let shutdown = shutdown_flag()?;
    crate::worker::run(config, shutdown)?;
    Ok(ExitCode::SUCCESS)
}
