//! A forge's webhook delivery: which forge sent it (from its event header),
//! what it is about, and why one is refused.

use http::HeaderMap;

/// The largest payload taken. GitHub caps its own at 25 MB but a push of
/// a few commits is a few KiB; a megabyte leaves room for big pushes (their
/// `commits` array) without letting anyone park large bodies on us.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Who sent a delivery, from its event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl Forge {
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea",
            Forge::Forgejo => "Forgejo",
        }
    }
}

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push of branches or tags.
    Push,
    /// GitHub's "the hook works" delivery when a hook is created.
    Ping,
    /// A pull or merge request opened, updated or closed.
    PullRequest,
    /// A comment, perhaps on a pull or merge request.
    Comment,
    /// Anything else the hook was subscribed to; accepted and ignored.
    Other(String),
}

/// Why a delivery is refused. The HTTP layer maps each to a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error(
        "not a forge webhook: no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Forgejo-Event header"
    )]
    UnknownForge,
    #[error("the {0} header is missing: set the webhook's secret in the forge")]
    MissingSignature(&'static str),
    #[error("the {0} header does not match the webhook secret")]
    BadSignature(&'static str),
    #[error("invalid JSON payload: {0}")]
    Malformed(String),
    #[error("the payload lacks {}", .0.join(", "))]
    Missing(Vec<&'static str>),
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Which forge sent the delivery and what it is about.
///
/// Gitea and Forgejo also send `X-GitHub-Event` (and Forgejo sends
/// `X-Gitea-Event`) for compatibility, so the most specific header wins.
pub fn detect(headers: &HeaderMap) -> Result<(Forge, Event), HookError> {
    let found = [
        ("X-Forgejo-Event", Forge::Forgejo),
        ("X-Gitea-Event", Forge::Gitea),
        ("X-Gitlab-Event", Forge::GitLab),
        ("X-GitHub-Event", Forge::GitHub),
    ]
    .into_iter()
    .find_map(|(name, forge)| header(headers, name).map(|event| (forge, event)));
    let Some((forge, event)) = found else {
        return Err(HookError::UnknownForge);
    };
    let event = match (forge, event) {
        // GitLab sends tag pushes as their own event with the same payload;
        // they parse as a push whose ref says tag, and are ignored there.
        (Forge::GitLab, "Push Hook" | "Tag Push Hook") => Event::Push,
        (Forge::GitLab, "Merge Request Hook") => Event::PullRequest,
        (Forge::GitLab, "Note Hook") => Event::Comment,
        (_, "pull_request") => Event::PullRequest,
        (_, "issue_comment") => Event::Comment,
        (Forge::GitLab, other) => Event::Other(other.to_string()),
        (_, "push") => Event::Push,
        (_, "ping") => Event::Ping,
        (_, other) => Event::Other(other.to_string()),
    };
    Ok((forge, event))
}
