//! Disk used per repo and builder: the history the horizon keeps, in bytes.

use super::error::ApiError;
use super::schema::Usage;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::state::State;
use axum::extract::{Extension, State as Extract};
use axum::Json;
use std::sync::Arc;

/// Disk used per repo and builder
///
/// The builds each builder keeps, the bytes of their logs in the store and
/// of their artifacts on disk; only repos the caller may see.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "admin",
    responses((status = 200, description = "Usage by repo, then builder", body = Usage))
)]
pub async fn usage(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Usage>, ApiError> {
    let repos = state
        .blocking(move |s| s.usage(|repo| caller.may(Role::Viewer, repo)))
        .await?;
    Ok(Json(Usage {
        log_bytes: repos.iter().map(|r| r.log_bytes).sum(),
        artifact_bytes: repos.iter().map(|r| r.artifact_bytes).sum(),
        repos,
    }))
}
