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

use crate::config::Step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The header naming the worker on every worker call.
pub const WORKER_HEADER: &str = "x-constructicon-worker";

/// What a build ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// How long the megatron may hold the request open, in milliseconds.
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub lease: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The build was cancelled: stop the running step and report `cancelled`.
    pub cancel: bool,
}

/// Index `n` counts the build's steps as the job lists them, with `checkout`
/// (the worker's own preparation) as step 0 before them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepStart {
    pub lease: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepFinish {
    pub lease: String,
    pub result: BuildResult,
    /// The exit status of the step's process, when it exited.
    pub exit_code: Option<i32>,
    /// Why the step ended other than by exiting (timeout, cancel, spawn error).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildFinish {
    pub lease: String,
    pub result: BuildResult,
    pub reason: Option<String>,
}

/// The body of every error response, on every API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The name of the step the worker adds before the configured ones.
pub const CHECKOUT_STEP: &str = "checkout";
