//! Builds into and out of the queue: a person's force, any trigger's start,
//! collapse of older pending builds, and cancel.
//!
//! Every change a user would miss after a crash is written to the store and
//! flushed before it is acknowledged; the dispatcher is changed only after
//! the store agreed.

use super::dispatch::pending_of;
use super::error::{Error, Result};
use super::state::State;
use crate::config::secrets::TriggerKind;
use crate::config::spec::SchedulerSpec;
use crate::protocol::{step_layout, BuildResult, StepKind, CHECKOUT_STEP, GET_STEP, UPLOAD_STEP};
use crate::store::{now_ms, BuildRecord, BuildState, Provenance, StepRecord};
use crate::sync::{lock, read};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// What a force asks for.
#[derive(Debug, Clone, Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Repo URL (or repo name) → branch, tag or commit to build instead of
    /// the branch head.
    #[serde(default)]
    pub revisions: BTreeMap<String, String>,
}

/// The most bytes a parameter value may take: it reaches the step as an
/// environment variable, and the kernel refuses longer single strings.
pub const MAX_PARAMETER_BYTES: usize = 64 << 10;

/// Why a value given for a parameter or a revision cannot be used.
fn value_problem(value: &str) -> Option<String> {
    if value.contains('\0') {
        return Some("contains a NUL byte, which no environment variable can hold".into());
    }
    if value.len() > MAX_PARAMETER_BYTES {
        return Some(format!(
            "is {} bytes long; at most {MAX_PARAMETER_BYTES} are taken",
            value.len()
        ));
    }
    None
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
    /// The person who asked for it, when a person did.
    pub by: Option<String>,
    /// What started it, as secret filters see it.
    pub trigger: TriggerKind,
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

impl State {
    /// Creates a forced build, durable before it returns.
    pub fn force(
        &self,
        builder: &str,
        request: ForceRequest,
        by: Option<&str>,
    ) -> Result<BuildRecord> {
        self.force_noted(builder, request, by, None)
    }

    /// [`Self::force`] with a note for the build's reason (what the fetch
    /// before it found).
    pub fn force_noted(
        &self,
        builder: &str,
        request: ForceRequest,
        by: Option<&str>,
        note: Option<&str>,
    ) -> Result<BuildRecord> {
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
        for (name, value) in &request.parameters {
            if let Some(why) = value_problem(value) {
                return Err(Error::BadRequest(format!(
                    "parameter \"{name}\": the value {why}"
                )));
            }
        }
        for (key, value) in &request.revisions {
            if let Some(why) = value_problem(value).or_else(|| value_problem(key)) {
                return Err(Error::BadRequest(format!("revision for {key:?}: {why}")));
            }
        }
        let mut parameters = declared;
        parameters.extend(request.parameters);

        let repo_url = read(&self.repos)
            .get(&repo_name)
            .map(|r| r.record.url.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo_name} not found")))?;
        let mut revision = None;
        for (key, value) in &request.revisions {
            if value.trim().is_empty() {
                return Err(Error::BadRequest(format!("revision for {key} is empty")));
            }
            // Any other key pins a dep at any depth: one of the builder's
            // own, or a dep of a dep the worker meets while fetching them.
            if *key == repo_url || *key == repo_name || crate::model::same_repo_url(key, &repo_url)
            {
                revision = Some(value.clone());
            }
        }
        self.start_build(StartRequest {
            builder: builder.to_string(),
            parameters,
            revision,
            branch: None,
            pins: request.revisions,
            reason: match (by, note) {
                (Some(by), Some(note)) => format!("forced by {by}; {note}"),
                (Some(by), None) => format!("forced by {by}"),
                (None, Some(note)) => format!("forced; {note}"),
                (None, None) => "forced".to_string(),
            },
            by: by.map(str::to_string),
            trigger: TriggerKind::Force,
        })
    }

    /// Queues a build of a builder as its repo's current graph has it; durable
    /// before it returns. A builder with `collapse` keeps only the newest
    /// pending build per branch: older pending ones end as cancelled.
    pub fn start_build(&self, mut request: StartRequest) -> Result<BuildRecord> {
        let (repo_name, graph) = self
            .builder_owner(&request.builder)
            .ok_or_else(|| Error::NotFound(format!("builder {} not found", request.builder)))?;
        let spec = graph.graph.builders[&request.builder].clone();
        let provenance = Provenance {
            config_commit: graph.commit.clone(),
            config_hash: graph.config_hash.clone(),
            cybertron_hash: graph.cybertron_hash.clone(),
            graph_version: graph.version,
            system_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // The repo's head as last fetched: the graph's own commit, or a
        // later one whose `.rhai` files are the same.
        let head = crate::sync::read(&self.repos)
            .get(&repo_name)
            .and_then(|r| r.record.commit.clone())
            .unwrap_or_else(|| graph.commit.clone());
        request.revision = Some(request.revision.unwrap_or(head));
        self.queue_build(&repo_name, spec, provenance, request, None)
    }

    /// Queues a build of `spec` (the live graph's, or a pull request's own),
    /// as [`Self::start_build`] does.
    pub(crate) fn queue_build(
        &self,
        repo_name: &str,
        spec: crate::config::Builder,
        provenance: Provenance,
        request: StartRequest,
        pull_request: Option<crate::store::PullRef>,
    ) -> Result<BuildRecord> {
        let repo_name = repo_name.to_string();
        let repo = read(&self.repos)
            .get(&repo_name)
            .map(|r| r.record.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo_name} not found")))?;
        let revision = request
            .revision
            .unwrap_or_else(|| repo.commit.clone().unwrap_or_default());
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
            by: request.by,
            cancelled_by: None,
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
            provenance,
            spec,
            pins: request.pins,
            revisions: BTreeMap::new(),
            got: BTreeMap::new(),
            reporting: None,
            pull_request,
            trigger: Some(request.trigger),
            withheld: Vec::new(),
        };
        let mut build = self.store.create_build(record)?;
        {
            let _write = lock(&self.build_write);
            if self.ask_status(&mut build) {
                self.store.put_build(&build)?;
            }
        }
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
            // On the same commit the newer build's statuses tell it all.
            if older.revision != newer.revision {
                self.ask_status(&mut older);
            }
            self.store.put_build(&older)?;
            self.count_finished(&older);
        }
        Ok(())
    }

    /// Queues the build again: the same revision, the same commits of
    /// every dep (as the first run resolved them, else as pinned) and the
    /// same parameters, under the builder's current spec.
    pub fn rebuild(&self, id: u64, by: Option<&str>) -> Result<BuildRecord> {
        let old = self.store.build(id)?;
        if old.state != BuildState::Finished {
            return Err(Error::Conflict(format!(
                "build {id} ({} #{}) has not finished; rebuild it once it has",
                old.builder, old.number
            )));
        }
        let mut pins = old.pins.clone();
        pins.extend(old.revisions.clone());
        pins.remove(&old.repo_url);
        let who = by.map(|b| format!(" by {b}")).unwrap_or_default();
        self.start_build(StartRequest {
            builder: old.builder.clone(),
            parameters: old.parameters.clone(),
            revision: Some(old.revision.clone()),
            branch: old.branch.clone(),
            pins,
            reason: format!("rebuild of {} #{}{who}", old.builder, old.number),
            by: by.map(str::to_string),
            // A rebuild keeps what started the first run: a person asking
            // again must not give a pull request's build more secrets.
            trigger: old
                .trigger
                .unwrap_or_else(|| TriggerKind::of_reason(&old.reason)),
        })
    }

    /// Cancels a build: a queued one ends at once, a running one is told to
    /// stop through its worker's heartbeat.
    pub fn cancel(&self, id: u64, by: Option<&str>) -> Result<BuildRecord> {
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
                    build.result_reason = Some(match by {
                        Some(by) => format!("cancelled by {by} before it started"),
                        None => "cancelled before it started".into(),
                    });
                    build.finished = Some(now_ms());
                }
                BuildState::Running => build.cancel_requested = true,
            }
            if build.cancelled_by.is_none() {
                build.cancelled_by = by.map(str::to_string);
            }
            self.ask_status(&mut build);
            self.store.put_build(&build)?;
            if build.state == BuildState::Finished {
                self.count_finished(&build);
            }
            build
        };
        self.store.flush()?;
        self.build_changed.notify_waiters();
        self.announce();
        Ok(build)
    }
}

/// How long a force waits for its repo's fetch before building the last
/// fetched commit.
pub const FORCE_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl State {
    /// A force as people ask for it: without a pinned revision of the repo
    /// it builds the branch head as of the force, so the repo is fetched
    /// first (reconfigured when its config changed), for at most
    /// [`FORCE_FETCH_WAIT`]; the build's reason says when that failed.
    pub async fn force_fresh(
        self: &std::sync::Arc<Self>,
        builder: String,
        request: ForceRequest,
        by: Option<String>,
    ) -> Result<BuildRecord> {
        let note = match self.builder_owner(&builder) {
            Some((repo, _)) => {
                let url = read(&self.repos)
                    .get(&repo)
                    .map(|r| r.record.url.clone())
                    .unwrap_or_default();
                let pinned = request.revisions.keys().any(|key| {
                    *key == repo || *key == url || crate::model::same_repo_url(key, &url)
                });
                if pinned {
                    None
                } else {
                    self.refresh_for_force(repo, FORCE_FETCH_WAIT).await
                }
            }
            None => None,
        };
        self.blocking(move |s| s.force_noted(&builder, request, by.as_deref(), note.as_deref()))
            .await
    }
}
