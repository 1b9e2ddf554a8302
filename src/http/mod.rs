//! The megatron's JSON API and worker protocol: [`router`] and the error type.
//!
//! Handlers are thin: extract, call the state (on a blocking thread), map the
//! error. Bodies are parsed by `extract::parse_json` so a bad body gets our
//! JSON `{error}` with a 400, never a 5xx or axum's plain-text rejection.
//! The pages people read live apart, in `web`.

mod admin;
mod artifacts;
mod auth;
mod badge;
mod builders;
mod builds;
mod error;
mod extract;
pub mod guard;
mod hooks;
pub mod metrics;
pub mod openapi;
mod people;
mod pulls;
mod repos;
pub mod routes;
mod schema;
mod usage;
mod views;
mod worker_api;

pub use error::ApiError;

use crate::config::access::Role;
use crate::megatron::state::State;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use guard::{Face, Need, RouteInfo};
use routes::Routes;
use std::sync::Arc;

/// The API's router; see [`route_table`] for every route's rule. The
/// OpenAPI document is made here, from the same table.
pub fn router(state: Arc<State>) -> Router {
    let (router, table) = routes(state.clone()).finish();
    router
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_declared_too_large))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(Extension(openapi::Document::new(&table)))
        .with_state(state)
}

/// Every route of the API with what it needs from its caller.
pub fn route_table(state: Arc<State>) -> Vec<RouteInfo> {
    routes(state).finish().1
}

fn routes(state: Arc<State>) -> Routes {
    use axum::http::Method as M;
    use Need::{Public, Role as R, Webhook, Worker};
    let (view, operate, maintain, admin) = (
        R(Role::Viewer),
        R(Role::Operator),
        R(Role::Maintainer),
        R(Role::Admin),
    );
    Routes::new(state, Face::Api)
        .at(M::GET, "/api/v1/openapi.json", Public, openapi::serve)
        .at(M::GET, "/api/v1/whoami", Public, people::whoami)
        .at(M::GET, "/api/v1/repos", view, repos::list_repos)
        .at(M::POST, "/api/v1/repos", maintain, repos::add_repo)
        .at(M::GET, "/api/v1/repos/{repo}", view, repos::get_repo)
        .at(
            M::DELETE,
            "/api/v1/repos/{repo}",
            maintain,
            repos::remove_repo,
        )
        .at(
            M::POST,
            "/api/v1/repos/{repo}/refresh",
            maintain,
            repos::refresh_repo,
        )
        .at(
            M::POST,
            "/api/v1/repos/{repo}/eval",
            operate,
            repos::eval_config,
        )
        .at(
            M::GET,
            "/api/v1/repos/{repo}/pulls",
            view,
            pulls::list_pulls,
        )
        .at(
            M::POST,
            "/api/v1/repos/{repo}/pulls/{number}/approve",
            operate,
            pulls::approve_pull,
        )
        .at(
            M::GET,
            "/api/v1/repos/{repo}/public-key",
            view,
            repos::public_key,
        )
        .at(M::GET, "/api/v1/builders", view, builders::list_builders)
        .at(
            M::GET,
            "/api/v1/builders/{name}/builds/{number}",
            view,
            builders::build_by_number,
        )
        .at(
            M::GET,
            "/api/v1/builders/{name}",
            view,
            builders::get_builder,
        )
        .at(
            M::GET,
            "/api/v1/builders/{name}/builds",
            view,
            builders::builder_builds,
        )
        .at(
            M::POST,
            "/api/v1/builders/{name}/force",
            operate,
            builders::force,
        )
        .at(
            M::GET,
            "/api/v1/builders/{name}/get",
            view,
            builders::resolve_get,
        )
        .at(M::GET, "/api/v1/builds/{id}", view, builds::get_build)
        .at(
            M::POST,
            "/api/v1/builds/{id}/cancel",
            operate,
            builds::cancel,
        )
        .at(
            M::GET,
            "/api/v1/builds/{id}/steps/{step}/log",
            view,
            builds::step_log,
        )
        .at(
            M::GET,
            "/api/v1/builds/{id}/artifacts",
            view,
            artifacts::list,
        )
        .at(
            M::GET,
            "/api/v1/builds/{id}/artifacts/{*path}",
            view,
            artifacts::download,
        )
        .at(
            M::POST,
            "/api/v1/builds/{id}/rebuild",
            operate,
            builds::rebuild,
        )
        .at(M::GET, "/api/v1/queue", view, builds::queue)
        .at(M::GET, "/api/v1/workers", view, builds::workers)
        .at(M::GET, "/api/v1/usage", view, usage::usage)
        .at(M::GET, "/badge/{builder}", view, badge::badge)
        .at(M::GET, "/metrics", view, metrics::metrics)
        .at(M::POST, "/api/v1/hooks/push", Webhook, hooks::push)
        .at(M::POST, "/api/v1/admin/reload", admin, admin::reload)
        .at(
            M::POST,
            "/api/v1/workers/{name}/token",
            admin,
            admin::issue_token,
        )
        .at(
            M::DELETE,
            "/api/v1/workers/{name}/token",
            admin,
            people::revoke_worker_token,
        )
        .at(
            M::POST,
            "/api/v1/people/{person}/tokens",
            admin,
            people::issue_token,
        )
        .at(
            M::GET,
            "/api/v1/people/{person}/tokens",
            admin,
            people::list_tokens,
        )
        .at(
            M::DELETE,
            "/api/v1/people/{person}/tokens",
            admin,
            people::revoke_tokens,
        )
        .at(M::POST, "/api/v1/worker/claim", Worker, worker_api::claim)
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/heartbeat",
            Worker,
            worker_api::heartbeat,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/release",
            Worker,
            worker_api::release,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/steps/{step}/start",
            Worker,
            worker_api::step_start,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/steps/{step}/log",
            Worker,
            worker_api::step_log,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/steps/{step}/finish",
            Worker,
            worker_api::step_finish,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/finish",
            Worker,
            worker_api::build_finish,
        )
        .at(
            M::POST,
            "/api/v1/worker/builds/{id}/revisions",
            Worker,
            worker_api::revisions,
        )
        .at_router(
            M::PUT,
            "/api/v1/worker/builds/{id}/artifacts/{*path}",
            Worker,
            // Uploads stream to disk under their own cap (the build's), not
            // the body limit of the other routes.
            axum::routing::put(artifacts::upload).layer(DefaultBodyLimit::disable()),
        )
}

/// Refuses a body whose declared length is over the limit before reading
/// any of it (uploads have a limit of their own, the build's cap).
async fn refuse_declared_too_large(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let upload = request.uri().path().starts_with("/api/v1/worker/builds/")
        && request.uri().path().contains("/artifacts/");
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if !upload && length > MAX_BODY as u64 => ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request body may be at most {MAX_BODY} bytes; this one says {length}"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The largest request body taken (a log chunk is at most 256 KiB).
const MAX_BODY: usize = 4 << 20;
