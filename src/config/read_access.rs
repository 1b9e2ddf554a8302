//! Reading cybertron's `access` and `repos` keys into their types (see
//! `access`), every problem with its key path.

use super::access::{
    credentials_in_url, AccessSpec, Grant, LoginForge, LoginSpec, RepoPolicy, Role,
    DEFAULT_SESSION_HOURS,
};
use super::read_checks::read_secret_source;
use super::reader::{child, index, Reader};
use super::words::describe;
use crate::model::check_name;
use serde_json::Value;
use std::collections::BTreeMap;

const ROLE_WORDS: &str = "\"viewer\", \"operator\", \"maintainer\" or \"admin\"";

fn read_role(reader: &mut Reader, value: &Value, path: &str) -> Option<Role> {
    let text = reader.string(value, path)?;
    let role = Role::parse(&text);
    if role.is_none() {
        reader.problem(
            path,
            format!("unknown role \"{text}\": expected {ROLE_WORDS}"),
        );
    }
    role
}

/// A grant: `"operator"`, or `#{ role: "operator", repos: ["app*"] }`.
fn read_grant(reader: &mut Reader, value: &Value, path: &str) -> Option<Grant> {
    if value.is_string() {
        return read_role(reader, value, path).map(|role| Grant { role, repos: None });
    }
    if !value.is_object() {
        reader.problem(
            path,
            format!(
                "expected a role ({ROLE_WORDS}) or #{{ role, repos }}, found {}",
                describe(value)
            ),
        );
        return None;
    }
    let fields = reader.fields(value, path, &["role", "repos"])?;
    let role = match fields.get("role") {
        Some(role) => read_role(reader, role, &fields.path_of("role"))?,
        None => {
            reader.problem(path, "a grant needs a \"role\"");
            return None;
        }
    };
    let repos = fields.get("repos").map(|repos| {
        let path = fields.path_of("repos");
        let patterns = reader.strings(repos, &path);
        if patterns.is_empty() {
            reader.problem(
                &path,
                "an empty list grants nothing: leave \"repos\" out to grant on every repo",
            );
        }
        patterns
    });
    Some(Grant { role, repos })
}

/// One grant or a list of them.
fn read_grants(reader: &mut Reader, value: &Value, path: &str) -> Vec<Grant> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read_grant(reader, item, &index(path, i)))
            .collect(),
        other => read_grant(reader, other, path).into_iter().collect(),
    }
}

pub fn read_access(reader: &mut Reader, value: &Value) -> AccessSpec {
    let mut spec = AccessSpec::default();
    let Some(fields) = reader.fields(
        value,
        "access",
        &["anonymous", "people", "session_hours", "login"],
    ) else {
        return spec;
    };
    if let Some(anonymous) = fields.get("anonymous") {
        let path = fields.path_of("anonymous");
        spec.anonymous = match anonymous.as_str() {
            Some("none") => None,
            _ => match read_role(reader, anonymous, &path) {
                Some(role) => Some(role),
                None => {
                    // Fail closed: a misspelt anonymous role shows nothing.
                    if let Some(last) = reader.problems.last_mut() {
                        if last.path == path {
                            last.message.push_str(", or \"none\"");
                        }
                    }
                    None
                }
            },
        };
    }
    if let Some(people) = fields.get("people") {
        let path = fields.path_of("people");
        if let Some(map) = reader.map(people, &path) {
            for (name, grants) in map {
                let person_path = child(&path, name);
                if let Some(why) = check_name(name) {
                    reader.problem(
                        &person_path,
                        format!(
                            "person name \"{}\" cannot be used: {why}",
                            name.escape_debug()
                        ),
                    );
                    continue;
                }
                let grants = read_grants(reader, grants, &person_path);
                spec.people.insert(name.clone(), grants);
            }
        }
    }
    if let Some(hours) = fields.get("session_hours") {
        spec.session_hours = reader
            .integer(hours, &fields.path_of("session_hours"), 1, 24 * 365)
            .unwrap_or(DEFAULT_SESSION_HOURS);
    }
    if let Some(login) = fields.get("login") {
        spec.login = read_login(reader, login, &fields.path_of("login"));
    }
    spec
}

fn read_login(reader: &mut Reader, value: &Value, path: &str) -> Option<LoginSpec> {
    let fields = reader.fields(
        value,
        path,
        &[
            "forge",
            "url",
            "api_url",
            "client_id",
            "client_secret",
            "orgs",
        ],
    )?;
    let forge = match fields.get("forge") {
        Some(v) => {
            let text = reader.string(v, &fields.path_of("forge"))?;
            let forge = LoginForge::parse(&text);
            if forge.is_none() {
                reader.problem(
                    &fields.path_of("forge"),
                    format!("unknown forge \"{text}\": expected \"github\", \"gitlab\", \"gitea\" or \"forgejo\""),
                );
            }
            forge?
        }
        None => {
            reader.problem(path, "login needs a \"forge\"");
            return None;
        }
    };
    let url = match fields.get("url") {
        Some(v) => reader.string(v, &fields.path_of("url"))?,
        None => match forge {
            LoginForge::GitHub => "https://github.com".to_string(),
            LoginForge::GitLab => "https://gitlab.com".to_string(),
            LoginForge::Gitea | LoginForge::Forgejo => {
                reader.problem(
                    path,
                    format!("{} login needs the forge's \"url\"", forge.name()),
                );
                return None;
            }
        },
    };
    let url = url.trim_end_matches('/').to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        reader.problem(
            &fields.path_of("url"),
            format!("\"{url}\" is not an http(s) URL"),
        );
    }
    let api_url = match fields.get("api_url") {
        Some(v) => reader.string(v, &fields.path_of("api_url"))?,
        None => match forge {
            LoginForge::GitHub if url == "https://github.com" => "https://api.github.com".into(),
            LoginForge::GitHub => format!("{url}/api/v3"),
            LoginForge::GitLab => format!("{url}/api/v4"),
            LoginForge::Gitea | LoginForge::Forgejo => format!("{url}/api/v1"),
        },
    };
    let client_id = match fields.get("client_id") {
        Some(v) => reader.string(v, &fields.path_of("client_id"))?,
        None => {
            reader.problem(path, "login needs the OAuth application's \"client_id\"");
            return None;
        }
    };
    let client_secret = match fields.get("client_secret") {
        Some(v) => read_secret_source(reader, v, &fields.path_of("client_secret"))?,
        None => {
            reader.problem(
                path,
                "login needs \"client_secret\": #{ env: \"VARIABLE\" } or #{ file: \"/path\" }",
            );
            return None;
        }
    };
    let mut orgs = BTreeMap::new();
    if let Some(value) = fields.get("orgs") {
        let path = fields.path_of("orgs");
        if let Some(map) = reader.map(value, &path) {
            for (org, grants) in map {
                orgs.insert(org.clone(), read_grants(reader, grants, &child(&path, org)));
            }
        }
    }
    Some(LoginSpec {
        forge,
        url,
        api_url: api_url.trim_end_matches('/').to_string(),
        client_id,
        client_secret,
        orgs,
    })
}

pub fn read_repo_policy(reader: &mut Reader, value: &Value) -> RepoPolicy {
    let mut policy = RepoPolicy::default();
    if let Some(fields) = reader.fields(value, "repos", &["allow"]) {
        if let Some(allow) = fields.get("allow") {
            let path = fields.path_of("allow");
            policy.allow = reader.strings(allow, &path);
            for (i, pattern) in policy.allow.iter().enumerate() {
                if credentials_in_url(pattern).is_some() {
                    reader.problem(
                        &index(&path, i),
                        "a repo URL pattern may not hold credentials",
                    );
                }
            }
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::access::role_on;
    use serde_json::json;

    fn problems(value: serde_json::Value) -> (AccessSpec, Vec<String>) {
        let mut reader = Reader::default();
        let spec = read_access(&mut reader, &value);
        let problems = reader
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        (spec, problems)
    }

    #[test]
    fn access_is_read_with_key_paths() {
        let (spec, found) = problems(json!({
            "anonymous": "none",
            "people": {
                "ana": "admin",
                "bob": {"role": "operator", "repos": ["app*"]},
                "eve": ["viewer", {"role": "maintainer", "repos": ["lib"]}],
            },
        }));
        assert_eq!(found, Vec::<String>::new());
        assert_eq!(spec.anonymous, None);
        assert_eq!(
            role_on(&spec.people["bob"], Some("app-x")),
            Some(Role::Operator)
        );
        assert_eq!(role_on(&spec.people["bob"], Some("lib")), None);
        assert_eq!(
            role_on(&spec.people["eve"], Some("lib")),
            Some(Role::Maintainer)
        );

        let (spec, found) = problems(json!({
            "anonymous": "guest",
            "people": {
                "ana": "root",
                "bob": {"role": "operator", "repo": ["x"]},
                "a/b": "viewer",
                "eve": [{"repos": []}, 3],
            },
            "sesion_hours": 1,
        }));
        assert_eq!(spec.anonymous, None);
        assert_eq!(
            found,
            [
                "access.sesion_hours: unused configuration key \"sesion_hours\" (did you mean \"session_hours\"?)",
                "access.anonymous: unknown role \"guest\": expected \"viewer\", \"operator\", \"maintainer\" or \"admin\", or \"none\"",
                "access.people.ana: unknown role \"root\": expected \"viewer\", \"operator\", \"maintainer\" or \"admin\"",
                "access.people.bob.repo: unused configuration key \"repo\" (did you mean \"repos\"?)",
                "access.people[\"a/b\"]: person name \"a/b\" cannot be used: it contains \"/\"",
                "access.people.eve[0]: a grant needs a \"role\"",
                "access.people.eve[1]: expected a role (\"viewer\", \"operator\", \"maintainer\" or \"admin\") or #{ role, repos }, found an integer",
            ]
        );
    }
}
