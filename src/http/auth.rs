//! Workers' calls: the worker names itself in `x-constructicon-worker` and
//! carries its token as a bearer token; the megatron keeps only the token's
//! sha256. (People's calls go through `guard`.)

use super::error::ApiError;
use super::guard::bearer;
use crate::megatron::state::State;
use crate::protocol::WORKER_HEADER;
use crate::token::secret_hash;
use axum::http::HeaderMap;
use std::sync::Arc;

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
            "wrong token for worker {worker}: an admin issues a new one with `constructicon token {worker}`"
        ))),
        Err(e) => Err(crate::megatron::Error::from(e).into()),
    }
}
