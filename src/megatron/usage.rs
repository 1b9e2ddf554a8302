//! Disk used per repo and builder: the logs kept in the store and the
//! artifacts kept on disk, so a maintainer can see what the horizon holds.

use std::path::Path;

pub use super::disk_use::{BuilderUsage, RepoUsage};

use super::error::Result;
use super::state::State;
use crate::sync::read;

impl State {
    /// The usage of each repo for which `visible` says yes, by name.
    pub fn usage(&self, visible: impl Fn(&str) -> bool) -> Result<Vec<RepoUsage>> {
        let repos: Vec<(String, Vec<String>)> = read(&self.repos)
            .values()
            .filter(|r| visible(&r.record.name))
            .map(|r| {
                let builders = r
                    .graph
                    .as_ref()
                    .map(|g| g.graph.builders.keys().cloned().collect())
                    .unwrap_or_default();
                (r.record.name.clone(), builders)
            })
            .collect();
        let mut answer = Vec::new();
        for (repo, builders) in repos {
            let mut usage = RepoUsage {
                repo,
                ..RepoUsage::default()
            };
            for builder in builders {
                let mut one = BuilderUsage {
                    builder: builder.clone(),
                    ..BuilderUsage::default()
                };
                for build in self.store.builder_builds(&builder, usize::MAX)? {
                    one.builds += 1;
                    one.log_bytes += build.steps.iter().map(|s| s.log_bytes).sum::<u64>();
                    one.artifact_bytes += dir_bytes(&self.artifact_dir(build.id));
                }
                usage.builds += one.builds;
                usage.log_bytes += one.log_bytes;
                usage.artifact_bytes += one.artifact_bytes;
                usage.builders.push(one);
            }
            usage.builders.sort_by(|a, b| a.builder.cmp(&b.builder));
            answer.push(usage);
        }
        answer.sort_by(|a, b| a.repo.cmp(&b.repo));
        Ok(answer)
    }
}

/// Counts the disk every repo's history takes now and then, for pages:
/// a count walks every kept build, too much for each view of a live page.
pub async fn usage_loop(state: std::sync::Arc<State>) {
    let mut tick = tokio::time::interval(state.timing.usage_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.blocking(|s| s.usage(|_| true)).await {
            Ok(usage) => {
                *crate::sync::write(&state.usage_counted) =
                    Some((crate::store::now_ms(), std::sync::Arc::new(usage)));
            }
            Err(e) => tracing::error!(error = %e, "counting the disk used"),
        }
    }
}

/// The bytes of the files under `dir`, walked without following links; a
/// missing folder is empty.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            total += dir_bytes(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}
