//! The composition root: opens the megatron's state, builds the router (the
//! JSON API and the pages), starts the background loops (leases, time
//! schedulers, polling, SIGHUP reloads) and serves until the shutdown future
//! given by the caller completes. `main` passes ctrl-c, tests and the demo
//! pass their own.

use crate::megatron::leases::lease_loop;
use crate::megatron::state::{Options, State};
use anyhow::Context as _;
use std::future::Future;
use std::sync::Arc;

/// The whole HTTP surface: pages and API on one router.
pub fn app(state: Arc<State>) -> axum::Router {
    crate::web::router(state.clone()).merge(crate::http::router(state))
}

/// Runs the megatron on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = tokio::task::spawn_blocking(move || State::open(options))
        .await
        .context("starting the megatron")??;
    serve_state(listener, state, shutdown).await
}

/// Serves an opened state (the demo opens it first to set things up).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let leases = tokio::spawn(lease_loop(state.clone()));
    let timed = tokio::spawn(crate::triggers::time::time_loop(state.clone()));
    let hangups = tokio::spawn(reload_on_sighup(state.clone()));
    let polls = tokio::spawn(crate::triggers::poll::poll_loop(state.clone()));
    let result = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
    leases.abort();
    polls.abort();
    timed.abort();
    hangups.abort();
    // What was written is made durable before the process goes.
    let flushed = state.blocking(|s| s.store.flush()).await;
    result?;
    flushed.context("flushing the store")?;
    Ok(())
}

/// Reloads cybertron on every SIGHUP.
async fn reload_on_sighup(state: Arc<State>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload with `constructicon megatron reload`");
        return;
    };
    while hangup.recv().await.is_some() {
        match state.blocking(|s| s.reload_cybertron()).await {
            Ok(repos) => tracing::info!(repos, "cybertron reloaded"),
            Err(e) => tracing::error!(error = %e, "cybertron not reloaded"),
        }
    }
}
