//! A worker's claim: the first build it may run, written as running with a
//! fresh lease before the job is handed over, and the `get` entries resolved
//! to the builds whose results it fetches.

use super::dispatch::pending_of;
use super::error::{Error, Result};
use super::secrets::ClaimSecrets;
use super::state::State;
use crate::config::choose::choose_build;
use crate::config::spec::MAX_TIMEOUT;
use crate::protocol::{BuildResult, GetJob, Job};
use crate::store::{now_ms, BuildRecord, BuildState};
use crate::sync::{lock, read};
use crate::token::random_secret;
use std::time::Instant;

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

impl State {
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
        let written = (|| -> Result<(BuildRecord, Vec<GetJob>, ClaimSecrets)> {
            let before = self.store.build(id)?;
            let get = self.resolve_get(&before.spec.get)?;
            let secrets = self.claim_secrets(&before, worker);
            let _write = lock(&self.build_write);
            let mut build = self.store.build(id)?;
            build.withheld = secrets.withheld.clone();
            build.got = get
                .iter()
                .filter_map(|g| g.build.map(|b| (g.builder.clone(), b)))
                .collect();
            build.state = BuildState::Running;
            build.worker = Some(worker.to_string());
            build.lease = Some(lease.clone());
            build.attempts += 1;
            build.started = Some(now_ms());
            // The worker goes straight to its first step (the checkout):
            // it starts with the claim, one call fewer per build.
            if let Some(first) = build.steps.first_mut() {
                first.started = build.started;
            }
            self.ask_status(&mut build);
            self.store.put_build(&build)?;
            Ok((build, get, secrets))
        })()
        .and_then(|(build, get, secrets)| {
            self.store.flush()?;
            Ok((build, get, secrets))
        });
        match written {
            Ok((build, get, secrets)) => Ok(Some({
                self.count_claimed(&build);
                Job {
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
                    fetch_refs: build
                        .pull_request
                        .iter()
                        .map(|p| p.fetch_ref.clone())
                        .collect(),
                    revisions: build.pins.clone(),
                    get,
                    upload: build.spec.upload.clone(),
                    zip: build.spec.zip.clone(),
                    max_upload_bytes: self.max_artifact_bytes,
                    secrets: secrets.secrets,
                    withheld: secrets.withheld,
                    first_step_started: build.steps.first().is_some_and(|s| s.started.is_some()),
                    folded_reports: true,
                }
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
            let horizon = read(&self.cybertron).spec.horizon as usize;
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
}
