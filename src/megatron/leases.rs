//! Leases: a running build belongs to its worker while heartbeats come. A
//! build whose worker went silent is requeued once, then ends as
//! `exception`. One pass ([`State::expire_leases`]) plus a loop
//! ([`lease_loop`]), so tests call the pass.

use super::artifacts::files::discard_build_artifacts;
use super::dispatch::pending_of;
use super::error::{Error, Result};
use super::state::State;
use crate::protocol::BuildResult;
use crate::store::{self, now_ms, BuildRecord, BuildState, StepRecord};
use crate::sync::lock;
use std::sync::Arc;
use std::time::Instant;

impl State {
    /// Checks a worker's lease on a build and extends it.
    pub fn check_lease(&self, build: u64, worker: &str, lease: &str) -> Result<()> {
        let mut dispatcher = lock(&self.dispatcher);
        dispatcher.saw(worker, Instant::now());
        match dispatcher.running(build) {
            Some(running) if running.worker == worker && running.lease == lease => {
                dispatcher.extend(build, lease, Instant::now() + self.timing.lease);
                Ok(())
            }
            Some(running) if running.worker != worker => Err(Error::LeaseLost(format!(
                "build {build} is not yours: {} runs it",
                running.worker
            ))),
            _ => Err(Error::LeaseLost(format!(
                "your lease on build {build} is gone (it was requeued, cancelled or finished)"
            ))),
        }
    }

    /// Whether an upload may go on: the worker still holds the build's
    /// lease, the build still runs under it, and it was not cancelled.
    /// Unlike [`State::check_lease`] this does not extend the lease: an
    /// upload is no sign of life, or one that crawls would keep a build
    /// whose worker is gone. Uploads call it while they receive and unpack,
    /// and, holding `build_write`, just before they move into place.
    pub fn check_upload_lease(&self, build: u64, worker: &str, lease: &str) -> Result<()> {
        let gone = || {
            Error::LeaseLost(format!(
                "your lease on build {build} is gone (it was requeued, cancelled or finished): the upload is discarded"
            ))
        };
        match lock(&self.dispatcher).running(build) {
            Some(running) if running.worker == worker && running.lease == lease => {}
            _ => return Err(gone()),
        }
        let record = match self.store.build(build) {
            Ok(record) => record,
            Err(store::Error::NotFound(_)) => return Err(gone()),
            Err(e) => return Err(e.into()),
        };
        if record.state != BuildState::Running || record.lease.as_deref() != Some(lease) {
            return Err(gone());
        }
        if record.cancel_requested {
            return Err(Error::LeaseLost(format!(
                "build {build} was cancelled: the upload is discarded"
            )));
        }
        Ok(())
    }

    /// Whether a build was asked to stop.
    pub fn cancel_requested(&self, build: u64) -> Result<bool> {
        Ok(self.store.build(build)?.cancel_requested)
    }

    /// One pass over the leases: a build whose worker went silent is requeued
    /// once, then ends as `exception`. Returns how many expired.
    pub fn expire_leases(&self, now: Instant) -> Result<usize> {
        let expired = lock(&self.dispatcher).expire(now);
        if expired.is_empty() {
            return Ok(0);
        }
        for (id, running) in &expired {
            let _write = lock(&self.build_write);
            let mut build = match self.store.build(*id) {
                Ok(build) => build,
                Err(store::Error::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if build.state != BuildState::Running {
                continue;
            }
            let lost = format!(
                "worker {} stopped reporting (no heartbeat for {} ms)",
                running.worker,
                self.timing.lease.as_millis()
            );
            if build.attempts < 2 && !build.cancel_requested {
                tracing::warn!(build = id, worker = %running.worker, "lease expired; requeueing");
                self.reset_for_rerun(&mut build)?;
                build.result_reason = Some(format!("{lost}; requeued"));
                build.state = BuildState::Queued;
                self.ask_status(&mut build);
                self.store.requeue_build(&mut build)?;
                if let Some(sequence) = build.queue_sequence {
                    lock(&self.dispatcher).enqueue(sequence, pending_of(&build));
                }
            } else {
                tracing::warn!(build = id, worker = %running.worker, "lease expired again; exception");
                build.state = BuildState::Finished;
                build.result = Some(if build.cancel_requested {
                    BuildResult::Cancelled
                } else {
                    BuildResult::Exception
                });
                build.result_reason = Some(if build.attempts >= 2 {
                    format!("{lost}, after it had already been requeued once")
                } else {
                    lost
                });
                build.finished = Some(now_ms());
                build.lease = None;
                self.ask_status(&mut build);
                self.store.put_build(&build)?;
                self.count_finished(&build);
                self.apply_horizon(&build.builder)?;
            }
        }
        self.store.flush()?;
        Ok(expired.len())
    }

    /// Forgets a build's run so far (worker, steps, logs): it runs again
    /// from the start.
    pub(crate) fn reset_for_rerun(&self, build: &mut BuildRecord) -> Result<()> {
        build.worker = None;
        build.lease = None;
        build.started = None;
        for step in &mut build.steps {
            *step = StepRecord::pending(&step.name, &step.command);
        }
        self.store.delete_logs(build.id)?;
        // Uploads of the lost attempt go too: the next one starts clean.
        // The caller holds `build_write`, which an upload takes to move its
        // file into place, so none lands after this; one still being
        // written finds its folder gone.
        if let Err(e) = discard_build_artifacts(&self.artifact_dir(build.id)) {
            tracing::warn!(build = build.id, error = %e, "removing the artifacts of a lost attempt")
        }
        Ok(())
    }
}

/// Checks leases forever: builds whose worker went silent are requeued once,
/// then marked `exception`.
pub async fn lease_loop(state: Arc<State>) {
    let mut tick = tokio::time::interval(state.timing.lease_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = state.blocking(|s| s.expire_leases(Instant::now())).await;
        match result {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(builds = n, "leases expired");
                state.queue_changed.notify_waiters();
                state.announce();
                state.build_changed.notify_waiters();
                state.announce();
            }
            Err(e) => tracing::error!(error = %e, "checking leases"),
        }
    }
}
