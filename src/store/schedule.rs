//! When each time scheduler last looked at the clock, per repo, so a
//! restarted megatron knows which due times it slept through.

use super::{Result, Store};

fn key(repo: &str, scheduler: &str) -> Vec<u8> {
    format!("time/{repo}/{scheduler}").into_bytes()
}

impl Store {
    /// Unix milliseconds of the last check of a repo's time scheduler.
    pub fn time_checked(&self, repo: &str, scheduler: &str) -> Result<Option<u64>> {
        Ok(self
            .meta
            .get(key(repo, scheduler))?
            .map(|b| super::be_u64(&b)))
    }

    pub fn set_time_checked(&self, repo: &str, scheduler: &str, at_ms: u64) -> Result<()> {
        self.meta
            .insert(key(repo, scheduler), &at_ms.to_be_bytes())?;
        Ok(())
    }
}
