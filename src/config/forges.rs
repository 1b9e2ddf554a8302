//! Cybertron's `forges`: where commit statuses go. Each forge names its
//! kind, the repos it hosts (URL patterns), its API's address and where its
//! API token is (an environment variable or a file, never the token):
//!
//! ```rhai
//! forges: #{
//!     "github.com": #{ type: "github", token: #{ env: "GITHUB_TOKEN" } },
//!     "git.example.com": #{ type: "gitea", token: #{ file: "/etc/ci/gitea-token" }, concurrency: 2 },
//! }
//! ```
//!
//! A forge named by a host gets that host's repos and the kind's usual API
//! address; any other name must say both (`repos`, `api`).

use super::access::{glob_matches, is_local_url};
use super::read_checks::read_secret_source;
use super::reader::{child, index, Reader};
use super::secret_source::SecretSource;
use serde_json::Value;

/// The forges' status APIs constructicon speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl ForgeKind {
    pub fn parse(text: &str) -> Option<ForgeKind> {
        match text {
            "github" => Some(ForgeKind::GitHub),
            "gitlab" => Some(ForgeKind::GitLab),
            "gitea" => Some(ForgeKind::Gitea),
            "forgejo" => Some(ForgeKind::Forgejo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
        }
    }

    /// The API's usual address on `host`.
    fn default_api(self, host: &str) -> String {
        match self {
            ForgeKind::GitHub if host == "github.com" => "https://api.github.com".into(),
            ForgeKind::GitHub => format!("https://{host}/api/v3"),
            ForgeKind::GitLab => format!("https://{host}/api/v4"),
            ForgeKind::Gitea | ForgeKind::Forgejo => format!("https://{host}/api/v1"),
        }
    }
}

/// One forge statuses are posted to.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgeSpec {
    pub name: String,
    pub kind: ForgeKind,
    /// The API's base address, without a trailing slash.
    pub api: String,
    /// Repo URL patterns (`*`, `?`) of the repos it hosts.
    pub repos: Vec<String>,
    pub token: SecretSource,
    /// Posts under way at once, at most.
    pub concurrency: usize,
}

/// Posts under way to one forge when cybertron does not say: forges
/// rate-limit parallel writes.
pub const DEFAULT_FORGE_CONCURRENCY: u64 = 4;

impl ForgeSpec {
    /// The repo's path on the forge (`owner/name`, or `group/sub/name` on
    /// GitLab) from its URL; for a local path, its last two components.
    pub fn project_of(url: &str) -> Option<String> {
        let url = url.trim_end_matches('/');
        let path = if is_local_url(url) {
            let path = url.trim_start_matches("file://");
            let mut parts: Vec<&str> = path.rsplitn(3, '/').take(2).collect();
            parts.reverse();
            parts.join("/")
        } else if let Some((_, rest)) = url.split_once("://") {
            rest.split_once('/')?.1.to_string()
        } else {
            // user@host:owner/name
            url.split_once(':')?.1.to_string()
        };
        let path = path.trim_start_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        (path.contains('/') && !path.split('/').any(str::is_empty)).then(|| path.to_string())
    }

    pub fn hosts(&self, url: &str) -> bool {
        self.repos.iter().any(|p| glob_matches(p, url))
    }
}

fn host_like(name: &str) -> bool {
    name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

pub(super) fn read_forges(reader: &mut Reader, value: &Value) -> Vec<ForgeSpec> {
    let mut forges = Vec::new();
    let Some(map) = reader.map(value, "forges") else {
        return forges;
    };
    for (name, forge) in map {
        let path = child("forges", name);
        let Some(fields) = reader.fields(
            forge,
            &path,
            &["type", "api", "repos", "token", "concurrency"],
        ) else {
            continue;
        };
        let kind = match fields.get("type") {
            Some(kind) => {
                let text = reader.string(kind, &fields.path_of("type"));
                let parsed = text.as_deref().and_then(ForgeKind::parse);
                if parsed.is_none() {
                    if let Some(text) = text {
                        reader.value_problem(
                            &fields.path_of("type"),
                            format!("unknown forge type \"{text}\": expected \"github\", \"gitlab\", \"gitea\" or \"forgejo\""),
                        );
                    }
                }
                parsed
            }
            None => {
                reader.problem(
                    &path,
                    "a forge needs a \"type\": \"github\", \"gitlab\", \"gitea\" or \"forgejo\"",
                );
                None
            }
        };
        let host = host_like(name).then_some(name.as_str());
        let api = match fields.get("api") {
            Some(api) => reader
                .string(api, &fields.path_of("api"))
                .and_then(|api| {
                    if api.starts_with("https://") || api.starts_with("http://") {
                        Some(api.trim_end_matches('/').to_string())
                    } else {
                        reader.value_problem(
                            &fields.path_of("api"),
                            format!("\"{api}\" is not an http(s) URL like \"https://git.example.com/api/v1\""),
                        );
                        None
                    }
                }),
            None => match (kind, host) {
                (Some(kind), Some(host)) => Some(kind.default_api(host)),
                (None, _) => None,
                (Some(_), None) => {
                    reader.problem(&path, format!("forge \"{name}\" is not a host name: say where its API is (\"api\")"));
                    None
                }
            },
        };
        let repos = match fields.get("repos") {
            Some(repos) => {
                let patterns = reader.strings(repos, &fields.path_of("repos"));
                for (i, pattern) in patterns.iter().enumerate() {
                    if pattern.is_empty() {
                        reader.problem(&index(&fields.path_of("repos"), i), "an empty pattern");
                    }
                }
                patterns
            }
            None => match host {
                Some(host) => vec![
                    format!("https://{host}/*"),
                    format!("http://{host}/*"),
                    format!("ssh://git@{host}/*"),
                    format!("git@{host}:*"),
                ],
                None => {
                    reader.problem(&path, format!("forge \"{name}\" is not a host name: say which repos it hosts (\"repos\")"));
                    Vec::new()
                }
            },
        };
        let token = match fields.get("token") {
            Some(token) if token.is_string() => {
                reader.value_problem(
                    &fields.path_of("token"),
                    "expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the token itself never goes in cybertron",
                );
                None
            }
            Some(token) => read_secret_source(reader, token, &fields.path_of("token")),
            None => {
                reader.problem(
                    &path,
                    "a forge needs a \"token\": #{ env: \"VARIABLE\" } or #{ file: \"/path\" }",
                );
                None
            }
        };
        let concurrency = fields
            .get("concurrency")
            .and_then(|c| reader.integer(c, &fields.path_of("concurrency"), 1, 64))
            .unwrap_or(DEFAULT_FORGE_CONCURRENCY);
        if let (Some(kind), Some(api), Some(token)) = (kind, api, token) {
            forges.push(ForgeSpec {
                name: name.clone(),
                kind,
                api,
                repos,
                token,
                concurrency: concurrency as usize,
            });
        }
    }
    forges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repos_path_on_its_forge() {
        let cases = [
            ("https://github.com/acme/app.git", Some("acme/app")),
            ("https://github.com/acme/app", Some("acme/app")),
            ("git@github.com:acme/app.git", Some("acme/app")),
            (
                "ssh://git@gitlab.example.com/group/sub/app.git",
                Some("group/sub/app"),
            ),
            ("/srv/git/acme/app", Some("acme/app")),
            ("file:///srv/git/acme/app.git", Some("acme/app")),
            ("https://github.com/app", None),
            ("https://github.com/", None),
        ];
        for (url, project) in cases {
            assert_eq!(ForgeSpec::project_of(url).as_deref(), project, "{url}");
        }
    }
}
