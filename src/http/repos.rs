//! Repos: register (maintainers, within cybertron's allow-list), list, show,
//! refresh, and evaluate a config sent as the repo's next one (`eval`).

use super::error::ApiError;
use super::extract::parse_json;
use super::schema::{EvalAnswer, EvalRefused, RepoList, RepoPublicKey, RepoRemoved, RepoView};
use super::views::repo_view;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::speculate::{check_sent_files, Speculation};
use crate::megatron::state::{RepoState, State};
use crate::protocol::ErrorBody;
use crate::sync::read;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

type AppState = Extract<Arc<State>>;

/// A repo to take: its URL (or a local path) and the branch to follow.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRepo {
    url: String,
    /// The branch followed; the remote's default branch when absent.
    branch: Option<String>,
}

/// Takes a repo, or takes it again
///
/// Clones (or fetches) the repo and evaluates its config. The URL must be
/// allowed by cybertron's `repos` list; the caller needs the maintainer
/// role on the repo it names.
#[utoipa::path(
    post,
    path = "/api/v1/repos",
    tag = "repos",
    request_body = AddRepo,
    responses(
        (status = 201, description = "The repo was taken", body = RepoView),
        (status = 200, description = "It was taken before: fetched and reconfigured", body = RepoView),
        (status = 400, description = "It cannot be cloned, the branch does not exist, or the URL is not allowed", body = ErrorBody),
        (status = 409, description = "Another URL has the same repo name", body = ErrorBody),
    )
)]
pub async fn add_repo(
    state: AppState,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: AddRepo = parse_json(&body)?;
    if let Some(why) = read(&state.cybertron).spec.repos.refusal(&request.url) {
        return Err(ApiError::bad_request(why));
    }
    let name = crate::model::repo_name_from_url(&request.url);
    if let Some(name) = &name {
        if !caller.may(Role::Maintainer, name) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} does not hold the maintainer role on repo {name}",
                    caller.name().unwrap_or("an anonymous caller")
                ),
            ));
        }
    }
    let existed = name.is_some_and(|n| read(&state.repos).contains_key(&n));
    let repo = state
        .blocking(move |s| s.add_repo(&request.url, request.branch))
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(repo_view(&repo))).into_response())
}

/// The repos the caller may see
///
/// Each with its commit, graph version and provenance, its builders, and
/// its config error if the last evaluation failed.
#[utoipa::path(
    get,
    path = "/api/v1/repos",
    tag = "repos",
    responses((status = 200, description = "The repos, by name", body = RepoList))
)]
pub async fn list_repos(state: AppState, Extension(caller): Extension<Caller>) -> Json<RepoList> {
    let repos = read(&state.repos);
    let mut views: Vec<RepoView> = repos
        .values()
        .filter(|r| caller.may(Role::Viewer, &r.record.name))
        .map(repo_view)
        .collect();
    views.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Json(RepoList { repos: views })
}

/// A repo
#[utoipa::path(
    get,
    path = "/api/v1/repos/{repo}",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    responses(
        (status = 200, description = "The repo", body = RepoView),
        (status = 404, description = "No such repo", body = ErrorBody),
    )
)]
pub async fn get_repo(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<RepoView>, ApiError> {
    Ok(Json(repo_view(&find_repo(&state, &name)?)))
}

/// The repo named `name` as it is now, or a 404 saying it is not there.
pub(super) fn find_repo(state: &State, name: &str) -> Result<RepoState, ApiError> {
    read(&state.repos)
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("repo {name} not found")))
}

/// The key a repo's secrets are encrypted to
///
/// An age X25519 public key, made for this repo the first time it is asked
/// for. Encrypt a value to it (`constructicon encrypt --repo R` does) and
/// put the armoured text in the repo's `secrets`: only the megatron can
/// open it, and only for this repo's builds.
#[utoipa::path(
    get,
    path = "/api/v1/repos/{repo}/public-key",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    responses(
        (status = 200, description = "The repo's public key", body = RepoPublicKey),
        (status = 404, description = "No such repo", body = ErrorBody),
    )
)]
pub async fn public_key(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<RepoPublicKey>, ApiError> {
    let repo = name.clone();
    let public_key = state.blocking(move |s| s.repo_public_key(&repo)).await?;
    Ok(Json(RepoPublicKey {
        repo: name,
        public_key,
    }))
}

/// Fetches a repo and evaluates its config again
#[utoipa::path(
    post,
    path = "/api/v1/repos/{repo}/refresh",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    responses(
        (status = 200, description = "The repo as it is now", body = RepoView),
        (status = 404, description = "No such repo", body = ErrorBody),
    )
)]
pub async fn refresh_repo(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<RepoView>, ApiError> {
    let repo = state.blocking(move |s| s.refresh_repo(&name)).await?;
    Ok(Json(repo_view(&repo)))
}

/// Removes a repo
///
/// Its queued builds are cancelled; builds under way finish.
#[utoipa::path(
    delete,
    path = "/api/v1/repos/{repo}",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    responses(
        (status = 200, description = "The repo is gone", body = RepoRemoved),
        (status = 404, description = "No such repo", body = ErrorBody),
    )
)]
pub async fn remove_repo(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<RepoRemoved>, ApiError> {
    let by = caller.name().map(str::to_string);
    let repo = name.clone();
    let cancelled = state
        .blocking(move |s| s.remove_repo(&repo, by.as_deref()))
        .await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok(Json(RepoRemoved {
        repo: name,
        removed: true,
        cancelled,
    }))
}

/// A working copy's config to evaluate as the repo's next one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalFiles {
    /// Path inside the repo → text: `constructicon.rhai`, and the files it
    /// imports (plain relative paths such as `lib/builders.rhai`). At most
    /// 200 files and 2 MiB together.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

/// Evaluates a config sent as the repo's next one, storing nothing
///
/// The files are evaluated exactly as the repo's next reconfig would
/// evaluate them (the cybertron and workers serving now, the same limits,
/// merge and checks), and the graph is compared with the live one: builders
/// and schedulers added, removed and changed, key by key. The repo, its
/// graph and its builds are not touched.
///
/// The caller needs the operator role on the repo: nothing changes, but the
/// megatron runs the caller's script (up to the sandbox's time and memory
/// bounds), which is work on the caller's behalf like a forced build, and
/// not for every viewer (anonymous callers often are viewers).
#[utoipa::path(
    post,
    path = "/api/v1/repos/{repo}/eval",
    tag = "repos",
    params(("repo" = String, Path, description = "The repo's name")),
    request_body = EvalFiles,
    responses(
        (status = 200, description = "The config evaluates; how it differs from the live graph", body = EvalAnswer),
        (status = 400, description = "A bad body: no constructicon.rhai, or a path that is absolute or has `..`", body = ErrorBody),
        (status = 404, description = "No such repo", body = ErrorBody),
        (status = 413, description = "Too many files, or too many bytes", body = ErrorBody),
        (status = 422, description = "The config has errors; nothing would be taken", body = EvalRefused),
    )
)]
pub async fn eval_config(
    state: AppState,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: EvalFiles = parse_json(&body)?;
    check_sent_files(&request.files)?;
    let files = request
        .files
        .into_iter()
        .map(|(path, text)| (path, text.into_bytes()))
        .collect();
    let repo = name.clone();
    let speculation = state.blocking(move |s| s.speculate(&repo, files)).await?;
    Ok(match speculation {
        Speculation::Evaluated(speculated) => Json(EvalAnswer {
            ok: true,
            repo: name,
            against: speculated.against,
            builders: speculated.diff.builders,
            schedulers: speculated.diff.schedulers,
            warnings: speculated.warnings,
            rendered_warnings: speculated.rendered_warnings,
            output: speculated.output,
        })
        .into_response(),
        Speculation::Refused(refused) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(EvalRefused {
                ok: false,
                error: refused.message,
                errors: refused.errors,
                rendered: refused.rendered,
                output: refused.output,
            }),
        )
            .into_response(),
    })
}
