//! What a worker reports about the build it runs: resolved revisions, step
//! starts, log output, step ends, the build's end, and a claim given back.
//! Each is checked against the worker's lease first, so a build taken away
//! from a worker cannot be changed by it.

use super::dispatch::pending_of;
use super::error::{Error, Result};
use super::state::State;
use crate::protocol::{BuildResult, StepFinish};
use crate::store::{now_ms, BuildRecord, BuildState, StepRecord};
use crate::sync::lock;
use base64::Engine as _;
use std::collections::BTreeMap;

impl State {
    /// Records the commits a build's checkout resolved.
    pub fn record_revisions(
        &self,
        id: u64,
        worker: &str,
        lease: &str,
        revisions: BTreeMap<String, String>,
    ) -> Result<()> {
        self.update_running(id, worker, lease, |build| {
            build.revisions = revisions;
            Ok(())
        })?;
        self.store.flush()?;
        Ok(())
    }

    /// A read-modify-write of a running build under the worker's lease.
    fn update_running<T>(
        &self,
        id: u64,
        worker: &str,
        lease: &str,
        change: impl FnOnce(&mut BuildRecord) -> Result<T>,
    ) -> Result<T> {
        self.check_lease(id, worker, lease)?;
        let _write = lock(&self.build_write);
        let mut build = self.store.build(id)?;
        if build.state != BuildState::Running || build.lease.as_deref() != Some(lease) {
            return Err(Error::LeaseLost(format!(
                "your lease on build {id} is gone"
            )));
        }
        let value = change(&mut build)?;
        self.ask_status(&mut build);
        self.store.put_build(&build)?;
        Ok(value)
    }

    fn step_of(build: &mut BuildRecord, step: u32) -> Result<&mut StepRecord> {
        let id = build.id;
        build
            .steps
            .get_mut(step as usize)
            .ok_or_else(|| Error::NotFound(format!("build {id} has no step {step}")))
    }

    pub fn step_started(&self, id: u64, step: u32, worker: &str, lease: &str) -> Result<()> {
        self.update_running(id, worker, lease, |build| {
            Self::step_of(build, step)?.started = Some(now_ms());
            Ok(())
        })
    }

    pub fn append_log(
        &self,
        id: u64,
        step: u32,
        worker: &str,
        lease: &str,
        offset: Option<u64>,
        bytes: &[u8],
    ) -> Result<()> {
        let fresh = self.update_running(id, worker, lease, |build| {
            self.append_to(build, step, offset, bytes)
        })?;
        if !fresh {
            return Ok(());
        }
        // Acknowledged means durable: the bytes are synced to their file,
        // and the length that says they count is flushed with the record.
        self.progressed()
    }

    /// A running build's change made durable, and told to whoever follows
    /// it.
    fn progressed(&self) -> Result<()> {
        self.store.flush()?;
        self.build_changed.notify_waiters();
        self.announce();
        Ok(())
    }

    /// Appends a step's output to its log file and counts it in `build`'s
    /// record (which the caller writes); false when every byte was there
    /// already.
    fn append_to(
        &self,
        build: &mut BuildRecord,
        step: u32,
        offset: Option<u64>,
        bytes: &[u8],
    ) -> Result<bool> {
        let cap = crate::sync::read(&self.cybertron).spec.max_log_mb << 20;
        let id = build.id;
        let record = Self::step_of(build, step)?;
        // A chunk sent again (the megatron stored it, but its answer was
        // lost to a crash or a cut connection) is acknowledged without
        // storing its bytes twice.
        let bytes = match offset {
            Some(offset) => {
                let known = record.log_received.saturating_sub(offset);
                record.log_received = record.log_received.max(offset + bytes.len() as u64);
                &bytes[(known.min(bytes.len() as u64)) as usize..]
            }
            None => {
                record.log_received += bytes.len() as u64;
                bytes
            }
        };
        if bytes.is_empty() {
            return Ok(false);
        }
        if record.log_cut {
            return Err(Error::TooLarge(format!(
                "the log of step {step} reached cybertron's max_log_mb ({} MiB): send no more of it",
                cap >> 20
            )));
        }
        // A runaway step's log is cut at the cap, with a line that says
        // so; the step itself runs on.
        let room = cap.saturating_sub(record.log_bytes) as usize;
        let mut kept = bytes.to_vec();
        if kept.len() > room {
            kept.truncate(room);
            kept.extend_from_slice(
                format!(
                    "\n[constructicon: the log was cut here, at {} MiB (cybertron's max_log_mb); the step ran on]\n",
                    cap >> 20
                )
                .as_bytes(),
            );
            record.log_cut = true;
        }
        let at = self.store.append_log(id, step, record.log_bytes, &kept)?;
        record.log_bytes = at + kept.len() as u64;
        record.log_lines += kept.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(true)
    }

    /// A step's end, with what the worker folds into it: the checkout's
    /// revisions, the start of the step it goes on to, or the build's end
    /// after its last step. One write, one flush.
    pub fn step_finished(
        &self,
        id: u64,
        step: u32,
        worker: &str,
        report: &StepFinish,
    ) -> Result<()> {
        if report.next.is_some() && report.build.is_some() {
            return Err(Error::BadRequest(
                "a step's end names a next step or the build's end, not both".into(),
            ));
        }
        if report.next.is_some_and(|next| next <= step) {
            return Err(Error::BadRequest(format!(
                "the next step must come after step {step}"
            )));
        }
        let tail = match &report.log {
            Some(tail) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&tail.base64)
                    .map_err(|e| Error::BadRequest(format!("the step's log is not base64: {e}")))?;
                if bytes.len() > 1 << 20 {
                    return Err(Error::BadRequest(
                        "a step's finish may carry at most 1 MiB of its log".into(),
                    ));
                }
                Some((tail.offset, bytes))
            }
            None => None,
        };
        let ended = self.update_running(id, worker, &report.lease, |build| {
            // The end of the output first, as a log call would have.
            if let Some((offset, bytes)) = &tail {
                match self.append_to(build, step, Some(*offset), bytes) {
                    // A log at its cap keeps no more: the finish still counts.
                    Ok(_) | Err(Error::TooLarge(_)) => {}
                    Err(error) => return Err(error),
                }
            }
            let record = Self::step_of(build, step)?;
            record.result = Some(report.result);
            record.exit_code = report.exit_code;
            record.reason = report.reason.clone();
            let now = now_ms();
            record.finished = Some(now);
            if record.started.is_none() {
                record.started = record.finished;
            }
            if let Some(revisions) = &report.revisions {
                build.revisions = revisions.clone();
            }
            if let Some(next) = report.next {
                Self::step_of(build, next)?.started = Some(now);
            }
            Ok(report.build.as_ref().map(|end| {
                end_build(build, end.result, end.reason.clone());
                build.clone()
            }))
        })?;
        match ended {
            Some(build) => self.build_ended(&build),
            None => self.progressed(),
        }
    }

    /// The worker's report of the build's end; durable before it returns.
    pub fn build_finished(
        &self,
        id: u64,
        worker: &str,
        lease: &str,
        result: BuildResult,
        reason: Option<String>,
    ) -> Result<BuildRecord> {
        let build = self.update_running(id, worker, lease, |build| {
            end_build(build, result, reason);
            Ok(build.clone())
        })?;
        self.build_ended(&build)?;
        Ok(build)
    }

    /// What follows a build's end once its record says so: its worker and
    /// resources freed, past-horizon builds removed, all of it flushed.
    fn build_ended(&self, build: &BuildRecord) -> Result<()> {
        // Said at once, before anything slower: whoever sees the result
        // can find this line.
        tracing::info!(
            build = build.id,
            builder = %build.builder,
            number = build.number,
            result = %build.result.map_or("none", BuildResult::as_str),
            "build finished"
        );
        lock(&self.dispatcher).release(build.id);
        self.count_finished(build);
        self.apply_horizon(&build.builder)?;
        self.store.flush()?;
        self.queue_changed.notify_waiters();
        self.build_changed.notify_waiters();
        self.announce();
        Ok(())
    }

    /// A worker that claimed a build but will not run it (it is shutting
    /// down) gives it back; this does not count as an attempt.
    pub fn release_claim(&self, id: u64, worker: &str, lease: &str) -> Result<()> {
        self.check_lease(id, worker, lease)?;
        {
            let _write = lock(&self.build_write);
            let mut build = self.store.build(id)?;
            build.attempts = build.attempts.saturating_sub(1);
            self.reset_for_rerun(&mut build)?;
            build.state = BuildState::Queued;
            self.ask_status(&mut build);
            self.store.requeue_build(&mut build)?;
            let mut dispatcher = lock(&self.dispatcher);
            dispatcher.release(id);
            if let Some(sequence) = build.queue_sequence {
                dispatcher.enqueue(sequence, pending_of(&build));
            }
        }
        self.store.flush()?;
        self.queue_changed.notify_waiters();
        self.announce();
        Ok(())
    }
}

/// A running build's record made finished.
fn end_build(build: &mut BuildRecord, result: BuildResult, reason: Option<String>) {
    build.state = BuildState::Finished;
    build.result = Some(result);
    build.result_reason = reason;
    build.finished = Some(now_ms());
    build.lease = None;
}
