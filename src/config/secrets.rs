//! Secrets: the maintainers' in cybertron (where each is, never its value,
//! and the builds it may reach), and a repo's own in its config (age
//! ciphertexts only the megatron can open, with the repo's key).
//!
//! ```rhai
//! // cybertron.rhai
//! secrets: #{
//!     deploy_token: #{ env: "DEPLOY_TOKEN", repos: ["app*"], branches: "^main$" },
//!     signing_key: #{ file: "/etc/ci/key", builders: ["*-release"], as_file: true },
//! }
//! // constructicon.rhai
//! secrets: #{ token: "-----BEGIN AGE ENCRYPTED FILE-----\n..." }
//! ```
//!
//! The rules deciding whether a build gets a secret are here, pure, so the
//! megatron, the tests and the README say the same thing.

use super::access::glob_matches;
use super::read_checks::{read_secret_source, regex_error};
use super::reader::{child, index, Reader};
use super::secret_source::SecretSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A value shorter than this cannot be masked in logs without masking half
/// of every log with it; such a secret is refused.
pub const MIN_SECRET_LENGTH: usize = 6;

/// The first line of an armoured age ciphertext.
pub const AGE_ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// What started a build, as secret filters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A person: force, or rebuild.
    Force,
    /// A time scheduler.
    Time,
    /// A new commit found by polling.
    Commit,
    /// A new commit a forge's push webhook announced.
    Push,
    /// A pull (merge) request.
    PullRequest,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 5] = [
        TriggerKind::Force,
        TriggerKind::Time,
        TriggerKind::Commit,
        TriggerKind::Push,
        TriggerKind::PullRequest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Force => "force",
            TriggerKind::Time => "time",
            TriggerKind::Commit => "commit",
            TriggerKind::Push => "push",
            TriggerKind::PullRequest => "pull_request",
        }
    }

    pub fn parse(text: &str) -> Option<TriggerKind> {
        TriggerKind::ALL.into_iter().find(|t| t.name() == text)
    }

    /// The trigger of a build recorded before builds kept theirs, read from
    /// the reason it was started with.
    pub fn of_reason(reason: &str) -> TriggerKind {
        if reason.starts_with("time scheduler") {
            TriggerKind::Time
        } else if reason.starts_with("commit ") {
            TriggerKind::Commit
        } else {
            TriggerKind::Force
        }
    }
}

/// One maintainers' secret and the builds it may reach.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintainerSecret {
    pub name: String,
    pub source: SecretSource,
    /// Repo name patterns (`*`, `?`); empty: every repo.
    pub repos: Vec<String>,
    /// Full builder name patterns; empty: every builder.
    pub builders: Vec<String>,
    /// A regex the build's branch must match; none: every branch.
    pub branches: Option<String>,
    pub triggers: Vec<TriggerKind>,
    /// Pull requests from forks get it too (needs `pull_request` in triggers).
    pub fork_pull_requests: bool,
    /// Workers a repo declares itself may receive it.
    pub user_workers: bool,
    /// The step gets a file's path in the variable instead of the value.
    pub as_file: bool,
}

/// What a secret filter knows of a build about to be handed to a worker.
#[derive(Debug, Clone)]
pub struct BuildFacts<'a> {
    pub repo: &'a str,
    /// The full builder name.
    pub builder: &'a str,
    pub branch: Option<&'a str>,
    pub trigger: TriggerKind,
    /// A pull request whose head is in another repo than the base.
    pub from_fork: bool,
    pub worker: &'a str,
    /// The worker is declared by the repo, not by cybertron.
    pub user_worker: bool,
}

/// The triggers a secret reaches when it does not say: everything but pull
/// requests.
pub const DEFAULT_TRIGGERS: [TriggerKind; 4] = [
    TriggerKind::Force,
    TriggerKind::Time,
    TriggerKind::Commit,
    TriggerKind::Push,
];

impl MaintainerSecret {
    /// Why the build does not get this secret, or `None` when it does.
    pub fn withheld_because(&self, build: &BuildFacts<'_>) -> Option<String> {
        if !self.repos.is_empty() && !self.repos.iter().any(|p| glob_matches(p, build.repo)) {
            return Some(format!(
                "repo {} does not match {}",
                build.repo,
                self.repos.join(", ")
            ));
        }
        if !self.builders.is_empty()
            && !self.builders.iter().any(|p| glob_matches(p, build.builder))
        {
            return Some(format!(
                "builder {} does not match {}",
                build.builder,
                self.builders.join(", ")
            ));
        }
        if let Some(pattern) = &self.branches {
            let matches = regex::Regex::new(pattern)
                .ok()
                .zip(build.branch)
                .is_some_and(|(regex, branch)| regex.is_match(branch));
            if !matches {
                return Some(match build.branch {
                    Some(branch) => format!("branch {branch} does not match {pattern}"),
                    None => format!("the build's branch is not known, and {pattern} must match it"),
                });
            }
        }
        let is_pull_request = build.trigger == TriggerKind::PullRequest;
        if let Some(why) = self.pull_request_refusal(is_pull_request, build.from_fork) {
            return Some(why);
        }
        if !self.triggers.contains(&build.trigger) {
            return Some(format!(
                "started by {}, and it is given only to builds started by {}",
                build.trigger.name(),
                self.triggers
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if build.user_worker && !self.user_workers {
            return Some(format!("user worker {}", build.worker));
        }
        None
    }

    /// The pull-request rule alone: a pull request gets the secret only when
    /// its triggers name `pull_request`, and one from a fork only when the
    /// secret also says `fork_pull_requests: true`.
    pub fn pull_request_refusal(&self, is_pull_request: bool, from_fork: bool) -> Option<String> {
        if !is_pull_request {
            return None;
        }
        if from_fork && !self.fork_pull_requests {
            return Some("pull request from a fork".into());
        }
        if !self.triggers.contains(&TriggerKind::PullRequest) {
            return Some("pull request, and its triggers do not name pull_request".into());
        }
        None
    }
}

/// A secret's name: it becomes an environment variable, upper-cased.
pub fn env_name(secret: &str) -> String {
    secret.to_ascii_uppercase()
}

fn check_secret_name(reader: &mut Reader, path: &str, name: &str) {
    let mut chars = name.chars();
    let good = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !good {
        reader.problem(
            path,
            format!(
                "secret name \"{}\" cannot be an environment variable: use letters, digits and _, not starting with a digit",
                name.escape_debug()
            ),
        );
    } else if env_name(name).starts_with("CONSTRUCTICON_") {
        reader.problem(
            path,
            format!("secret name \"{name}\": CONSTRUCTICON_ variables are the system's own"),
        );
    }
}

const MAINTAINER_SECRET_KEYS: &[&str] = &[
    "env",
    "file",
    "repos",
    "builders",
    "branches",
    "triggers",
    "fork_pull_requests",
    "user_workers",
    "as_file",
];

/// Cybertron's `secrets`: name → where it is and whom it reaches.
pub(super) fn read_maintainer_secrets(
    reader: &mut Reader,
    value: &Value,
) -> BTreeMap<String, MaintainerSecret> {
    let mut secrets = BTreeMap::new();
    let Some(map) = reader.map(value, "secrets") else {
        return secrets;
    };
    for (name, secret) in map {
        let path = child("secrets", name);
        check_secret_name(reader, &path, name);
        if secret.is_string() {
            reader.value_problem(
                &path,
                "expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the secret itself never goes in cybertron",
            );
            continue;
        }
        let Some(fields) = reader.fields(secret, &path, MAINTAINER_SECRET_KEYS) else {
            continue;
        };
        // The source is read from the same map, without the filters.
        let source_only: serde_json::Map<String, Value> = ["env", "file"]
            .iter()
            .filter_map(|k| fields.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let source = read_secret_source(reader, &Value::Object(source_only), &path);
        let patterns = |reader: &mut Reader, key: &str| -> Vec<String> {
            let Some(value) = fields.get(key) else {
                return Vec::new();
            };
            let patterns = reader.strings(value, &fields.path_of(key));
            for (i, pattern) in patterns.iter().enumerate() {
                if pattern.is_empty() {
                    reader.problem(&index(&fields.path_of(key), i), "an empty pattern");
                }
            }
            patterns
        };
        let repos = patterns(reader, "repos");
        let builders = patterns(reader, "builders");
        let branches = fields.get("branches").and_then(|b| {
            let pattern = reader.string(b, &fields.path_of("branches"))?;
            if let Some(error) = regex_error(reader, &pattern) {
                reader.value_problem(
                    &fields.path_of("branches"),
                    format!("invalid regex \"{pattern}\": {error}"),
                );
            }
            Some(pattern)
        });
        let triggers = match fields.get("triggers") {
            Some(value) => {
                let path = fields.path_of("triggers");
                let mut triggers = Vec::new();
                for (i, text) in reader.strings(value, &path).iter().enumerate() {
                    match TriggerKind::parse(text) {
                        Some(t) if !triggers.contains(&t) => triggers.push(t),
                        Some(_) => {}
                        None => reader.value_problem(
                            &index(&path, i),
                            format!("unknown trigger \"{text}\": expected \"force\", \"time\", \"commit\", \"push\" or \"pull_request\""),
                        ),
                    }
                }
                triggers
            }
            None => DEFAULT_TRIGGERS.to_vec(),
        };
        let flag = |reader: &mut Reader, key: &str| {
            fields
                .get(key)
                .and_then(|v| reader.bool(v, &fields.path_of(key)))
                .unwrap_or(false)
        };
        let fork_pull_requests = flag(reader, "fork_pull_requests");
        let user_workers = flag(reader, "user_workers");
        let as_file = flag(reader, "as_file");
        if fork_pull_requests && !triggers.contains(&TriggerKind::PullRequest) {
            reader.problem(
                &fields.path_of("fork_pull_requests"),
                "fork_pull_requests needs \"pull_request\" in the secret's triggers",
            );
        }
        if let Some(source) = source {
            secrets.insert(
                name.clone(),
                MaintainerSecret {
                    name: name.clone(),
                    source,
                    repos,
                    builders,
                    branches,
                    triggers,
                    fork_pull_requests,
                    user_workers,
                    as_file,
                },
            );
        }
    }
    secrets
}

/// A repo's `secrets`: name → armoured age ciphertext, each checked for its
/// form (never opened: only the megatron holds the key).
pub(super) fn read_repo_secrets(reader: &mut Reader, value: &Value) -> BTreeMap<String, String> {
    let mut secrets = BTreeMap::new();
    let Some(map) = reader.map(value, "secrets") else {
        return secrets;
    };
    for (name, ciphertext) in map {
        let path = child("secrets", name);
        check_secret_name(reader, &path, name);
        let Some(text) = reader.string(ciphertext, &path) else {
            continue;
        };
        if let Err(why) = check_ciphertext(&text) {
            reader.push(
                super::reader::Problem::new(&path, why)
                    .help("encrypt the value with `constructicon encrypt --repo <repo>`: it reads the value on stdin and prints what goes here")
                    .at_value(),
            );
            continue;
        }
        secrets.insert(name.clone(), text);
    }
    secrets
}

/// Whether `text` is an armoured age ciphertext: its armour and header
/// parse. Nothing is decrypted.
pub fn check_ciphertext(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if !trimmed.starts_with(AGE_ARMOR_BEGIN) {
        return Err(format!(
            "expected an encrypted secret starting with \"{AGE_ARMOR_BEGIN}\"; a secret's value never goes in a config"
        ));
    }
    let reader = age::armor::ArmoredReader::new(trimmed.as_bytes());
    match age::Decryptor::new_buffered(reader) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("the encrypted secret is malformed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> MaintainerSecret {
        MaintainerSecret {
            name: "deploy_token".into(),
            source: SecretSource::Env("DEPLOY_TOKEN".into()),
            repos: vec!["app*".into()],
            builders: vec![],
            branches: Some("^main$".into()),
            triggers: DEFAULT_TRIGGERS.to_vec(),
            fork_pull_requests: false,
            user_workers: false,
            as_file: false,
        }
    }

    fn facts() -> BuildFacts<'static> {
        BuildFacts {
            repo: "app",
            builder: "app-deploy",
            branch: Some("main"),
            trigger: TriggerKind::Force,
            from_fork: false,
            worker: "w1",
            user_worker: false,
        }
    }

    #[test]
    fn filters_say_why() {
        let s = secret();
        assert_eq!(s.withheld_because(&facts()), None);
        let cases: Vec<(BuildFacts, &str)> = vec![
            (
                BuildFacts {
                    repo: "lib",
                    ..facts()
                },
                "repo lib does not match app*",
            ),
            (
                BuildFacts {
                    branch: Some("feature/x"),
                    ..facts()
                },
                "branch feature/x does not match ^main$",
            ),
            (
                BuildFacts {
                    user_worker: true,
                    worker: "app-w9",
                    ..facts()
                },
                "user worker app-w9",
            ),
            (
                BuildFacts {
                    trigger: TriggerKind::PullRequest,
                    from_fork: true,
                    ..facts()
                },
                "pull request from a fork",
            ),
            (
                BuildFacts {
                    trigger: TriggerKind::PullRequest,
                    ..facts()
                },
                "pull request, and its triggers do not name pull_request",
            ),
        ];
        for (build, why) in cases {
            assert_eq!(s.withheld_because(&build).as_deref(), Some(why));
        }
    }

    #[test]
    fn fork_pull_requests_only_when_the_secret_says_so() {
        let mut s = secret();
        s.triggers.push(TriggerKind::PullRequest);
        assert_eq!(s.pull_request_refusal(true, false), None);
        assert_eq!(
            s.pull_request_refusal(true, true).as_deref(),
            Some("pull request from a fork")
        );
        s.fork_pull_requests = true;
        assert_eq!(s.pull_request_refusal(true, true), None);
        assert_eq!(s.pull_request_refusal(false, true), None);
    }

    #[test]
    fn ciphertexts_are_checked_for_form() {
        let identity = age::x25519::Identity::generate();
        let armoured = age::encrypt_and_armor(&identity.to_public(), b"hunter22").unwrap();
        assert_eq!(check_ciphertext(&armoured), Ok(()));
        assert!(check_ciphertext("hunter22")
            .unwrap_err()
            .starts_with("expected an encrypted secret"));
        let broken =
            format!("{AGE_ARMOR_BEGIN}\nnot base64 at all!\n-----END AGE ENCRYPTED FILE-----\n");
        assert!(check_ciphertext(&broken)
            .unwrap_err()
            .starts_with("the encrypted secret is malformed"));
    }
}
