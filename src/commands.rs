//! The commands that run a server or talk to one: `megatron`, `worker`,
//! `repo`, `force`, `token` and `demo`. (`eval` lives in `eval_command`.)

use crate::cli::{
    Command, ForceArgs, MegatronAction, MegatronArgs, ReloadArgs, RepoCommand, TimingArgs,
    TokenArgs, WorkerArgs,
};
use crate::client::{parse_pairs, Client};
use crate::config::{self, diagnostic, evaluate_cybertron, Limits};
use crate::megatron::{self, Options, Timing};
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Eval(args) => Ok(crate::eval_command::run(&args)),
        Command::Megatron(args) => run_megatron(args),
        Command::Worker(args) => run_worker(args),
        Command::Repo(command) => repo(command),
        Command::Force(args) => force(args),
        Command::Token(args) => token(args),
        Command::Get(args) => crate::get_command::run(args),
        Command::Demo(args) => crate::demo::run(args),
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

impl From<&TimingArgs> for Timing {
    fn from(args: &TimingArgs) -> Timing {
        Timing {
            claim_wait: Duration::from_millis(args.claim_wait_ms),
            heartbeat: Duration::from_millis(args.heartbeat_ms),
            lease: Duration::from_millis(args.lease_ms),
            lease_check: Duration::from_millis(args.lease_check_ms),
        }
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_megatron(args: MegatronArgs) -> anyhow::Result<ExitCode> {
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
    runtime()?.block_on(async move {
        // Open the store (and write the admin token) before saying we listen,
        // so whoever reads the address finds everything in place.
        let state = tokio::task::spawn_blocking(move || megatron::State::open(options))
            .await
            .context("starting the megatron")??;
        if let Some(ms) = poll_ms {
            *megatron::write(&state.poll_every) = Some(Duration::from_millis(ms));
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        println!("megatron listening on http://{address}");
        println!(
            "admin token (for `constructicon token`): {}",
            megatron::admin_token_path(&args.data).display()
        );
        let _ = std::io::stdout().flush();
        megatron::serve_state(listener, state, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A flag set by SIGINT or SIGTERM.
pub fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

fn run_worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
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
    };
    let shutdown = shutdown_flag()?;
    crate::worker::run(config, shutdown)?;
    Ok(ExitCode::SUCCESS)
}

/// A URL as the megatron should see it: local paths made absolute.
fn absolute_url(url: &str) -> String {
    let path = Path::new(url);
    if !url.contains("://") && path.exists() {
        if let Ok(absolute) = path.canonicalize() {
            return absolute.display().to_string();
        }
    }
    url.to_string()
}

fn print_repo(repo: &Value) -> ExitCode {
    let builders = repo["builders"].as_array().map_or(0, Vec::len);
    println!(
        "repo {}: {} builders at {}",
        repo["name"].as_str().unwrap_or("?"),
        builders,
        repo["commit"].as_str().unwrap_or("no commit yet")
    );
    if let Some(names) = repo["builders"].as_array() {
        for name in names {
            println!("  {}", name.as_str().unwrap_or("?"));
        }
    }
    if repo["error"].is_null() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: {}",
        repo["error"]["message"].as_str().unwrap_or("?")
    );
    if let Some(errors) = repo["error"]["errors"].as_array() {
        for error in errors {
            if let Ok(diagnostic) = serde_json::from_value::<config::Diagnostic>(error.clone()) {
                eprintln!("  {diagnostic}");
            }
        }
    }
    if repo["graph"].is_object() {
        eprintln!("the last good graph keeps serving");
    }
    ExitCode::from(1)
}

fn repo(command: RepoCommand) -> anyhow::Result<ExitCode> {
    match command {
        RepoCommand::Add {
            url,
            branch,
            address,
        } => {
            let client = Client::new(&address.megatron);
            let body = json!({ "url": absolute_url(&url), "branch": branch });
            let repo = Client::ok(
                client.post("/api/v1/repos", &body, None)?,
                "adding the repo",
            )?;
            Ok(print_repo(&repo))
        }
        RepoCommand::Refresh { name, address } => {
            let client = Client::new(&address.megatron);
            let path = format!("/api/v1/repos/{name}/refresh");
            let repo = Client::ok(client.post(&path, &json!({}), None)?, "refreshing the repo")?;
            Ok(print_repo(&repo))
        }
    }
}

fn force(args: ForceArgs) -> anyhow::Result<ExitCode> {
    let parameters = parse_pairs(&args.parameters, "-p")?;
    let revisions = parse_pairs(&args.revisions, "-r")?;
    let client = Client::new(&args.address.megatron);
    let by = std::env::var("USER").ok();
    let body = json!({ "parameters": parameters, "revisions": revisions, "by": by });
    let path = format!("/api/v1/builders/{}/force", args.builder);
    let forced = Client::ok(client.post(&path, &body, None)?, "forcing the build")?;
    let id = forced["build"]
        .as_u64()
        .context("the megatron's answer has no build id")?;
    println!("build {id}: {} #{}", args.builder, forced["number"]);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut reported = 0;
    loop {
        let build = Client::ok(
            client.get(&format!("/api/v1/builds/{id}"))?,
            "following the build",
        )?;
        let steps = build["steps"].as_array().cloned().unwrap_or_default();
        while reported < steps.len() && !steps[reported]["result"].is_null() {
            let step = &steps[reported];
            println!(
                "  {}: {}{}",
                step["name"].as_str().unwrap_or("?"),
                step["result"].as_str().unwrap_or("?"),
                step["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            reported += 1;
        }
        if build["state"] == "finished" {
            let result = build["result"].as_str().unwrap_or("?");
            let reason = build["result_reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            println!("build {id}: {result}{reason}");
            return Ok(if matches!(result, "success" | "warnings") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The admin token, given or read from the megatron's data dir.
fn admin_token(given: &Option<String>, file: &Path) -> anyhow::Result<String> {
    match given {
        Some(token) => Ok(token.clone()),
        None => Ok(std::fs::read_to_string(file)
            .with_context(|| {
                format!(
                    "reading the admin token from {} (the megatron's data dir; or pass --admin-token)",
                    file.display()
                )
            })?
            .trim()
            .to_string()),
    }
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

fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let admin = admin_token(&args.admin_token, &args.admin_token_file)?;
    let client = Client::new(&args.address.megatron);
    let path = format!("/api/v1/workers/{}/token", args.worker);
    let issued = Client::ok(
        client.post(&path, &json!({}), Some(&admin))?,
        "issuing the token",
    )?;
    println!(
        "{}",
        issued["token"]
            .as_str()
            .context("the megatron's answer has no token")?
    );
    if issued["known"] == false {
        eprintln!(
            "note: no cybertron or registered repo declares a worker named {} yet",
            args.worker
        );
    }
    Ok(ExitCode::SUCCESS)
}
