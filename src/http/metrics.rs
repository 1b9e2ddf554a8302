//! `GET /metrics`: the megatron's metrics in the Prometheus (OpenMetrics)
//! text format, and [`measure`], the layer that counts every HTTP answer by
//! its route's template.

use crate::megatron::state::State;
use crate::metrics::{RequestLabels, CONTENT_TYPE};
use axum::extract::{MatchedPath, Request, State as Extract};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The megatron's metrics
///
/// Builds by result, queue depth and wait, build and step durations,
/// workers online and busy, long-polls held, HTTP requests by route template
/// and status with their latency, the data dir's size, commit statuses sent.
/// In the OpenMetrics text format, which Prometheus scrapes as it is. The
/// figures span every repo, and no label names a repo, builder or worker.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    responses((
        status = 200,
        description = "Every metric, as OpenMetrics text",
        body = String,
        content_type = "application/openmetrics-text"
    ))
)]
pub async fn metrics(state: Extract<Arc<State>>) -> Response {
    let text = state
        .blocking(|s| {
            s.refresh_gauges();
            s.metrics.render()
        })
        .await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Counts one request by its route's template, never its raw path, so the
/// number of series stays that of the routes. Requests no route matched
/// are counted together as `unmatched`.
pub async fn measure(state: Extract<Arc<State>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state.metrics.request(
        RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed(),
    );
    response
}
