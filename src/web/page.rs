//! What every page shares: the navigation (who is logged in, the logout
//! form's CSRF token), rendering a template into a response, and the
//! session cookie's attributes.

use crate::access::caller::{Caller, SESSION_COOKIE};
use crate::megatron::state::State;
use crate::sync::read;
use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The header of every page.
pub struct Nav {
    pub person: Option<String>,
    pub csrf: String,
    /// What the page's script keeps live: "page" (reload on changes),
    /// "build" (the build's own stream), or nothing.
    pub live: &'static str,
}

impl Nav {
    pub fn of(caller: Option<&Caller>) -> Nav {
        Nav {
            person: caller.and_then(|c| c.name()).map(str::to_string),
            csrf: caller
                .and_then(|c| c.csrf())
                .unwrap_or_default()
                .to_string(),
            live: "",
        }
    }

    pub fn live(mut self, live: &'static str) -> Nav {
        self.live = live;
        self
    }
}

/// Renders a page; a template that fails to render is our bug, logged and
/// shown as a plain 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The address people reach the megatron at: cybertron's `public_url`, or
/// the request's own host.
pub fn public_url(state: &State, headers: &HeaderMap) -> String {
    if let Some(url) = read(&state.cybertron).spec.public_url.clone() {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when the megatron
/// is reached over https; an empty value with `max_age` 0 clears it.
pub fn cookie(
    name: &str,
    value: &str,
    max_age_seconds: u64,
    secure: bool,
    path: &str,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session cookie for a new session.
pub fn session_cookie(state: &State, headers: &HeaderMap, value: &str) -> HeaderValue {
    let hours = read(&state.cybertron).spec.access.session_hours;
    let secure = public_url(state, headers).starts_with("https://");
    cookie(SESSION_COOKIE, value, hours * 3600, secure, "/")
}

/// Only a path of this site may be a place to go back to after login.
pub fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    nav: Nav,
    title: &'a str,
    message: &'a str,
}

/// A page that only says something: what was not found, what failed.
pub fn message(caller: &Caller, status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &MessagePage {
            nav: Nav::of(Some(caller)),
            title,
            message,
        },
    )
}

pub fn not_found(caller: &Caller, what: &str) -> Response {
    message(caller, StatusCode::NOT_FOUND, "Not found", what)
}
