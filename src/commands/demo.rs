//! `constructicon demo`: one command, nothing to install. A megatron on an
//! embedded store in a local folder, one worker in the same process, the
//! example repo created as a local git repo and registered, one build forced.
//! It prints where to look and stays up until ctrl-c.

use crate::access::people;
use crate::cli::DemoArgs;
use crate::config::{diagnostic, evaluate_cybertron, Limits};
use crate::megatron::queue::ForceRequest;
use crate::megatron::state::{Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
use crate::process::{init_tracing, shutdown_signal};
use crate::server::serve_state;
use crate::token::{random_secret, secret_hash};
use anyhow::{bail, Context as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const CYBERTRON: &str = include_str!("../../examples/demo/cybertron.rhai");
const HELLO: &str = include_str!("../../examples/demo/hello/constructicon.rhai");
/// What the demo adds to the example config: it runs one worker on this
/// machine and reaches no network, so the builders that could not run here
/// (deps from example.com, the repo's own laptop worker) are left out.
const DEMO_ONLY: &str = r#"
// Added by `constructicon demo`: only builders that can run on this machine.
constructicon.builders.remove("deps");
constructicon.builders.remove("mine");
constructicon.workers = #{};
"#;
/// The demo's worker, as the example cybertron declares it.
const WORKER: &str = "local";
/// The person the demo logs in: an operator, as its cybertron declares.
const PERSON: &str = "demo";
/// The build forced at start.
const FORCED: &str = "hello-basic";

/// Creates (or updates) the example repo as a local git repo with one commit
/// holding the example config.
fn example_repo(dir: &Path) -> anyhow::Result<()> {
    let repo = match git2::Repository::open(dir) {
        Ok(repo) => repo,
        Err(_) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut options = git2::RepositoryInitOptions::new();
            options.initial_head("main");
            git2::Repository::init_opts(dir, &options)
                .with_context(|| format!("creating a git repo in {}", dir.display()))?
        }
    };
    std::fs::write(
        dir.join("constructicon.rhai"),
        format!("{HELLO}{DEMO_ONLY}"),
    )
    .context("writing the example config")?;
    let mut index = repo.index().context("opening the index")?;
    index
        .add_path(Path::new("constructicon.rhai"))
        .context("adding the example config")?;
    index.write().context("writing the index")?;
    let tree_id = index.write_tree().context("writing the tree")?;
    let tree = repo.find_tree(tree_id).context("reading the tree")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
        return Ok(());
    }
    let signature = git2::Signature::now("constructicon demo", "demo@constructicon.invalid")
        .context("signing")?;
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        "the example repo",
        &tree,
        &parents,
    )
    .context("committing the example config")?;
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    init_tracing("warn");
    let evaluation = evaluate_cybertron(
        "examples/demo/cybertron.rhai",
        CYBERTRON.as_bytes().to_vec(),
        &Limits::default(),
    );
    let Some(mut cybertron) = evaluation.value else {
        eprint!(
            "{}",
            diagnostic::render(&evaluation.errors, &evaluation.sources)
        );
        bail!("the demo's cybertron has errors");
    };
    let data = args.data.clone();
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let data = data
        .canonicalize()
        .with_context(|| format!("reading {}", data.display()))?;
    let repo_dir = data.join("hello");
    example_repo(&repo_dir)?;
    // The demo's megatron takes its own local repo, and nothing else local.
    cybertron
        .spec
        .repos
        .allow
        .push(repo_dir.display().to_string());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {} (pass --listen ADDR for another)", args.listen))?;
        let address = listener.local_addr().context("reading the listening address")?;
        let options = Options {
            data_dir: data.join("megatron"),
            cybertron,
            timing: Timing::default(),
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            cybertron_path: None,
        };
        let state = tokio::task::spawn_blocking(move || State::open(options)).await??;
        let token = random_secret()?;
        let hash = secret_hash(&token);
        state.blocking(move |s| s.store.put_token_hash(WORKER, &hash)).await?;
        // The megatron stops after the worker (see below), not on the signal.
        let (stop_megatron, megatron_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_state(listener, state.clone(), async move {
            let _ = megatron_stopped.await;
        }));

        let url = repo_dir.display().to_string();
        let repo = state.blocking(move |s| s.add_repo(&url, None)).await?;
        if let Some(error) = &repo.record.error {
            bail!("the example repo's config has errors: {}", error.message);
        }

        let stop_worker = Arc::new(AtomicBool::new(false));
        let worker_config = crate::worker::WorkerConfig::new(
            &format!("http://{address}"),
            WORKER,
            &token,
            data.join("worker"),
        );
        let worker_stop = stop_worker.clone();
        let worker = std::thread::spawn(move || crate::worker::run(worker_config, worker_stop));

        let build = state
            .blocking(|s| s.force(FORCED, ForceRequest::default(), Some(PERSON)))
            .await?;
        // The newcomer is the demo's operator: a one-time link logs the
        // browser in, the token serves the command line.
        let link = state.blocking(|s| people::login_link(s, PERSON, 60)).await?;
        let person_token = state.blocking(|s| people::issue_person_token(s, PERSON)).await?;
        state.queue_changed.notify_waiters();
        state.announce();
        println!("constructicon demo is up: http://{address}/");
        println!("  megatron data: {}", data.join("megatron").display());
        println!("  example repo:  {} (builders: {})", repo_dir.display(), repo.graph.as_ref().map(|g| g.graph.builders.len()).unwrap_or(0));
        println!("  worker \"{WORKER}\" runs builds in {}", data.join("worker").display());
        println!("  forced {FORCED} #{}: http://{address}/api/v1/builds/{}", build.number, build.id);
        println!("  log in as {PERSON} (an operator: force, cancel, rebuild), once: http://{address}/login/link/{link}");
        println!("  force from the command line:");
        println!("    export CONSTRUCTICON_MEGATRON=http://{address} CONSTRUCTICON_USER_TOKEN={}", person_token.token);
        println!("    constructicon force hello-params -p greeting=hi --wait");
        println!("ctrl-c to stop");
        shutdown_signal().await;
        // The worker goes first, giving back a build it runs, so the
        // megatron never sees it vanish; then the megatron, quietly.
        stop_worker.store(true, Ordering::SeqCst);
        let joined = tokio::task::spawn_blocking(move || worker.join()).await;
        if let Ok(Ok(Err(e))) = joined {
            eprintln!("worker: {e:#}");
        }
        let _ = stop_megatron.send(());
        server.await.context("the megatron task")?
    })?;
    Ok(ExitCode::SUCCESS)
}
