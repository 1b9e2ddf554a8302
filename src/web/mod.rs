//! The pages people read in a browser, apart from the JSON API (`http`).
//!
//! Pages are rendered on the server from askama templates in
//! `src/web/templates/` (escaping on by default), with the stylesheet and
//! our one small script from `src/web/assets/`; all of it is compiled into
//! the binary. Pages work without the script; it only keeps them live.
//! Every route is registered with its access rule, as the API's are; a page
//! refused to an anonymous caller sends the browser to the login page.
//!
//! - [`home`]: builders at a glance; [`builder`]: one builder, its history
//!   and the force form; [`build`]: one build, its steps and logs, live;
//!   [`step_log`]: a whole log, windowed and searched; [`lists`]: the queue,
//!   the workers, a repo; [`login`]: logging in and out.

mod build;
mod builder;
mod format;
mod home;
mod lists;
mod log;
mod login;
mod page;
mod step_log;

use crate::config::access::Role;
use crate::http::guard::{Face, Need, RouteInfo};
use crate::http::routes::Routes;
use crate::megatron::state::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}

fn routes(state: Arc<State>) -> Routes {
    use Method as M;
    use Need::{Public, Role as R};
    let (view, operate) = (R(Role::Viewer), R(Role::Operator));
    Routes::new(state, Face::Page)
        .at(M::GET, "/", view, home::index)
        .at(M::GET, "/repos/{repo}", view, lists::repo)
        .at(
            M::POST,
            "/repos/{repo}/pulls/{number}/approve",
            operate,
            lists::approve_pull,
        )
        .at(M::GET, "/builders/{name}", view, builder::show)
        .at(M::POST, "/builders/{name}/force", operate, builder::force)
        .at(M::GET, "/builds/{id}", view, build::show)
        .at(
            M::GET,
            "/builders/{name}/builds/{number}",
            view,
            build::by_number,
        )
        .at(M::POST, "/builds/{id}/cancel", operate, build::cancel)
        .at(M::POST, "/builds/{id}/rebuild", operate, build::rebuild)
        .at(M::GET, "/builds/{id}/events", view, build::events)
        .at(M::GET, "/builds/{id}/steps/{step}", view, step_log::show)
        .at(M::GET, "/queue", view, lists::queue)
        .at(M::GET, "/workers", view, lists::workers)
        .at(M::GET, "/events", view, lists::changes)
        .at(M::GET, "/assets/style.css", Public, style)
        .at(M::GET, "/assets/live.js", Public, script)
        .at(M::GET, "/login", Public, login::page)
        .at(M::POST, "/login", Public, login::with_token)
        .at(M::POST, "/logout", Public, login::logout)
        .at(M::GET, "/login/oauth", Public, login::oauth_start)
        .at(
            M::GET,
            "/login/oauth/callback",
            Public,
            login::oauth_callback,
        )
        .at(M::GET, "/login/link/{secret}", Public, login::with_link)
}

/// Pages run only our own script and styles, are never framed, and keep
/// their addresses to themselves.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The pages, on their own router; `server` merges it with the API's.
pub fn router(state: Arc<State>) -> Router {
    let (router, _) = routes(state.clone()).finish();
    router
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Every page route with what it needs from its caller.
pub fn route_table(state: Arc<State>) -> Vec<RouteInfo> {
    routes(state).finish().1
}
