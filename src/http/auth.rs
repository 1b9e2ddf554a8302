//! Who is calling: a worker (its name in `x-constructicon-worker` and its
//! token as a bearer token) or the admin (the admin token). The megatron
//! keeps only the tokens' sha256.

use super::error::ApiError;
use crate::megatron::state::State;
use crate::protocol::WORKER_HEADER;
use crate::token::secret_hash;
use axum::http::{header, HeaderMap};
use std::sync::Arc;

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Refuses a request that does not carry the admin token as its bearer.
pub fn require_admin(state: &State, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(token) if secret_hash(token) == state.admin_token_hash => Ok(()),
        _ => Err(ApiError::unauthorized(format!(
            "{what} needs the admin token"
        ))),
    }
}

/// The worker a request comes from, once its token checks out.
pub async fn authenticate_worker(
    state: &Arc<State>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let worker = headers
        .get(WORKER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|w| !w.is_empty())
        .ok_or_else(|| ApiError::unauthorized(format!("missing the {WORKER_HEADER} header")))?
        .to_string();
    let token =
        bearer(headers).ok_or_else(|| ApiError::unauthorized("missing the bearer token"))?;
    let presented = secret_hash(token);
    let name = worker.clone();
    let stored = state.blocking(move |s| s.store.token_hash(&name)).await;
    match stored {
        Ok(Some(hash)) if hash == presented => Ok(worker),
        Ok(_) => Err(ApiError::unauthorized(format!(
            "wrong token for worker {worker}"
        ))),
        Err(e) => Err(crate::megatron::Error::from(e).into()),
    }
}
