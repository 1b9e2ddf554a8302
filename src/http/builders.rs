//! Builders: list, show, history, force (operators), and what `get` would
//! fetch now.

use super::error::ApiError;
use super::extract::parse_json;
use super::schema::{
    BuildList, BuilderDetail, BuilderList, BuilderSummary, Forced, LastBuild, Resolved,
};
use super::views::build_view;
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::queue::ForceRequest;
use crate::megatron::state::State;
use crate::protocol::ErrorBody;
use crate::store::BuildRecord;
use crate::sync::read;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

type AppState = Extract<Arc<State>>;

/// A builder's latest build, in short, for lists.
pub fn last_build(build: Option<&BuildRecord>) -> Option<LastBuild> {
    build.map(|b| LastBuild {
        id: b.id,
        number: b.number,
        state: b.state,
        result: b.result,
        finished: b.finished,
    })
}

/// The builders the caller may see
///
/// Each with the workers it may run on, its schedulers and resources, its
/// latest build, and its repo's config error if any.
#[utoipa::path(
    get,
    path = "/api/v1/builders",
    tag = "builders",
    responses((status = 200, description = "The builders, by name", body = BuilderList))
)]
pub async fn list_builders(
    state: AppState,
    Extension(caller): Extension<Caller>,
) -> Json<BuilderList> {
    let mut builders = Vec::new();
    {
        let repos = read(&state.repos);
        for repo in repos
            .values()
            .filter(|r| caller.may(Role::Viewer, &r.record.name))
        {
            let Some(graph) = &repo.graph else { continue };
            for (name, builder) in &graph.graph.builders {
                builders.push(BuilderSummary {
                    name: name.clone(),
                    repo: repo.record.name.clone(),
                    workers: builder.workers.clone(),
                    schedulers: builder.schedulers.clone(),
                    resources: builder.resources.clone(),
                    error: repo.record.error.clone(),
                    last: None,
                });
            }
        }
    }
    builders.sort_by(|a, b| a.name.cmp(&b.name));
    let builders = state
        .blocking(move |s| {
            for builder in &mut builders {
                let last = s.store.builder_builds(&builder.name, 1).unwrap_or_default();
                builder.last = last_build(last.first());
            }
            builders
        })
        .await;
    Json(BuilderList { builders })
}

/// A build by its builder and number
#[utoipa::path(
    get,
    path = "/api/v1/builders/{name}/builds/{number}",
    tag = "builds",
    params(
        ("name" = String, Path, description = "The builder's full name"),
        ("number" = u64, Path, description = "The build's number among the builder's builds, from 1"),
    ),
    responses(
        (status = 200, description = "The build", body = BuildRecord),
        (status = 400, description = "Not a number", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
    )
)]
pub async fn build_by_number(
    state: AppState,
    Path((name, number)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let number: u64 = number
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{number:?} is not a build number")))?;
    let build = state
        .blocking(move |s| s.store.build_by_number(&name, number))
        .await
        .map_err(crate::megatron::Error::from)?;
    Ok(Json(build_view(&build)))
}

/// A builder, with its whole spec and its schedulers
#[utoipa::path(
    get,
    path = "/api/v1/builders/{name}",
    tag = "builders",
    params(("name" = String, Path, description = "The builder's full name, `<repo>-<builder>`")),
    responses(
        (status = 200, description = "The builder", body = BuilderDetail),
        (status = 404, description = "No such builder", body = ErrorBody),
    )
)]
pub async fn get_builder(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<BuilderDetail>, ApiError> {
    let (repo, graph) = state
        .builder_owner(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("builder {name} not found")))?;
    let error = read(&state.repos)
        .get(&repo)
        .and_then(|r| r.record.error.clone());
    let builder = &graph.graph.builders[&name];
    let schedulers = builder
        .schedulers
        .iter()
        .filter_map(|s| {
            graph
                .graph
                .schedulers
                .get(s)
                .map(|spec| (s.clone(), spec.clone()))
        })
        .collect();
    Ok(Json(BuilderDetail {
        name,
        repo,
        workers: builder.workers.clone(),
        spec: builder.clone(),
        schedulers,
        graph_version: graph.version,
        error,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many builds, newest first (default 50, at most 1000).
    limit: Option<usize>,
}

/// A builder's history, newest first
#[utoipa::path(
    get,
    path = "/api/v1/builders/{name}/builds",
    tag = "builds",
    params(("name" = String, Path, description = "The builder's full name"), HistoryQuery),
    responses((status = 200, description = "Its builds", body = BuildList))
)]
pub async fn builder_builds(
    state: AppState,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<BuildList>, ApiError> {
    let limit = query.limit.unwrap_or(50).min(1000);
    let builds = state
        .blocking(move |s| s.store.builder_builds(&name, limit))
        .await;
    let builds = builds.map_err(crate::megatron::Error::from)?;
    Ok(Json(BuildList {
        builds: builds.iter().map(build_view).collect(),
    }))
}

/// Queues a build of a builder
///
/// The builder needs a force scheduler; parameters it does not declare are
/// refused. Without `revisions` the branch head is built.
#[utoipa::path(
    post,
    path = "/api/v1/builders/{name}/force",
    tag = "builders",
    params(("name" = String, Path, description = "The builder's full name")),
    request_body = ForceRequest,
    responses(
        (status = 201, description = "The build is queued", body = Forced),
        (status = 400, description = "An unknown parameter or revision, or no force scheduler", body = ErrorBody),
        (status = 404, description = "No such builder", body = ErrorBody),
    )
)]
pub async fn force(
    state: AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ForceRequest = parse_json(&body)?;
    // Who forced it comes from the credentials, never from the body.
    let by = caller.name().map(str::to_string);
    let build = state.force_fresh(name, request, by).await?;
    state.queue_changed.notify_waiters();
    state.announce();
    Ok((
        StatusCode::CREATED,
        Json(Forced {
            build: build.id,
            number: build.number,
        }),
    )
        .into_response())
}

/// What the builder's `get` entries would fetch now
///
/// For each entry, the build a worker would fetch results from now (what
/// `constructicon get` uses).
#[utoipa::path(
    get,
    path = "/api/v1/builders/{name}/get",
    tag = "builders",
    params(("name" = String, Path, description = "The builder's full name")),
    responses(
        (status = 200, description = "The chosen builds", body = Resolved),
        (status = 404, description = "No such builder", body = ErrorBody),
    )
)]
pub async fn resolve_get(
    state: AppState,
    Path(name): Path<String>,
) -> Result<Json<Resolved>, ApiError> {
    let (_, graph) = state
        .builder_owner(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("builder {name} not found")))?;
    let entries = graph.graph.builders[&name].get.clone();
    let resolved = state.blocking(move |s| s.resolve_get(&entries)).await?;
    Ok(Json(Resolved { get: resolved }))
}
