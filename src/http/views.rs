//! How records look in the API's answers: the store's records, minus what
//! only the megatron and the worker share (the lease), with any credentials
//! in a URL masked.

use crate::config::access::redact_url;
use crate::megatron::state::RepoState;
use crate::store::BuildRecord;
use serde_json::{json, Value};

pub fn repo_view(repo: &RepoState) -> Value {
    let mut view = serde_json::to_value(&repo.record).unwrap_or(Value::Null);
    let builders: Vec<&String> = repo
        .graph
        .as_ref()
        .map(|g| g.graph.builders.keys().collect())
        .unwrap_or_default();
    view["builders"] = json!(builders);
    view["url"] = json!(redact_url(&repo.record.url));
    if let Some(graph) = &repo.graph {
        view["graph"] = json!({
            "version": graph.version,
            "commit": graph.commit,
            "config_hash": graph.config_hash,
            "cybertron_hash": graph.cybertron_hash,
            "created": graph.created,
        });
    }
    view
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
