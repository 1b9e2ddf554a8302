//! The worker: claim a job from the megatron, check out, run the steps,
//! report; again until told to stop.
//!
//! Blocking code on plain threads: the job's thread runs the checkout and the
//! steps; a claim runs on a helper thread so a shutdown is noticed while the
//! megatron holds the long-poll; a heartbeat thread keeps the lease and
//! learns of cancels; each step's output goes out on a log thread. Nothing
//! here depends on the megatron's code, only on [`crate::protocol`]: the
//! worker could be its own crate.
//!
//! A build's steps follow [`Job::layout`]: the checkout (with the deps),
//! `get` when the job downloads other builds' results, the configured steps,
//! and `upload` when it has uploads. A step that does not pass halts the
//! build, but `upload` still runs (as the original's alwaysRun did), unless
//! the build was cancelled or the checkout failed, since the build folder is
//! then not the build's.
//!
//! - [`client`]: HTTP calls with retry, the batched log stream;
//!   [`spool`]: its output on disk while the megatron is unreachable.
//! - [`workspace`]: folders and bringing one git checkout to a revision.
//! - [`deps`]: the checkout step: the repo, its deps, the sweep.
//! - [`get`], [`upload`] and [`transfer`]: artifacts in and out.
//! - [`exec`]: one step's process, its output and its limits;
//!   [`command`]: parameters into its command; [`output`]: its warning lines.
//! - [`mask`]: secrets' values out of step logs before they are sent.
//! - `runner`: one job's steps in order, each reported and logged.
//! - `config` ([`WorkerConfig`]) and `control`: what the worker is told at
//!   start, and the flags one job's threads share; apart from this file so
//!   that `runner` imports them without importing this file back.

pub mod client;
pub mod command;
mod config;
mod control;
pub mod deps;
pub mod exec;
pub mod get;
pub mod log_stream;
pub mod mask;
pub mod output;
mod runner;
pub mod spool;
pub mod transfer;
pub mod upload;
pub mod workspace;

pub use config::WorkerConfig;

use crate::protocol::{
    BuildFinish, BuildResult, ClaimRequest, HeartbeatRequest, HeartbeatResponse, Job,
};
use anyhow::Context;
use client::{AttemptError, Backoff, Body, CallError, Client};
use control::{Abort, JobControl};
use runner::{Ended, JobRunner};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the worker looks at the shutdown flag while a claim is pending.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Claims and runs jobs until `shutdown` is set. Survives the megatron being
/// away (claims retry forever); returns an error only for what no retry can
/// fix, such as a workdir it cannot create.
pub fn run(config: WorkerConfig, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    anyhow::ensure!(!config.name.is_empty(), "the worker needs a name");
    let mut config = config;
    std::fs::create_dir_all(&config.workdir)
        .with_context(|| format!("creating the workdir {}", config.workdir.display()))?;
    // Steps and git see the workdir whatever the process's folder is.
    config.workdir = std::path::absolute(&config.workdir)
        .with_context(|| format!("resolving the workdir {}", config.workdir.display()))?;
    // A spool left by an earlier worker process belongs to a build that was
    // given back or requeued when that process went: no lease would take it.
    let spool = config.workdir.join("spool");
    match spool::remove_strays(&spool) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} spool files of an earlier worker process"),
        Err(error) => tracing::warn!("removing old spool files in {}: {error}", spool.display()),
    }
    let client = Client::new(
        &config.megatron,
        &config.name,
        &config.token,
        config.max_backoff,
    );
    let _span = tracing::info_span!("worker", name = %config.name).entered();
    tracing::info!("worker started, megatron at {}", config.megatron);

    let warnings = output::WarningsCache::default();
    let mut backoff = Backoff::new(config.max_backoff);
    let stopping = || shutdown.load(Ordering::SeqCst);
    while !stopping() {
        match claim(&client, &config, &shutdown) {
            Claimed::Job(job) => {
                backoff = Backoff::new(config.max_backoff);
                run_job(&client, &config, *job, &shutdown, &warnings);
            }
            Claimed::Nothing => backoff = Backoff::new(config.max_backoff),
            Claimed::ShutDown => break,
            Claimed::Refused(message) => {
                anyhow::bail!("the megatron refuses this worker: {message}")
            }
            Claimed::Failed(message) => {
                let wait = backoff.next_wait();
                tracing::warn!("claiming a job: {message}; retrying in {wait:?}");
                client::sleep_unless(wait, &stopping);
            }
        }
    }
    tracing::info!("worker stopped");
    Ok(())
}

enum Claimed {
    Job(Box<Job>),
    /// The megatron had none within the wait.
    Nothing,
    ShutDown,
    Failed(String),
    /// The megatron will never give this worker a job (a wrong token, a
    /// name no config declares): retrying would only hide that.
    Refused(String),
}

/// One long-poll for a job, on a helper thread so that a shutdown ends the
/// wait at once. A job that arrives once the worker decided to stop is given
/// back, by whichever side holds it: the helper (if the worker already left)
/// or the worker.
fn claim(client: &Client, config: &WorkerConfig, shutdown: &AtomicBool) -> Claimed {
    let (sender, receiver) = mpsc::channel::<Claimed>();
    // Set under the lock by the worker when it stops listening; the helper
    // sends under the same lock, so a job is either received or released.
    let abandoned = Arc::new(Mutex::new(false));
    {
        let client = client.clone();
        let abandoned = abandoned.clone();
        let wait = config.claim_wait;
        let spawned = std::thread::Builder::new()
            .name("claim".into())
            .spawn(move || {
                let claimed = claim_attempt(&client, wait);
                let gone = abandoned.lock().unwrap_or_else(|p| p.into_inner());
                let unheard = if *gone {
                    claimed
                } else {
                    match sender.send(claimed) {
                        Ok(()) => return,
                        Err(mpsc::SendError(claimed)) => claimed,
                    }
                };
                drop(gone);
                // Nobody listens any more: give back what came.
                if let Claimed::Job(job) = unheard {
                    release(&client, &job);
                }
            });
        if let Err(error) = spawned {
            return Claimed::Failed(format!("starting the claim thread: {error}"));
        }
    }
    loop {
        match receiver.recv_timeout(SHUTDOWN_POLL) {
            Ok(Claimed::Job(job)) if shutdown.load(Ordering::SeqCst) => {
                release(client, &job);
                return Claimed::ShutDown;
            }
            Ok(claimed) => return claimed,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if shutdown.load(Ordering::SeqCst) {
                    *abandoned.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    // A job sent before the flag was set is in the channel.
                    if let Ok(Claimed::Job(job)) = receiver.try_recv() {
                        release(client, &job);
                    }
                    return Claimed::ShutDown;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Claimed::Failed("the claim thread ended without an answer".into())
            }
        }
    }
}

/// The claim call itself, one attempt; the caller paces retries.
fn claim_attempt(client: &Client, wait: Duration) -> Claimed {
    let request = ClaimRequest {
        wait_ms: wait.as_millis() as u64,
    };
    let body = match serde_json::to_value(&request) {
        Ok(value) => Body::Json(value),
        Err(error) => return Claimed::Failed(format!("encoding the claim: {error}")),
    };
    match client.attempt("/api/v1/worker/claim", &body, wait) {
        Ok(reply) if reply.status == 204 => Claimed::Nothing,
        Ok(reply) => match reply.json::<Job>() {
            Ok(job) => Claimed::Job(Box::new(job)),
            Err(error) => Claimed::Failed(format!("{error:#}")),
        },
        Err(AttemptError::Transient(message)) => Claimed::Failed(message),
        Err(AttemptError::Answer(CallError::Rejected {
            status: 401 | 403 | 404,
            message,
        })) => Claimed::Refused(message),
        Err(AttemptError::Answer(error)) => Claimed::Failed(error.to_string()),
    }
}

/// Gives a job back to the megatron, once: the worker is on its way out and
/// does not retry; if this fails the lease runs out and the megatron requeues.
fn release(client: &Client, job: &Job) {
    let request = HeartbeatRequest {
        lease: job.lease.clone(),
    };
    let path = format!("/api/v1/worker/builds/{}/release", job.build);
    let result = serde_json::to_value(&request)
        .map_err(|e| e.to_string())
        .and_then(|value| {
            client
                .attempt(&path, &Body::Json(value), Duration::ZERO)
                .map_err(|e| format!("{e:?}"))
        });
    match result {
        Ok(_) => tracing::info!(build = job.build, "released the build: shutting down"),
        Err(error) => tracing::warn!(build = job.build, "releasing the build: {error}"),
    }
}

fn run_job(
    client: &Client,
    config: &WorkerConfig,
    job: Job,
    shutdown: &Arc<AtomicBool>,
    warnings: &output::WarningsCache,
) {
    let _span = tracing::info_span!("build", id = job.build, builder = %job.builder).entered();
    tracing::info!("running {} at {}", job.repo, job.revision);
    let control = Arc::new(JobControl {
        cancel: AtomicBool::new(false),
        lease_lost: AtomicBool::new(false),
        done: AtomicBool::new(false),
        shutdown: shutdown.clone(),
    });
    spawn_heartbeat(client, &job, &control);
    let runner = JobRunner {
        client,
        config,
        job: &job,
        control: &control,
        warnings,
        resolved: Default::default(),
    };
    let ended = runner.steps();
    runner.wrap_up();
    let finish = |result: BuildResult, reason: Option<String>| {
        let body = BuildFinish {
            lease: job.lease.clone(),
            result,
            reason,
        };
        let path = runner.path("finish");
        match client.post_json(&path, &body, &|| control.give_up()) {
            Ok(_) => tracing::info!("build ended: {}", result.as_str()),
            Err(error) => tracing::warn!("reporting the build's end: {error}"),
        }
    };
    match ended {
        Ok(Ended::Reported(result)) => tracing::info!("build ended: {}", result.as_str()),
        Ok(Ended::ToReport(result, reason)) => finish(result, reason),
        Err(Abort::LeaseLost) => tracing::warn!("lease lost: dropped the build"),
        Err(Abort::Shutdown) => release(client, &job),
        Err(Abort::Refused(message)) => {
            tracing::warn!("{message}");
            finish(BuildResult::Exception, Some(message));
        }
    }
    // The heartbeat thread may still sit in a long-poll; it ends when that
    // returns.
}

/// Heartbeats until the job is done: keeps the lease, and hears of cancels
/// and lost leases as soon as the megatron knows.
fn spawn_heartbeat(client: &Client, job: &Job, control: &Arc<JobControl>) {
    let client = client.clone();
    let control = control.clone();
    let path = format!("/api/v1/worker/builds/{}/heartbeat", job.build);
    let hold = Duration::from_millis(job.heartbeat_ms);
    let request = HeartbeatRequest {
        lease: job.lease.clone(),
    };
    let body = match serde_json::to_value(&request) {
        Ok(value) => Body::Json(value),
        Err(error) => {
            tracing::warn!("encoding the heartbeat: {error}");
            return;
        }
    };
    let beat = move || {
        let over = || control.done.load(Ordering::SeqCst) || control.give_up();
        while !over() {
            let began = Instant::now();
            match client.call(&path, &body, hold, &over) {
                Ok(reply) => match reply.json::<HeartbeatResponse>() {
                    Ok(answer) if answer.cancel => {
                        if !control.cancel.swap(true, Ordering::SeqCst) {
                            tracing::info!("the build was cancelled");
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!("heartbeat: {error:#}"),
                },
                // The build's end is reported: whatever this beat heard
                // (the build gone, the lease gone) is old news.
                Err(_) if control.done.load(Ordering::SeqCst) => return,
                Err(CallError::LeaseLost) => {
                    tracing::warn!("heartbeat: the lease was lost");
                    control.lease_lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(CallError::GaveUp) => return,
                Err(error) => tracing::warn!("heartbeat: {error}"),
            }
            // A megatron that answers at once (a cancelled build, a refusal)
            // must not make this a busy loop: at most four beats per period.
            let pace = (hold / 4).max(Duration::from_millis(10));
            client::sleep_unless(pace.saturating_sub(began.elapsed()), &over);
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(beat)
    {
        // Without heartbeats the lease runs out and the megatron requeues;
        // the build still runs and reports what it can.
        tracing::warn!("starting the heartbeat thread: {error}");
    }
}

#[cfg(test)]
mod tests;
