//! People's tokens, browser sessions and one-time login links, each kept
//! under the sha256 of the secret that names it, so a copy of the store
//! gives no one a way in.

use super::records::{LoginLink, PendingLogin};
use super::{decode, encode, PersonToken, Result, SessionRecord, Store};

fn key(kind: &str, hash: &str) -> Vec<u8> {
    format!("{kind}/{hash}").into_bytes()
}

impl Store {
    pub fn put_person_token(&self, hash: &str, token: &PersonToken) -> Result<()> {
        self.access.insert(key("token", hash), encode(token))?;
        Ok(())
    }

    pub fn person_token(&self, hash: &str) -> Result<Option<PersonToken>> {
        let key = key("token", hash);
        self.access
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    /// Every token of a person.
    pub fn person_tokens(&self, person: &str) -> Result<Vec<PersonToken>> {
        let mut tokens = Vec::new();
        for item in self.access.scan_prefix(b"token/") {
            let (key, bytes) = item?;
            let token: PersonToken = decode(&key, &bytes)?;
            if token.person == person {
                tokens.push(token);
            }
        }
        tokens.sort_by_key(|t| t.created);
        Ok(tokens)
    }

    /// Removes a person's tokens (all of them, or the one with `id`);
    /// returns how many went.
    pub fn revoke_person_tokens(&self, person: &str, id: Option<&str>) -> Result<usize> {
        let mut removed = 0;
        for item in self.access.scan_prefix(b"token/") {
            let (key, bytes) = item?;
            let token: PersonToken = decode(&key, &bytes)?;
            if token.person == person && id.is_none_or(|id| token.id == id) {
                self.access.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn put_session(&self, hash: &str, session: &SessionRecord) -> Result<()> {
        self.access.insert(key("session", hash), encode(session))?;
        Ok(())
    }

    pub fn session(&self, hash: &str) -> Result<Option<SessionRecord>> {
        let key = key("session", hash);
        self.access
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    pub fn delete_session(&self, hash: &str) -> Result<()> {
        self.access.remove(key("session", hash))?;
        Ok(())
    }

    /// Drops sessions and login links past their expiry; returns how many.
    pub fn purge_expired(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for item in self.access.scan_prefix(b"session/") {
            let (key, bytes) = item?;
            let session: SessionRecord = decode(&key, &bytes)?;
            if session.expires <= now {
                self.access.remove(key)?;
                removed += 1;
            }
        }
        for prefix in [&b"link/"[..], b"oauth/"] {
            for item in self.access.scan_prefix(prefix) {
                let (key, bytes) = item?;
                // Links and pending logins both keep `expires` at the top.
                let value: serde_json::Value = decode(&key, &bytes)?;
                if value["expires"].as_u64().is_none_or(|e| e <= now) {
                    self.access.remove(key)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn put_login_link(&self, hash: &str, link: &LoginLink) -> Result<()> {
        self.access.insert(key("link", hash), encode(link))?;
        Ok(())
    }

    /// Takes a login link out of the store: it works once.
    pub fn take_login_link(&self, hash: &str) -> Result<Option<LoginLink>> {
        let key = key("link", hash);
        self.access
            .remove(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    pub fn put_pending_login(&self, hash: &str, pending: &PendingLogin) -> Result<()> {
        self.access.insert(key("oauth", hash), encode(pending))?;
        Ok(())
    }

    /// Takes a pending login out of the store: a forge's answer is used once.
    pub fn take_pending_login(&self, hash: &str) -> Result<Option<PendingLogin>> {
        let key = key("oauth", hash);
        self.access
            .remove(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }
}
