//! Secrets at claim time: each repo's key pair (created on first need,
//! the private half in the data dir, mode 0600), and the secrets a claimed
//! build gets: cybertron's read from where cybertron says, the repo's
//! decrypted with its key, each only when its filters let the build have it.
//! Values live in the job handed to the worker and nowhere else: the build
//! record keeps only the names withheld and why.

use super::error::{Error, Result};
use super::mirror::branch_of;
use super::state::State;
use crate::config::secrets::{env_name, BuildFacts, TriggerKind, MIN_SECRET_LENGTH};
use crate::config::spec::SecretSource;
use crate::forge::secret::{read_secret, SecretError};
use crate::protocol::{JobSecret, SecretValue};
use crate::store::BuildRecord;
use crate::sync::read;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::str::FromStr as _;

/// What a claim hands over and what it holds back.
pub struct ClaimSecrets {
    pub secrets: Vec<JobSecret>,
    /// "name withheld: why", one per secret named but not given.
    pub withheld: Vec<String>,
}

/// Whether a build is a pull request's from a fork.
fn from_fork(build: &BuildRecord) -> bool {
    build.pull_request.as_ref().is_some_and(|p| p.fork)
}

impl State {
    /// The key's file: named by the repo and its URL, so a repo taken again
    /// from the same URL keeps its key, and another repo that comes to have
    /// the same name (from another URL) never opens the first one's secrets.
    fn repo_key_path(&self, repo: &str, url: &str) -> PathBuf {
        let url_hash = crate::token::secret_hash(crate::model::url_key(url));
        self.data_dir
            .join("repo-keys")
            .join(format!("{repo}-{}.age", &url_hash[..16]))
    }

    /// The repo's identity (private key), created the first time any
    /// caller needs it. Two callers racing both end with the same key: the
    /// file is linked into place only if none is there yet.
    fn repo_identity(&self, repo: &str, url: &str) -> Result<age::x25519::Identity> {
        crate::model::check_name(repo).map_or(Ok(()), |why| {
            Err(Error::BadRequest(format!("repo {repo}: {why}")))
        })?;
        let path = self.repo_key_path(repo, url);
        let internal = |doing: &str, e: &dyn std::fmt::Display| {
            Error::Internal(format!("{doing} {}: {e}", path.display()))
        };
        let parse = |text: &str| {
            age::x25519::Identity::from_str(text.trim())
                .map_err(|e| internal("reading the repo key", &e))
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(internal("reading the repo key", &e)),
        }
        let dir = path.parent().expect("the key has a folder");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| internal("creating the folder of", &e))?;
        let identity = age::x25519::Identity::generate();
        let temp = dir.join(format!(
            ".{repo}.{}.tmp",
            crate::token::random_secret().map_err(|e| internal("naming", &e))?
        ));
        let written = (|| -> std::io::Result<()> {
            use age::secrecy::ExposeSecret as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(identity.to_string().expose_secret().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            match std::fs::hard_link(&temp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        })();
        let _ = std::fs::remove_file(&temp);
        written.map_err(|e| internal("writing the repo key", &e))?;
        // Whoever linked first won; everyone uses that key.
        let text = std::fs::read_to_string(&path).map_err(|e| internal("reading", &e))?;
        parse(&text)
    }

    /// The public key users encrypt their repo's secrets to (`age1...`).
    pub fn repo_public_key(&self, repo: &str) -> Result<String> {
        let url = read(&self.repos)
            .get(repo)
            .map(|r| r.record.url.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo} not found")))?;
        Ok(self.repo_identity(repo, &url)?.to_public().to_string())
    }

    /// The secrets a build gets on `worker`, and those it does not with why.
    pub(super) fn claim_secrets(&self, build: &BuildRecord, worker: &str) -> ClaimSecrets {
        let mut claim = ClaimSecrets {
            secrets: Vec::new(),
            withheld: Vec::new(),
        };
        if build.spec.secrets.is_empty() {
            return claim;
        }
        let cybertron = read(&self.cybertron).clone();
        let branch = build.branch.clone().or_else(|| {
            let mirror = git2::Repository::open(self.repo_dir(&build.repo)).ok()?;
            branch_of(&mirror, None).ok()
        });
        let facts = BuildFacts {
            repo: &build.repo,
            builder: &build.builder,
            branch: branch.as_deref(),
            trigger: build
                .trigger
                .unwrap_or_else(|| TriggerKind::of_reason(&build.reason)),
            from_fork: from_fork(build),
            worker,
            user_worker: !cybertron.spec.workers.contains_key(worker),
        };
        let mut repo_secrets = None;
        for name in &build.spec.secrets {
            let got = if let Some(secret) = cybertron.spec.secrets.get(name) {
                match secret.withheld_because(&facts) {
                    Some(why) => Err(why),
                    None => read_secret(&secret.source)
                        .map(|s| (s.expose().to_string(), secret.as_file))
                        .map_err(|e| unreadable(&secret.source, e)),
                }
            } else if from_fork(build) {
                Err("pull request from a fork: a repo's own secrets never reach one".into())
            } else {
                // A pull request's build runs a config that is no graph
                // version: its repo's secrets are those the live graph has.
                let version = match build.pull_request {
                    Some(_) => read(&self.repos)
                        .get(&build.repo)
                        .and_then(|r| r.graph.as_ref().map(|g| g.version))
                        .unwrap_or(0),
                    None => build.provenance.graph_version,
                };
                let ciphertexts = repo_secrets.get_or_insert_with(|| {
                    self.store
                        .graph(&build.repo, version)
                        .ok()
                        .flatten()
                        .map(|g| g.graph.secrets)
                        .unwrap_or_default()
                });
                match ciphertexts.get(name) {
                    Some(ciphertext) => self
                        .decrypt(&build.repo, &build.repo_url, ciphertext)
                        .map(|value| (value, false)),
                    None => Err("neither cybertron nor the repo's config declares it now".into()),
                }
            };
            let got = got.and_then(|(value, as_file)| {
                if value.chars().count() < MIN_SECRET_LENGTH {
                    Err(format!(
                        "its value is shorter than {MIN_SECRET_LENGTH} characters, too short to mask in logs"
                    ))
                } else {
                    Ok((value, as_file))
                }
            });
            match got {
                Ok((value, as_file)) => claim.secrets.push(JobSecret {
                    name: name.clone(),
                    variable: env_name(name),
                    value: SecretValue(value),
                    as_file,
                }),
                Err(why) => claim.withheld.push(format!("{name} withheld: {why}")),
            }
        }
        claim
    }

    /// A repo secret's value. Only this repo's key can open it; anything
    /// else says which repo's key it is not for.
    fn decrypt(
        &self,
        repo: &str,
        url: &str,
        ciphertext: &str,
    ) -> std::result::Result<String, String> {
        let identity = self
            .repo_identity(repo, url)
            .map_err(|e| format!("repo {repo}'s key cannot be had: {e}"))?;
        let plain = age::decrypt(&identity, ciphertext.trim().as_bytes()).map_err(|e| {
            match e {
                age::DecryptError::NoMatchingKeys => format!(
                    "it was not encrypted to repo {repo}'s key (copied from another repo?); encrypt it with `constructicon encrypt --repo {repo}`"
                ),
                other => format!("it cannot be decrypted with repo {repo}'s key: {other}"),
            }
        })?;
        let text =
            String::from_utf8(plain).map_err(|_| "its value is not UTF-8 text".to_string())?;
        // `echo value | constructicon encrypt` leaves a newline that is not
        // part of the secret.
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Why a maintainers' secret could not be read: where it was looked for,
/// never what was found.
fn unreadable(source: &SecretSource, error: SecretError) -> String {
    match (source, error) {
        (_, SecretError::EnvUnset(name)) => {
            format!("the megatron's environment variable {name} is not set")
        }
        (_, SecretError::File { path, error }) => format!("reading {path}: {error}"),
        (SecretSource::Env(name), SecretError::Empty(_)) => {
            format!("the megatron's environment variable {name} is empty")
        }
        (SecretSource::File(path), SecretError::Empty(_)) => format!("{path} is empty"),
    }
}
