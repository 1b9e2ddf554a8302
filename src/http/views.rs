//! How records look in the API's answers: the store's records, minus what
//! only the megatron and the worker share (the lease), with any credentials
//! in a URL masked.

use super::schema::{GraphSummary, RepoView};
use crate::config::access::redact_url;
use crate::megatron::state::RepoState;
use crate::store::{BuildRecord, RepoRecord};
use serde_json::{json, Value};

pub fn repo_view(repo: &RepoState) -> RepoView {
    RepoView {
        record: RepoRecord {
            url: redact_url(&repo.record.url),
            ..repo.record.clone()
        },
        builders: repo
            .graph
            .as_ref()
            .map(|g| g.graph.builders.keys().cloned().collect())
            .unwrap_or_default(),
        graph: repo.graph.as_ref().map(|graph| GraphSummary {
            version: graph.version,
            commit: graph.commit.clone(),
            config_hash: graph.config_hash.clone(),
            cybertron_hash: graph.cybertron_hash.clone(),
            created: graph.created,
        }),
    }
}

/// A build as the API shows it: everything but the worker's lease.
pub fn build_view(build: &BuildRecord) -> Value {
    let mut view = serde_json::to_value(build).unwrap_or(Value::Null);
    if let Some(object) = view.as_object_mut() {
        object.remove("lease");
        object.insert("repo_url".into(), json!(redact_url(&build.repo_url)));
    }
    view
}
