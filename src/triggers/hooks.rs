//! Push webhooks: which forge sent a delivery, whether it carries the shared
//! secret, and what the push says (repo URLs, ref, new commit).
//!
//! Everything here is a pure function of headers, bytes and the secret, so
//! the HTTP handler only orders the checks and the tests need no server.
//! Three payload families are understood:
//!
//! - GitHub: `X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex HMAC>`;
//! - GitLab: `X-Gitlab-Event`, `X-Gitlab-Token: <the secret itself>`;
//! - Gitea and Forgejo: `X-Gitea-Event` / `X-Forgejo-Event`,
//!   `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC>`.
//!
//! The HMAC is always checked on the raw body before any parsing, so nothing
//! from an unauthenticated sender reaches the JSON parser.

use crate::config::spec::SecretSource;
use crate::triggers::poll::same_repo_url;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    #[error("the push payload lacks {}", .0.join(", "))]
    Missing(Vec<&'static str>),
}

/// The secret, read per request and dropped after it; `Debug` never shows
/// it so it cannot reach a log by accident.
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the configured secret could not be had; the message names where it
/// was looked for, never what was found.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("webhook_secret: environment variable {0} is not set")]
    EnvUnset(String),
    #[error("webhook_secret: reading {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("webhook_secret: {0} holds an empty secret")]
    Empty(String),
}

/// Reads the secret from where cybertron says it is. Surrounding
/// whitespace is dropped: files written by `echo` end in a newline that
/// is not part of the secret the forge was given.
pub fn read_secret(source: &SecretSource) -> Result<Secret, SecretError> {
    let (text, place) = match source {
        SecretSource::Env(name) => (
            std::env::var(name).map_err(|_| SecretError::EnvUnset(name.clone()))?,
            format!("environment variable {name}"),
        ),
        SecretSource::File(path) => (
            std::fs::read_to_string(path).map_err(|error| SecretError::File {
                path: path.clone(),
                error,
            })?,
            path.clone(),
        ),
    };
    let secret = text.trim();
    // An empty key would make every signature computable by anyone.
    if secret.is_empty() {
        return Err(SecretError::Empty(place));
    }
    Ok(Secret(secret.to_string()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
        (Forge::GitLab, other) => Event::Other(other.to_string()),
        (_, "push") => Event::Push,
        (_, "ping") => Event::Ping,
        (_, other) => Event::Other(other.to_string()),
    };
    Ok((forge, event))
}

/// Checks the delivery's signature (or GitLab's token) against the secret.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    secret: &Secret,
    body: &[u8],
) -> Result<(), HookError> {
    match forge {
        Forge::GitHub => {
            let name = "X-Hub-Signature-256";
            let value = header(headers, name).ok_or(HookError::MissingSignature(name))?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(HookError::BadSignature(name))?;
            hmac_matches(secret.expose().as_bytes(), body, hex)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
        Forge::Gitea | Forge::Forgejo => {
            // Forgejo sends both its own header and Gitea's.
            let names: &[&'static str] = match forge {
                Forge::Forgejo => &["X-Forgejo-Signature", "X-Gitea-Signature"],
                _ => &["X-Gitea-Signature"],
            };
            let (name, value) = names
                .iter()
                .find_map(|name| header(headers, name).map(|value| (*name, value)))
                .ok_or(HookError::MissingSignature(names[0]))?;
            hmac_matches(secret.expose().as_bytes(), body, value)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
        Forge::GitLab => {
            let name = "X-Gitlab-Token";
            let value = header(headers, name).ok_or(HookError::MissingSignature(name))?;
            token_matches(secret.expose(), value)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
    }
}

/// Whether `hex` (either case) is the HMAC-SHA256 of `body` under `secret`.
/// The comparison is constant-time (`Mac::verify_slice`), so the time
/// taken says nothing about how many leading bytes were right.
pub fn hmac_matches(secret: &[u8], body: &[u8], hex: &str) -> bool {
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The hex HMAC-SHA256 of `body` under `secret`, as a forge signs it.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether GitLab's plain token equals the secret. Both sides are hashed
/// first so the constant-time compare also hides the secret's length.
pub fn token_matches(secret: &str, given: &str) -> bool {
    let secret = Sha256::digest(secret.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    secret.ct_eq(&given).into()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const SECRET: &str = "It's a Secret to Everybody";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn secret() -> Secret {
        Secret(SECRET.to_string())
    }

    /// Trimmed from a real GitHub push delivery.
    const GITHUB: &str = r#"{
      "ref": "refs/heads/main",
      "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "repository": {
        "id": 186853002,
        "name": "constructicon",
        "full_name": "octo/constructicon",
        "html_url": "https://github.com/octo/constructicon",
        "git_url": "git://github.com/octo/constructicon.git",
        "ssh_url": "git@github.com:octo/constructicon.git",
        "clone_url": "https://github.com/octo/constructicon.git",
        "default_branch": "main"
      },
      "pusher": { "name": "octo", "email": "octo@example.com" },
      "created": false, "deleted": false, "forced": false,
      "head_commit": { "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README" },
      "commits": [{ "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README" }]
    }"#;

    /// Trimmed from GitLab's documented push event.
    const GITLAB_PUSH: &str = r#"{
      "object_kind": "push",
      "event_name": "push",
      "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
      "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "ref": "refs/heads/develop",
      "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "user_username": "jsmith",
      "project_id": 15,
      "project": {
        "id": 15,
        "name": "Diaspora",
        "web_url": "http://example.com/mike/diaspora",
        "git_ssh_url": "git@example.com:mike/diaspora.git",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "path_with_namespace": "mike/diaspora",
        "default_branch": "master"
      },
      "repository": {
        "name": "Diaspora",
        "url": "git@example.com:mike/diaspora.git",
        "homepage": "http://example.com/mike/diaspora",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "git_ssh_url": "git@example.com:mike/diaspora.git"
      },
      "commits": [],
      "total_commits_count": 4
    }"#;

    /// Trimmed from a Forgejo push delivery (Gitea's is the same shape).
    const GITEA: &str = r#"{
      "ref": "refs/heads/feature/x",
      "before": "28e1879d029cb852e4844d9c718537df08844e03",
      "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
      "compare_url": "https://codeberg.example/alice/tool/compare/28e1879...bffeb74",
      "commits": [{ "id": "bffeb74224043ba2feb48d137756c8a9331c449a", "message": "x\n" }],
      "repository": {
        "id": 140,
        "owner": { "login": "alice" },
        "name": "tool",
        "full_name": "alice/tool",
        "html_url": "https://codeberg.example/alice/tool",
        "ssh_url": "git@codeberg.example:alice/tool.git",
        "clone_url": "https://codeberg.example/alice/tool.git",
        "default_branch": "main"
      },
      "pusher": { "login": "alice" }
    }"#;

    #[test]
    fn detects_each_forge_and_event() {
        // Headers sent, and what they say.
        type Case<'a> = (&'a [(&'a str, &'a str)], Forge, Event);
        let cases: &[Case] = &[
            (&[("X-GitHub-Event", "push")], Forge::GitHub, Event::Push),
            (&[("x-github-event", "ping")], Forge::GitHub, Event::Ping),
            (
                &[("X-GitHub-Event", "issues")],
                Forge::GitHub,
                Event::Other("issues".into()),
            ),
            (
                &[("X-Gitlab-Event", "Push Hook")],
                Forge::GitLab,
                Event::Push,
            ),
            (
                &[("X-Gitlab-Event", "Tag Push Hook")],
                Forge::GitLab,
                Event::Push,
            ),
            (
                &[("X-Gitlab-Event", "Merge Request Hook")],
                Forge::GitLab,
                Event::Other("Merge Request Hook".into()),
            ),
            // Gitea sends GitHub's header too; its own must win.
            (
                &[("X-GitHub-Event", "push"), ("X-Gitea-Event", "push")],
                Forge::Gitea,
                Event::Push,
            ),
            (
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-Gitea-Event", "push"),
                    ("X-Forgejo-Event", "push"),
                ],
                Forge::Forgejo,
                Event::Push,
            ),
        ];
        for (pairs, forge, event) in cases {
            assert_eq!(
                detect(&headers(pairs)),
                Ok((*forge, event.clone())),
                "{pairs:?}"
            );
        }
        assert_eq!(
            detect(&headers(&[("Content-Type", "application/json")])),
            Err(HookError::UnknownForge)
        );
    }

    #[test]
    fn parses_a_github_push() {
        let push = parse(Forge::GitHub, GITHUB.as_bytes()).expect("parses");
        assert_eq!(
            push.urls,
            [
                "https://github.com/octo/constructicon.git",
                "git@github.com:octo/constructicon.git",
                // html_url is clone_url without `.git`: the same repo.
            ]
        );
        assert_eq!(push.git_ref, "refs/heads/main");
        assert_eq!(push.commit, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(push.change(), Change::Branch("main".into()));
    }

    #[test]
    fn parses_a_gitlab_push() {
        let push = parse(Forge::GitLab, GITLAB_PUSH.as_bytes()).expect("parses");
        assert_eq!(
            push.urls,
            [
                "http://example.com/mike/diaspora.git",
                "git@example.com:mike/diaspora.git",
            ]
        );
        assert_eq!(push.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(push.change(), Change::Branch("develop".into()));
    }

    #[test]
    fn gitlab_falls_back_to_checkout_sha() {
        let mut value: Value = serde_json::from_str(GITLAB_PUSH).expect("json");
        value.as_object_mut().expect("object").remove("after");
        let push = parse(Forge::GitLab, value.to_string().as_bytes()).expect("parses");
        assert_eq!(push.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    }

    #[test]
    fn parses_a_gitea_push_with_slashes_in_the_branch() {
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let push = parse(forge, GITEA.as_bytes()).expect("parses");
            assert_eq!(
                push.urls,
                [
                    "https://codeberg.example/alice/tool.git",
                    "git@codeberg.example:alice/tool.git",
                ]
            );
            assert_eq!(push.change(), Change::Branch("feature/x".into()));
            assert_eq!(push.commit, "bffeb74224043ba2feb48d137756c8a9331c449a");
        }
    }

    #[test]
    fn refs_become_branches_tags_deletions_or_other() {
        let zeros = "0".repeat(40);
        let commit = "bffeb74224043ba2feb48d137756c8a9331c449a";
        let cases = [
            ("refs/heads/main", commit, Change::Branch("main".into())),
            (
                "refs/heads/release/1.x",
                commit,
                Change::Branch("release/1.x".into()),
            ),
            ("refs/tags/v1.0", commit, Change::Tag("v1.0".into())),
            // A deleted tag is still a tag: ignored all the same.
            ("refs/tags/v1.0", zeros.as_str(), Change::Tag("v1.0".into())),
            (
                "refs/heads/gone",
                zeros.as_str(),
                Change::Deleted("gone".into()),
            ),
            (
                "refs/heads/gone",
                &"0".repeat(64),
                Change::Deleted("gone".into()),
            ),
            ("refs/notes/x", commit, Change::Other("refs/notes/x".into())),
        ];
        for (git_ref, commit, change) in cases {
            let push = Push {
                urls: vec!["u".into()],
                git_ref: git_ref.into(),
                commit: commit.into(),
            };
            assert_eq!(push.change(), change, "{git_ref} {commit}");
        }
        assert!(!is_zero_commit(""));
        assert!(!is_zero_commit("0000a"));
    }

    #[test]
    fn a_gitlab_branch_deletion_is_seen() {
        let mut value: Value = serde_json::from_str(GITLAB_PUSH).expect("json");
        value["after"] = json_str(&"0".repeat(40));
        value["checkout_sha"] = Value::Null;
        let push = parse(Forge::GitLab, value.to_string().as_bytes()).expect("parses");
        assert_eq!(push.change(), Change::Deleted("develop".into()));
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_string())
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        assert!(matches!(
            parse(Forge::GitHub, b"{not json"),
            Err(HookError::Malformed(_))
        ));
        assert!(matches!(
            parse(Forge::GitHub, b"[1, 2]"),
            Err(HookError::Malformed(_))
        ));
        assert_eq!(
            parse(Forge::GitHub, b"{}"),
            Err(HookError::Missing(vec![
                "repository.clone_url",
                "ref",
                "after"
            ]))
        );
        assert_eq!(
            parse(
                Forge::GitLab,
                br#"{"ref": "refs/heads/x", "project": {"web_url": "http://h/p"}}"#
            ),
            Err(HookError::Missing(vec!["after"]))
        );
        // Wrong types count as missing, not as a crash.
        assert_eq!(
            parse(
                Forge::Gitea,
                br#"{"ref": 3, "after": "abc", "repository": {"clone_url": ["x"]}}"#
            ),
            Err(HookError::Missing(vec!["repository.clone_url", "ref"]))
        );
        let message = HookError::Missing(vec!["ref", "after"]).to_string();
        assert_eq!(message, "the push payload lacks ref, after");
    }

    #[test]
    fn hmac_is_checked_in_either_case_and_nothing_else_passes() {
        // The example of GitHub's documentation on validating deliveries.
        let body = b"Hello, World!";
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(hmac_hex(SECRET.as_bytes(), body), expected);
        assert!(hmac_matches(SECRET.as_bytes(), body, expected));
        assert!(hmac_matches(
            SECRET.as_bytes(),
            body,
            &expected.to_uppercase()
        ));
        assert!(!hmac_matches(SECRET.as_bytes(), b"Hello, World?", expected));
        assert!(!hmac_matches(b"another secret", body, expected));
        assert!(!hmac_matches(SECRET.as_bytes(), body, ""));
        assert!(!hmac_matches(SECRET.as_bytes(), body, &expected[..62]));
        assert!(!hmac_matches(SECRET.as_bytes(), body, "zz"));
        assert!(!hmac_matches(
            SECRET.as_bytes(),
            body,
            &format!("sha256={expected}")
        ));
    }

    #[test]
    fn github_signatures_need_the_sha256_prefix() {
        let body = GITHUB.as_bytes();
        let hex = hmac_hex(SECRET.as_bytes(), body);
        let with =
            |value: &str| headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", value)]);
        let ok = verify(
            Forge::GitHub,
            &with(&format!("sha256={hex}")),
            &secret(),
            body,
        );
        assert_eq!(ok, Ok(()));
        let upper = format!("sha256={}", hex.to_uppercase());
        assert_eq!(
            verify(Forge::GitHub, &with(&upper), &secret(), body),
            Ok(())
        );
        for bad in [hex.clone(), format!("sha1={hex}"), "sha256=".into()] {
            assert_eq!(
                verify(Forge::GitHub, &with(&bad), &secret(), body),
                Err(HookError::BadSignature("X-Hub-Signature-256")),
                "{bad}"
            );
        }
        // One byte changed after signing.
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(verify(
            Forge::GitHub,
            &with(&format!("sha256={hex}")),
            &secret(),
            &tampered
        )
        .is_err());
        assert_eq!(
            verify(
                Forge::GitHub,
                &headers(&[("X-GitHub-Event", "push")]),
                &secret(),
                body
            ),
            Err(HookError::MissingSignature("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn gitea_and_forgejo_signatures_are_bare_hex() {
        let body = GITEA.as_bytes();
        let hex = hmac_hex(SECRET.as_bytes(), body);
        let gitea = headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &hex)]);
        assert_eq!(verify(Forge::Gitea, &gitea, &secret(), body), Ok(()));
        let forgejo = headers(&[("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", &hex)]);
        assert_eq!(verify(Forge::Forgejo, &forgejo, &secret(), body), Ok(()));
        // A Forgejo that only sends Gitea's header still passes.
        assert_eq!(verify(Forge::Forgejo, &gitea, &secret(), body), Ok(()));
        let wrong = headers(&[
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Signature", &hmac_hex(b"guess", body)),
        ]);
        assert_eq!(
            verify(Forge::Gitea, &wrong, &secret(), body),
            Err(HookError::BadSignature("X-Gitea-Signature"))
        );
        assert_eq!(
            verify(
                Forge::Forgejo,
                &headers(&[("X-Forgejo-Event", "push")]),
                &secret(),
                body
            ),
            Err(HookError::MissingSignature("X-Forgejo-Signature"))
        );
    }

    #[test]
    fn gitlab_tokens_are_compared_whole() {
        assert!(token_matches(SECRET, SECRET));
        assert!(!token_matches(SECRET, ""));
        assert!(!token_matches(SECRET, &SECRET[..SECRET.len() - 1]));
        assert!(!token_matches(SECRET, &format!("{SECRET}x")));
        assert!(!token_matches(SECRET, &SECRET.to_uppercase()));
        let body = GITLAB_PUSH.as_bytes();
        let with =
            |token: &str| headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)]);
        assert_eq!(
            verify(Forge::GitLab, &with(SECRET), &secret(), body),
            Ok(())
        );
        assert_eq!(
            verify(Forge::GitLab, &with("nope"), &secret(), body),
            Err(HookError::BadSignature("X-Gitlab-Token"))
        );
        assert_eq!(
            verify(
                Forge::GitLab,
                &headers(&[("X-Gitlab-Event", "Push Hook")]),
                &secret(),
                body
            ),
            Err(HookError::MissingSignature("X-Gitlab-Token"))
        );
    }

    #[test]
    fn secrets_are_read_trimmed_and_never_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{SECRET}\n")).expect("write");
        let source = SecretSource::File(path.display().to_string());
        let read = read_secret(&source).expect("reads");
        assert_eq!(read.expose(), SECRET);
        assert_eq!(format!("{read:?}"), "Secret(..)");
        std::fs::write(&path, "  \n").expect("write");
        assert!(matches!(read_secret(&source), Err(SecretError::Empty(_))));
        let gone = SecretSource::File(dir.path().join("absent").display().to_string());
        assert!(matches!(read_secret(&gone), Err(SecretError::File { .. })));
        let unset = SecretSource::Env("CONSTRUCTICON_TEST_SURELY_UNSET_VARIABLE".into());
        assert!(matches!(read_secret(&unset), Err(SecretError::EnvUnset(_))));
    }
}
