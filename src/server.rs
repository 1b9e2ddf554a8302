//! The composition root: opens the megatron's state, builds the router (the
//! JSON API and the pages), starts the background loops (leases, time
//! schedulers, polling, commit statuses, SIGHUP reloads) and serves until the shutdown future
//! given by the caller completes. `main` passes ctrl-c, tests and the demo
//! pass their own.

use crate::megatron::leases::lease_loop;
use crate::megatron::state::{Options, State};
use anyhow::Context as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;

/// How the HTTP server protects itself from connections that stall or
/// pile up.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this long, and an
    /// idle kept-alive connection is closed after it.
    pub header_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed
    /// instead of taking the process's last file descriptors.
    pub max_connections: usize,
    /// How long a shutdown waits for requests under way.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            shutdown_grace: Duration::from_millis(700),
        }
    }
}

/// The whole HTTP surface: pages and API on one router.
pub fn app(state: Arc<State>) -> axum::Router {
    crate::web::router(state.clone())
        .merge(crate::http::router(state.clone()))
        // Each route's own layer: it sees the route's template.
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::metrics::measure,
        ))
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
    serve_state_with(listener, state, HttpLimits::default(), shutdown).await
}

/// [`serve_state`] with limits of the caller's choosing.
pub async fn serve_state_with(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let leases = tokio::spawn(lease_loop(state.clone()));
    let retention = tokio::spawn(crate::megatron::horizon::retention_loop(state.clone()));
    let usage = tokio::spawn(crate::megatron::usage::usage_loop(state.clone()));
    let timed = tokio::spawn(crate::triggers::time::time_loop(state.clone()));
    let hangups = tokio::spawn(reload_on_sighup(state.clone()));
    let polls = tokio::spawn(crate::triggers::poll::poll_loop(state.clone()));
    let statuses = tokio::spawn(crate::reporter::report_loop(state.clone()));
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        // Long-polls and live streams answer and end now, so the requests
        // under way finish at once.
        stopping.stop_serving();
    };
    let result = serve_http(listener, app(state.clone()), &limits, shutdown).await;
    leases.abort();
    retention.abort();
    usage.abort();
    polls.abort();
    timed.abort();
    hangups.abort();
    statuses.abort();
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

/// The most connections this process can hold open: the soft descriptor
/// limit (raised to the hard one first), less a reserve for the store, the
/// repo mirrors, logs and artifacts.
fn connection_cap(wanted: usize) -> usize {
    const RESERVE: u64 = 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted.min(768);
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let room = soft.saturating_sub(RESERVE).max(16);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// What a connection over the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 61\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":\"the megatron has too many connections; try again\"}\n";

/// Serves HTTP/1 on `listener` until `shutdown`: each connection gets the
/// header timeout, connections past the cap get a 503, and a shutdown waits
/// for requests under way at most the grace period.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cap = connection_cap(limits.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    // Refusals hold a descriptor for a moment too; past this many at once a
    // connection is simply closed.
    let refusals = Arc::new(Semaphore::new(64));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let service = TowerToHyperService::new(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (or a connection reset before it
                    // was taken): wait a moment instead of spinning.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "accepting a connection");
                        last_warning = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY))
                                .await;
                        drop(refusal);
                    });
                }
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("requests still under way at shutdown were cut off");
        }
    }
    Ok(())
}
