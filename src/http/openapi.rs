//! The API described: an OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` annotations and the types they take and answer with
//! (`ToSchema` on the records and on `schema`'s answers), served at
//! `GET /api/v1/openapi.json`. Who may call each operation is not written
//! twice: [`document`] takes it from the route table, each route's `Need`.
//!
//! `tests/it/openapi.rs` holds the document and the router to each other:
//! a route without an operation, or an operation without a route, fails it.

use super::guard::{Need, RouteInfo};
use super::{
    admin, artifacts, badge, builders, builds, hooks, metrics, people, pulls, repos, usage,
    worker_api,
};
use crate::access::caller::SESSION_COOKIE;
use crate::config::access::Role;
use crate::protocol::{ErrorBody, UploadKind, WORKER_HEADER};
use axum::body::Bytes;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "constructicon",
        description = "The JSON API of a constructicon megatron: repos, builders, builds and \
            their logs and artifacts, the queue, workers, tokens, forge webhooks, and the \
            protocol workers speak. Every bad request gets a 4xx status and a JSON \
            `{\"error\": \"...\"}` body. Times are Unix milliseconds."
    ),
    paths(
        serve,
        people::whoami,
        repos::list_repos,
        repos::add_repo,
        repos::get_repo,
        repos::remove_repo,
        repos::refresh_repo,
        repos::eval_config,
        pulls::list_pulls,
        pulls::approve_pull,
        repos::public_key,
        builders::list_builders,
        builders::get_builder,
        builders::builder_builds,
        builders::build_by_number,
        builders::force,
        builders::resolve_get,
        badge::badge,
        builds::get_build,
        builds::cancel,
        builds::rebuild,
        builds::step_log,
        builds::queue,
        artifacts::list,
        artifacts::download,
        builds::workers,
        usage::usage,
        metrics::metrics,
        admin::issue_token,
        people::revoke_worker_token,
        people::issue_token,
        people::list_tokens,
        people::revoke_tokens,
        admin::reload,
        hooks::push,
        worker_api::claim,
        worker_api::heartbeat,
        worker_api::release,
        worker_api::step_start,
        worker_api::step_log,
        worker_api::step_finish,
        worker_api::build_finish,
        worker_api::revisions,
        artifacts::upload,
    ),
    // Types that only query parameters name are not collected by themselves.
    components(schemas(ErrorBody, UploadKind)),
    tags(
        (name = "repos", description = "Registered repos and their configs"),
        (name = "builders", description = "Builders: their specs, forcing a build, badges"),
        (name = "builds", description = "Builds, their steps' logs, and the queue"),
        (name = "artifacts", description = "What builds uploaded"),
        (name = "workers", description = "Declared workers and their tokens"),
        (name = "people", description = "Callers and their personal tokens"),
        (name = "admin", description = "The megatron itself"),
        (name = "hooks", description = "Deliveries from forges"),
        (name = "worker protocol", description = "What a worker calls: claim, heartbeat, reports, uploads"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The security schemes operations name.
const TOKEN: &str = "token";
const SESSION: &str = "session";
const WORKER_TOKEN: &str = "worker_token";
const WORKER_NAME: &str = "worker_name";

/// The document, each operation told who may call it by `routes` (the
/// router's own table). An operation without a route stays as annotated.
pub fn document(routes: &[RouteInfo]) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    components.add_security_scheme(
        TOKEN,
        bearer(
            "A personal token (an admin issues one with `constructicon token --person NAME`), \
             or the admin token. Scopes name the role the operation needs.",
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE,
            "A browser session (log in at /login). A call that changes something also \
             carries the session's CSRF token in the `x-csrf-token` header (see whoami).",
        ))),
    );
    components.add_security_scheme(WORKER_TOKEN, bearer("The worker's own token."));
    components.add_security_scheme(
        WORKER_NAME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            WORKER_HEADER,
            "The worker's name, as a config declares it.",
        ))),
    );
    for route in routes {
        let path = document_path(route.path);
        let operation = document
            .paths
            .paths
            .get_mut(&path)
            .and_then(|item| operation_mut(item, &route.method));
        if let Some(operation) = operation {
            describe_access(operation, route.need);
        }
    }
    document
}

/// A router path as OpenAPI writes it: `{*path}` is `{path}`.
pub fn document_path(path: &str) -> String {
    path.replace("{*", "{")
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        Method::HEAD => item.head.as_mut(),
        Method::OPTIONS => item.options.as_mut(),
        _ => None,
    }
}

/// Writes a route's rule into its operation: a line of its description,
/// its security requirements, and the refusals the guard answers with.
fn describe_access(operation: &mut Operation, need: Need) {
    let (rule, security) = match need {
        Need::Public => (
            "anyone may call it, even when anonymous callers may see nothing.".to_string(),
            Vec::new(),
        ),
        Need::Webhook => (
            "forges only: the body signed with the shared webhook secret (see above).".to_string(),
            Vec::new(),
        ),
        Need::Worker => (
            format!(
                "workers only: the worker's own token as a bearer token, and its name in \
                 the `{WORKER_HEADER}` header."
            ),
            vec![SecurityRequirement::new(WORKER_TOKEN, Vec::<String>::new())
                .add(WORKER_NAME, Vec::<String>::new())],
        ),
        Need::Role(role) => {
            let scope = match role {
                Role::Admin => "system-wide",
                _ => {
                    "on the repo the path names (where it names none, on some repo; lists \
                     show only the repos the caller may see)"
                }
            };
            (
                format!(
                    "needs the `{0}` role {scope}. Anonymous callers hold the role \
                     cybertron's `access.anonymous` gives them.",
                    role.as_str()
                ),
                vec![
                    SecurityRequirement::new(TOKEN, [role.as_str()]),
                    SecurityRequirement::new(SESSION, [role.as_str()]),
                ],
            )
        }
    };
    let access = format!("**Access**: {rule}");
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.trim().is_empty() => format!("{text}\n\n{access}"),
        _ => access,
    });
    operation.security = Some(security);
    if let Need::Role(role) = need {
        let refusals = [
            (
                "401",
                "No credentials, and anonymous callers do not hold the role; or an unknown token",
            ),
            ("403", "The caller does not hold the role"),
        ];
        for (status, description) in refusals {
            let description = format!("{description} (`{}`)", role.as_str());
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(&description).into());
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The document as served: made once, with the router.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    pub fn new(routes: &[RouteInfo]) -> Document {
        let json = serde_json::to_vec(&document(routes)).unwrap_or_else(|error| {
            tracing::error!(%error, "the OpenAPI document cannot be written");
            Vec::new()
        });
        Document(Bytes::from(json))
    }
}

/// This document
///
/// The whole API, generated from the types the handlers take and answer
/// with.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "An OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn serve(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.clone(),
    )
        .into_response()
}
