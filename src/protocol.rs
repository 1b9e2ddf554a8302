//! The megatron ↔ worker wire: serde types, and only those.
//!
//! A worker authenticates every call with `Authorization: Bearer <token>` and
//! names itself in the `x-constructicon-worker` header. It long-polls
//! `POST /api/v1/worker/claim` for a [`Job`]; while it runs the job it
//! long-polls `POST /api/v1/worker/builds/{id}/heartbeat`, which extends the
//! lease and returns early when the build is cancelled; it reports steps and
//! streams their output, then the build's end. Every call after the claim
//! carries the job's lease id: a worker whose lease was taken away (it went
//! silent and the build was requeued) is refused, so no build completes twice.

use crate::config::spec::DepSpec;
use crate::config::Step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The header naming the worker on every worker call.
pub const WORKER_HEADER: &str = "x-constructicon-worker";

/// What a build ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildResult {
    Success,
    Warnings,
    Failure,
    /// The system failed, not the build.
    Exception,
    Cancelled,
}

impl BuildResult {
    /// Whether the build counts as passed (success or warnings).
    pub fn passed(self) -> bool {
        matches!(self, BuildResult::Success | BuildResult::Warnings)
    }

    /// The worse of two results, for a build made of steps.
    pub fn worst(self, other: BuildResult) -> BuildResult {
        fn rank(r: BuildResult) -> u8 {
            match r {
                BuildResult::Success => 0,
                BuildResult::Warnings => 1,
                BuildResult::Failure => 2,
                BuildResult::Cancelled => 3,
                BuildResult::Exception => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Success => "success",
            BuildResult::Warnings => "warnings",
            BuildResult::Failure => "failure",
            BuildResult::Exception => "exception",
            BuildResult::Cancelled => "cancelled",
        }
    }
}

/// A claimed build, with everything the worker needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub build: u64,
    /// Identifies this claim; every later call must present it.
    pub lease: String,
    pub builder: String,
    pub repo: String,
    pub repo_url: String,
    /// The commit to check out.
    pub revision: String,
    pub parameters: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    /// Seconds a step may run in all, whatever its output.
    pub max_step_seconds: u64,
    /// How often the worker must call heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Other repos to fetch beside the build folder (`../<name>`), the
    /// builder's and builder_base's; a dep with `builder` also brings that
    /// builder's deps, recursively, read from the dep's own config.
    #[serde(default)]
    pub deps: Vec<DepSpec>,
    /// Refs of the repo to fetch besides its branches and tags: a pull
    /// request's head lives under its own ref (`refs/pull/7/head`).
    #[serde(default)]
    pub fetch_refs: Vec<String>,
    /// Revisions a person pinned when forcing: repo URL or name → branch, tag
    /// or commit. They win over a dep's `revision`, at any depth.
    #[serde(default)]
    pub revisions: BTreeMap<String, String>,
    /// Results of other builds to download before the steps.
    #[serde(default)]
    pub get: Vec<GetJob>,
    /// Source (relative to the build folder) → destination, uploaded after
    /// the steps, also when a step failed.
    #[serde(default)]
    pub upload: BTreeMap<String, String>,
    /// Sources zipped before upload (sent as one `.zip` to their destination).
    #[serde(default)]
    pub zip: Vec<String>,
    /// The most bytes the megatron takes for one build's uploads.
    #[serde(default)]
    pub max_upload_bytes: u64,
    /// The secrets the steps get, read or decrypted by the megatron for
    /// this claim only: never stored, never shown, masked in the logs.
    #[serde(default)]
    pub secrets: Vec<JobSecret>,
    /// The secrets the builder names that this build does not get, each
    /// with why ("deploy_token withheld: branch x does not match ^main$").
    #[serde(default)]
    pub withheld: Vec<String>,
    /// The claim already recorded step 0 as started: the worker goes
    /// straight to it without `POST .../steps/0/start`.
    #[serde(default)]
    pub first_step_started: bool,
    /// The megatron takes folded reports: a step's finish carrying the rest
    /// of its log, the checkout's revisions, the next step's start or the
    /// build's end ([`StepFinish`]). A megatron from before them leaves this
    /// false, and the worker then sends each as a call of its own.
    #[serde(default)]
    pub folded_reports: bool,
}

/// One secret handed to the claiming worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSecret {
    pub name: String,
    /// The environment variable the steps find it in.
    pub variable: String,
    #[schema(value_type = String)]
    pub value: SecretValue,
    /// The variable holds a file's path, the file the value.
    #[serde(default)]
    pub as_file: bool,
}

/// A secret's value on the wire: `Debug` never shows it, so no log line
/// that prints a job can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

/// One `get` entry as the megatron resolved it when the job was claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetJob {
    /// The builder whose results these are (full name).
    pub builder: String,
    /// The folder beside the build folder they land in.
    pub folder: String,
    /// The chosen build; `None` when no build of that builder succeeded.
    pub build: Option<u64>,
    /// Why there is none, for the get step's failure.
    pub reason: Option<String>,
}

/// What each step index of a job is. Index 0 is the checkout (with the
/// deps); then `get` when the job has get entries; then the configured
/// steps; then `upload` when it has uploads. The megatron lays out the
/// build's step records the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Checkout,
    Get,
    /// Index into the job's configured steps.
    Configured(usize),
    Upload,
}

/// The steps of a build in order, from its counts.
pub fn step_layout(has_get: bool, configured: usize, has_upload: bool) -> Vec<StepKind> {
    let mut layout = vec![StepKind::Checkout];
    if has_get {
        layout.push(StepKind::Get);
    }
    layout.extend((0..configured).map(StepKind::Configured));
    if has_upload {
        layout.push(StepKind::Upload);
    }
    layout
}

impl Job {
    pub fn layout(&self) -> Vec<StepKind> {
        step_layout(
            !self.get.is_empty(),
            self.steps.len(),
            !self.upload.is_empty(),
        )
    }
}

/// `POST /api/v1/worker/builds/{id}/revisions`: the commits the checkout
/// resolved, repo URL → commit, for the repo and every dep.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevisionsReport {
    pub lease: String,
    pub revisions: BTreeMap<String, String>,
}

/// How an artifact upload is sent: `PUT /api/v1/worker/builds/{id}/artifacts/{path}?lease=L&kind=K`
/// with the bytes as the body. `file` stores the body at `path`; `zip`
/// stores it at `path` as is, or, when the builder unzips `path`, extracts
/// it into the folder `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    File,
    Zip,
}

/// One stored artifact, as `GET /api/v1/builds/{id}/artifacts` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// Path under the build's artifacts, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// The names of the steps the worker adds around the configured ones.
pub const GET_STEP: &str = "get";
pub const UPLOAD_STEP: &str = "upload";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// How long the megatron may hold the request open, in milliseconds.
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    pub lease: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The build was cancelled: stop the running step and report `cancelled`.
    pub cancel: bool,
}

/// Index `n` counts the build's steps as [`step_layout`] lays them out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepStart {
    pub lease: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepFinish {
    pub lease: String,
    pub result: BuildResult,
    /// The exit status of the step's process, when it exited.
    pub exit_code: Option<i32>,
    /// Why the step ended other than by exiting (timeout, cancel, spawn error).
    pub reason: Option<String>,
    /// The commits the checkout resolved, as `POST .../revisions` gives
    /// them, sent with the checkout's end instead of on their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<BTreeMap<String, String>>,
    /// The step the worker goes on to at once: recorded as started, in
    /// place of its `POST .../steps/{next}/start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// The build's end, when this was its last step: recorded as `POST
    /// .../finish` would, in place of that call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildEnd>,
    /// The end of the step's output, when little was left to send: stored
    /// as `POST .../steps/{n}/log?offset=` would, before the step's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogTail>,
}

/// Output carried by a step's finish: at most 1 MiB once decoded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogTail {
    /// Where these bytes start in the step's output.
    pub offset: u64,
    /// The bytes, in standard base64.
    pub base64: String,
}

/// A build's end as its last step's report carries it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildEnd {
    pub result: BuildResult,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildFinish {
    pub lease: String,
    pub result: BuildResult,
    pub reason: Option<String>,
}

/// The body of every error response, on every API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// The name of the step the worker adds before the configured ones.
pub const CHECKOUT_STEP: &str = "checkout";
