//! The typed model of both scripts, every key of `spec/original-model.md`,
//! with its defaults, and the rule for relative paths that the readers, the
//! worker and the megatron all apply.
//!
//! These are the specs as written, defaults filled in; merging with
//! cybertron's `builder_base` and naming happens in `graph`. Reading them
//! from a script's value is in `read_spec` (the top level of each script),
//! `read_builder` and `read_scheduler`: those import the types from here and
//! this file imports none of them, so the types can be used anywhere without
//! a circle of imports.

use super::access::{AccessSpec, RepoPolicy};
pub use super::secret_source::SecretSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Worker features: name → value (strings mostly; numbers and bools allowed).
pub type Features = serde_json::Map<String, Value>;

/// The default warning pattern of a step.
pub const DEFAULT_WARNING: &str = ".*warning[: ]";
/// Seconds without output before a step is killed, unless it says otherwise.
pub const DEFAULT_TIMEOUT: u64 = 300;
/// The hard cap of every step, in seconds.
pub const MAX_TIMEOUT: u64 = 2 * 60 * 60;

/// `constructicon = #{ builders, schedulers, workers }`.
#[derive(Debug, Clone, Default)]
pub struct ConstructiconSpec {
    pub builders: BTreeMap<String, BuilderSpec>,
    pub schedulers: BTreeMap<String, SchedulerSpec>,
    pub workers: BTreeMap<String, Features>,
    /// The repo's own secrets: name → armoured age ciphertext.
    pub secrets: BTreeMap<String, String>,
}

/// `cybertron = #{ workers, builder_base, schedulers, resources, horizon, listen, hostname }`.
#[derive(Debug, Clone, Default)]
pub struct CybertronSpec {
    pub workers: BTreeMap<String, Features>,
    pub builder_base: BuilderSpec,
    pub schedulers: BTreeMap<String, SchedulerSpec>,
    pub resources: Vec<String>,
    pub horizon: u64,
    /// Builds that finished more than this many days ago go, however few.
    pub horizon_days: Option<u64>,
    /// A builder's newest passing build is kept, however old.
    pub keep_last_success: bool,
    pub listen: Option<String>,
    pub hostname: Option<String>,
    /// The zone time schedulers count in: "UTC" or an offset like "+02:00".
    pub time_zone: String,
    /// Seconds between two polls of every repo's branches.
    pub poll_interval: u64,
    /// Where the shared secret of push webhooks is, never the secret itself.
    pub webhook_secret: Option<SecretSource>,
    /// Who may do what.
    pub access: AccessSpec,
    /// Which repo URLs may be registered.
    pub repos: RepoPolicy,
    /// The address people and forges reach the megatron at (links, login
    /// redirects, Secure cookies over https).
    pub public_url: Option<String>,
    /// The most log one step keeps, in MiB; past it the log is cut with a
    /// marker (the step runs on).
    pub max_log_mb: u64,
    /// Where commit statuses go: the forges and the repos each hosts.
    pub forges: Vec<super::forges::ForgeSpec>,
    /// Builds of pull requests from forks run only on workers for which
    /// this accept expression holds (`pull_requests.fork_workers`).
    pub fork_workers: Option<String>,
    /// The maintainers' secrets: where each is and the builds it reaches.
    pub secrets: BTreeMap<String, super::secrets::MaintainerSecret>,
}

impl CybertronSpec {
    /// The forge that hosts the repo at `url`, if one does.
    pub fn forge_for(&self, url: &str) -> Option<&super::forges::ForgeSpec> {
        self.forges.iter().find(|f| f.hosts(url))
    }
}

/// How often repos are polled when cybertron does not say.
pub const DEFAULT_POLL_INTERVAL: u64 = 60;

/// A step's log cap when cybertron does not say, in MiB.
pub const DEFAULT_MAX_LOG_MB: u64 = 256;

/// The history kept per builder when cybertron does not say.
pub const DEFAULT_HORIZON: u64 = 100;

#[derive(Debug, Clone, Default)]
pub struct BuilderSpec {
    pub accept: Option<String>,
    pub deps: Vec<DepSpec>,
    pub precommands: Vec<CommandSpec>,
    pub commands: Vec<CommandSpec>,
    pub upload: BTreeMap<String, String>,
    pub zip: Vec<String>,
    pub unzip: Vec<String>,
    pub url: BTreeMap<String, String>,
    pub schedulers: Vec<String>,
    pub resources: Vec<String>,
    pub get: BTreeMap<String, Vec<String>>,
    /// Keep only the newest pending build per branch.
    pub collapse: Option<bool>,
    /// The secrets its steps get, by name: cybertron's or the repo's.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub command: String,
    pub warnings: Vec<String>,
    pub suppress_warnings: Vec<String>,
    /// Seconds without output before the step is killed.
    pub timeout: u64,
}

/// Another repo a builder fetches beside its build folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepSpec {
    pub url: String,
    /// The folder it is cloned into, beside the build folder.
    pub name: String,
    /// Branch, tag or commit; the default branch when absent.
    pub revision: Option<String>,
    /// Also fetch this builder's deps, recursively.
    pub builder: Option<String>,
}

/// What starts builds: a person (`force`), the clock (`time`, cron
/// fields), or new commits (`commit`); each with the parameters it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SchedulerSpec {
    Force {
        parameters: BTreeMap<String, String>,
    },
    Time {
        parameters: BTreeMap<String, String>,
        month: String,
        day_of_month: String,
        day_of_week: String,
        hour: String,
        minute: String,
    },
    Commit {
        parameters: BTreeMap<String, String>,
        branch_regex: String,
        branches: BTreeMap<String, String>,
        /// Also build pull and merge requests into a matching branch, each
        /// with its own config.
        #[serde(default)]
        pull_requests: bool,
    },
}

impl SchedulerSpec {
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        match self {
            SchedulerSpec::Force { parameters }
            | SchedulerSpec::Time { parameters, .. }
            | SchedulerSpec::Commit { parameters, .. } => parameters,
        }
    }
}

/// Why a path from a config may not be used relative to a folder, or `None`.
pub fn unsafe_relative_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Some("must be a relative path, not an absolute one");
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Some("must not contain \"..\"");
    }
    if path.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(unsafe_relative_path("out/report.txt"), None);
        assert_eq!(
            unsafe_relative_path("../x"),
            Some("must not contain \"..\"")
        );
        assert_eq!(
            unsafe_relative_path("a/../../x"),
            Some("must not contain \"..\"")
        );
        assert_eq!(
            unsafe_relative_path("/etc/passwd"),
            Some("must be a relative path, not an absolute one")
        );
        assert_eq!(
            unsafe_relative_path("C:\\x"),
            Some("must be a relative path, not an absolute one")
        );
    }
}
