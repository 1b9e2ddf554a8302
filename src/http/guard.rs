//! The access check in front of every guarded route: who is calling (the
//! admin token, a personal token, a session cookie, or nobody), which repo
//! the path is about, and whether the caller's role there is enough. A
//! session-authenticated call that changes something must also carry the
//! session's CSRF token (a header, or a form's `_csrf` field).
//!
//! No credentials and not enough: 401. Credentials but not enough: 403. A
//! bearer token that is unknown: 401, never a fallback to anonymous.

use super::error::ApiError;
use crate::access::caller::{resolve, Caller, Refused, SESSION_COOKIE};
use crate::config::access::Role;
use crate::megatron::state::State;
use crate::protocol::WORKER_HEADER;
use axum::body::{Body, Bytes};
use axum::extract::{RawPathParams, Request, State as Extract};
use axum::http::{header, HeaderMap, Method, StatusCode};

use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, even when the anonymous role is `none` (the login page).
    Public,
    /// A worker's own token; checked by the handler, which knows the worker.
    Worker,
    /// A forge's signature over the body; checked by the handler.
    Webhook,
    /// A role on the repo the path names (a repo, a builder's, a build's);
    /// on paths that name none, the role on some repo (lists and
    /// registration then check each item), except `Admin`, which is needed
    /// system-wide.
    Role(Role),
}

/// One route and its rule, for the access tests and the API document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
}

/// Whether a failed guard answers as the API (JSON) or as a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Api,
    Page,
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of a cookie, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The header a cookie-authenticated API call carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The largest form body the guard reads to find its CSRF token.
const MAX_FORM: usize = 1 << 20;

fn deny(face: Face, status: StatusCode, message: String, path: &str) -> Response {
    match (face, status) {
        (Face::Page, StatusCode::UNAUTHORIZED) => {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        (Face::Page, status) => (
            status,
            Html(format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{0} — constructicon</title><h1>{0}</h1><p>{1}</p><p><a href=\"/\">home</a></p>",
                status,
                html_escape(&message)
            )),
        )
            .into_response(),
        (Face::Api, status) => ApiError::new(status, message).into_response(),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The repo a path is about: a repo by name, a builder's, a build's.
async fn scope_of(state: &Arc<State>, params: &RawPathParams) -> Option<String> {
    for (key, value) in params.iter() {
        match key {
            "repo" => return Some(value.to_string()),
            "name" | "builder" => {
                let builder = value.strip_suffix(".svg").unwrap_or(value);
                if let Some((repo, _)) = state.builder_owner(builder) {
                    return Some(repo);
                }
            }
            "id" => {
                let id: u64 = value.parse().ok()?;
                return state
                    .blocking(move |s| s.store.build(id).ok().map(|b| b.repo))
                    .await;
            }
            _ => {}
        }
    }
    None
}

fn describe(caller: &Caller) -> String {
    caller.name().unwrap_or("an anonymous caller").to_string()
}

pub async fn guard(
    need: Need,
    face: Face,
    Extract(state): Extract<Arc<State>>,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let role = match need {
        Need::Public | Need::Worker | Need::Webhook => return next.run(request).await,
        Need::Role(role) => role,
    };
    let path = request.uri().path().to_string();
    let bearer = bearer(request.headers()).map(str::to_string);
    let session = cookie(request.headers(), SESSION_COOKIE).map(str::to_string);
    let worker = request
        .headers()
        .get(WORKER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resolved = state
        .blocking(move |s| resolve(s, bearer.as_deref(), session.as_deref(), worker.as_deref()))
        .await;
    let caller = match resolved {
        Ok(caller) => caller,
        Err(Refused::UnknownToken) => {
            return deny(
                Face::Api,
                StatusCode::UNAUTHORIZED,
                "the bearer token is unknown or was revoked".into(),
                &path,
            )
        }
        Err(Refused::Store(e)) => {
            return ApiError::from(crate::megatron::error::Error::from(e)).into_response()
        }
    };
    let scope = scope_of(&state, &params).await;
    let allowed = match (role, scope.as_deref()) {
        (Role::Admin, _) => caller.may_everywhere(Role::Admin),
        (role, Some(repo)) => caller.may(role, repo),
        (role, None) => caller.may_somewhere(role),
    };
    if !allowed {
        let on = match (role, scope.as_deref()) {
            (Role::Admin, _) | (_, None) => String::new(),
            (_, Some(repo)) => format!(" on repo {repo}"),
        };
        return if caller.is_anonymous() {
            deny(
                face,
                StatusCode::UNAUTHORIZED,
                format!(
                    "this needs the {} role{on}: send a personal token (Authorization: Bearer …) or log in at /login",
                    role.as_str()
                ),
                &path,
            )
        } else {
            deny(
                face,
                StatusCode::FORBIDDEN,
                format!(
                    "{} does not hold the {} role{on}",
                    describe(&caller),
                    role.as_str()
                ),
                &path,
            )
        };
    }
    let mut request = request;
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if let (true, Some(expected)) = (unsafe_method, caller.csrf()) {
        let header = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let given = match (header, face) {
            (Some(given), _) => Some(given),
            (None, Face::Page) => {
                let (parts, body) = request.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
                    return deny(
                        face,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the form is too large".into(),
                        &path,
                    );
                };
                let token = form_field(&bytes, "_csrf");
                request = Request::from_parts(parts, Body::from(bytes));
                token
            }
            (None, Face::Api) => None,
        };
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            return deny(
                face,
                StatusCode::FORBIDDEN,
                format!(
                    "a change made with a browser session needs its CSRF token (the form's _csrf field, or the {CSRF_HEADER} header)"
                ),
                &path,
            );
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A field of a url-encoded form.
pub fn form_field(body: &Bytes, name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
