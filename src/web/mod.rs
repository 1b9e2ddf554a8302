//! The pages people read in a browser, apart from the JSON API (`http`).
//!
//! Pages are rendered on the server from askama templates in
//! `src/web/templates/` (escaping on by default), with the stylesheet from
//! `src/web/assets/`; both are compiled into the binary. Every route is
//! registered with its access rule, as the API's are; a page refused to an
//! anonymous caller sends the browser to the login page.

mod home;
mod login;
mod page;

use crate::config::access::Role;
use crate::http::guard::{Face, Need, RouteInfo};
use crate::http::routes::Routes;
use crate::megatron::state::State;
use axum::http::{header, Method};
use axum::response::IntoResponse;
use axum::Router;
use std::sync::Arc;

const STYLE: &str = include_str!("assets/style.css");

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE,
    )
}

fn routes(state: Arc<State>) -> Routes {
    use Method as M;
    use Need::{Public, Role as R};
    Routes::new(state, Face::Page)
        .at(M::GET, "/", R(Role::Viewer), home::index)
        .at(M::GET, "/assets/style.css", Public, style)
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

/// The pages, on their own router; `server` merges it with the API's.
pub fn router(state: Arc<State>) -> Router {
    let (router, _) = routes(state.clone()).finish();
    router.with_state(state)
}

/// Every page route with what it needs from its caller.
pub fn route_table(state: Arc<State>) -> Vec<RouteInfo> {
    routes(state).finish().1
}
