//! The branch heads the poller last saw, per fetched URL, so a restarted
//! megatron does not take heads it already acted on for new commits.
//!
//! Keys live in the `meta` tree: `heads/`, the URL's key, 0, the branch name
//! → the commit id as text.

use super::{Error, Result, Store};
use std::collections::BTreeMap;

fn prefix(url_key: &str) -> Vec<u8> {
    let mut key = b"heads/".to_vec();
    key.extend_from_slice(url_key.as_bytes());
    key.push(0);
    key
}

fn commit_text(key: &[u8], bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| Error::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

impl Store {
    /// The branches of a URL as last seen: branch → commit.
    pub fn branch_heads(&self, url_key: &str) -> Result<BTreeMap<String, String>> {
        let prefix = prefix(url_key);
        let mut heads = BTreeMap::new();
        for item in self.meta.scan_prefix(&prefix) {
            let (key, commit) = item?;
            let branch = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            heads.insert(branch, commit_text(&key, &commit)?);
        }
        Ok(heads)
    }

    /// Replaces the heads seen of a URL with `heads`, in one batch: branches
    /// gone from it are forgotten (a branch made again later is new again).
    pub fn set_branch_heads(&self, url_key: &str, heads: &BTreeMap<String, String>) -> Result<()> {
        let prefix = prefix(url_key);
        let mut batch = sled::Batch::default();
        for key in self.meta.scan_prefix(&prefix).keys() {
            let key = key?;
            let branch = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if !heads.contains_key(&branch) {
                batch.remove(key);
            }
        }
        for (branch, commit) in heads {
            let mut key = prefix.clone();
            key.extend_from_slice(branch.as_bytes());
            batch.insert(key, commit.as_bytes());
        }
        self.meta.apply_batch(batch)?;
        Ok(())
    }
}
