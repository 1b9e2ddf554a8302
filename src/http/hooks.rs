//! `POST /api/v1/hooks/push`: a forge announces a push; the megatron polls
//! the repos it names at once instead of at the next poll tick.
//!
//! The checks run cheapest first and all of them before anything changes:
//! webhooks on at all (403), a known forge (400), the body's size (413), the
//! signature on the raw bytes (401), then the payload (400). Only a verified
//! push of a branch polls; the poll runs before the answer so the build is
//! queued by the time the forge sees its 202.

use super::error::ApiError;
use super::schema::{CommentAnswer, PullsAnswer, PushAnswer, PushIgnored, PushPing, PushPolled};
use crate::forge::{self as hooks, Change, Event, HookError};
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use crate::sync::read;
use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt as _;
use std::sync::Arc;

type AppState = Extract<Arc<State>>;

impl From<HookError> for ApiError {
    fn from(error: HookError) -> ApiError {
        let status = match error {
            HookError::MissingSignature(_) | HookError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            HookError::UnknownForge | HookError::Malformed(_) | HookError::Missing(_) => {
                StatusCode::BAD_REQUEST
            }
        };
        ApiError::new(status, error.to_string())
    }
}

/// Reads the body up to `limit` bytes. The stream is read by hand (not
/// through `Bytes`) so the 413 is our JSON error, and it stops at the
/// limit instead of taking whatever a sender streams.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a webhook payload may be at most {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.into())
}

fn ignored(why: String) -> Response {
    let answer = PushAnswer::Ignored(PushIgnored {
        ignored: why,
        repos: Vec::new(),
    });
    (StatusCode::OK, Json(answer)).into_response()
}

/// How long a push waits for its fetch before answering anyway.
const HOOK_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// A push from a forge
///
/// From GitHub, GitLab, Gitea or Forgejo (told by its `X-GitHub-Event`,
/// `X-Gitlab-Event`, `X-Gitea-Event` or `X-Forgejo-Event` header), signed
/// with the shared secret cybertron's `webhook_secret` names
/// (`X-Hub-Signature-256`, `X-Gitea-Signature`, `X-Forgejo-Signature`, or
/// GitLab's `X-Gitlab-Token`). The repos it names are fetched at once; a
/// push of a branch queues the builds its commit schedulers start before
/// the answer.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/push",
    tag = "hooks",
    request_body(content = serde_json::Value, description = "The forge's push payload, as it sends it"),
    responses(
        (status = 202, description = "The named repos were polled", body = PushAnswer),
        (status = 200, description = "Nothing to build: no repo matched, or not a push of a branch", body = PushAnswer),
        (status = 400, description = "Not a forge's delivery, or a malformed payload", body = ErrorBody),
        (status = 401, description = "A missing or wrong signature", body = ErrorBody),
        (status = 403, description = "Push webhooks are off", body = ErrorBody),
        (status = 413, description = "The payload is too large", body = ErrorBody),
    )
)]
pub async fn push(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    // The source is looked up per request so a cybertron reload takes
    // effect at once; the secret itself is read below and dropped with
    // this request.
    let source = read(&state.cybertron).spec.webhook_secret.clone();
    let Some(source) = source else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "push webhooks are off: cybertron sets no webhook_secret",
        ));
    };
    let (forge, event) = hooks::detect(&headers)?;
    let body = read_body(body, hooks::MAX_PAYLOAD).await?;
    // A file read: off the async threads.
    let secret = state
        .blocking(move |_| hooks::read_secret(&source))
        .await
        .map_err(|error| {
            // Where the secret should be is ours to fix, not the sender's;
            // the log says where, the answer does not.
            tracing::error!(%error, "push webhook refused: no usable secret");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the webhook secret cannot be read; see the megatron's log",
            )
        })?;
    hooks::verify(forge, &headers, &secret, &body)?;
    drop(secret);

    match event {
        Event::Push => {}
        Event::Ping => {
            let answer = PushAnswer::Ping(PushPing { ok: true });
            return Ok((StatusCode::OK, Json(answer)).into_response());
        }
        Event::PullRequest => {
            let event = hooks::pull::parse_pull(forge, &body)?;
            let pulls = state.blocking(move |s| s.pull_event(&event)).await?;
            tracing::info!(
                forge = forge.name(),
                pulls = pulls.len(),
                "pull request webhook"
            );
            let status = if pulls.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let answer = PushAnswer::Pulls(PullsAnswer { pulls });
            return Ok((status, Json(answer)).into_response());
        }
        Event::Comment => {
            let Some(comment) = hooks::pull::parse_comment(forge, &body)? else {
                return Ok(ignored(
                    "a comment on something other than a pull request".into(),
                ));
            };
            let outcomes = state.blocking(move |s| s.pull_comment(&comment)).await?;
            let answer = PushAnswer::Comment(CommentAnswer {
                outcomes: outcomes.into_iter().collect(),
            });
            return Ok((StatusCode::OK, Json(answer)).into_response());
        }
        Event::Other(other) => {
            return Ok(ignored(format!(
                "{} event {other:?} is not a push",
                forge.name()
            )))
        }
    }
    let push = hooks::parse(forge, &body)?;
    let branch = match push.change() {
        Change::Branch(branch) => branch,
        Change::Tag(tag) => return Ok(ignored(format!("tag push ({tag}): only branches build"))),
        Change::Deleted(branch) => {
            return Ok(ignored(format!(
                "branch {branch} was deleted: nothing to build"
            )))
        }
        Change::Other(git_ref) => {
            return Ok(ignored(format!("{git_ref} is not a branch")));
        }
    };

    let urls = push.urls.clone();
    // A remote that never answers must not hold the forge's request open: the
    // fetch goes on in the background and the poller's next pass sees it.
    let polling = state.blocking(move |s| {
        let mut names: Vec<String> = Vec::new();
        for url in &urls {
            // A failing repo fails the delivery (the forge shows it as
            // failed and may redeliver); the repo shows its error too.
            for name in s.poll_url(url)? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok::<_, crate::megatron::Error>(names)
    });
    let Ok(polled) = tokio::time::timeout(HOOK_FETCH_WAIT, polling).await else {
        tracing::warn!(forge = forge.name(), %branch, "push webhook: the fetch is slow; answering before it ends");
        let answer = PushAnswer::Polled(PushPolled {
            repos: Vec::new(),
            branch,
            commit: push.commit,
            still_fetching: Some(true),
        });
        return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
    };
    let polled = polled?;
    tracing::info!(
        forge = forge.name(),
        %branch,
        commit = %push.commit,
        repos = ?polled,
        "push webhook"
    );
    let status = if polled.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let answer = PushAnswer::Polled(PushPolled {
        repos: polled,
        branch,
        commit: push.commit,
        still_fetching: None,
    });
    Ok((status, Json(answer)).into_response())
}
