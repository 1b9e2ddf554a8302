//! Commit polling: the megatron fetches every registered repo (and every dep
//! its builders name) and acts on what moved: a new commit on a repo's
//! tracked branch reconfigures it; a new commit on a branch a commit
//! scheduler matches starts that scheduler's builders.

use crate::megatron::{read, Result, State};
use crate::model::repo_name_from_url;

/// Whether two URLs name the same repo, give or take a trailing `/` or `.git`.
pub fn same_repo_url(a: &str, b: &str) -> bool {
    fn plain(url: &str) -> &str {
        let url = url.trim().trim_end_matches('/');
        url.strip_suffix(".git").unwrap_or(url)
    }
    plain(a) == plain(b)
}

impl State {
    /// Polls now every registered repo whose URL is `url` (a push webhook
    /// names a repo by URL). Returns the names of the repos polled.
    pub fn poll_url(&self, url: &str) -> Result<Vec<String>> {
        let names: Vec<String> = read(&self.repos)
            .values()
            .filter(|r| same_repo_url(&r.record.url, url))
            .map(|r| r.record.name.clone())
            .collect();
        for name in &names {
            self.poll_repo(name)?;
        }
        let _ = repo_name_from_url(url);
        Ok(names)
    }

    /// Fetches a registered repo and acts on what moved.
    pub fn poll_repo(&self, name: &str) -> Result<()> {
        self.refresh_repo(name).map(|_| ())
    }
}
