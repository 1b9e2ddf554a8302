//! What a pull (merge) request event and a comment on one say. Read only
//! after the signature was checked.
//!
//! - GitHub `pull_request` and Gitea/Forgejo `pull_request`: `action`,
//!   `number`, `pull_request.{title, user.login, head.{sha, ref, repo},
//!   base.{ref, repo}}`; the head is fetched from the base repo's
//!   `refs/pull/<n>/head`.
//! - GitLab "Merge Request Hook": `object_attributes.{iid, action,
//!   last_commit.id, source_branch, target_branch, source_project_id,
//!   target_project_id, title}`, `user.username`, `project`; the head is at
//!   `refs/merge-requests/<iid>/head`.
//! - Comments: GitHub/Gitea `issue_comment` on a pull request
//!   (`issue.pull_request` present), GitLab "Note Hook" on a merge request.

use super::delivery::{Forge, HookError};
use crate::model::same_repo_url;
use serde_json::Value;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullAction {
    /// Opened, reopened, or a new head pushed: build it.
    Updated,
    /// Closed or merged: nothing more to build.
    Closed,
    /// Anything else (labels, edits, reviews): nothing to do.
    Other,
}

/// A pull or merge request event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    pub action: PullAction,
    /// The target repo's URLs (clone, ssh, web), each once.
    pub urls: Vec<String>,
    pub number: u64,
    pub title: String,
    /// The forge login of who opened it.
    pub author: String,
    /// The head commit.
    pub head: String,
    /// The branch in the source repo.
    pub head_ref: String,
    /// The branch it would merge into.
    pub base_ref: String,
    /// The ref of the target repo the head can be fetched from.
    pub fetch_ref: String,
    /// The head is in another repo than the target.
    pub fork: bool,
}

/// A comment on a pull or merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullComment {
    pub urls: Vec<String>,
    pub number: u64,
    /// The forge login of who wrote it.
    pub author: String,
    pub body: String,
}

fn json(body: &[u8]) -> Result<Value, HookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| HookError::Malformed(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(HookError::Malformed("expected a JSON object".into()))
    }
}

fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn urls(value: &Value, pointers: &[&str]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for pointer in pointers {
        if let Some(url) = text(value, pointer) {
            if !urls.iter().any(|seen| same_repo_url(seen, url)) {
                urls.push(url.to_string());
            }
        }
    }
    urls
}

/// Takes what `pointers` name, or says which are missing.
struct Wanted<'v> {
    value: &'v Value,
    missing: Vec<&'static str>,
}

impl<'v> Wanted<'v> {
    fn text(&mut self, pointer: &str, name: &'static str) -> String {
        match text(self.value, pointer) {
            Some(found) => found.to_string(),
            None => {
                self.missing.push(name);
                String::new()
            }
        }
    }

    fn number(&mut self, pointer: &str, name: &'static str) -> u64 {
        match self.value.pointer(pointer).and_then(Value::as_u64) {
            Some(n) => n,
            None => {
                self.missing.push(name);
                0
            }
        }
    }

    fn done<T>(self, value: T) -> Result<T, HookError> {
        if self.missing.is_empty() {
            Ok(value)
        } else {
            Err(HookError::Missing(self.missing))
        }
    }
}

/// Reads a pull or merge request event of `forge`.
pub fn parse_pull(forge: Forge, body: &[u8]) -> Result<PullEvent, HookError> {
    let value = json(body)?;
    let mut want = Wanted {
        value: &value,
        missing: Vec::new(),
    };
    let event = match forge {
        Forge::GitLab => {
            let action = match text(&value, "/object_attributes/action") {
                Some("open" | "reopen") => PullAction::Updated,
                // An update without `oldrev` changed the title or labels, not
                // the code.
                Some("update") if value.pointer("/object_attributes/oldrev").is_some() => {
                    PullAction::Updated
                }
                Some("close" | "merge") => PullAction::Closed,
                _ => PullAction::Other,
            };
            let number = want.number("/object_attributes/iid", "object_attributes.iid");
            let source = value.pointer("/object_attributes/source_project_id");
            let target = value.pointer("/object_attributes/target_project_id");
            PullEvent {
                action,
                urls: urls(
                    &value,
                    &[
                        "/project/git_http_url",
                        "/project/git_ssh_url",
                        "/project/web_url",
                        "/object_attributes/target/git_http_url",
                    ],
                ),
                number,
                title: text(&value, "/object_attributes/title")
                    .unwrap_or_default()
                    .to_string(),
                author: want.text("/user/username", "user.username"),
                head: want.text(
                    "/object_attributes/last_commit/id",
                    "object_attributes.last_commit.id",
                ),
                head_ref: want.text(
                    "/object_attributes/source_branch",
                    "object_attributes.source_branch",
                ),
                base_ref: want.text(
                    "/object_attributes/target_branch",
                    "object_attributes.target_branch",
                ),
                fetch_ref: format!("refs/merge-requests/{number}/head"),
                fork: source != target,
            }
        }
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => {
            let action = match text(&value, "/action") {
                Some("opened" | "reopened" | "synchronize" | "synchronized") => PullAction::Updated,
                Some("closed") => PullAction::Closed,
                _ => PullAction::Other,
            };
            let number = want.number("/number", "number");
            let head_repo = text(&value, "/pull_request/head/repo/full_name");
            let base_repo = text(&value, "/pull_request/base/repo/full_name");
            PullEvent {
                action,
                urls: urls(
                    &value,
                    &[
                        "/pull_request/base/repo/clone_url",
                        "/pull_request/base/repo/ssh_url",
                        "/pull_request/base/repo/html_url",
                        "/repository/clone_url",
                        "/repository/ssh_url",
                        "/repository/html_url",
                    ],
                ),
                number,
                title: text(&value, "/pull_request/title")
                    .unwrap_or_default()
                    .to_string(),
                author: want.text("/pull_request/user/login", "pull_request.user.login"),
                head: want.text("/pull_request/head/sha", "pull_request.head.sha"),
                head_ref: want.text("/pull_request/head/ref", "pull_request.head.ref"),
                base_ref: want.text("/pull_request/base/ref", "pull_request.base.ref"),
                fetch_ref: format!("refs/pull/{number}/head"),
                // A head repo that is gone (a deleted fork) counts as a fork.
                fork: head_repo.is_none() || head_repo != base_repo,
            }
        }
    };
    if event.urls.is_empty() {
        want.missing.push("the target repo's clone_url");
    }
    want.done(event)
}

/// Reads a comment on a pull or merge request; `None` when the comment is
/// on something else (an issue, a commit).
pub fn parse_comment(forge: Forge, body: &[u8]) -> Result<Option<PullComment>, HookError> {
    let value = json(body)?;
    let mut want = Wanted {
        value: &value,
        missing: Vec::new(),
    };
    let comment = match forge {
        Forge::GitLab => {
            if text(&value, "/object_attributes/noteable_type") != Some("MergeRequest") {
                return Ok(None);
            }
            PullComment {
                urls: urls(
                    &value,
                    &[
                        "/project/git_http_url",
                        "/project/git_ssh_url",
                        "/project/web_url",
                    ],
                ),
                number: want.number("/merge_request/iid", "merge_request.iid"),
                author: want.text("/user/username", "user.username"),
                body: want.text("/object_attributes/note", "object_attributes.note"),
            }
        }
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => {
            let on_pull = value
                .pointer("/issue/pull_request")
                .is_some_and(|p| !p.is_null())
                || value.pointer("/is_pull").and_then(Value::as_bool) == Some(true);
            if !on_pull || text(&value, "/action").is_some_and(|a| a != "created") {
                return Ok(None);
            }
            PullComment {
                urls: urls(
                    &value,
                    &[
                        "/repository/clone_url",
                        "/repository/ssh_url",
                        "/repository/html_url",
                    ],
                ),
                number: want.number("/issue/number", "issue.number"),
                author: want.text("/comment/user/login", "comment.user.login"),
                body: want.text("/comment/body", "comment.body"),
            }
        }
    };
    if comment.urls.is_empty() {
        want.missing.push("repository.clone_url");
    }
    want.done(comment).map(Some)
}

/// The commit a comment approves: `/ok-to-test <sha>` on a line of its own
/// (a prefix of at least 7 hex digits).
pub fn ok_to_test(body: &str) -> Option<String> {
    body.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("/ok-to-test")?;
        let sha = rest.trim();
        (sha.len() >= 7 && sha.len() <= 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| sha.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn github_pull(action: &str, head_repo: &str) -> Vec<u8> {
        json!({
            "action": action,
            "number": 7,
            "pull_request": {
                "title": "Make it faster",
                "user": { "login": "mallory" },
                "head": { "sha": "abc1234", "ref": "fast", "repo": { "full_name": head_repo } },
                "base": { "ref": "main", "repo": { "full_name": "acme/app", "clone_url": "https://github.com/acme/app.git" } },
            },
            "repository": { "clone_url": "https://github.com/acme/app.git" },
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_github_pull_request() {
        let event =
            parse_pull(Forge::GitHub, &github_pull("synchronize", "mallory/app")).expect("pull");
        assert_eq!(event.action, PullAction::Updated);
        assert_eq!(event.urls, ["https://github.com/acme/app.git"]);
        assert_eq!((event.number, event.head.as_str()), (7, "abc1234"));
        assert_eq!(event.fetch_ref, "refs/pull/7/head");
        assert!(event.fork);
        let same =
            parse_pull(Forge::Gitea, &github_pull("synchronized", "acme/app")).expect("pull");
        assert!(!same.fork);
        assert_eq!(same.action, PullAction::Updated);
        let labelled =
            parse_pull(Forge::GitHub, &github_pull("labeled", "acme/app")).expect("pull");
        assert_eq!(labelled.action, PullAction::Other);
        let missing = parse_pull(Forge::GitHub, br#"{"action":"opened","number":1}"#);
        assert!(
            matches!(missing, Err(HookError::Missing(m)) if m.contains(&"pull_request.head.sha"))
        );
    }

    #[test]
    fn a_gitlab_merge_request() {
        let body = json!({
            "object_kind": "merge_request",
            "user": { "username": "ana" },
            "project": { "git_http_url": "https://gl.example.com/g/app.git" },
            "object_attributes": {
                "iid": 3, "action": "update", "oldrev": "0ld",
                "last_commit": { "id": "def5678" },
                "source_branch": "topic", "target_branch": "main",
                "source_project_id": 9, "target_project_id": 9, "title": "t",
            },
        })
        .to_string();
        let event = parse_pull(Forge::GitLab, body.as_bytes()).expect("merge request");
        assert_eq!(event.action, PullAction::Updated);
        assert_eq!(event.fetch_ref, "refs/merge-requests/3/head");
        assert!(!event.fork);
        assert_eq!(event.head, "def5678");
    }

    #[test]
    fn comments_and_ok_to_test() {
        let body = json!({
            "action": "created",
            "issue": { "number": 7, "pull_request": { "url": "x" } },
            "comment": { "body": "looks fine\n/ok-to-test ABC1234", "user": { "login": "ana" } },
            "repository": { "clone_url": "https://github.com/acme/app.git" },
        })
        .to_string();
        let comment = parse_comment(Forge::GitHub, body.as_bytes())
            .expect("comment")
            .expect("on a pull request");
        assert_eq!((comment.number, comment.author.as_str()), (7, "ana"));
        assert_eq!(ok_to_test(&comment.body).as_deref(), Some("abc1234"));
        assert_eq!(ok_to_test("/ok-to-test"), None);
        assert_eq!(
            ok_to_test("/ok-to-test abc"),
            None,
            "too short to name a commit"
        );
        assert_eq!(
            ok_to_test("please /ok-to-test abc1234"),
            None,
            "not a line of its own"
        );
        let on_issue = json!({ "action": "created", "issue": { "number": 1 }, "comment": { "body": "/ok-to-test abc1234", "user": { "login": "x" } }, "repository": { "clone_url": "u" } }).to_string();
        assert_eq!(
            parse_comment(Forge::GitHub, on_issue.as_bytes()).expect("parse"),
            None
        );
    }
}
