//! One job's run: the steps of [`Job::layout`] in order, each reported to
//! the megatron (start, streamed log, finish), and the worker's own steps
//! (checkout, get, upload) turned into step outcomes.

use super::client::{url_encode, CallError, Client};
use super::command::substitute;
use super::config::WorkerConfig;
use super::control::{Abort, JobControl};
use super::deps;
use super::exec::{self, StepOutcome, StepSpec};
use super::get;
use super::log_stream::{LogStream, Tail};
use super::mask::Masker;
use super::output::WarningsCache;
use super::spool::Spool;
use super::upload;
use super::workspace::{StepError, Workspace};
use crate::protocol::{
    BuildEnd, BuildResult, Job, LogTail, RevisionsReport, StepFinish, StepKind, StepStart,
    CHECKOUT_STEP, GET_STEP, UPLOAD_STEP,
};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A step's log on its way out: every chunk passes the job's secrets'
/// masker before the stream (and its spool) sees it.
pub(super) struct StepLog {
    stream: LogStream,
    masker: Mutex<Masker>,
}

impl StepLog {
    pub(super) fn push(&self, bytes: &[u8]) {
        let out = crate::sync::lock(&self.masker).push(bytes);
        self.stream.push(&out);
    }

    /// Ends the log; with `keep_tail`, a small rest comes back to go with
    /// the step's finish.
    fn close(self, keep_tail: bool) -> Result<Option<Tail>, CallError> {
        let rest = crate::sync::lock(&self.masker).finish();
        self.stream.push(&rest);
        if keep_tail {
            self.stream.close_with_tail()
        } else {
            self.stream.close().map(|()| None)
        }
    }
}

/// One job's run: its steps in the layout's order.
pub(super) struct JobRunner<'a> {
    pub(super) client: &'a Client,
    pub(super) config: &'a WorkerConfig,
    pub(super) job: &'a Job,
    pub(super) control: &'a Arc<JobControl>,
    /// The worker's compiled warning patterns, kept across jobs.
    pub(super) warnings: &'a WarningsCache,
    /// The commits the checkout resolved, until its end reports them.
    pub(super) resolved: Mutex<Option<BTreeMap<String, String>>>,
}

/// How a job's steps ended.
pub(super) enum Ended {
    /// The last step's end carried the build's end, with this result.
    Reported(BuildResult),
    /// The build's end is still to be reported (cancelled between steps).
    ToReport(BuildResult, Option<String>),
}

impl JobRunner<'_> {
    pub(super) fn path(&self, rest: &str) -> String {
        format!("/api/v1/worker/builds/{}/{rest}", self.job.build)
    }

    /// Runs the steps of [`Job::layout`] until one does not pass, then
    /// `upload`. Each step's end carries what would otherwise be calls of
    /// their own: the checkout's revisions, the start of the next step, and
    /// after the last step the build's end (its result is the worst of its
    /// steps, its reason the first step that did not pass).
    pub(super) fn steps(&self) -> Result<Ended, Abort> {
        let layout = self.job.layout();
        let mut result = BuildResult::Success;
        let mut reason = None;
        let mut halted = false;
        let mut checked_out = false;
        let mut current = self.next_step(&layout, 0, halted, checked_out);
        // Whether the megatron already has the current step as started.
        let mut announced = self.job.first_step_started && current == Some(0);
        while let Some(n) = current {
            if self.control.cancel.load(Ordering::SeqCst) {
                // Cancelled between steps: nothing is running to kill.
                return Ok(Ended::ToReport(
                    BuildResult::Cancelled,
                    Some("cancelled".into()),
                ));
            }
            let kind = layout[n];
            let (name, (outcome, tail)) = match kind {
                StepKind::Checkout => (
                    CHECKOUT_STEP,
                    self.step(n, CHECKOUT_STEP, announced, |log| self.checkout(log))?,
                ),
                StepKind::Get => (
                    GET_STEP,
                    self.step(n, GET_STEP, announced, |log| self.get(log))?,
                ),
                StepKind::Configured(i) => {
                    let step = &self.job.steps[i];
                    let ended =
                        self.step(n, &step.name, announced, |log| self.command(step, log))?;
                    (step.name.as_str(), ended)
                }
                StepKind::Upload => (
                    UPLOAD_STEP,
                    self.step(n, UPLOAD_STEP, announced, |log| self.upload(log))?,
                ),
            };
            if kind == StepKind::Checkout {
                checked_out = outcome.result.passed();
            }
            result = result.worst(outcome.result);
            if !outcome.result.passed() {
                halted = true;
                if reason.is_none() {
                    let why = match (&outcome.reason, outcome.exit_code) {
                        (Some(why), _) => why.clone(),
                        (None, Some(code)) => format!("exit code {code}"),
                        (None, None) => outcome.result.as_str().to_string(),
                    };
                    reason = Some(format!("{name}: {why}"));
                }
            }
            let cancelled = self.control.cancel.load(Ordering::SeqCst);
            if cancelled && outcome.result != BuildResult::Cancelled {
                result = BuildResult::Cancelled;
                reason = Some("cancelled".into());
            }
            // No upload after a cancel: whoever cancelled wants it over.
            current = if cancelled || outcome.result == BuildResult::Cancelled {
                None
            } else {
                self.next_step(&layout, n + 1, halted, checked_out)
            };
            if !self.job.folded_reports {
                // A megatron from before the folds: every report its own call.
                self.finish_step(n, name, &outcome, tail, None, None)?;
                announced = false;
                continue;
            }
            let end = current.is_none().then(|| BuildEnd {
                result,
                reason: reason.clone(),
            });
            if end.is_some() {
                self.wrap_up();
            }
            self.finish_step(n, name, &outcome, tail, current, end)?;
            if current.is_none() {
                return Ok(Ended::Reported(result));
            }
            announced = true;
        }
        Ok(Ended::ToReport(result, reason))
    }

    /// The first step from `from` on that runs: the upload runs when the
    /// checkout passed, any other step while none has failed.
    fn next_step(
        &self,
        layout: &[StepKind],
        from: usize,
        halted: bool,
        checked_out: bool,
    ) -> Option<usize> {
        (from..layout.len()).find(|&n| match layout[n] {
            StepKind::Upload => checked_out,
            StepKind::Configured(i) => !halted && i < self.job.steps.len(),
            _ => !halted,
        })
    }

    /// What goes before the build's end is reported: secrets given as
    /// files are removed, and heartbeats stop (the lease outlives the
    /// report, and a heartbeat answered after it would only find it gone).
    pub(super) fn wrap_up(&self) {
        let _ = std::fs::remove_dir_all(self.secrets_dir());
        self.control.done.store(true, Ordering::SeqCst);
    }

    /// Reports a step's start (unless the megatron already has it), and
    /// streams its output while `body` runs it; the end of the output that
    /// goes with the step's finish, if the megatron takes it so.
    fn step(
        &self,
        n: usize,
        name: &str,
        announced: bool,
        body: impl FnOnce(&StepLog) -> StepOutcome,
    ) -> Result<(StepOutcome, Option<Tail>), Abort> {
        let lease = self.job.lease.clone();
        let give_up = || self.control.give_up();
        if !announced {
            self.client
                .post_json(
                    &self.path(&format!("steps/{n}/start")),
                    &StepStart {
                        lease: lease.clone(),
                    },
                    &give_up,
                )
                .map_err(|e| self.abort(e, &format!("starting step {n} ({name})")))?;
        }

        let control = self.control.clone();
        let log_path = self.path(&format!("steps/{n}/log?lease={}", url_encode(&lease)));
        let spool = Spool::new(
            self.config
                .workdir
                .join("spool")
                .join(format!("{}-{n}", self.job.build)),
            self.config.spool_bytes,
        );
        let stream = LogStream::start(
            self.client.clone(),
            log_path,
            self.config.log_queue_bytes,
            spool,
            Arc::new(move || control.give_up()),
        )
        .map_err(|e| Abort::Refused(format!("starting the log thread: {e}")))?;
        let stream = StepLog {
            stream,
            masker: Mutex::new(Masker::new(
                self.job.secrets.iter().map(|s| s.value.0.as_str()),
            )),
        };
        let outcome = body(&stream);
        let tail = stream
            .close(self.job.folded_reports)
            .map_err(|e| self.abort(e, &format!("sending the log of step {n} ({name})")))?;
        if self.control.lease_lost.load(Ordering::SeqCst) {
            return Err(Abort::LeaseLost);
        }
        if self.control.shutdown.load(Ordering::SeqCst) {
            return Err(Abort::Shutdown);
        }
        tracing::info!("step {n} ({name}): {}", outcome.result.as_str());
        Ok((outcome, tail))
    }

    /// `POST .../steps/{n}/finish`, with the checkout's revisions when it
    /// resolved any, the next step's start, or the build's end.
    fn finish_step(
        &self,
        n: usize,
        name: &str,
        outcome: &StepOutcome,
        tail: Option<Tail>,
        next: Option<usize>,
        build: Option<BuildEnd>,
    ) -> Result<(), Abort> {
        let give_up = || self.control.give_up();
        let mut revisions = crate::sync::lock(&self.resolved).take();
        if !self.job.folded_reports {
            if let Some(revisions) = revisions.take() {
                self.report_revisions(revisions)?;
            }
        }
        let finish = StepFinish {
            lease: self.job.lease.clone(),
            result: outcome.result,
            exit_code: outcome.exit_code,
            reason: outcome.reason.clone(),
            revisions,
            log: tail.map(|tail| LogTail {
                offset: tail.offset,
                base64: base64::engine::general_purpose::STANDARD.encode(tail.bytes),
            }),
            next: next.map(|n| n as u32),
            build,
        };
        self.client
            .post_json(&self.path(&format!("steps/{n}/finish")), &finish, &give_up)
            .map_err(|e| self.abort(e, &format!("finishing step {n} ({name})")))?;
        Ok(())
    }

    fn abort(&self, error: CallError, doing: &str) -> Abort {
        match error {
            CallError::LeaseLost => {
                self.control.lease_lost.store(true, Ordering::SeqCst);
                Abort::LeaseLost
            }
            CallError::GaveUp if self.control.lease_lost.load(Ordering::SeqCst) => Abort::LeaseLost,
            CallError::GaveUp => Abort::Shutdown,
            CallError::Rejected { .. } => Abort::Refused(format!("{doing}: {error}")),
        }
    }

    /// Step 0: the repo at the job's revision and its deps beside it; the
    /// revisions used go to the megatron, also when a dep failed.
    fn checkout(&self, log: &StepLog) -> StepOutcome {
        let mut line = |text: &str| log.push(format!("{text}\n").as_bytes());
        for withheld in &self.job.withheld {
            line(&format!("secret {withheld}"));
        }
        let workspace = match Workspace::new(&self.config.workdir, &self.job.repo) {
            Ok(workspace) => workspace,
            Err(error) => return ended(Err(StepError::Exception(error)), &mut line),
        };
        let request = deps::Request {
            repo: &self.job.repo,
            repo_url: &self.job.repo_url,
            revision: &self.job.revision,
            fetch_refs: &self.job.fetch_refs,
            deps: &self.job.deps,
            pins: &self.job.revisions,
            get_folders: self.job.get.iter().map(|g| g.folder.as_str()).collect(),
            mode: deps::Mode::Worker,
        };
        let stop = || self.control.stop_step();
        let checkout = deps::checkout(&workspace, &request, &mut line, &stop);
        if !checkout.revisions.is_empty() {
            // They go to the megatron with the checkout's end.
            *crate::sync::lock(&self.resolved) = Some(checkout.revisions);
        }
        ended(checkout.result, &mut line)
    }

    /// `POST .../revisions`, for a megatron that takes no folded reports. A
    /// refusal does not fail the build, which has what it needs.
    fn report_revisions(&self, revisions: BTreeMap<String, String>) -> Result<(), Abort> {
        let report = RevisionsReport {
            lease: self.job.lease.clone(),
            revisions,
        };
        match self
            .client
            .post_json(&self.path("revisions"), &report, &|| self.control.give_up())
        {
            Ok(_) => Ok(()),
            Err(error @ CallError::Rejected { .. }) => {
                tracing::warn!("reporting the revisions: {error}");
                Ok(())
            }
            Err(error) => Err(self.abort(error, "reporting the revisions")),
        }
    }

    /// The `get` step: other builds' results beside the build folder.
    fn get(&self, log: &StepLog) -> StepOutcome {
        let mut line = |text: &str| log.push(format!("{text}\n").as_bytes());
        let workspace = match Workspace::new(&self.config.workdir, &self.job.repo) {
            Ok(workspace) => workspace,
            Err(error) => return ended(Err(StepError::Exception(error)), &mut line),
        };
        let stop = || self.control.stop_step();
        let result = get::get_all(
            self.client,
            &workspace,
            &self.job.repo,
            &self.job.get,
            &mut line,
            &stop,
        );
        self.ended_transfer(result, &mut line)
    }

    /// The `upload` step: sources of the build folder to the megatron.
    fn upload(&self, log: &StepLog) -> StepOutcome {
        let mut line = |text: &str| log.push(format!("{text}\n").as_bytes());
        let workspace = match Workspace::new(&self.config.workdir, &self.job.repo) {
            Ok(workspace) => workspace,
            Err(error) => return ended(Err(StepError::Exception(error)), &mut line),
        };
        let stop = || self.control.stop_step();
        let result = upload::Uploader {
            client: self.client,
            workspace: &workspace,
            job: self.job,
            log: &mut line,
            stop: &stop,
        }
        .run();
        self.ended_transfer(result, &mut line)
    }

    /// [`ended`], after noting a lost lease for [`JobRunner::step`].
    fn ended_transfer(
        &self,
        result: Result<(), StepError>,
        line: &mut dyn FnMut(&str),
    ) -> StepOutcome {
        if let Err(StepError::LeaseLost) = result {
            self.control.lease_lost.store(true, Ordering::SeqCst);
        }
        ended(result, line)
    }

    /// A configured step: one command in the build folder.
    fn command(&self, step: &crate::config::Step, log: &StepLog) -> StepOutcome {
        let warnings = match self.warnings.get(&step.warnings, &step.suppress_warnings) {
            Ok(warnings) => warnings,
            Err(error) => {
                log.push(format!("{error:#}\n").as_bytes());
                return StepOutcome {
                    result: BuildResult::Failure,
                    exit_code: None,
                    reason: Some(format!("{error:#}")),
                    warning_lines: 0,
                };
            }
        };
        let workspace = match Workspace::new(&self.config.workdir, &self.job.repo) {
            Ok(workspace) => workspace,
            Err(error) => {
                return StepOutcome {
                    result: BuildResult::Exception,
                    exit_code: None,
                    reason: Some(format!("{error:#}")),
                    warning_lines: 0,
                }
            }
        };
        let spec = StepSpec {
            command: substitute(&step.command, &self.job.parameters),
            env: match self.secret_env() {
                Ok(secrets) => {
                    let mut env = step_env(self.job);
                    // After the parameters: a person forcing a build
                    // cannot put their value in a secret's place.
                    env.extend(secrets);
                    env
                }
                Err(error) => {
                    log.push(format!("{error:#}\n").as_bytes());
                    return StepOutcome {
                        result: BuildResult::Exception,
                        exit_code: None,
                        reason: Some(format!("{error:#}")),
                        warning_lines: 0,
                    };
                }
            },
            cwd: workspace.build_dir,
            // Zero means no limit: a zero limit would kill every step at once.
            silence_timeout: (step.timeout > 0).then(|| Duration::from_secs(step.timeout)),
            max_duration: (self.job.max_step_seconds > 0)
                .then(|| Duration::from_secs(self.job.max_step_seconds)),
            kill_grace: self.config.kill_grace,
            warnings,
        };
        exec::run_step(&spec, &|| self.control.stop_step(), |bytes| log.push(bytes))
    }
}

impl JobRunner<'_> {
    /// Where secrets given as files are kept while the job runs: beside
    /// the workspaces, never inside a build folder that is uploaded.
    pub(super) fn secrets_dir(&self) -> std::path::PathBuf {
        self.config
            .workdir
            .join("secrets")
            .join(self.job.build.to_string())
    }

    /// The secrets' variables: the value, or for `as_file` the path of a
    /// file (mode 0600) holding it.
    fn secret_env(&self) -> anyhow::Result<BTreeMap<String, String>> {
        use anyhow::Context as _;
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let mut env = BTreeMap::new();
        for secret in &self.job.secrets {
            if !secret.as_file {
                env.insert(secret.variable.clone(), secret.value.0.clone());
                continue;
            }
            let dir = self.secrets_dir();
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(&secret.name);
            let _ = std::fs::remove_file(&path);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing the secret file {}", path.display()))?;
            file.write_all(secret.value.0.as_bytes())
                .with_context(|| format!("writing the secret file {}", path.display()))?;
            env.insert(secret.variable.clone(), path.display().to_string());
        }
        Ok(env)
    }
}

/// The outcome of a step the worker runs itself; a problem is also the
/// step log's last line.
fn ended(result: Result<(), StepError>, line: &mut dyn FnMut(&str)) -> StepOutcome {
    let (result, reason) = match result {
        Ok(()) => (BuildResult::Success, None),
        Err(StepError::Failure(message)) => (BuildResult::Failure, Some(message)),
        Err(StepError::Exception(error)) => (BuildResult::Exception, Some(format!("{error:#}"))),
        Err(StepError::Stopped) | Err(StepError::LeaseLost) => {
            (BuildResult::Cancelled, Some("cancelled".to_string()))
        }
    };
    if let (BuildResult::Failure | BuildResult::Exception, Some(reason)) = (result, &reason) {
        line(reason);
    }
    StepOutcome {
        result,
        exit_code: None,
        reason,
        warning_lines: 0,
    }
}

/// The variables a step sees on top of the worker's own: each parameter,
/// then `CONSTRUCTICON_BUILD` and `CONSTRUCTICON_BUILDER`, which a parameter
/// cannot override. A parameter whose name cannot be a variable is left out
/// of the environment; `{name}` substitution still reaches it.
fn step_env(job: &Job) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = job
        .parameters
        .iter()
        .filter(|(name, _)| !name.is_empty() && !name.contains(['=', '\0']))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.insert("CONSTRUCTICON_BUILD".into(), job.build.to_string());
    env.insert("CONSTRUCTICON_BUILDER".into(), job.builder.clone());
    env
}
