//! Commit statuses as each forge takes them: the request (address, auth
//! header, JSON body) for one status, and what an answer says about when
//! to try again. Pure: the reporter sends what this builds.
//!
//! - GitHub: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`, states
//!   `pending`, `success`, `failure`, `error`; `Authorization: Bearer`.
//! - GitLab: `POST {api}/projects/{url-encoded path}/statuses/{sha}`, states
//!   `pending`, `running`, `success`, `failed`, `canceled`; `PRIVATE-TOKEN`.
//! - Gitea and Forgejo: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`,
//!   states `pending`, `success`, `failure`, `error`; `Authorization: token`.

use crate::config::forges::ForgeKind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Where a build is, as a status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Running,
    Success,
    Failure,
    Error,
    Cancelled,
}

impl StatusState {
    /// Our own word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Running => "running",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
            StatusState::Cancelled => "cancelled",
        }
    }

    /// The word the forge takes for this state.
    pub fn on(self, kind: ForgeKind) -> &'static str {
        match (kind, self) {
            (_, StatusState::Pending) => "pending",
            (ForgeKind::GitLab, StatusState::Running) => "running",
            (_, StatusState::Running) => "pending",
            (_, StatusState::Success) => "success",
            (ForgeKind::GitLab, StatusState::Failure) => "failed",
            (_, StatusState::Failure) => "failure",
            // GitLab has no "error": a build that could not run failed.
            (ForgeKind::GitLab, StatusState::Error) => "failed",
            (_, StatusState::Error) => "error",
            (ForgeKind::GitLab, StatusState::Cancelled) => "canceled",
            // GitHub and Gitea have no "cancelled"; "error" is final, where
            // "pending" would wait forever.
            (_, StatusState::Cancelled) => "error",
        }
    }

    /// Whether nothing comes after it.
    pub fn is_final(self) -> bool {
        !matches!(self, StatusState::Pending | StatusState::Running)
    }
}

/// One status of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `constructicon/<builder>`.
    pub context: String,
    pub state: StatusState,
    pub description: String,
    /// The build's page, when the megatron knows its public address.
    pub target_url: Option<String>,
}

/// The most a description holds on GitHub; the others take more, but a
/// status is a line.
pub const MAX_DESCRIPTION: usize = 140;

/// Cuts a description to [`MAX_DESCRIPTION`] characters, with an ellipsis.
pub fn short_description(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= MAX_DESCRIPTION {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(MAX_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// An HTTP request to send, token aside.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRequest {
    pub url: String,
    pub body: serde_json::Value,
}

/// The request that posts `status` on `commit` of `project`.
pub fn request(
    kind: ForgeKind,
    api: &str,
    project: &str,
    commit: &str,
    status: &Status,
) -> StatusRequest {
    let state = status.state.on(kind);
    let description = short_description(&status.description);
    match kind {
        ForgeKind::GitLab => StatusRequest {
            url: format!(
                "{api}/projects/{}/statuses/{commit}",
                project.replace('/', "%2F")
            ),
            body: json!({
                "state": state,
                "name": status.context,
                "description": description,
                "target_url": status.target_url,
            }),
        },
        ForgeKind::GitHub | ForgeKind::Gitea | ForgeKind::Forgejo => StatusRequest {
            url: format!("{api}/repos/{project}/statuses/{commit}"),
            body: json!({
                "state": state,
                "context": status.context,
                "description": description,
                "target_url": status.target_url,
            }),
        },
    }
}

/// The header that carries the token.
pub fn auth_header(kind: ForgeKind, token: &str) -> (&'static str, String) {
    match kind {
        ForgeKind::GitHub => ("authorization", format!("Bearer {token}")),
        ForgeKind::GitLab => ("private-token", token.to_string()),
        ForgeKind::Gitea | ForgeKind::Forgejo => ("authorization", format!("token {token}")),
    }
}

/// How long a rate-limited answer asks us to wait, if it is one: 429, or
/// 403 with `X-RateLimit-Remaining: 0` (GitHub's secondary limits). Takes
/// `Retry-After` (seconds), else `X-RateLimit-Reset` (epoch seconds), else
/// a minute.
pub fn rate_limit_wait(
    status: u16,
    header: impl Fn(&str) -> Option<String>,
    now_secs: u64,
) -> Option<Duration> {
    let exhausted = header("x-ratelimit-remaining").is_some_and(|r| r.trim() == "0");
    if status != 429 && !(status == 403 && (exhausted || header("retry-after").is_some())) {
        return None;
    }
    if let Some(after) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(after));
    }
    if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(reset.saturating_sub(now_secs).max(1)));
    }
    Some(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: StatusState) -> Status {
        Status {
            context: "constructicon/app-test".into(),
            state,
            description: "command 2 failed: make test (exit 2)".into(),
            target_url: Some("https://ci.example.com/builds/7".into()),
        }
    }

    #[test]
    fn each_forge_gets_its_own_address_words_and_header() {
        let github = request(
            ForgeKind::GitHub,
            "https://api.github.com",
            "acme/app",
            "abc",
            &status(StatusState::Failure),
        );
        assert_eq!(
            github.url,
            "https://api.github.com/repos/acme/app/statuses/abc"
        );
        assert_eq!(github.body["state"], "failure");
        assert_eq!(github.body["context"], "constructicon/app-test");
        let gitlab = request(
            ForgeKind::GitLab,
            "https://gl.example.com/api/v4",
            "group/sub/app",
            "abc",
            &status(StatusState::Cancelled),
        );
        assert_eq!(
            gitlab.url,
            "https://gl.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/abc"
        );
        assert_eq!(gitlab.body["state"], "canceled");
        assert_eq!(gitlab.body["name"], "constructicon/app-test");
        let gitea = request(
            ForgeKind::Forgejo,
            "https://codeberg.org/api/v1",
            "acme/app",
            "abc",
            &status(StatusState::Running),
        );
        assert_eq!(gitea.body["state"], "pending");
        assert_eq!(auth_header(ForgeKind::GitLab, "t").0, "private-token");
        assert_eq!(auth_header(ForgeKind::Gitea, "t").1, "token t");
        assert_eq!(auth_header(ForgeKind::GitHub, "t").1, "Bearer t");
    }

    #[test]
    fn a_cancelled_build_never_reads_pending() {
        for kind in [ForgeKind::GitHub, ForgeKind::GitLab, ForgeKind::Gitea] {
            assert_ne!(StatusState::Cancelled.on(kind), "pending");
            assert!(StatusState::Cancelled.is_final());
        }
    }

    #[test]
    fn rate_limit_answers_say_when_to_try_again() {
        let none = |_: &str| None;
        assert_eq!(rate_limit_wait(500, none, 0), None);
        assert_eq!(
            rate_limit_wait(403, none, 0),
            None,
            "a plain 403 is not a limit"
        );
        let after = |h: &str| (h == "retry-after").then(|| "7".to_string());
        assert_eq!(rate_limit_wait(429, after, 0), Some(Duration::from_secs(7)));
        let reset = |h: &str| match h {
            "x-ratelimit-remaining" => Some("0".to_string()),
            "x-ratelimit-reset" => Some("1030".to_string()),
            _ => None,
        };
        assert_eq!(
            rate_limit_wait(403, reset, 1000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(rate_limit_wait(429, none, 0), Some(Duration::from_secs(60)));
    }

    #[test]
    fn descriptions_are_one_short_line() {
        let long = "x".repeat(300);
        let cut = short_description(&format!("{long}\nsecond line"));
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION);
        assert!(cut.ends_with('…'));
        assert_eq!(short_description("a\nb"), "a");
    }
}
