//! Admin calls: worker tokens and cybertron reload. The guard lets only the
//! admin role through.

use super::error::ApiError;
use super::schema::{Reloaded, WorkerTokenIssued};
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use crate::token::{random_secret, secret_hash};
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

type AppState = Extract<Arc<State>>;

/// Issues a worker's token
///
/// A new token for the worker, replacing any earlier one; only its hash is
/// kept, so the answer is the one time it is shown.
#[utoipa::path(
    post,
    path = "/api/v1/workers/{name}/token",
    tag = "workers",
    operation_id = "issue_worker_token",
    params(("name" = String, Path, description = "The worker's name")),
    responses(
        (status = 200, description = "The token", body = WorkerTokenIssued),
        (status = 400, description = "The name cannot be used", body = ErrorBody),
    )
)]
pub async fn issue_token(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<WorkerTokenIssued>, ApiError> {
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
    Ok(Json(WorkerTokenIssued {
        worker: name,
        token,
        known,
    }))
}

/// Reads cybertron again
///
/// Every repo is evaluated again against it.
#[utoipa::path(
    post,
    path = "/api/v1/admin/reload",
    tag = "admin",
    responses(
        (status = 200, description = "Reloaded", body = Reloaded),
        (status = 400, description = "The new cybertron has errors; the old one stays", body = ErrorBody),
        (status = 409, description = "This megatron's cybertron is built in: there is no file to read", body = ErrorBody),
    )
)]
pub async fn reload(state: AppState) -> Result<Json<Reloaded>, ApiError> {
    let repos = state.blocking(|s| s.reload_cybertron()).await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok(Json(Reloaded { repos }))
}
