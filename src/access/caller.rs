//! Who is calling, and what they may do: the admin (the admin token), a
//! person (a personal token or a browser session), or nobody in particular
//! (the anonymous role). Roles come from cybertron's `access` at the time of
//! the call, so a reload takes effect at once.

use crate::config::access::{role_on, AccessSpec, Grant, Role};
use crate::megatron::state::State;
use crate::store::{self, now_ms, SessionRecord};
use crate::sync::read;
use crate::token::secret_hash;

/// How a person proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A personal API token, as a bearer token.
    Token,
    /// A browser session cookie; state-changing calls must carry its CSRF
    /// token.
    Session { csrf: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    Person {
        name: String,
        via: Via,
    },
    /// The admin token of the data dir: every role on every route.
    Admin,
    /// A worker with its own token (it reads other builds' results for a
    /// `get` step): a viewer, of its repo only for a user worker.
    Worker(String),
}

/// The caller of one request and the grants it holds.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Who,
    grants: Vec<Grant>,
}

/// Why credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the bearer token is unknown or was revoked")]
    UnknownToken,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "constructicon_session";

impl Caller {
    pub fn anonymous(access: &AccessSpec) -> Caller {
        Caller {
            who: Who::Anonymous,
            grants: anonymous_grants(access),
        }
    }

    pub fn admin() -> Caller {
        Caller {
            who: Who::Admin,
            grants: vec![Grant {
                role: Role::Admin,
                repos: None,
            }],
        }
    }

    /// A person's grants: their own, their forge organisations', and never
    /// less than an anonymous caller's.
    pub fn person(access: &AccessSpec, name: &str, orgs: &[String], via: Via) -> Caller {
        let mut grants = anonymous_grants(access);
        if let Some(own) = access.people.get(name) {
            grants.extend(own.iter().cloned());
        }
        if let Some(login) = &access.login {
            for org in orgs {
                if let Some(org_grants) = login.orgs.get(org) {
                    grants.extend(org_grants.iter().cloned());
                }
            }
        }
        Caller {
            who: Who::Person {
                name: name.to_string(),
                via,
            },
            grants,
        }
    }

    /// Who to name in a build's reason and record; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        match &self.who {
            Who::Anonymous => None,
            Who::Person { name, .. } => Some(name),
            Who::Admin => Some("admin"),
            Who::Worker(name) => Some(name),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.who == Who::Anonymous
    }

    /// The session's CSRF token, for a caller that came with a cookie.
    pub fn csrf(&self) -> Option<&str> {
        match &self.who {
            Who::Person {
                via: Via::Session { csrf },
                ..
            } => Some(csrf),
            _ => None,
        }
    }

    /// The strongest role on `repo` (system-wide for `None`).
    pub fn role_on(&self, repo: Option<&str>) -> Option<Role> {
        role_on(&self.grants, repo)
    }

    /// Whether the caller holds `role` on `repo`.
    pub fn may(&self, role: Role, repo: &str) -> bool {
        self.role_on(Some(repo)).is_some_and(|r| r >= role)
    }

    /// Whether the caller holds `role` system-wide.
    pub fn may_everywhere(&self, role: Role) -> bool {
        self.role_on(None).is_some_and(|r| r >= role)
    }

    /// Whether the caller holds `role` on at least one repo (or could, for
    /// a repo not registered yet): lists and registration check each item.
    pub fn may_somewhere(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role >= role)
    }
}

/// A worker reads: every repo for one of cybertron's, its own repo for a
/// user worker.
fn worker_caller(state: &State, worker: &str) -> Caller {
    let everywhere = read(&state.cybertron).spec.workers.contains_key(worker);
    let repos = if everywhere {
        None
    } else {
        Some(
            read(&state.repos)
                .values()
                .filter(|r| {
                    r.graph
                        .as_ref()
                        .is_some_and(|g| g.graph.workers.contains_key(worker))
                })
                .map(|r| r.record.name.clone())
                .collect(),
        )
    };
    Caller {
        who: Who::Worker(worker.to_string()),
        grants: vec![Grant {
            role: Role::Viewer,
            repos,
        }],
    }
}

fn anonymous_grants(access: &AccessSpec) -> Vec<Grant> {
    access
        .anonymous
        .map(|role| Grant { role, repos: None })
        .into_iter()
        .collect()
}

/// Resolves a request's credentials. A bearer token must be known (the
/// admin token or a person's): a wrong one is refused rather than taken as
/// anonymous, so a typo never silently downgrades a script. A session
/// cookie that is unknown or expired counts as no cookie: the browser is
/// simply logged out.
pub fn resolve(
    state: &State,
    bearer: Option<&str>,
    session: Option<&str>,
    worker: Option<&str>,
) -> Result<Caller, Refused> {
    let access = read(&state.cybertron).spec.access.clone();
    if let Some(token) = bearer {
        let hash = secret_hash(token);
        if hash == state.admin_token_hash {
            return Ok(Caller::admin());
        }
        if let Some(token) = state.store.person_token(&hash)? {
            return Ok(Caller::person(&access, &token.person, &[], Via::Token));
        }
        if let Some(worker) = worker {
            if state.store.token_hash(worker)?.as_deref() == Some(hash.as_str()) {
                return Ok(worker_caller(state, worker));
            }
        }
        return Err(Refused::UnknownToken);
    }
    if let Some(cookie) = session {
        if let Some(session) = live_session(state, cookie)? {
            if session.via == "admin" {
                // A browser logged in with the admin token: the admin, with
                // the session's CSRF token.
                let mut caller = Caller::admin();
                caller.who = Who::Person {
                    name: "admin".into(),
                    via: Via::Session { csrf: session.csrf },
                };
                return Ok(caller);
            }
            return Ok(Caller::person(
                &access,
                &session.person,
                &session.orgs,
                Via::Session { csrf: session.csrf },
            ));
        }
    }
    Ok(Caller::anonymous(&access))
}

/// The session a cookie names, if it exists and has not expired.
pub fn live_session(state: &State, cookie: &str) -> Result<Option<SessionRecord>, store::Error> {
    let session = state.store.session(&secret_hash(cookie))?;
    Ok(session.filter(|s| s.expires > now_ms()))
}
