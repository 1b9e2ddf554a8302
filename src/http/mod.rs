//! The megatron's JSON API and worker protocol: [`router`] and the error type.
//!
//! Handlers are thin: extract, call the state (on a blocking thread), map the
//! error. Bodies are parsed by `extract::parse_json` so a bad body gets our
//! JSON `{error}` with a 400, never a 5xx or axum's plain-text rejection.
//! The pages people read live apart, in `web`.

mod api;
mod artifacts;
mod auth;
mod error;
mod extract;
mod hooks;
mod worker_api;

pub use error::ApiError;

use crate::megatron::state::State;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/api/v1/repos", get(api::list_repos).post(api::add_repo))
        .route("/api/v1/repos/{repo}", get(api::get_repo))
        .route("/api/v1/repos/{repo}/refresh", post(api::refresh_repo))
        .route("/api/v1/builders", get(api::list_builders))
        .route("/api/v1/builders/{name}", get(api::get_builder))
        .route("/api/v1/builders/{name}/builds", get(api::builder_builds))
        .route("/api/v1/builders/{name}/force", post(api::force))
        .route("/api/v1/builders/{name}/get", get(api::resolve_get))
        .route("/api/v1/builds/{id}", get(api::get_build))
        .route("/api/v1/builds/{id}/cancel", post(api::cancel))
        .route("/api/v1/builds/{id}/steps/{step}/log", get(api::step_log))
        .route("/api/v1/builds/{id}/artifacts", get(artifacts::list))
        .route(
            "/api/v1/builds/{id}/artifacts/{*path}",
            get(artifacts::download),
        )
        .route("/api/v1/queue", get(api::queue))
        .route("/api/v1/hooks/push", post(hooks::push))
        .route("/api/v1/admin/reload", post(api::reload))
        .route("/api/v1/workers/{name}/token", post(api::issue_token))
        .route("/api/v1/worker/claim", post(worker_api::claim))
        .route(
            "/api/v1/worker/builds/{id}/heartbeat",
            post(worker_api::heartbeat),
        )
        .route(
            "/api/v1/worker/builds/{id}/release",
            post(worker_api::release),
        )
        .route(
            "/api/v1/worker/builds/{id}/steps/{step}/start",
            post(worker_api::step_start),
        )
        .route(
            "/api/v1/worker/builds/{id}/steps/{step}/log",
            post(worker_api::step_log),
        )
        .route(
            "/api/v1/worker/builds/{id}/steps/{step}/finish",
            post(worker_api::step_finish),
        )
        .route(
            "/api/v1/worker/builds/{id}/finish",
            post(worker_api::build_finish),
        )
        .route(
            "/api/v1/worker/builds/{id}/revisions",
            post(worker_api::revisions),
        )
        .route(
            "/api/v1/worker/builds/{id}/artifacts/{*path}",
            // Uploads stream to disk under their own cap (the build's), not
            // the body limit of the other routes.
            put(artifacts::upload).layer(DefaultBodyLimit::disable()),
        )
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The largest request body taken (a log chunk is at most 256 KiB).
const MAX_BODY: usize = 4 << 20;
