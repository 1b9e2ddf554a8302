//! Builds: show one (with its artifacts and links), cancel (operators), its
//! steps' logs (followed live), and the queue.

use super::error::ApiError;
use super::extract::parse_id;
use super::schema::{BuildDetail, HeldResource, Pending, Queue, Rebuilt, WorkerList};
use super::views::build_view;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use crate::store::{BuildRecord, BuildState};
use crate::sync::lock;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

type AppState = Extract<Arc<State>>;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BuildQuery {
    /// Hold the answer until the build has finished (at most 30 s), so a
    /// client follows a build without polling.
    wait: Option<bool>,
}

/// A build, with its steps, artifacts and links
///
/// Its state and result, why and by whom it was started, its steps with
/// their timings, results and exit codes, its parameters, the revisions
/// built (the repo's and every dep's), the pins it was forced with, and its
/// provenance (config commit and hash, cybertron hash, graph version,
/// system version).
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    params(("id" = u64, Path, description = "The build's id"), BuildQuery),
    responses(
        (status = 200, description = "The build", body = BuildDetail),
        (status = 400, description = "Not a build id", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
    )
)]
pub async fn get_build(
    state: AppState,
    Path(id): Path<String>,
    Query(query): Query<BuildQuery>,
) -> Result<Json<BuildDetail>, ApiError> {
    let id = parse_id(&id)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut changes = state.changes.subscribe();
    let _held = query
        .wait
        .unwrap_or(false)
        .then(|| state.metrics.hold("build_wait"));
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
    Ok(Json(BuildDetail {
        build: build_view(&build),
        artifacts,
        links: crate::megatron::artifacts::links(build.id, &build.spec.url),
    }))
}

/// Cancels a build
///
/// A queued build at once, a running one within a second (its worker stops
/// the step and reports `cancelled`).
#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/cancel",
    tag = "builds",
    params(("id" = u64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build, cancelled or being cancelled", body = BuildRecord),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "It has finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let by = caller.name().map(str::to_string);
    let build = state.blocking(move |s| s.cancel(id, by.as_deref())).await?;
    Ok(Json(build_view(&build)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Start at this byte of the output.
    offset: Option<u64>,
    /// Keep the response open and stream output until the step ends.
    follow: Option<bool>,
    /// Ask the browser to save it as a file.
    download: Option<bool>,
}

/// How much of a log one read takes from the store.
const LOG_READ: usize = 1 << 20;

/// A step's output
///
/// Step 0 is the checkout. With `follow`, the answer streams the output as
/// it comes until the step ends.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}/steps/{step}/log",
    tag = "builds",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("step" = u32, Path, description = "The step's index in the build's `steps`"),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The output, as the step wrote it", body = String, content_type = "text/plain"),
        (status = 404, description = "No such build or step", body = ErrorBody),
    )
)]
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
    let follow = query.follow.unwrap_or(false);
    // Read in pieces, whatever the log's size: a reader holds one piece at
    // a time, and the next is read when the client has taken the last.
    let stream = futures_util::stream::unfold(
        (
            state.0.clone(),
            Some(offset),
            follow.then(|| state.metrics.hold("log_follow")),
        ),
        move |(state, offset, held)| async move {
            let offset = offset?;
            let waiter = state.clone();
            loop {
                let notified = waiter.build_changed.notified();
                let read = state
                    .blocking(move |s| -> Result<(Vec<u8>, bool), crate::store::Error> {
                        let build = s.store.build(id)?;
                        let Some(record) = build.steps.get(step as usize) else {
                            return Ok((Vec::new(), true));
                        };
                        let ended = !follow
                            || build.state == BuildState::Finished
                            || record.finished.is_some();
                        let bytes =
                            s.store
                                .read_log(id, step, offset, record.log_bytes, LOG_READ)?;
                        Ok((bytes, ended))
                    })
                    .await;
                match read {
                    Ok((bytes, _)) if !bytes.is_empty() => {
                        let next = offset + bytes.len() as u64;
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(bytes)),
                            (state, Some(next), held),
                        ));
                    }
                    Ok((_, true)) => return None,
                    Err(e) => {
                        tracing::warn!(build = id, step, error = %e, "reading a log");
                        return Some((Err(std::io::Error::other(e)), (state, None, held)));
                    }
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
    let mut response = (headers, Body::from_stream(stream)).into_response();
    if !follow && query.download.unwrap_or(false) {
        let name = format!("{}-{}-step{step}.log", build.builder, build.number);
        if let Ok(value) =
            axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The queue
///
/// Pending builds in order, with their reason, who queued them and why each
/// waits; and which running build holds which resource.
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    tag = "builds",
    responses((status = 200, description = "The queue", body = Queue))
)]
pub async fn queue(
    state: AppState,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Queue>, ApiError> {
    let queued = state.blocking(|s| s.store.queued_builds()).await;
    let queued = queued.map_err(crate::megatron::Error::from)?;
    let waits: std::collections::HashMap<u64, String> = state
        .queue_waits()
        .into_iter()
        .map(|(build, wait)| (build, wait.describe()))
        .collect();
    let pending = queued
        .iter()
        .filter(|b| caller.may(Role::Viewer, &b.repo))
        .map(|b| Pending {
            build: b.id,
            builder: b.builder.clone(),
            number: b.number,
            reason: b.reason.clone(),
            by: b.by.clone(),
            created: b.created,
            waiting: waits.get(&b.id).cloned(),
        })
        .collect();
    let resources = lock(&state.dispatcher)
        .held_resources()
        .into_iter()
        .map(|(resource, build)| HeldResource { resource, build })
        .collect();
    Ok(Json(Queue { pending, resources }))
}

/// Queues a build again
///
/// With the same revision, the same commits of its deps and the same
/// parameters; queued by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/rebuild",
    tag = "builds",
    params(("id" = u64, Path, description = "The build's id")),
    responses(
        (status = 201, description = "The new build is queued", body = Rebuilt),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "It has not finished", body = ErrorBody),
    )
)]
pub async fn rebuild(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Rebuilt>), ApiError> {
    let id = parse_id(&id)?;
    let by = caller.name().map(str::to_string);
    let build = state
        .blocking(move |s| s.rebuild(id, by.as_deref()))
        .await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok((
        StatusCode::CREATED,
        Json(Rebuilt {
            build: build.id,
            number: build.number,
            builder: build.builder,
        }),
    ))
}

/// The workers
///
/// Every declared worker, online or not, and what it runs; a user worker
/// only to those who may see its repo.
#[utoipa::path(
    get,
    path = "/api/v1/workers",
    tag = "workers",
    responses((status = 200, description = "The workers, by name", body = WorkerList))
)]
pub async fn workers(state: AppState, Extension(caller): Extension<Caller>) -> Json<WorkerList> {
    let workers: Vec<_> = state
        .workers()
        .into_iter()
        .filter(|w| w.repo.as_ref().is_none_or(|r| caller.may(Role::Viewer, r)))
        .collect();
    Json(WorkerList { workers })
}
