//! The user-facing API of DESIGN.md: repos, builders, builds, logs, cancel,
//! and the admin call that issues worker tokens.

use super::auth::require_admin;
use super::error::ApiError;
use super::extract::{parse_id, parse_json};
use crate::megatron::queue::ForceRequest;
use crate::megatron::state::{RepoState, State};
use crate::store::{BuildRecord, BuildState};
use crate::sync::{lock, read};
use crate::token::{random_secret, secret_hash};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

type AppState = Extract<Arc<State>>;

fn repo_view(repo: &RepoState) -> Value {
    let mut view = serde_json::to_value(&repo.record).unwrap_or(Value::Null);
    let builders: Vec<&String> = repo
        .graph
        .as_ref()
        .map(|g| g.graph.builders.keys().collect())
        .unwrap_or_default();
    view["builders"] = json!(builders);
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
    }
    view
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRepo {
    url: String,
    branch: Option<String>,
}

pub async fn add_repo(state: AppState, body: Bytes) -> Result<Response, ApiError> {
    let request: AddRepo = parse_json(&body)?;
    let existed = {
        let name = crate::model::repo_name_from_url(&request.url);
        name.is_some_and(|n| read(&state.repos).contains_key(&n))
    };
    let repo = state
        .blocking(move |s| s.add_repo(&request.url, request.branch))
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(repo_view(&repo))).into_response())
}

pub async fn list_repos(state: AppState) -> Json<Value> {
    let repos = read(&state.repos);
    let mut views: Vec<Value> = repos.values().map(repo_view).collect();
    views.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({ "repos": views }))
}

pub async fn get_repo(state: AppState, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let repos = read(&state.repos);
    let repo = repos
        .get(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("repo {name} not found")))?;
    Ok(Json(repo_view(repo)))
}

pub async fn refresh_repo(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.blocking(move |s| s.refresh_repo(&name)).await?;
    Ok(Json(repo_view(&repo)))
}

pub async fn list_builders(state: AppState) -> Json<Value> {
    let repos = read(&state.repos);
    let mut builders = Vec::new();
    for repo in repos.values() {
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
    builders.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({ "builders": builders }))
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
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ForceRequest = parse_json(&body)?;
    let build = state.blocking(move |s| s.force(&name, request)).await?;
    state.queue_changed.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "build": build.id, "number": build.number })),
    )
        .into_response())
}

pub async fn get_build(state: AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let found = state
        .blocking(move |s| {
            let build = s.store.build(id)?;
            let artifacts =
                crate::megatron::artifacts::list_artifacts(&s.artifact_dir(id)).unwrap_or_default();
            Ok::<_, crate::store::Error>((build, artifacts))
        })
        .await;
    let (build, artifacts) = found.map_err(crate::megatron::Error::from)?;
    let mut view = build_view(&build);
    view["artifacts"] = json!(artifacts);
    view["links"] = json!(crate::megatron::artifacts::links(build.id, &build.spec.url));
    Ok(Json(view))
}

pub async fn cancel(state: AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let build = state.blocking(move |s| s.cancel(id)).await?;
    Ok(Json(build_view(&build)))
}

#[derive(Deserialize)]
pub struct LogQuery {
    offset: Option<u64>,
    /// Keep the response open and stream output until the step ends.
    follow: Option<bool>,
}

/// How much of a log one read takes from the store.
const LOG_READ: usize = 1 << 20;

pub async fn step_log(
    state: AppState,
    Path((id, step)): Path<(String, u32)>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let build = state.blocking(move |s| s.store.build(id)).await;
    let build = build.map_err(crate::megatron::Error::from)?;
    if step as usize >= build.steps.len() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("build {id} has no step {step}"),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !query.follow.unwrap_or(false) {
        let bytes = state
            .blocking(move |s| s.store.read_log(id, step, offset, usize::MAX))
            .await;
        let bytes = bytes.map_err(crate::megatron::Error::from)?;
        return Ok((headers, bytes).into_response());
    }
    let stream = futures_util::stream::unfold(
        (state.0.clone(), offset, false),
        move |(state, offset, done)| async move {
            if done {
                return None;
            }
            let waiter = state.clone();
            loop {
                let notified = waiter.build_changed.notified();
                let read = state
                    .blocking(move |s| -> Result<(Vec<u8>, bool), crate::store::Error> {
                        let build = s.store.build(id)?;
                        let ended = build.state == BuildState::Finished
                            || build
                                .steps
                                .get(step as usize)
                                .is_some_and(|r| r.finished.is_some());
                        Ok((s.store.read_log(id, step, offset, LOG_READ)?, ended))
                    })
                    .await;
                match read {
                    Ok((bytes, _)) if !bytes.is_empty() => {
                        let next = offset + bytes.len() as u64;
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(bytes)),
                            (state, next, false),
                        ));
                    }
                    Ok((_, true)) | Err(_) => return None,
                    Ok((_, false)) => {
                        // Wake on news, and now and then regardless.
                        let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                    }
                }
            }
        },
    );
    Ok((headers, Body::from_stream(stream)).into_response())
}

pub async fn queue(state: AppState) -> Result<Json<Value>, ApiError> {
    let queued = state.blocking(|s| s.store.queued_builds()).await;
    let queued = queued.map_err(crate::megatron::Error::from)?;
    let pending: Vec<Value> = queued
        .iter()
        .map(|b| json!({ "build": b.id, "builder": b.builder, "number": b.number, "reason": b.reason, "created": b.created }))
        .collect();
    let held: Vec<Value> = lock(&state.dispatcher)
        .held_resources()
        .into_iter()
        .map(|(resource, build)| json!({ "resource": resource, "build": build }))
        .collect();
    Ok(Json(json!({ "pending": pending, "resources": held })))
}

/// `POST /api/v1/workers/{name}/token` with the admin token: issues a new
/// token for a worker (replacing any earlier one) and keeps only its hash.
pub async fn issue_token(
    state: AppState,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers, "issuing worker tokens")?;
    if let Some(why) = crate::model::check_name(&name) {
        return Err(ApiError::bad_request(format!(
            "worker name {name:?} cannot be used: {why}"
        )));
    }
    let token = random_secret().map_err(|e| {
        tracing::error!(error = %e, "issuing a token");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot make a token")
    })?;
    let hash = secret_hash(&token);
    let worker = name.clone();
    let stored = state
        .blocking(move |s| {
            s.store.put_token_hash(&worker, &hash)?;
            s.store.flush()
        })
        .await;
    stored.map_err(crate::megatron::Error::from)?;
    let known = state.worker_known(&name);
    Ok(Json(
        json!({ "worker": name, "token": token, "known": known }),
    ))
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

/// `POST /api/v1/admin/reload` with the admin token: cybertron read again,
/// every repo re-evaluated against it.
pub async fn reload(state: AppState, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers, "reloading")?;
    let repos = state.blocking(|s| s.reload_cybertron()).await?;
    state.queue_changed.notify_waiters();
    Ok(Json(json!({ "repos": repos })))
}
