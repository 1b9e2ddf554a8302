//! Disk used per repo and builder: the logs kept in the store and the
//! artifacts kept on disk, so a maintainer can see what the horizon holds.

use std::path::Path;

use serde::Serialize;
use utoipa::ToSchema;

use super::error::Result;
use super::state::State;
use crate::sync::read;

/// What one builder's kept history takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct BuilderUsage {
    pub builder: String,
    /// Builds kept.
    pub builds: u64,
    /// Bytes of step output kept.
    pub log_bytes: u64,
    /// Bytes of artifacts kept on disk.
    pub artifact_bytes: u64,
}

/// What one repo's builders take, with their sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct RepoUsage {
    pub repo: String,
    pub builds: u64,
    pub log_bytes: u64,
    pub artifact_bytes: u64,
    /// By builder name.
    pub builders: Vec<BuilderUsage>,
}

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
