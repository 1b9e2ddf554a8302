//! Logging in and out: a personal token typed into the login page, a
//! forge's OAuth2 (when cybertron configures `access.login`), or a one-time
//! link (the demo prints one). Each makes a session whose cookie is
//! HttpOnly, SameSite=Lax, Secure over https, and expires; logout ends it,
//! with the session's CSRF token.

use super::page::{cookie, local_path, public_url, render, session_cookie, Nav};
use crate::access::caller::{live_session, SESSION_COOKIE};
use crate::access::{oauth, people};
use crate::http::guard::{cookie as read_cookie, form_field};
use crate::megatron::state::State;
use crate::sync::read;
use crate::token::secret_hash;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

type AppState = Extract<Arc<State>>;

/// The cookie that ties a forge login to the browser that started it.
const LOGIN_COOKIE: &str = "constructicon_login";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    next: String,
    message: Option<String>,
    forge: Option<&'static str>,
}

fn login_page(state: &State, status: StatusCode, next: &str, message: Option<String>) -> Response {
    let forge = read(&state.cybertron)
        .spec
        .access
        .login
        .as_ref()
        .map(|l| l.forge.name());
    render(
        status,
        &LoginPage {
            nav: Nav::of(None),
            next: local_path(next).to_string(),
            message,
            forge,
        },
    )
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn page(state: AppState, Query(query): Query<NextQuery>) -> Response {
    login_page(
        &state,
        StatusCode::OK,
        query.next.as_deref().unwrap_or("/"),
        None,
    )
}

/// Logs in with a personal token (or the admin token) from the form.
pub async fn with_token(state: AppState, headers: HeaderMap, body: Bytes) -> Response {
    let token = form_field(&body, "token").unwrap_or_default();
    let next = form_field(&body, "next").unwrap_or_else(|| "/".into());
    let token = token.trim().to_string();
    let started = state
        .blocking(move |s| {
            let hash = secret_hash(&token);
            let (person, via) = if hash == s.admin_token_hash {
                ("admin".to_string(), "admin")
            } else {
                match s.store.person_token(&hash)? {
                    Some(t) => (t.person, "token"),
                    None => return Ok(None),
                }
            };
            people::start_session(s, &person, via, Vec::new()).map(Some)
        })
        .await;
    match started {
        Ok(Some((value, session))) => {
            tracing::info!(person = %session.person, "logged in with a token");
            let mut response = Redirect::to(local_path(&next)).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&state, &headers, &value));
            response
        }
        Ok(None) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is unknown or was revoked.".into()),
        ),
        Err(e) => {
            tracing::error!(error = %e, "logging in");
            login_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                &next,
                Some("Logging in failed; see the megatron's log.".into()),
            )
        }
    }
}

/// Ends the session, if the form carries its CSRF token.
pub async fn logout(state: AppState, headers: HeaderMap, body: Bytes) -> Response {
    let Some(value) = read_cookie(&headers, SESSION_COOKIE).map(str::to_string) else {
        return Redirect::to("/login").into_response();
    };
    let given = form_field(&body, "_csrf").unwrap_or_default();
    let ended = state
        .blocking(move |s| {
            let Some(session) = live_session(s, &value)? else {
                return Ok::<_, crate::megatron::error::Error>(true);
            };
            if session.csrf != given {
                return Ok(false);
            }
            people::end_session(s, &value)?;
            Ok(true)
        })
        .await;
    match ended {
        Ok(true) => {
            let secure = public_url(&state, &headers).starts_with("https://");
            let mut response = Redirect::to("/login").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie(SESSION_COOKIE, "", 0, secure, "/"),
            );
            response
        }
        Ok(false) => (
            StatusCode::FORBIDDEN,
            "logging out needs the form's CSRF token: use the Log out button",
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "logging out");
            (StatusCode::INTERNAL_SERVER_ERROR, "logging out failed").into_response()
        }
    }
}

/// Sends the browser to the forge to approve the login.
pub async fn oauth_start(state: AppState, headers: HeaderMap) -> Response {
    let Some(login) = read(&state.cybertron).spec.access.login.clone() else {
        return login_page(
            &state,
            StatusCode::NOT_FOUND,
            "/",
            Some("Login through a forge is not configured.".into()),
        );
    };
    let base = public_url(&state, &headers);
    let redirect = format!("{base}/login/oauth/callback");
    let begun = state
        .blocking(move |s| oauth::begin(s, &login, &redirect))
        .await;
    match begun {
        Ok((url, oauth_state)) => {
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie(
                    LOGIN_COOKIE,
                    &oauth_state,
                    600,
                    base.starts_with("https://"),
                    "/login",
                ),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "starting a forge login");
            login_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "/",
                Some(format!("Login through the forge failed: {e}")),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The forge sends the browser back here with a code.
pub async fn oauth_callback(
    state: AppState,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let refuse = |state: &State, message: String| {
        login_page(state, StatusCode::BAD_REQUEST, "/", Some(message))
    };
    if let Some(error) = callback.error {
        return refuse(&state, format!("The forge did not log you in: {error}."));
    }
    let (Some(code), Some(oauth_state)) = (callback.code, callback.state) else {
        return refuse(&state, "The forge's answer lacks its code or state.".into());
    };
    // The state must be the one this browser was given: someone else's
    // login cannot be planted here.
    if read_cookie(&headers, LOGIN_COOKIE) != Some(oauth_state.as_str()) {
        return refuse(
            &state,
            "This login was started in another browser (or the cookie expired): log in again."
                .into(),
        );
    }
    let Some(login) = read(&state.cybertron).spec.access.login.clone() else {
        return refuse(&state, "Login through a forge is not configured.".into());
    };
    let redirect = format!("{}/login/oauth/callback", public_url(&state, &headers));
    let forge = login.forge.name();
    let finished = state
        .blocking(move |s| {
            let user = oauth::finish(s, &login, &redirect, &code, &oauth_state)?;
            people::start_session(s, &user.login, forge, user.orgs)
        })
        .await;
    match finished {
        Ok((value, session)) => {
            tracing::info!(person = %session.person, forge, "logged in through the forge");
            let mut response = Redirect::to("/").into_response();
            let headers_out = response.headers_mut();
            headers_out.append(header::SET_COOKIE, session_cookie(&state, &headers, &value));
            headers_out.append(
                header::SET_COOKIE,
                cookie(LOGIN_COOKIE, "", 0, false, "/login"),
            );
            response
        }
        Err(e) => refuse(&state, format!("{e}")),
    }
}

/// A one-time login link: spent on first use.
pub async fn with_link(
    state: AppState,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Response {
    let started = state
        .blocking(move |s| match people::use_login_link(s, &secret)? {
            Some(person) => people::start_session(s, &person, "link", Vec::new()).map(Some),
            None => Ok(None),
        })
        .await;
    match started {
        Ok(Some((value, _))) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&state, &headers, &value));
            response
        }
        Ok(None) => login_page(
            &state,
            StatusCode::GONE,
            "/",
            Some("That login link was already used or has expired.".into()),
        ),
        Err(e) => {
            tracing::error!(error = %e, "logging in with a link");
            login_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "/",
                Some("Logging in failed; see the megatron's log.".into()),
            )
        }
    }
}
