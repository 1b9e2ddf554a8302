//! Commit statuses waiting to be posted, durable so a megatron restarted
//! mid-way still posts them.
//!
//! Tree `outbox`: forge, 0, project, 0, commit, 0, context → [`Outgoing`].
//! One entry per status line on the forge: a newer state for the same
//! context replaces the one waiting (the forge shows only the latest), and
//! bumps `version`, so a post that was under way meanwhile removes nothing.

use super::{decode, encode, Result, Store};
use crate::forge::status::Status;
use serde::{Deserialize, Serialize};

/// A status to post, and how posting it has gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The cybertron forge's name.
    pub forge: String,
    /// The repo's path on the forge (`owner/name`).
    pub project: String,
    pub commit: String,
    /// The build it tells of.
    pub build: u64,
    pub status: Status,
    /// Bumped by every new state for this context.
    pub version: u64,
    /// Posts tried for this version.
    pub tries: u32,
    /// Unix milliseconds before which it is not tried (back-off, rate limits).
    pub not_before: u64,
    pub last_error: Option<String>,
}

impl Outgoing {
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        for part in [&self.forge, &self.project, &self.commit] {
            key.extend_from_slice(part.as_bytes());
            key.push(0);
        }
        key.extend_from_slice(self.status.context.as_bytes());
        key
    }
}

impl Store {
    /// Queues a status, replacing the one waiting for the same context;
    /// returns its version. Durable at the caller's next flush.
    pub fn put_status(&self, mut outgoing: Outgoing) -> Result<u64> {
        let key = outgoing.key();
        let version = match self.outbox.get(&key)? {
            Some(bytes) => decode::<Outgoing>(&key, &bytes)?.version + 1,
            None => 1,
        };
        outgoing.version = version;
        outgoing.tries = 0;
        outgoing.not_before = 0;
        outgoing.last_error = None;
        self.outbox.insert(key, encode(&outgoing))?;
        Ok(version)
    }

    /// Every status waiting, due or not.
    pub fn waiting_statuses(&self) -> Result<Vec<Outgoing>> {
        self.outbox
            .iter()
            .map(|item| {
                let (key, bytes) = item?;
                decode(&key, &bytes)
            })
            .collect()
    }

    /// A post of `version` went through: forget it unless a newer state
    /// came meanwhile. Returns whether it was forgotten.
    pub fn status_posted(&self, key: &[u8], version: u64) -> Result<bool> {
        let Some(bytes) = self.outbox.get(key)? else {
            return Ok(false);
        };
        let waiting: Outgoing = decode(key, &bytes)?;
        if waiting.version != version {
            return Ok(false);
        }
        let swapped = self
            .outbox
            .compare_and_swap(key, Some(bytes), None::<&[u8]>)?;
        Ok(swapped.is_ok())
    }

    /// A post of `version` failed: try again after `not_before`, or give
    /// up (`None`). Nothing changes if a newer state came meanwhile.
    pub fn status_failed(
        &self,
        key: &[u8],
        version: u64,
        not_before: Option<u64>,
        error: &str,
    ) -> Result<()> {
        let Some(bytes) = self.outbox.get(key)? else {
            return Ok(());
        };
        let mut waiting: Outgoing = decode(key, &bytes)?;
        if waiting.version != version {
            return Ok(());
        }
        let new = match not_before {
            Some(at) => {
                waiting.tries += 1;
                waiting.not_before = at;
                waiting.last_error = Some(error.to_string());
                Some(encode(&waiting))
            }
            None => None,
        };
        // Lost to a newer state meanwhile: that one stands.
        let _ = self.outbox.compare_and_swap(key, Some(bytes), new)?;
        Ok(())
    }
}
