//! What a push payload says: the repo's URLs, the ref and its new commit.
//! Read only after the signature was checked.

use super::delivery::{Forge, HookError};
use crate::model::same_repo_url;
use serde_json::Value;

/// A push as the forges describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Every URL the payload gives for the repo (clone, ssh, web), each
    /// once: a repo may be registered under any of them.
    pub urls: Vec<String>,
    /// The full ref pushed: `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    /// The ref's new commit; all zeros when the ref was deleted.
    pub commit: String,
}

/// What a push did to its ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A branch got a new commit: the one case that polls.
    Branch(String),
    Tag(String),
    /// A branch was deleted: there is nothing to build.
    Deleted(String),
    /// Some other ref (notes, merge requests' refs).
    Other(String),
}

impl Push {
    pub fn change(&self) -> Change {
        if let Some(tag) = self.git_ref.strip_prefix("refs/tags/") {
            return Change::Tag(tag.to_string());
        }
        let Some(branch) = self.git_ref.strip_prefix("refs/heads/") else {
            return Change::Other(self.git_ref.clone());
        };
        if is_zero_commit(&self.commit) {
            Change::Deleted(branch.to_string())
        } else {
            Change::Branch(branch.to_string())
        }
    }
}

/// Forges name a deleted ref's new commit as all zeros (40 for SHA-1
/// repos, 64 for SHA-256 ones).
pub fn is_zero_commit(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|b| b == b'0')
}

/// Where a forge's payload keeps each thing, as JSON pointers with the
/// names the error message uses.
struct Layout {
    urls: &'static [(&'static str, &'static str)],
    commit: &'static [(&'static str, &'static str)],
}

const GITHUB_LIKE: Layout = Layout {
    urls: &[
        ("/repository/clone_url", "repository.clone_url"),
        ("/repository/ssh_url", "repository.ssh_url"),
        ("/repository/html_url", "repository.html_url"),
    ],
    commit: &[("/after", "after")],
};

const GITLAB: Layout = Layout {
    urls: &[
        ("/project/git_http_url", "project.git_http_url"),
        ("/project/git_ssh_url", "project.git_ssh_url"),
        ("/project/web_url", "project.web_url"),
        ("/repository/git_http_url", "repository.git_http_url"),
        ("/repository/git_ssh_url", "repository.git_ssh_url"),
        ("/repository/homepage", "repository.homepage"),
    ],
    // `checkout_sha` is null on a deletion, where `after` is the zeros.
    commit: &[("/after", "after"), ("/checkout_sha", "checkout_sha")],
};

/// Reads a push payload of `forge`. Call only after [`verify`].
pub fn parse(forge: Forge, body: &[u8]) -> Result<Push, HookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| HookError::Malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(HookError::Malformed("expected a JSON object".into()));
    }
    let layout = match forge {
        Forge::GitLab => &GITLAB,
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => &GITHUB_LIKE,
    };
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut urls: Vec<String> = Vec::new();
    for (pointer, _) in layout.urls {
        if let Some(url) = text(pointer) {
            // `x.git` and `x/` name one repo: polling it twice would only
            // fetch twice.
            if !urls.iter().any(|seen| same_repo_url(seen, url)) {
                urls.push(url.to_string());
            }
        }
    }
    let git_ref = text("/ref");
    let commit = layout.commit.iter().find_map(|(pointer, _)| text(pointer));
    let mut missing = Vec::new();
    if urls.is_empty() {
        missing.push(layout.urls[0].1);
    }
    if git_ref.is_none() {
        missing.push("ref");
    }
    if commit.is_none() {
        missing.push(layout.commit[0].1);
    }
    match (git_ref, commit) {
        (Some(git_ref), Some(commit)) if missing.is_empty() => Ok(Push {
            urls,
            git_ref: git_ref.to_string(),
            commit: commit.to_string(),
        }),
        _ => Err(HookError::Missing(missing)),
    }
}
