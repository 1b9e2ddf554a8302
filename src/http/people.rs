//! People's and workers' credentials, for admins: `POST /api/v1/people/{person}/tokens`
//! issues a personal token (shown once; only its hash is kept), `GET` lists
//! them by id, `DELETE` revokes them; `DELETE /api/v1/workers/{name}/token`
//! revokes a worker's. And `GET /api/v1/whoami`, for anyone.

use super::error::ApiError;
use super::guard::{bearer, cookie};
use super::schema::{
    PersonTokenIssued, PersonTokens, PersonTokensRevoked, Whoami, WorkerTokenRevoked,
};
use crate::access::caller::{resolve, Refused, SESSION_COOKIE};
use crate::access::people::{issue_person_token, revoke_person_tokens};
use crate::config::access::Role;
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

type AppState = Extract<Arc<State>>;

/// Issues a personal token
///
/// For a person of cybertron's `access.people`; only its hash is kept, so
/// the answer is the one time it is shown.
#[utoipa::path(
    post,
    path = "/api/v1/people/{person}/tokens",
    tag = "people",
    operation_id = "issue_person_token",
    params(("person" = String, Path, description = "A person of cybertron's `access.people`")),
    responses(
        (status = 201, description = "The token", body = PersonTokenIssued),
        (status = 400, description = "Not a person of `access.people`", body = ErrorBody),
    )
)]
pub async fn issue_token(
    state: AppState,
    Path(person): Path<String>,
) -> Result<(StatusCode, Json<PersonTokenIssued>), ApiError> {
    let who = person.clone();
    let issued = state.blocking(move |s| issue_person_token(s, &who)).await?;
    tracing::info!(person = %person, id = %issued.id, "personal token issued");
    Ok((
        StatusCode::CREATED,
        Json(PersonTokenIssued {
            person,
            id: issued.id,
            token: issued.token,
        }),
    ))
}

/// A person's tokens, by id
#[utoipa::path(
    get,
    path = "/api/v1/people/{person}/tokens",
    tag = "people",
    params(("person" = String, Path, description = "The person")),
    responses((status = 200, description = "The tokens (never the secrets)", body = PersonTokens))
)]
pub async fn list_tokens(
    state: AppState,
    Path(person): Path<String>,
) -> Result<Json<PersonTokens>, ApiError> {
    let who = person.clone();
    let tokens = state
        .blocking(move |s| s.store.person_tokens(&who))
        .await
        .map_err(crate::megatron::error::Error::from)?;
    Ok(Json(PersonTokens { person, tokens }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// One token's id; without it every token of the person goes.
    id: Option<String>,
}

/// Revokes a person's tokens
#[utoipa::path(
    delete,
    path = "/api/v1/people/{person}/tokens",
    tag = "people",
    params(("person" = String, Path, description = "The person"), RevokeQuery),
    responses((status = 200, description = "How many were revoked", body = PersonTokensRevoked))
)]
pub async fn revoke_tokens(
    state: AppState,
    Path(person): Path<String>,
    Query(query): Query<RevokeQuery>,
) -> Result<Json<PersonTokensRevoked>, ApiError> {
    let who = person.clone();
    let id = query.id.clone();
    let revoked = state
        .blocking(move |s| revoke_person_tokens(s, &who, id.as_deref()))
        .await?;
    tracing::info!(person = %person, revoked, "personal tokens revoked");
    Ok(Json(PersonTokensRevoked { person, revoked }))
}

/// Revokes a worker's token
#[utoipa::path(
    delete,
    path = "/api/v1/workers/{name}/token",
    tag = "workers",
    params(("name" = String, Path, description = "The worker's name")),
    responses((status = 200, description = "Revoked", body = WorkerTokenRevoked))
)]
pub async fn revoke_worker_token(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<WorkerTokenRevoked>, ApiError> {
    let worker = name.clone();
    let revoked = state
        .blocking(move |s| {
            let had = s.store.delete_token_hash(&worker)?;
            s.store.flush()?;
            Ok::<_, crate::store::Error>(had)
        })
        .await
        .map_err(crate::megatron::error::Error::from)?;
    tracing::info!(worker = %name, revoked, "worker token revoked");
    Ok(Json(WorkerTokenRevoked {
        worker: name,
        revoked,
    }))
}

/// Who the request's credentials name
///
/// The person, their role everywhere, and a session's CSRF token: what
/// `constructicon login` checks a token with.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "people",
    responses(
        (status = 200, description = "The caller", body = Whoami),
        (status = 401, description = "The bearer token is unknown or was revoked", body = ErrorBody),
    )
)]
pub async fn whoami(state: AppState, headers: HeaderMap) -> Result<Json<Whoami>, ApiError> {
    let token = bearer(&headers).map(str::to_string);
    let session = cookie(&headers, SESSION_COOKIE).map(str::to_string);
    let caller = state
        .blocking(move |s| resolve(s, token.as_deref(), session.as_deref(), None))
        .await
        .map_err(|e| match e {
            Refused::UnknownToken => ApiError::unauthorized(e.to_string()),
            Refused::Store(e) => crate::megatron::error::Error::from(e).into(),
        })?;
    let everywhere = caller.role_on(None).map(Role::as_str);
    Ok(Json(Whoami {
        person: caller.name().map(str::to_string),
        anonymous: caller.is_anonymous(),
        role: everywhere.map(str::to_string),
        // A browser script needs it to change anything; only a caller with
        // the cookie can read it (no other origin can read this answer).
        csrf: caller.csrf().map(str::to_string),
    }))
}
