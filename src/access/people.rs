//! People's credentials: personal API tokens (issued by an admin, kept only
//! as hashes, revocable), browser sessions (made at login, ended at logout
//! or expiry), and one-time login links. Every change is flushed before it
//! is acknowledged, so a token that was answered works after a crash.

use crate::megatron::error::{Error, Result};
use crate::megatron::state::State;
use crate::store::{now_ms, LoginLink, PersonToken, SessionRecord};
use crate::sync::read;
use crate::token::{random_secret, secret_hash};

/// A new secret, as the core's error type.
fn fresh_secret() -> Result<String> {
    random_secret().map_err(|e| Error::Internal(e.to_string()))
}

/// A freshly issued token: the secret (shown once) and its id.
pub struct Issued {
    pub token: String,
    pub id: String,
}

/// Issues a personal token for a person cybertron declares.
pub fn issue_person_token(state: &State, person: &str) -> Result<Issued> {
    if !read(&state.cybertron)
        .spec
        .access
        .people
        .contains_key(person)
    {
        return Err(Error::BadRequest(format!(
            "no person {person} in cybertron's access.people: declare them (with their role) first"
        )));
    }
    let token = fresh_secret()?;
    let hash = secret_hash(&token);
    let id = hash[..12].to_string();
    state.store.put_person_token(
        &hash,
        &PersonToken {
            person: person.to_string(),
            id: id.clone(),
            created: now_ms(),
        },
    )?;
    state.store.flush()?;
    Ok(Issued { token, id })
}

/// Revokes a person's tokens (all, or the one with `id`); their sessions
/// made with a token stay until they expire or log out. Returns how many.
pub fn revoke_person_tokens(state: &State, person: &str, id: Option<&str>) -> Result<usize> {
    let removed = state.store.revoke_person_tokens(person, id)?;
    state.store.flush()?;
    Ok(removed)
}

/// A new session for `person`: the cookie's value (shown to the browser
/// only) and the record kept under its hash.
pub fn start_session(
    state: &State,
    person: &str,
    via: &str,
    orgs: Vec<String>,
) -> Result<(String, SessionRecord)> {
    let cookie = fresh_secret()?;
    let hours = read(&state.cybertron).spec.access.session_hours;
    let now = now_ms();
    let session = SessionRecord {
        person: person.to_string(),
        via: via.to_string(),
        orgs,
        csrf: fresh_secret()?,
        created: now,
        expires: now + hours * 3_600_000,
    };
    state.store.put_session(&secret_hash(&cookie), &session)?;
    // Old sessions go as new ones come: the tree never fills with them.
    state.store.purge_expired(now)?;
    state.store.flush()?;
    Ok((cookie, session))
}

pub fn end_session(state: &State, cookie: &str) -> Result<()> {
    state.store.delete_session(&secret_hash(cookie))?;
    state.store.flush()?;
    Ok(())
}

/// Creates a one-time login link for `person`, valid for `minutes`; returns
/// its secret.
pub fn login_link(state: &State, person: &str, minutes: u64) -> Result<String> {
    let secret = fresh_secret()?;
    state.store.put_login_link(
        &secret_hash(&secret),
        &LoginLink {
            person: person.to_string(),
            expires: now_ms() + minutes * 60_000,
        },
    )?;
    state.store.flush()?;
    Ok(secret)
}

/// Spends a login link: the person it was made for, if it is still good.
pub fn use_login_link(state: &State, secret: &str) -> Result<Option<String>> {
    let link = state.store.take_login_link(&secret_hash(secret))?;
    state.store.flush()?;
    Ok(link.filter(|l| l.expires > now_ms()).map(|l| l.person))
}
