//! Admin calls: worker tokens and cybertron reload. The guard lets only the
//! admin role through.

use super::error::ApiError;
use crate::megatron::state::State;
use crate::token::{random_secret, secret_hash};
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

type AppState = Extract<Arc<State>>;

/// `POST /api/v1/workers/{name}/token` (admin): issues a new
/// token for a worker (replacing any earlier one) and keeps only its hash.
pub async fn issue_token(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
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

/// `POST /api/v1/admin/reload` (admin): cybertron read again,
/// every repo re-evaluated against it.
pub async fn reload(state: AppState) -> Result<Json<Value>, ApiError> {
    let repos = state.blocking(|s| s.reload_cybertron()).await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok(Json(json!({ "repos": repos })))
}
