//! Commit statuses: what each build's state calls for on its repo's forge,
//! put in the store's outbox with the build's own write, so it is as
//! durable as the build. The reporter (`crate::reporter`) posts them; how
//! that goes comes back through [`State::status_outcome`]. A forge never
//! delays or fails a build: problems here are logged and shown on the
//! build, never returned.

use super::state::State;
use crate::config::forges::ForgeSpec;
use crate::forge::status::{Status, StatusState};
use crate::protocol::{BuildResult, CHECKOUT_STEP, GET_STEP, UPLOAD_STEP};
use crate::store::outbox::Outgoing;
use crate::store::{BuildRecord, BuildState, ForgeReport};
use crate::sync::{lock, read};

/// Why a build failed, in a line: the first step that failed, what it ran
/// and how it ended.
pub fn failure_line(build: &BuildRecord) -> String {
    let mut command = 0;
    for step in &build.steps {
        let configured = ![CHECKOUT_STEP, GET_STEP, UPLOAD_STEP].contains(&step.name.as_str());
        if configured {
            command += 1;
        }
        let Some(result) = step.result else { continue };
        if result.passed() {
            continue;
        }
        let how = match (step.exit_code, &step.reason) {
            (_, Some(reason)) => reason.clone(),
            (Some(code), None) => format!("exit {code}"),
            (None, None) => result.as_str().to_string(),
        };
        return if configured {
            format!("command {command} failed: {} ({how})", step.command)
        } else {
            format!("{} failed ({how})", step.name)
        };
    }
    build
        .result_reason
        .clone()
        .unwrap_or_else(|| "failed".to_string())
}

/// The status a build's state calls for.
pub fn status_of(build: &BuildRecord, public_url: Option<&str>) -> Status {
    let (state, description) = match build.state {
        BuildState::Queued if build.attempts > 0 => (
            StatusState::Pending,
            "queued again: its worker was lost".to_string(),
        ),
        BuildState::Queued => (StatusState::Pending, "queued".to_string()),
        BuildState::Running if build.cancel_requested => {
            (StatusState::Running, "cancelling".to_string())
        }
        BuildState::Running => (
            StatusState::Running,
            format!(
                "running on {}",
                build.worker.as_deref().unwrap_or("a worker")
            ),
        ),
        BuildState::Finished => {
            let took = match (build.started, build.finished) {
                (Some(started), Some(finished)) => {
                    format!(
                        " in {:.1} s",
                        finished.saturating_sub(started) as f64 / 1000.0
                    )
                }
                _ => String::new(),
            };
            match build.result {
                Some(BuildResult::Success) => (StatusState::Success, format!("passed{took}")),
                Some(BuildResult::Warnings) => {
                    (StatusState::Success, format!("passed with warnings{took}"))
                }
                Some(BuildResult::Failure) => (StatusState::Failure, failure_line(build)),
                Some(BuildResult::Cancelled) => (
                    StatusState::Cancelled,
                    build
                        .result_reason
                        .clone()
                        .unwrap_or_else(|| "cancelled".to_string()),
                ),
                Some(BuildResult::Exception) | None => (
                    StatusState::Error,
                    build
                        .result_reason
                        .clone()
                        .unwrap_or_else(|| "the build could not run".to_string()),
                ),
            }
        }
    };
    Status {
        context: format!("constructicon/{}", build.builder),
        state,
        description,
        target_url: public_url.map(|url| format!("{url}/builds/{}", build.id)),
    }
}

impl State {
    /// Puts the status `build` now calls for in the outbox, and notes it on
    /// the build, when cybertron names a forge for the repo. Returns whether
    /// the build changed (the caller writes it). Call it under
    /// `build_write`, before the build's own write; the caller's flush makes
    /// both durable.
    pub(crate) fn ask_status(&self, build: &mut BuildRecord) -> bool {
        let (forge, public_url) = {
            let cybertron = read(&self.cybertron);
            let spec = &cybertron.spec;
            let Some(forge) = spec.forge_for(&build.repo_url) else {
                return false;
            };
            (forge.name.clone(), spec.public_url.clone())
        };
        let status = status_of(build, public_url.as_deref());
        if build.reporting.as_ref().is_some_and(|r| {
            r.forge == forge && r.state == status.state && r.asked == status.description
        }) {
            return false;
        }
        if self
            .queue_status(&build.repo_url, &build.revision, build.id, status.clone())
            .is_none()
        {
            return false;
        }
        let last = build.reporting.take();
        build.reporting = Some(ForgeReport {
            forge,
            context: status.context,
            state: status.state,
            asked: status.description,
            posted: last.as_ref().and_then(|r| r.posted),
            posted_at: last.as_ref().and_then(|r| r.posted_at),
            error: last.and_then(|r| r.error),
        });
        true
    }

    /// Puts a status for `commit` of the repo at `repo_url` in the outbox
    /// (`build` 0 when it tells of no build), when a forge hosts the repo.
    /// Returns the forge's name.
    pub(crate) fn queue_status(
        &self,
        repo_url: &str,
        commit: &str,
        build: u64,
        status: Status,
    ) -> Option<String> {
        let forge = read(&self.cybertron)
            .spec
            .forge_for(repo_url)
            .map(|f| f.name.clone())?;
        let Some(project) = ForgeSpec::project_of(repo_url) else {
            tracing::warn!(build, forge = %forge, "no owner/name in the repo's URL: no commit status");
            return None;
        };
        let outgoing = Outgoing {
            forge: forge.clone(),
            project,
            commit: commit.to_string(),
            build,
            status,
            version: 0,
            tries: 0,
            not_before: 0,
            last_error: None,
        };
        if let Err(e) = self.store.put_status(outgoing) {
            tracing::warn!(build, error = %e, "queueing a commit status");
            return None;
        }
        self.statuses_waiting.notify_one();
        Some(forge)
    }

    /// How a post went: noted on the build it told of (the last error shows
    /// until a post succeeds).
    pub fn status_outcome(
        &self,
        outgoing: &Outgoing,
        outcome: std::result::Result<(), String>,
    ) -> super::Result<()> {
        let _write = lock(&self.build_write);
        let mut build = match self.store.build(outgoing.build) {
            Ok(build) => build,
            Err(crate::store::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(report) = build.reporting.as_mut() else {
            return Ok(());
        };
        match outcome {
            Ok(()) => {
                report.posted = Some(outgoing.status.state);
                report.posted_at = Some(crate::store::now_ms());
                report.error = None;
            }
            Err(error) => report.error = Some(error),
        }
        self.store.put_build(&build)?;
        drop(_write);
        self.build_changed.notify_waiters();
        self.announce();
        Ok(())
    }
}
