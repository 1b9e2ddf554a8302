//! Pull and merge requests of a repo: list them, and approve a fork's head
//! commit so it builds.

use super::error::ApiError;
use super::extract::parse_json;
use super::repos::find_repo;
use crate::access::caller::Caller;
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use crate::store::pulls::PullRecord;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as Extract};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

type AppState = Extract<Arc<State>>;

/// A repo's pull requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullList {
    pub pulls: Vec<PullRecord>,
}

/// The commit to approve: the request's head, in full or by a prefix of 7
/// or more hex digits.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    commit: String,
}

/// A repo's pull requests
///
/// Each with its head, whether it comes from a fork, its approval, its
/// builds, or why it waits.
#[utoipa::path(
    get,
    path = "/api/v1/repos/{repo}/pulls",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    responses(
        (status = 200, description = "The requests, newest first", body = PullList),
        (status = 404, description = "No such repo", body = ErrorBody),
    )
)]
pub async fn list_pulls(
    state: AppState,
    Path(repo): Path<String>,
) -> Result<Json<PullList>, ApiError> {
    find_repo(&state, &repo)?;
    let pulls = state
        .blocking(move |s| s.store.pulls(&repo).map_err(crate::megatron::Error::from))
        .await?;
    Ok(Json(PullList { pulls }))
}

/// Approves a fork's head commit
///
/// A pull request from a fork builds only once an operator approves its
/// exact head commit; a newer push needs a new approval.
#[utoipa::path(
    post,
    path = "/api/v1/repos/{repo}/pulls/{number}/approve",
    tag = "repos",
    params(
        ("repo" = String, Path, description = "The repo's name"),
        ("number" = u64, Path, description = "The request's number"),
    ),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "Approved: the request as it is now, with its builds", body = PullRecord),
        (status = 404, description = "No such repo or request", body = ErrorBody),
        (status = 409, description = "Not its head commit, not from a fork, or closed", body = ErrorBody),
    )
)]
pub async fn approve_pull(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path((repo, number)): Path<(String, u64)>,
    body: Bytes,
) -> Result<Json<PullRecord>, ApiError> {
    let request: ApproveRequest = parse_json(&body)?;
    let by = caller.name().unwrap_or("anonymous").to_string();
    let record = state
        .blocking(move |s| s.approve_pull(&repo, number, &request.commit, &by))
        .await?;
    Ok(Json(record))
}
