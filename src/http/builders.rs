//! Builders: list, show, history, force (operators), and what `get` would
//! fetch now.

use super::error::ApiError;
use super::extract::parse_json;
use super::views::build_view;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::queue::ForceRequest;
use crate::megatron::state::State;
use crate::sync::read;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppState = Extract<Arc<State>>;

/// A builder's latest build, in short, for lists.
pub fn last_build(build: Option<&crate::store::BuildRecord>) -> Value {
    match build {
        Some(b) => json!({
            "id": b.id, "number": b.number, "state": b.state, "result": b.result,
            "finished": b.finished,
        }),
        None => Value::Null,
    }
}

pub async fn list_builders(state: AppState, Extension(caller): Extension<Caller>) -> Json<Value> {
    let mut builders = Vec::new();
    {
        let repos = read(&state.repos);
        for repo in repos
            .values()
            .filter(|r| caller.may(Role::Viewer, &r.record.name))
        {
            let Some(graph) = &repo.graph else { continue };
            for (name, builder) in &graph.graph.builders {
                builders.push(json!({
                    "name": name,
                    "repo": repo.record.name,
                    "workers": builder.workers,
                    "schedulers": builder.schedulers,
                    "resources": builder.resources,
                    "error": repo.record.error,
                }));
            }
        }
    }
    builders.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let builders = state
        .blocking(move |s| {
            for builder in &mut builders {
                let name = builder["name"].as_str().unwrap_or_default().to_string();
                let last = s.store.builder_builds(&name, 1).unwrap_or_default();
                builder["last"] = last_build(last.first());
            }
            builders
        })
        .await;
    Json(json!({ "builders": builders }))
}

/// `GET /api/v1/builders/{name}/builds/{number}`: a build by its number.
pub async fn build_by_number(
    state: AppState,
    Path((name, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let number: u64 = number
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{number:?} is not a build number")))?;
    let build = state
        .blocking(move |s| s.store.build_by_number(&name, number))
        .await
        .map_err(crate::megatron::Error::from)?;
    Ok(Json(build_view(&build)))
}

pub async fn get_builder(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (repo, graph) = state
        .builder_owner(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("builder {name} not found")))?;
    let error = read(&state.repos)
        .get(&repo)
        .and_then(|r| r.record.error.clone());
    let builder = &graph.graph.builders[&name];
    let schedulers: serde_json::Map<String, Value> = builder
        .schedulers
        .iter()
        .filter_map(|s| {
            graph
                .graph
                .schedulers
                .get(s)
                .map(|spec| (s.clone(), json!(spec)))
        })
        .collect();
    Ok(Json(json!({
        "name": name,
        "repo": repo,
        "workers": builder.workers,
        "spec": builder,
        "schedulers": schedulers,
        "graph_version": graph.version,
        "error": error,
    })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<usize>,
}

pub async fn builder_builds(
    state: AppState,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).min(1000);
    let builds = state
        .blocking(move |s| s.store.builder_builds(&name, limit))
        .await;
    let builds = builds.map_err(crate::megatron::Error::from)?;
    Ok(Json(
        json!({ "builds": builds.iter().map(build_view).collect::<Vec<_>>() }),
    ))
}

pub async fn force(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ForceRequest = parse_json(&body)?;
    // Who forced it comes from the credentials, never from the body.
    let by = caller.name().map(str::to_string);
    let build = state.force_fresh(name, request, by).await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "build": build.id, "number": build.number })),
    )
        .into_response())
}

/// `GET /api/v1/builders/{name}/get`: for each of the builder's `get`
/// entries, the build a worker would fetch results from now (what
/// `constructicon get` uses).
pub async fn resolve_get(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, graph) = state
        .builder_owner(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("builder {name} not found")))?;
    let entries = graph.graph.builders[&name].get.clone();
    let resolved = state.blocking(move |s| s.resolve_get(&entries)).await?;
    Ok(Json(json!({ "get": resolved })))
}
