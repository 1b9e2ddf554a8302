//! Who may do what, as cybertron declares it: roles, people and their
//! grants, the anonymous role, forge login, and which repo URLs may be
//! registered. Pure matching, no tokens or sessions (those live in the
//! top-level `access`); `read_access` reads it from the script.
//!
//! ```rhai
//! cybertron = #{
//!     access: #{
//!         anonymous: "viewer",
//!         people: #{
//!             ana: "admin",
//!             bob: #{ role: "operator", repos: ["app*"] },
//!             eve: ["viewer", #{ role: "maintainer", repos: ["lib"] }],
//!         },
//!     },
//!     repos: #{ allow: ["https://github.com/acme/*"] },
//! };
//! ```

use super::secret_source::SecretSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a person may do, each role including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything it is granted on.
    Viewer,
    /// Force, cancel and rebuild builds.
    Operator,
    /// Register, refresh and remove repos.
    Maintainer,
    /// People's tokens, worker tokens, reload.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Maintainer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Maintainer => "maintainer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One role, on every repo or on the repos whose names match a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    /// Repo name patterns (`*` any run of characters, `?` one); `None` for
    /// every repo, and for actions that concern no repo (reload, tokens).
    pub repos: Option<Vec<String>>,
}

impl Grant {
    /// Whether the grant covers `repo`; `None` asks about the whole system,
    /// which only an unrestricted grant covers.
    pub fn covers(&self, repo: Option<&str>) -> bool {
        match (&self.repos, repo) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(patterns), Some(repo)) => patterns.iter().any(|p| glob_matches(p, repo)),
        }
    }
}

/// The strongest role `grants` give on `repo` (or system-wide for `None`).
pub fn role_on(grants: &[Grant], repo: Option<&str>) -> Option<Role> {
    grants
        .iter()
        .filter(|g| g.covers(repo))
        .map(|g| g.role)
        .max()
}

/// The forges people can log in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginForge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl LoginForge {
    pub fn parse(text: &str) -> Option<LoginForge> {
        match text {
            "github" => Some(LoginForge::GitHub),
            "gitlab" => Some(LoginForge::GitLab),
            "gitea" => Some(LoginForge::Gitea),
            "forgejo" => Some(LoginForge::Forgejo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LoginForge::GitHub => "GitHub",
            LoginForge::GitLab => "GitLab",
            LoginForge::Gitea => "Gitea",
            LoginForge::Forgejo => "Forgejo",
        }
    }
}

/// Login through a forge's OAuth2 (authorization-code flow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginSpec {
    pub forge: LoginForge,
    /// The forge's web address: where people authorize.
    pub url: String,
    /// The forge's API address: where the user and their organisations are
    /// read.
    pub api_url: String,
    pub client_id: String,
    /// Where the client secret is; never the secret itself.
    pub client_secret: SecretSource,
    /// Forge organisations (GitLab groups) → the grants their members get.
    pub orgs: BTreeMap<String, Vec<Grant>>,
}

/// The `access` key of cybertron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessSpec {
    /// What a caller without credentials may do; `None` hides everything but
    /// the login page, the worker protocol and webhooks.
    pub anonymous: Option<Role>,
    /// Person (or forge login) → grants.
    pub people: BTreeMap<String, Vec<Grant>>,
    /// How long a browser session lasts.
    pub session_hours: u64,
    pub login: Option<LoginSpec>,
}

pub const DEFAULT_SESSION_HOURS: u64 = 24;

impl Default for AccessSpec {
    fn default() -> Self {
        AccessSpec {
            anonymous: Some(Role::Viewer),
            people: BTreeMap::new(),
            session_hours: DEFAULT_SESSION_HOURS,
            login: None,
        }
    }
}

/// The `repos` key of cybertron: which URLs may be registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoPolicy {
    /// URL patterns (`*` any run of characters, `?` one). Empty: any remote
    /// URL (https, http, ssh, git, `user@host:path`), never a local one.
    pub allow: Vec<String>,
}

impl RepoPolicy {
    /// Why `url` may not be registered, or `None`.
    pub fn refusal(&self, url: &str) -> Option<String> {
        if let Some(why) = credentials_in_url(url) {
            return Some(why);
        }
        let local = is_local_url(url);
        if self.allow.is_empty() {
            return local.then(|| {
                format!(
                    "{url} is a local repo; cybertron must allow local paths explicitly (repos: #{{ allow: [\"{}\"] }})",
                    if url.starts_with("file://") { "file:///srv/git/*" } else { "/srv/git/*" }
                )
            });
        }
        if self.allow.iter().any(|p| glob_matches(p, url)) {
            return None;
        }
        Some(format!(
            "{url} matches none of the repo URLs cybertron allows ({})",
            self.allow.join(", ")
        ))
    }
}

/// Why a URL that holds credentials is refused, or `None`.
pub fn credentials_in_url(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _) = authority.rsplit_once('@')?;
    // `ssh://git@host/x` names a user, not a secret; a password or a token
    // as the user (`https://TOKEN@host`) is a credential.
    if userinfo.contains(':') || !url.starts_with("ssh://") {
        return Some(format!(
            "{} holds credentials; they do not belong in a repo URL (which is shown to everyone): configure them in the megatron's git credentials instead (a credential helper or ~/.git-credentials of the user it runs as)",
            redact_url(url)
        ));
    }
    None
}

/// The URL with any user and password replaced by `***`, for messages and
/// logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

/// A path or `file://` URL: the megatron would read its own disk.
pub fn is_local_url(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return scheme.eq_ignore_ascii_case("file");
    }
    // `user@host:path` (scp-like) is remote; anything else without a scheme
    // is a path.
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
    !scp_like
}

/// Shell-style matching: `*` any run of characters (`/` included), `?` one.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Classic two-pointer with backtracking to the last star.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_texts() {
        assert!(glob_matches("app*", "app"));
        assert!(glob_matches("app*", "app-web"));
        assert!(!glob_matches("app*", "my-app"));
        assert!(glob_matches("*app*", "my-app-2"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "abbc"));
        assert!(glob_matches(
            "https://github.com/acme/*",
            "https://github.com/acme/x/y.git"
        ));
        assert!(!glob_matches(
            "https://github.com/acme/*",
            "https://github.com/acme2/x"
        ));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("", "x"));
    }

    #[test]
    fn grants_give_the_strongest_covering_role() {
        let grants = vec![
            Grant {
                role: Role::Viewer,
                repos: None,
            },
            Grant {
                role: Role::Maintainer,
                repos: Some(vec!["lib".into(), "tools-*".into()]),
            },
        ];
        assert_eq!(role_on(&grants, Some("lib")), Some(Role::Maintainer));
        assert_eq!(role_on(&grants, Some("tools-x")), Some(Role::Maintainer));
        assert_eq!(role_on(&grants, Some("app")), Some(Role::Viewer));
        assert_eq!(role_on(&grants, None), Some(Role::Viewer));
        assert_eq!(role_on(&[], Some("app")), None);
    }

    #[test]
    fn local_and_credential_urls_are_refused_by_default() {
        let policy = RepoPolicy::default();
        assert_eq!(policy.refusal("https://github.com/acme/app.git"), None);
        assert_eq!(policy.refusal("git@github.com:acme/app.git"), None);
        assert_eq!(policy.refusal("ssh://git@host/app"), None);
        for local in [
            "/srv/git/app",
            "file:///srv/git/app",
            "relative/app",
            "C:app",
        ] {
            let why = policy.refusal(local).expect(local);
            assert!(why.contains("local repo"), "{local}: {why}");
        }
        let why = policy
            .refusal("https://ana:hunter2@github.com/acme/app.git")
            .expect("refused");
        assert!(why.starts_with("https://***@github.com/acme/app.git holds credentials"));
        assert!(!why.contains("hunter2"));
        assert!(policy
            .refusal("https://TOKEN@github.com/acme/app")
            .is_some());
        assert!(policy.refusal("ssh://git:pw@host/app").is_some());
    }

    #[test]
    fn an_allow_list_admits_only_its_patterns() {
        let policy = RepoPolicy {
            allow: vec!["https://github.com/acme/*".into(), "/srv/git/*".into()],
        };
        assert_eq!(policy.refusal("https://github.com/acme/app"), None);
        assert_eq!(policy.refusal("/srv/git/app"), None);
        let why = policy
            .refusal("https://github.com/evil/app")
            .expect("refused");
        assert!(why.contains("matches none of the repo URLs cybertron allows"));
        assert!(policy.refusal("file:///srv/git/app").is_some());
    }

    #[test]
    fn redaction_hides_users_and_passwords() {
        assert_eq!(redact_url("https://a:b@h/x"), "https://***@h/x");
        assert_eq!(redact_url("https://h/x@y"), "https://h/x@y");
        assert_eq!(redact_url("/srv/x"), "/srv/x");
    }
}
