//! Builds from start to end: force, claim, the worker's reports, cancel,
//! leases that run out, and the horizon.
//!
//! Every change a user would miss after a crash is written to the store and
//! flushed before it is acknowledged; the dispatcher is changed only after
//! the store agreed (or undone when it did not).

use super::dispatch::Pending;
use super::{lock, random_secret, Error, Result, State};
use crate::config::choose::choose_build;
use crate::config::spec::{SchedulerSpec, MAX_TIMEOUT};
use crate::protocol::{
    step_layout, BuildResult, GetJob, Job, StepFinish, StepKind, CHECKOUT_STEP, GET_STEP,
    UPLOAD_STEP,
};
use crate::store::{self, now_ms, BuildRecord, BuildState, Provenance, StepRecord};
use std::collections::BTreeMap;
use std::time::Instant;

/// What a force asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Repo URL (or repo name) → branch, tag or commit to build instead of
    /// the branch head.
    #[serde(default)]
    pub revisions: BTreeMap<String, String>,
    /// Who forced it, for the build's reason.
    #[serde(default)]
    pub by: Option<String>,
}

/// What starts a build, whoever asks (a person, a time, a commit).
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub builder: String,
    /// Every parameter, defaults filled in.
    pub parameters: BTreeMap<String, String>,
    /// The repo's revision to build; the commit of the current graph when `None`.
    pub revision: Option<String>,
    /// The branch it is on, when known (collapse keys on it).
    pub branch: Option<String>,
    /// Dep pins: URL or name → revision.
    pub pins: BTreeMap<String, String>,
    /// Shown with the pending build: "forced by ana", "time scheduler nightly"...
    pub reason: String,
}

/// A build's step records, laid out as `protocol::step_layout` says.
pub fn step_records(spec: &crate::config::Builder, revision: &str) -> Vec<StepRecord> {
    step_layout(
        !spec.get.is_empty(),
        spec.steps.len(),
        !spec.upload.is_empty(),
    )
    .into_iter()
    .map(|kind| match kind {
        StepKind::Checkout => {
            StepRecord::pending(CHECKOUT_STEP, &format!("check out {revision} and the deps"))
        }
        StepKind::Get => StepRecord::pending(GET_STEP, "download the results of other builds"),
        StepKind::Configured(i) => StepRecord::pending(&spec.steps[i].name, &spec.steps[i].command),
        StepKind::Upload => StepRecord::pending(UPLOAD_STEP, "upload the results"),
    })
    .collect()
}

/// A build as `get` value expressions see it.
pub fn build_value(build: &BuildRecord) -> serde_json::Value {
    serde_json::json!({
        "id": build.id,
        "number": build.number,
        "builder": build.builder,
        "result": build.result.map(BuildResult::as_str),
        "revision": build.revision,
        "revisions": build.revisions,
        "parameters": build.parameters,
        "worker": build.worker,
        "created": build.created,
        "started": build.started,
        "finished": build.finished,
    })
}

/// The dispatcher's view of a build.
pub fn pending_of(build: &BuildRecord) -> Pending {
    Pending::new(
        build.id,
        build.spec.workers.clone(),
        build.spec.resources.clone(),
    )
}

impl State {
    /// Creates a forced build, durable before it returns.
    pub fn force(&self, builder: &str, request: ForceRequest) -> Result<BuildRecord> {
        let (repo_name, graph) = self
            .builder_owner(builder)
            .ok_or_else(|| Error::NotFound(format!("builder {builder} not found")))?;
        let spec = graph.graph.builders[builder].clone();
        let mut declared: BTreeMap<String, String> = BTreeMap::new();
        let mut forceable = false;
        for scheduler in &spec.schedulers {
            if let Some(s) = graph.graph.schedulers.get(scheduler) {
                if let SchedulerSpec::Force { parameters } = &s.spec {
                    forceable = true;
                    for (name, default) in parameters {
                        declared
                            .entry(name.clone())
                            .or_insert_with(|| default.clone());
                    }
                }
            }
        }
        if !forceable {
            return Err(Error::BadRequest(format!(
                "builder {builder} cannot be forced: none of its schedulers is a force scheduler"
            )));
        }
        for name in request.parameters.keys() {
            if !declared.contains_key(name) {
                let known: Vec<&str> = declared.keys().map(String::as_str).collect();
                return Err(Error::BadRequest(format!(
                    "unknown parameter \"{name}\" for builder {builder} (declared: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let mut parameters = declared;
        parameters.extend(request.parameters);

        let repo_url = super::read(&self.repos)
            .get(&repo_name)
            .map(|r| r.record.url.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo_name} not found")))?;
        let mut revision = None;
        for (key, value) in &request.revisions {
            if value.trim().is_empty() {
                return Err(Error::BadRequest(format!("revision for {key} is empty")));
            }
            if *key == repo_url || *key == repo_name {
                revision = Some(value.clone());
            } else if !spec.deps.iter().any(|d| d.url == *key || d.name == *key) {
                return Err(Error::BadRequest(format!(
                    "revision given for {key}, which is neither the repo ({repo_url}) nor one of the builder's deps"
                )));
            }
        }
        self.start_build(StartRequest {
            builder: builder.to_string(),
            parameters,
            revision,
            branch: None,
            pins: request.revisions,
            reason: match request.by {
                Some(by) => format!("forced by {by}"),
                None => "forced".to_string(),
            },
        })
    }

    /// Queues a build of a builder as its repo's current graph has it; durable
    /// before it returns. A builder with `collapse` keeps only the newest
    /// pending build per branch: older pending ones end as cancelled.
    pub fn start_build(&self, request: StartRequest) -> Result<BuildRecord> {
        let (repo_name, graph) = self
            .builder_owner(&request.builder)
            .ok_or_else(|| Error::NotFound(format!("builder {} not found", request.builder)))?;
        let spec = graph.graph.builders[&request.builder].clone();
        let repo = super::read(&self.repos)
            .get(&repo_name)
            .map(|r| r.record.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo_name} not found")))?;
        let revision = request.revision.unwrap_or_else(|| graph.commit.clone());
        let branch = request.branch.or_else(|| repo.branch.clone());
        let steps = step_records(&spec, &revision);
        let collapse = spec.collapse;
        let record = BuildRecord {
            id: 0,
            number: 0,
            builder: request.builder.clone(),
            repo: repo_name,
            repo_url: repo.url.clone(),
            revision,
            branch: branch.clone(),
            parameters: request.parameters,
            reason: request.reason,
            state: BuildState::Queued,
            result: None,
            result_reason: None,
            worker: None,
            attempts: 0,
            lease: None,
            cancel_requested: false,
            queue_sequence: None,
            created: now_ms(),
            started: None,
            finished: None,
            steps,
            provenance: Provenance {
                config_commit: graph.commit.clone(),
                config_hash: graph.config_hash.clone(),
                cybertron_hash: graph.cybertron_hash.clone(),
                graph_version: graph.version,
                system_version: env!("CARGO_PKG_VERSION").to_string(),
            },
            spec,
            pins: request.pins,
            revisions: BTreeMap::new(),
            got: BTreeMap::new(),
        };
        let build = self.store.create_build(record)?;
        if collapse {
            self.collapse_older(&build)?;
        }
        self.store.flush()?;
        if let Some(sequence) = build.queue_sequence {
            lock(&self.dispatcher).enqueue(sequence, pending_of(&build));
        }
        Ok(build)
    }

    /// Ends the pending builds of the same builder and branch older than
    /// `newer`, as cancelled, naming the build that replaced them.
    fn collapse_older(&self, newer: &BuildRecord) -> Result<()> {
        let _write = lock(&self.build_write);
        for mut older in self.store.queued_builds()? {
            if older.id == newer.id
                || older.builder != newer.builder
                || older.branch != newer.branch
            {
                continue;
            }
            lock(&self.dispatcher).dequeue(older.id);
            older.state = BuildState::Finished;
            older.result = Some(BuildResult::Cancelled);
            older.result_reason = Some(format!("collapsed into the newer build {}", newer.id));
            older.finished = Some(now_ms());
            self.store.put_build(&older)?;
        }
        Ok(())
    }

    /// Gives the worker the first build it may run now, durable before it
    /// returns; `None` when there is none.
    pub fn try_claim(&self, worker: &str) -> Result<Option<Job>> {
        let lease = random_secret().map_err(|e| Error::Internal(e.to_string()))?;
        let now = Instant::now();
        let claimed = lock(&self.dispatcher).claim(
            worker,
            &lease,
            now + self.timing.lease,
            now,
            self.timing.lease,
        );
        let Some(id) = claimed else { return Ok(None) };
        let written = (|| -> Result<(BuildRecord, Vec<GetJob>)> {
            let get = self.resolve_get(&self.store.build(id)?.spec.get)?;
            let _write = lock(&self.build_write);
            let mut build = self.store.build(id)?;
            build.got = get
                .iter()
                .filter_map(|g| g.build.map(|b| (g.builder.clone(), b)))
                .collect();
            build.state = BuildState::Running;
            build.worker = Some(worker.to_string());
            build.lease = Some(lease.clone());
            build.attempts += 1;
            build.started = Some(now_ms());
            self.store.put_build(&build)?;
            Ok((build, get))
        })()
        .and_then(|(build, get)| {
            self.store.flush()?;
            Ok((build, get))
        });
        match written {
            Ok((build, get)) => Ok(Some(Job {
                build: build.id,
                lease,
                builder: build.builder.clone(),
                repo: build.repo.clone(),
                repo_url: build.repo_url.clone(),
                revision: build.revision.clone(),
                parameters: build.parameters.clone(),
                steps: build.spec.steps.clone(),
                max_step_seconds: MAX_TIMEOUT,
                heartbeat_ms: self.timing.heartbeat.as_millis() as u64,
                deps: build.spec.deps.clone(),
                revisions: build.pins.clone(),
                get,
                upload: build.spec.upload.clone(),
                zip: build.spec.zip.clone(),
                max_upload_bytes: self.max_artifact_bytes,
            })),
            Err(e) => {
                // The store did not take it: the build stays queued.
                if let Ok(build) = self.store.build(id) {
                    if let Some(sequence) = build.queue_sequence {
                        lock(&self.dispatcher).unclaim(id, sequence, pending_of(&build));
                    }
                }
                Err(e)
            }
        }
    }

    /// For each `get` entry, the build whose results it fetches: of the
    /// builder's builds that passed, the one whose value expressions give the
    /// greatest values.
    pub fn resolve_get(&self, entries: &[crate::config::GetSpec]) -> Result<Vec<GetJob>> {
        let mut resolved = Vec::new();
        for entry in entries {
            let horizon = super::read(&self.cybertron).spec.horizon as usize;
            let passed: Vec<BuildRecord> = self
                .store
                .builder_builds(&entry.builder, horizon.max(1))?
                .into_iter()
                .filter(|b| b.result.is_some_and(BuildResult::passed))
                .collect();
            let candidates: Vec<serde_json::Value> = passed.iter().map(build_value).collect();
            let (build, reason) = match choose_build(candidates, entry.values.clone()) {
                Ok(Some(index)) => (Some(passed[index].id), None),
                Ok(None) => (
                    None,
                    Some(format!("no build of {} has succeeded yet", entry.builder)),
                ),
                Err(e) => (None, Some(e)),
            };
            resolved.push(GetJob {
                builder: entry.builder.clone(),
                folder: entry.folder.clone(),
                build,
                reason,
            });
        }
        Ok(resolved)
    }

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

    /// Whether a build was asked to stop.
    pub fn cancel_requested(&self, build: u64) -> Result<bool> {
        Ok(self.store.build(build)?.cancel_requested)
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
        bytes: &[u8],
    ) -> Result<()> {
        self.update_running(id, worker, lease, |build| {
            let record = Self::step_of(build, step)?;
            self.store.append_log(id, step, record.log_chunks, bytes)?;
            record.log_chunks += 1;
            record.log_bytes += bytes.len() as u64;
            Ok(())
        })?;
        self.build_changed.notify_waiters();
        Ok(())
    }

    pub fn step_finished(
        &self,
        id: u64,
        step: u32,
        worker: &str,
        report: &StepFinish,
    ) -> Result<()> {
        self.update_running(id, worker, &report.lease, |build| {
            let record = Self::step_of(build, step)?;
            record.result = Some(report.result);
            record.exit_code = report.exit_code;
            record.reason = report.reason.clone();
            record.finished = Some(now_ms());
            if record.started.is_none() {
                record.started = record.finished;
            }
            Ok(())
        })?;
        self.store.flush()?;
        self.build_changed.notify_waiters();
        Ok(())
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
            build.state = BuildState::Finished;
            build.result = Some(result);
            build.result_reason = reason;
            build.finished = Some(now_ms());
            build.lease = None;
            Ok(build.clone())
        })?;
        lock(&self.dispatcher).release(id);
        self.apply_horizon(&build.builder)?;
        self.store.flush()?;
        self.queue_changed.notify_waiters();
        self.build_changed.notify_waiters();
        Ok(build)
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
            self.store.requeue_build(&mut build)?;
            let mut dispatcher = lock(&self.dispatcher);
            dispatcher.release(id);
            if let Some(sequence) = build.queue_sequence {
                dispatcher.enqueue(sequence, pending_of(&build));
            }
        }
        self.store.flush()?;
        self.queue_changed.notify_waiters();
        Ok(())
    }

    /// Cancels a build: a queued one ends at once, a running one is told to
    /// stop through its worker's heartbeat.
    pub fn cancel(&self, id: u64) -> Result<BuildRecord> {
        let build = {
            let _write = lock(&self.build_write);
            let mut build = self.store.build(id)?;
            match build.state {
                BuildState::Finished => {
                    return Err(Error::Conflict(format!("build {id} has already finished")));
                }
                BuildState::Queued => {
                    lock(&self.dispatcher).dequeue(id);
                    build.state = BuildState::Finished;
                    build.result = Some(BuildResult::Cancelled);
                    build.result_reason = Some("cancelled before it started".into());
                    build.finished = Some(now_ms());
                }
                BuildState::Running => build.cancel_requested = true,
            }
            self.store.put_build(&build)?;
            build
        };
        self.store.flush()?;
        self.build_changed.notify_waiters();
        Ok(build)
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
                self.store.put_build(&build)?;
                self.apply_horizon(&build.builder)?;
            }
        }
        self.store.flush()?;
        Ok(expired.len())
    }

    /// Forgets a build's run so far (worker, steps, logs): it runs again
    /// from the start.
    fn reset_for_rerun(&self, build: &mut BuildRecord) -> Result<()> {
        build.worker = None;
        build.lease = None;
        build.started = None;
        for step in &mut build.steps {
            *step = StepRecord::pending(&step.name, &step.command);
        }
        self.store.delete_logs(build.id)?;
        // Uploads of the lost attempt go too: the next one starts clean.
        match std::fs::remove_dir_all(self.artifact_dir(build.id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(build = build.id, error = %e, "removing the artifacts of a lost attempt")
            }
        }
        Ok(())
    }

    fn apply_horizon(&self, builder: &str) -> Result<()> {
        let horizon = super::read(&self.cybertron).spec.horizon as usize;
        for id in self.store.apply_horizon(builder, horizon)? {
            // The build is gone from the store; its artifacts go with it. A
            // folder that cannot be removed is only logged: the build's end
            // is already recorded and must not fail for it.
            let dir = self.artifact_dir(id);
            if let Err(e) = super::artifacts::remove_build_artifacts(&dir) {
                tracing::warn!(
                    build = id,
                    dir = %dir.display(),
                    error = %e,
                    "removing the artifacts of a build past the horizon"
                );
            }
        }
        Ok(())
    }
}
