//! The shapes of the API's answers that are not records themselves: lists,
//! summaries, and the short answers to changes. Handlers answer with these
//! types, so the OpenAPI document (`openapi`) describes what they send.

use crate::config::{Builder, Diagnostic, Scheduler};
use crate::megatron::speculate::{Changes, LiveGraph};
use crate::megatron::workers::WorkerView;
use crate::protocol::{Artifact, BuildResult, GetJob};
use crate::store::{BuildState, PersonToken, RepoError, RepoRecord};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A repo as the API shows it: its record (credentials in its URL masked),
/// its builders, and the graph serving now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoView {
    #[serde(flatten)]
    pub record: RepoRecord,
    /// Full names of its builders, from the graph serving now.
    pub builders: Vec<String>,
    /// Absent until the repo's config evaluated cleanly once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSummary>,
}

/// One evaluation of a repo's config, with its provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphSummary {
    pub version: u64,
    /// The commit the config was read from.
    pub commit: String,
    pub config_hash: String,
    pub cybertron_hash: String,
    /// Unix milliseconds.
    pub created: u64,
}

/// `GET /api/v1/repos`: the repos the caller may see, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoList {
    pub repos: Vec<RepoView>,
}

/// `DELETE /api/v1/repos/{repo}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoRemoved {
    pub repo: String,
    pub removed: bool,
    /// How many of its queued builds were cancelled.
    pub cancelled: usize,
}

/// `GET /api/v1/repos/{repo}/public-key`: what the repo's secrets are
/// encrypted to.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoPublicKey {
    pub repo: String,
    /// An age X25519 recipient (`age1...`); only the megatron holds the
    /// private key, and only this repo's builds get what it opens.
    pub public_key: String,
}

/// `POST /api/v1/repos/{repo}/eval`, when the config sent evaluates: how
/// its graph differs from the live one. Nothing was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvalAnswer {
    /// Always true here; a config with errors gets [`EvalRefused`].
    pub ok: bool,
    pub repo: String,
    /// The live graph compared with; absent when the repo has none yet.
    pub against: Option<LiveGraph>,
    /// Builders added, removed and changed (key by key), by full name.
    pub builders: Changes,
    /// The same for the repo's schedulers and the cybertron ones it uses.
    pub schedulers: Changes,
    pub warnings: Vec<Diagnostic>,
    /// The warnings rendered with their source lines, as `eval` prints them.
    pub rendered_warnings: String,
    /// The script's `print` and `debug` output.
    pub output: Vec<String>,
}

/// `POST /api/v1/repos/{repo}/eval`, when the config sent has errors (422):
/// what a reconfig would have refused it for.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvalRefused {
    /// Always false here.
    pub ok: bool,
    /// One line: how many errors, or why the graph is not taken.
    pub error: String,
    /// Every error, with file, line and column where it has a place.
    pub errors: Vec<Diagnostic>,
    /// The errors rendered rustc-style, as `constructicon eval` prints them.
    pub rendered: String,
    pub output: Vec<String>,
}

/// A builder's latest build, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastBuild {
    pub id: u64,
    pub number: u64,
    pub state: BuildState,
    pub result: Option<BuildResult>,
    pub finished: Option<u64>,
}

/// A builder in the list of builders.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuilderSummary {
    pub name: String,
    pub repo: String,
    /// The workers it may run on.
    pub workers: Vec<String>,
    pub schedulers: Vec<String>,
    pub resources: Vec<String>,
    /// The repo's config error, if its last evaluation failed (the builder
    /// is then from the last good graph).
    pub error: Option<RepoError>,
    /// Its latest build, if any.
    pub last: Option<LastBuild>,
}

/// `GET /api/v1/builders`: every builder the caller may see, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuilderList {
    pub builders: Vec<BuilderSummary>,
}

/// `GET /api/v1/builders/{name}`: a builder with its whole spec.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuilderDetail {
    pub name: String,
    pub repo: String,
    /// The workers it may run on (as in the list of builders).
    pub workers: Vec<String>,
    pub spec: Builder,
    /// Its schedulers by full name, in the builder's order.
    #[serde(serialize_with = "as_map")]
    #[schema(value_type = BTreeMap<String, Scheduler>)]
    pub schedulers: Vec<(String, Scheduler)>,
    /// The graph version it comes from.
    pub graph_version: u64,
    /// The repo's config error, if its last evaluation failed.
    pub error: Option<RepoError>,
}

/// Pairs as one JSON object, in their order.
fn as_map<S: Serializer, V: Serialize>(pairs: &[(String, V)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(key, value)| (key, value)))
}

/// `GET /api/v1/builders/{name}/builds`: the builder's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildList {
    /// Newest first.
    // As `views::build_view` makes them: without the lease.
    #[schema(value_type = Vec<crate::store::BuildRecord>)]
    pub builds: Vec<Value>,
}

/// `GET /api/v1/builds/{id}`: a build with what it left behind.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildDetail {
    /// The build's record.
    // As `views::build_view` makes it: without the lease.
    #[serde(flatten)]
    #[schema(value_type = crate::store::BuildRecord)]
    pub build: Value,
    /// The files it uploaded.
    pub artifacts: Vec<Artifact>,
    /// The builder's `url` entries: name → link.
    pub links: BTreeMap<String, String>,
}

/// A build queued by a force.
#[derive(Debug, Serialize, ToSchema)]
pub struct Forced {
    /// The new build's id.
    pub build: u64,
    /// Its number among the builder's builds.
    pub number: u64,
}

/// A build queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rebuilt {
    pub build: u64,
    pub number: u64,
    pub builder: String,
}

/// `GET /api/v1/builders/{name}/get`: the build each `get` entry would
/// fetch now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resolved {
    pub get: Vec<GetJob>,
}

/// A pending build in the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    pub build: u64,
    pub builder: String,
    pub number: u64,
    pub reason: String,
    pub by: Option<String>,
    pub created: u64,
    /// Why it has not started, in words.
    pub waiting: Option<String>,
}

/// A resource and the running build that holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldResource {
    pub resource: String,
    pub build: u64,
}

/// `GET /api/v1/queue`: pending builds in queue order, and the held
/// resources.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    pub pending: Vec<Pending>,
    pub resources: Vec<HeldResource>,
}

/// `GET /api/v1/workers`: every declared worker the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
}

/// `GET /api/v1/builds/{id}/artifacts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactList {
    pub artifacts: Vec<Artifact>,
    /// The builder's `url` entries: name → link.
    pub links: BTreeMap<String, String>,
}

/// An artifact stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub path: String,
    pub bytes: u64,
}

/// `POST /api/v1/admin/reload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// How many repos were evaluated again.
    pub repos: usize,
}

/// A worker's new token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerTokenIssued {
    pub worker: String,
    pub token: String,
    /// Whether a config declares a worker of that name.
    pub known: bool,
}

/// A worker's token revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerTokenRevoked {
    pub worker: String,
    /// Whether it had one.
    pub revoked: bool,
}

/// A personal token, shown this once; only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonTokenIssued {
    pub person: String,
    /// Names the token in listings and revocations.
    pub id: String,
    pub token: String,
}

/// A person's tokens, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonTokens {
    pub person: String,
    pub tokens: Vec<PersonToken>,
}

/// A person's tokens revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonTokensRevoked {
    pub person: String,
    /// How many.
    pub revoked: usize,
}

/// Who the request's credentials name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    /// The person; `null` for an anonymous caller and the admin token.
    pub person: Option<String>,
    pub anonymous: bool,
    /// The role held on every repo: `viewer`, `operator`, `maintainer` or
    /// `admin`; `null` for none.
    pub role: Option<String>,
    /// A browser session's CSRF token, for the `x-csrf-token` header.
    pub csrf: Option<String>,
}

/// What a push webhook did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PushAnswer {
    Polled(PushPolled),
    Ignored(PushIgnored),
    Ping(PushPing),
    Pulls(PullsAnswer),
    Comment(CommentAnswer),
}

/// A pull or merge request event: each registered repo's request as it
/// stands after (its builds, or why it waits).
#[derive(Debug, Serialize, ToSchema)]
pub struct PullsAnswer {
    pub pulls: Vec<crate::store::pulls::PullRecord>,
}

/// A comment on a request: what each repo made of an `/ok-to-test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentAnswer {
    /// Repo → what happened ("approved abc1234 by ana", "not approved: ...").
    pub outcomes: std::collections::BTreeMap<String, String>,
}

/// A push of a branch: the repos polled (builds are queued by now).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushPolled {
    /// The registered repos the push names.
    pub repos: Vec<String>,
    pub branch: String,
    pub commit: String,
    /// The fetch took too long and goes on in the background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_fetching: Option<bool>,
}

/// A delivery that builds nothing (a tag, a deleted branch, another event).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushIgnored {
    /// Why.
    pub ignored: String,
    pub repos: Vec<String>,
}

/// The forge's test delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushPing {
    pub ok: bool,
}

/// A worker's report taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Taken {}

/// A build's end recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Finished {
    pub build: u64,
}

/// `GET /api/v1/usage`: disk used by each repo the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub repos: Vec<crate::megatron::usage::RepoUsage>,
    /// The sums over those repos.
    pub log_bytes: u64,
    pub artifact_bytes: u64,
}
