//! The worker protocol (see `protocol`): claim long-poll, heartbeat
//! long-poll, step and log reports, the build's end.
//!
//! Every call names its worker in `x-constructicon-worker` and carries its
//! token as a bearer token; the megatron keeps only the token's sha256.

use super::auth::authenticate_worker;
use super::error::ApiError;
use super::extract::{parse_id, parse_json};
use super::schema::{Finished, Taken};
use crate::megatron::state::State;
use crate::protocol::{
    BuildFinish, ClaimRequest, ErrorBody, HeartbeatRequest, HeartbeatResponse, Job,
    RevisionsReport, StepFinish, StepStart,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

type AppState = Extract<Arc<State>>;

/// Claims a job
///
/// Holds the request until a build this worker may run is queued, or the
/// wait runs out (204).
#[utoipa::path(
    post,
    path = "/api/v1/worker/claim",
    tag = "worker protocol",
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "A job: the build is the worker's until its lease runs out", body = Job),
        (status = 204, description = "Nothing to run within the wait"),
        (status = 401, description = "A missing or wrong worker token", body = ErrorBody),
        (status = 404, description = "No config declares a worker of this name", body = ErrorBody),
    )
)]
pub async fn claim(state: AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let worker = authenticate_worker(&state, &headers).await?;
    let request: ClaimRequest = parse_json(&body)?;
    if !state.worker_known(&worker) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no cybertron or registered repo declares a worker named {worker}: declare it, or start the worker with a declared name"
            ),
        ));
    }
    let wait = Duration::from_millis(request.wait_ms).min(state.timing.claim_wait);
    let deadline = Instant::now() + wait;
    let _held = state.metrics.hold("claim");
    loop {
        // Register for the wake-up before looking, so a build queued between
        // the look and the wait is not missed.
        let notified = state.queue_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if state.is_stopping() {
            // No job is handed out on the way down; the worker calls again.
            return Err(going_away());
        }
        let name = worker.clone();
        if let Some(job) = state.blocking(move |s| s.try_claim(&name)).await? {
            tracing::debug!(worker = %worker, build = job.build, "claimed");
            return Ok(Json(job).into_response());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

/// What a long-poll answers while the megatron goes away: a 503 the worker
/// retries, as it does while the megatron is down.
fn going_away() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the megatron is going away; call again in a moment",
    )
}

/// Extends a job's lease
///
/// Holds the request until the build is cancelled or the heartbeat
/// interval passes.
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/heartbeat",
    tag = "worker protocol",
    params(("id" = u64, Path, description = "The build's id")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The lease is extended; `cancel` says whether to stop", body = HeartbeatResponse),
        (status = 409, description = "The lease was taken away: stop, report nothing", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    state: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let worker = authenticate_worker(&state, &headers).await?;
    let id = parse_id(&id)?;
    let request: HeartbeatRequest = parse_json(&body)?;
    let deadline = Instant::now() + state.timing.heartbeat;
    let _held = state.metrics.hold("heartbeat");
    loop {
        let notified = state.build_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (w, lease) = (worker.clone(), request.lease.clone());
        let cancel = state
            .blocking(move |s| {
                s.check_lease(id, &w, &lease)?;
                s.cancel_requested(id)
            })
            .await?;
        if cancel
            || state.is_stopping()
            || tokio::time::timeout_at(deadline, notified).await.is_err()
            || state.is_stopping()
        {
            let (w, lease) = (worker.clone(), request.lease.clone());
            state
                .blocking(move |s| s.check_lease(id, &w, &lease))
                .await?;
            return Ok(Json(HeartbeatResponse { cancel }));
        }
    }
}

/// The common shape of a worker's report: the worker authenticated, the
/// build id and a JSON body read, the change made on a blocking thread, `{}`
/// answered.
async fn report<B, F>(
    state: &Arc<State>,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    change: F,
) -> Result<Json<Taken>, ApiError>
where
    B: serde::de::DeserializeOwned + Send + 'static,
    F: FnOnce(&State, u64, String, B) -> crate::megatron::Result<()> + Send + 'static,
{
    let worker = authenticate_worker(state, headers).await?;
    let id = parse_id(id)?;
    let request: B = parse_json(body)?;
    state
        .blocking(move |s| change(s, id, worker, request))
        .await?;
    Ok(Json(Taken {}))
}

/// Gives a job back unrun
///
/// A worker that shuts down before it runs its job gives it back: the
/// build is queued again in its place, and this does not count as an
/// attempt.
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/release",
    tag = "worker protocol",
    params(("id" = u64, Path, description = "The build's id")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Released", body = Taken),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn release(
    state: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, ApiError> {
    report(
        &state,
        &headers,
        &id,
        &body,
        |s, id, worker, request: HeartbeatRequest| s.release_claim(id, &worker, &request.lease),
    )
    .await
}

/// A step started
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/steps/{step}/start",
    tag = "worker protocol",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("step" = u32, Path, description = "The step's index in the build's steps"),
    ),
    request_body = StepStart,
    responses(
        (status = 200, description = "Recorded", body = Taken),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn step_start(
    state: AppState,
    Path((id, step)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, ApiError> {
    report(
        &state,
        &headers,
        &id,
        &body,
        move |s, id, worker, request: StepStart| s.step_started(id, step, &worker, &request.lease),
    )
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    /// The job's lease.
    lease: String,
    /// Where this chunk starts in the step's output, in bytes, as the
    /// worker counts them: a chunk sent again after an answer was lost is
    /// known by it and not stored twice.
    offset: Option<u64>,
}

/// A chunk of a step's output
///
/// Appended to the step's log as is (at most 1 MiB a call). With `offset`,
/// the bytes the megatron already has (a chunk sent again because its
/// answer was lost) are acknowledged and not stored again.
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/steps/{step}/log",
    tag = "worker protocol",
    operation_id = "append_step_log",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("step" = u32, Path, description = "The step's index in the build's steps"),
        LeaseQuery,
    ),
    request_body(description = "The output's next bytes", content(("application/octet-stream"))),
    responses(
        (status = 200, description = "Appended", body = Taken),
        (status = 400, description = "More than 1 MiB", body = ErrorBody),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn step_log(
    state: AppState,
    Path((id, step)): Path<(String, u32)>,
    Query(query): Query<LeaseQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, ApiError> {
    let worker = authenticate_worker(&state, &headers).await?;
    let id = parse_id(&id)?;
    if body.len() > 1 << 20 {
        return Err(ApiError::bad_request("a log chunk may hold at most 1 MiB"));
    }
    state
        .blocking(move |s| s.append_log(id, step, &worker, &query.lease, query.offset, &body))
        .await?;
    Ok(Json(Taken {}))
}

/// A step ended
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/steps/{step}/finish",
    tag = "worker protocol",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("step" = u32, Path, description = "The step's index in the build's steps"),
    ),
    request_body = StepFinish,
    responses(
        (status = 200, description = "Recorded", body = Taken),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn step_finish(
    state: AppState,
    Path((id, step)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, ApiError> {
    report(
        &state,
        &headers,
        &id,
        &body,
        move |s, id, worker, request: StepFinish| s.step_finished(id, step, &worker, &request),
    )
    .await
}

/// The build ended
///
/// Its result is recorded and its lease, worker and resources are freed.
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/finish",
    tag = "worker protocol",
    params(("id" = u64, Path, description = "The build's id")),
    request_body = BuildFinish,
    responses(
        (status = 200, description = "Recorded", body = Finished),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn build_finish(
    state: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let worker = authenticate_worker(&state, &headers).await?;
    let id = parse_id(&id)?;
    let request: BuildFinish = parse_json(&body)?;
    let build = state
        .blocking(move |s| {
            s.build_finished(id, &worker, &request.lease, request.result, request.reason)
        })
        .await?;
    Ok(Json(Finished { build: build.id }).into_response())
}

/// The commits the checkout resolved
#[utoipa::path(
    post,
    path = "/api/v1/worker/builds/{id}/revisions",
    tag = "worker protocol",
    params(("id" = u64, Path, description = "The build's id")),
    request_body = RevisionsReport,
    responses(
        (status = 200, description = "Recorded", body = Taken),
        (status = 409, description = "The lease was taken away", body = ErrorBody),
    )
)]
pub async fn revisions(
    state: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, ApiError> {
    report(
        &state,
        &headers,
        &id,
        &body,
        |s, id, worker, request: RevisionsReport| {
            s.record_revisions(id, &worker, &request.lease, request.revisions)
        },
    )
    .await
}
