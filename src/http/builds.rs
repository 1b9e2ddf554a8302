//! Builds: show one (with its artifacts and links), cancel (operators), its
//! steps' logs (followed live), and the queue.

use super::error::ApiError;
use super::extract::parse_id;
use super::views::build_view;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::state::State;
use crate::store::BuildState;
use crate::sync::lock;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

type AppState = Extract<Arc<State>>;

#[derive(Deserialize)]
pub struct BuildQuery {
    /// Hold the answer until the build has finished (at most 30 s), so a
    /// client follows a build without polling.
    wait: Option<bool>,
}

pub async fn get_build(
    state: AppState,
    Path(id): Path<String>,
    Query(query): Query<BuildQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut changes = state.changes.subscribe();
    let (build, artifacts) = loop {
        changes.borrow_and_update();
        let found = state
            .blocking(move |s| {
                let build = s.store.build(id)?;
                let artifacts = crate::megatron::artifacts::list_artifacts(&s.artifact_dir(id))
                    .unwrap_or_default();
                Ok::<_, crate::store::Error>((build, artifacts))
            })
            .await;
        let (build, artifacts) = found.map_err(crate::megatron::Error::from)?;
        if build.state == BuildState::Finished || !query.wait.unwrap_or(false) {
            break (build, artifacts);
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break (build, artifacts);
        }
    };
    let mut view = build_view(&build);
    view["artifacts"] = json!(artifacts);
    view["links"] = json!(crate::megatron::artifacts::links(build.id, &build.spec.url));
    Ok(Json(view))
}

pub async fn cancel(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let by = caller.name().map(str::to_string);
    let build = state.blocking(move |s| s.cancel(id, by.as_deref())).await?;
    Ok(Json(build_view(&build)))
}

#[derive(Deserialize)]
pub struct LogQuery {
    offset: Option<u64>,
    /// Keep the response open and stream output until the step ends.
    follow: Option<bool>,
    /// Ask the browser to save it as a file.
    download: Option<bool>,
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
        let mut response = (headers, bytes).into_response();
        if query.download.unwrap_or(false) {
            let name = format!("{}-{}-step{step}.log", build.builder, build.number);
            if let Ok(value) =
                axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
        }
        return Ok(response);
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
                    // The megatron is going away: the client follows again.
                    Ok((_, false)) if state.is_stopping() => return None,
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

pub async fn queue(
    state: AppState,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let queued = state.blocking(|s| s.store.queued_builds()).await;
    let queued = queued.map_err(crate::megatron::Error::from)?;
    let waits: std::collections::HashMap<u64, String> = state
        .queue_waits()
        .into_iter()
        .map(|(build, wait)| (build, wait.describe()))
        .collect();
    let pending: Vec<Value> = queued
        .iter()
        .filter(|b| caller.may(Role::Viewer, &b.repo))
        .map(|b| {
            json!({
                "build": b.id, "builder": b.builder, "number": b.number, "reason": b.reason,
                "by": b.by, "created": b.created, "waiting": waits.get(&b.id),
            })
        })
        .collect();
    let held: Vec<Value> = lock(&state.dispatcher)
        .held_resources()
        .into_iter()
        .map(|(resource, build)| json!({ "resource": resource, "build": build }))
        .collect();
    Ok(Json(json!({ "pending": pending, "resources": held })))
}

/// `POST /api/v1/builds/{id}/rebuild`: the same revisions, pins and
/// parameters, queued again by the caller.
pub async fn rebuild(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let by = caller.name().map(str::to_string);
    let build = state
        .blocking(move |s| s.rebuild(id, by.as_deref()))
        .await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "build": build.id, "number": build.number, "builder": build.builder })),
    ))
}

/// `GET /api/v1/workers`: every declared worker, online or not, and what
/// it runs; a user worker only to those who may see its repo.
pub async fn workers(state: AppState, Extension(caller): Extension<Caller>) -> Json<Value> {
    let workers: Vec<_> = state
        .workers()
        .into_iter()
        .filter(|w| w.repo.as_ref().is_none_or(|r| caller.may(Role::Viewer, r)))
        .collect();
    Json(json!({ "workers": workers }))
}
