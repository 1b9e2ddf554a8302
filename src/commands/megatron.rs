//! `constructicon megatron`: check cybertron, open the store, listen, serve
//! until SIGINT or SIGTERM; and `megatron reload`, which asks a running one
//! to read its cybertron again.

use super::token::admin_token;
use crate::cli::{MegatronAction, MegatronArgs, ReloadArgs, TimingArgs};
use crate::client::Client;
use crate::config::{diagnostic, evaluate_cybertron, Limits};
use crate::megatron::state::{admin_token_path, Options, State, Timing};
use crate::process::{init_tracing, runtime, shutdown_signal};
use crate::server::{serve_state_with, HttpLimits};
use crate::sync::write;
use anyhow::Context as _;
use serde_json::json;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

impl From<&TimingArgs> for Timing {
    fn from(args: &TimingArgs) -> Timing {
        Timing {
            claim_wait: Duration::from_millis(args.claim_wait_ms),
            heartbeat: Duration::from_millis(args.heartbeat_ms),
            lease: Duration::from_millis(args.lease_ms),
            lease_check: Duration::from_millis(args.lease_check_ms),
            retention_check: Duration::from_millis(args.retention_check_ms),
            usage_check: Duration::from_millis(args.usage_check_ms),
        }
    }
}

pub fn run(args: MegatronArgs) -> anyhow::Result<ExitCode> {
    if let Some(MegatronAction::Reload(reload)) = args.action {
        return reload_megatron(reload);
    }
    let Some(cybertron_path) = args.cybertron.clone() else {
        eprintln!("error: the megatron needs --cybertron FILE");
        return Ok(ExitCode::from(2));
    };
    init_tracing("info");
    let bytes = match std::fs::read(&cybertron_path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", cybertron_path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let evaluation = evaluate_cybertron(
        &cybertron_path.display().to_string(),
        bytes,
        &Limits::default(),
    );
    let Some(cybertron) = evaluation.value else {
        eprint!(
            "{}",
            diagnostic::render(&evaluation.errors, &evaluation.sources)
        );
        eprintln!("error: the cybertron has errors; the megatron does not start");
        return Ok(ExitCode::from(1));
    };
    let listen = args
        .listen
        .clone()
        .or_else(|| cybertron.spec.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:9120".to_string());
    let options = Options {
        data_dir: args.data.clone(),
        cybertron,
        timing: Timing::from(&args.timing),
        max_artifact_bytes: args.max_artifact_mb.saturating_mul(1 << 20),
        cybertron_path: Some(cybertron_path),
    };
    let poll_ms = args.timing.poll_ms;
    let (header_timeout_ms, max_connections) = (args.header_timeout_ms, args.max_connections);
    runtime()?.block_on(async move {
        // Open the store (and write the admin token) before saying we listen,
        // so whoever reads the address finds everything in place.
        let state = tokio::task::spawn_blocking(move || State::open(options))
            .await
            .context("starting the megatron")??;
        if let Some(ms) = poll_ms {
            *write(&state.poll_every) = Some(Duration::from_millis(ms));
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        // Whoever started us may have stopped reading: that is no reason
        // to stop serving.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "megatron listening on http://{address}");
        let _ = writeln!(
            out,
            "admin token (for `constructicon token`): {}",
            admin_token_path(&args.data).display()
        );
        let _ = out.flush();
        let limits = HttpLimits {
            header_timeout: Duration::from_millis(header_timeout_ms),
            max_connections,
            ..HttpLimits::default()
        };
        serve_state_with(listener, state, limits, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `constructicon megatron reload`: cybertron read again, every repo re-evaluated.
fn reload_megatron(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let admin = admin_token(&args.admin_token, &args.admin_token_file)?;
    let client = Client::new(&args.address.megatron);
    let reloaded = Client::ok(
        client.post("/api/v1/admin/reload", &json!({}), Some(&admin))?,
        "reloading",
    )?;
    println!(
        "cybertron reloaded; {} repos re-evaluated",
        reloaded["repos"]
    );
    Ok(ExitCode::SUCCESS)
}
