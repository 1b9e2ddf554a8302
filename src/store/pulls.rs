//! Pull and merge requests the megatron has heard of, per repo.
//!
//! Tree `pulls`: repo name, 0, number (u64 BE) → [`PullRecord`].

use super::{decode, encode, history_key, Result, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a request is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Open,
    Closed,
}

/// Who let a fork's commit build, and which commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub commit: String,
    pub by: String,
    /// Unix milliseconds.
    pub at: u64,
}

/// A pull (merge) request: its head, whether it comes from a fork, the
/// approval a fork needs, and the builds of its head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullRecord {
    pub repo: String,
    pub number: u64,
    pub title: String,
    /// The forge login of who opened it.
    pub author: String,
    /// The head commit.
    pub head: String,
    pub head_ref: String,
    pub base_ref: String,
    /// The target repo's ref that holds the head (`refs/pull/7/head`).
    pub fetch_ref: String,
    pub fork: bool,
    pub state: PullState,
    /// The approval of a fork's commit; a new head needs a new one.
    pub approved: Option<Approval>,
    /// Why the head is not building, when it is not: awaiting approval, or
    /// its config failed (the diagnostics, rendered).
    pub waiting: Option<String>,
    /// The builds of the head.
    pub builds: Vec<u64>,
    /// Unix milliseconds of the last change.
    pub updated: u64,
}

impl Store {
    pub fn pull(&self, repo: &str, number: u64) -> Result<Option<PullRecord>> {
        let key = history_key(repo, number);
        self.pulls
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    pub fn put_pull(&self, pull: &PullRecord) -> Result<()> {
        self.pulls
            .insert(history_key(&pull.repo, pull.number), encode(pull))?;
        Ok(())
    }

    /// A repo's requests, newest number first.
    pub fn pulls(&self, repo: &str) -> Result<Vec<PullRecord>> {
        let mut prefix = repo.as_bytes().to_vec();
        prefix.push(0);
        self.pulls
            .scan_prefix(&prefix)
            .rev()
            .map(|item| {
                let (key, bytes) = item?;
                decode(&key, &bytes)
            })
            .collect()
    }
}
