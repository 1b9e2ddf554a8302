//! What the store keeps: the on-disk forms of repos, graph versions and builds.
//! They are also what the API shows, so their field names are the API's.

use crate::config::secrets::TriggerKind;
use crate::config::{Builder, Diagnostic, Graph};
use crate::forge::status::StatusState;
use crate::protocol::BuildResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A registered repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepoRecord {
    pub name: String,
    pub url: String,
    /// The branch followed; `None` for the remote's default branch.
    pub branch: Option<String>,
    /// The commit the current graph was evaluated from.
    pub commit: Option<String>,
    /// The graph version serving now: the last good one.
    pub graph_version: Option<u64>,
    /// The last evaluation's or fetch's failure, shown until one succeeds.
    pub error: Option<RepoError>,
    /// The warnings of the evaluation whose graph serves now (an `accept`
    /// naming a feature no worker has, a builder nothing starts).
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
    /// Unix milliseconds of the last change.
    pub updated: u64,
}

/// Why a repo's last fetch or evaluation failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepoError {
    /// The commit whose config failed; `None` when fetching failed.
    pub commit: Option<String>,
    /// One line for the whole failure.
    pub message: String,
    /// The config's errors with their positions, when evaluation failed.
    pub errors: Vec<Diagnostic>,
    /// The errors as `constructicon eval` prints them: each with its source
    /// line and a caret.
    #[serde(default)]
    pub rendered: String,
    pub at: u64,
}

/// One evaluation of a repo's config, with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphRecord {
    pub version: u64,
    pub repo: String,
    pub commit: String,
    pub cybertron_hash: String,
    pub config_hash: String,
    pub graph: Graph,
    pub created: u64,
}

/// Where a build is: queued, running, finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    Queued,
    Running,
    Finished,
}

/// What a build ran under, so it can be told later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Provenance {
    /// The repo commit the config came from.
    pub config_commit: String,
    pub config_hash: String,
    pub cybertron_hash: String,
    pub graph_version: u64,
    /// The constructicon version that ran it.
    pub system_version: String,
}

/// A build: what was built and why, by whom, under which config, and how
/// it went, step by step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildRecord {
    pub id: u64,
    /// Counts the builder's builds from 1.
    pub number: u64,
    pub builder: String,
    pub repo: String,
    /// The repo's URL (credentials masked in answers).
    pub repo_url: String,
    /// The commit built.
    pub revision: String,
    pub branch: Option<String>,
    /// The parameters it was started with, the scheduler's defaults filled in.
    pub parameters: BTreeMap<String, String>,
    /// Why it was started, e.g. "forced by ana".
    pub reason: String,
    /// The person who started it (from their credentials), when a person did.
    #[serde(default)]
    pub by: Option<String>,
    /// The person who cancelled it, when one did.
    #[serde(default)]
    pub cancelled_by: Option<String>,
    pub state: BuildState,
    /// How it ended; `null` until it finished.
    pub result: Option<BuildResult>,
    /// Why it ended as it did, when not by its steps (exception, cancel).
    pub result_reason: Option<String>,
    /// The worker that runs or ran it.
    pub worker: Option<String>,
    /// Claims so far; a build whose worker vanished is requeued once.
    pub attempts: u32,
    /// The current claim's lease: between the megatron and the worker only,
    /// never in the API's answers (`http::views` leaves it out).
    #[schema(ignore)]
    pub lease: Option<String>,
    /// A cancel was asked for; the worker stops within a second.
    pub cancel_requested: bool,
    /// Position in the queue while queued.
    pub queue_sequence: Option<u64>,
    /// Unix milliseconds it was queued, started, finished.
    pub created: u64,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    /// In order: step 0 is the checkout, then `get` when the builder gets
    /// results, the configured steps, and `upload` when it uploads.
    pub steps: Vec<StepRecord>,
    /// The config and system the build ran under.
    pub provenance: Provenance,
    /// The builder as the graph had it when the build was created: a reconfig
    /// does not change a build under way.
    pub spec: Builder,
    /// Revisions a person pinned when forcing: repo URL or name → revision.
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    /// The commits the checkout resolved: repo URL → commit, for the repo and
    /// every dep.
    #[serde(default)]
    pub revisions: BTreeMap<String, String>,
    /// The builds whose results the get step fetched: builder → build id.
    #[serde(default)]
    pub got: BTreeMap<String, u64>,
    /// How its commit status is going to the repo's forge, when cybertron
    /// names one for the repo.
    #[serde(default)]
    pub reporting: Option<ForgeReport>,
    /// The pull or merge request it builds the head of, if it does.
    #[serde(default)]
    pub pull_request: Option<PullRef>,
    /// What started it, as secret filters see it; `None` for builds
    /// recorded before builds kept it (their reason tells).
    #[serde(default)]
    pub trigger: Option<TriggerKind>,
    /// The secrets its builder names that it did not get, and why; set at
    /// each claim. Names and reasons only, never a value.
    #[serde(default)]
    pub withheld: Vec<String>,
}

/// The request a build is of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullRef {
    pub number: u64,
    /// The target repo's ref that holds the head; the worker fetches it.
    pub fetch_ref: String,
    pub fork: bool,
}

/// A build's commit status on its forge: what was last asked, what was last
/// posted, and the last error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForgeReport {
    /// The cybertron forge's name.
    pub forge: String,
    /// `constructicon/<builder>`.
    pub context: String,
    /// The state last asked for: pending, running, success, failure, error,
    /// cancelled.
    #[schema(value_type = String)]
    pub state: StatusState,
    /// The description last asked for.
    pub asked: String,
    /// The state the forge last took, if any yet.
    #[schema(value_type = Option<String>)]
    pub posted: Option<StatusState>,
    /// Unix milliseconds of that post.
    pub posted_at: Option<u64>,
    /// Why the last try failed, until one succeeds.
    pub error: Option<String>,
}

/// One step of a build, with its timings and the size of its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepRecord {
    pub name: String,
    pub command: String,
    /// How it ended; `null` while pending or running.
    pub result: Option<BuildResult>,
    /// The exit status of its process, when it exited.
    pub exit_code: Option<i32>,
    /// Why it ended other than by exiting (timeout, cancel, spawn error).
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub started: Option<u64>,
    pub finished: Option<u64>,
    /// Bytes of output so far.
    pub log_bytes: u64,
    /// Newlines in the output so far: pages number a log's tail without
    /// reading what comes before it.
    #[serde(default)]
    pub log_lines: u64,
    /// The log reached cybertron's `max_log_mb` and the rest was not kept.
    #[serde(default)]
    pub log_cut: bool,
    /// Bytes of output the worker sent, as it counts them (before any
    /// cut): a chunk sent again is known by its offset below this.
    #[serde(default)]
    pub log_received: u64,
}

impl StepRecord {
    pub fn pending(name: &str, command: &str) -> StepRecord {
        StepRecord {
            name: name.to_string(),
            command: command.to_string(),
            result: None,
            exit_code: None,
            reason: None,
            started: None,
            finished: None,
            log_bytes: 0,
            log_lines: 0,
            log_cut: false,
            log_received: 0,
        }
    }
}

/// A person's API token, kept under the sha256 of the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PersonToken {
    pub person: String,
    /// The first hex digits of the token's hash: names it in listings
    /// without giving anything away.
    pub id: String,
    pub created: u64,
}

/// A browser session, kept under the sha256 of its cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who logged in: a person of cybertron's `access`, or a forge login.
    pub person: String,
    /// How: `token`, `link` or the forge's name.
    pub via: String,
    /// The forge organisations (GitLab groups) the person belongs to, as
    /// the forge said at login.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Every state-changing form and cookie-authenticated API call must
    /// carry this.
    pub csrf: String,
    pub created: u64,
    pub expires: u64,
}

/// A one-time login link (the demo prints one), kept under its sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginLink {
    pub person: String,
    pub expires: u64,
}

/// A forge login under way: the PKCE verifier of the authorization request
/// its `state` names, kept under the state's sha256 until the forge sends
/// the browser back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub verifier: String,
    pub expires: u64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
