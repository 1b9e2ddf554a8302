//! `GET /badge/{builder}.svg`: the builder's last finished result as a small
//! SVG badge, for READMEs. Never cached stale: `no-cache` with an `ETag` of
//! the result, so a README's image costs a 304 until the result changes.

use super::error::ApiError;
use crate::megatron::state::State;
use crate::protocol::{BuildResult, ErrorBody};
use crate::store::BuildState;
use axum::extract::{Path, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The badge's colour for a result (`None`: no finished build yet).
fn colour(result: Option<BuildResult>) -> &'static str {
    match result {
        Some(BuildResult::Success) => "#2da44e",
        Some(BuildResult::Warnings) => "#bf8700",
        Some(BuildResult::Failure) => "#cf222e",
        Some(BuildResult::Exception | BuildResult::Cancelled) | None => "#8c959f",
    }
}

/// A badge of two boxes, `label | value`, sized by an estimate of the text
/// width (6.5 px a character at 11 px Verdana-ish).
pub fn svg(label: &str, value: &str, fill: &str) -> String {
    let width = |text: &str| 10 + (text.chars().count() as u32 * 13).div_ceil(2);
    let (left, right) = (width(label), width(value));
    let total = left + right;
    let (label, value) = (xml_escape(label), xml_escape(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{fill}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{rx}" y="14">{value}</text></g></svg>"##,
        lx = left / 2,
        rx = left + right / 2,
    )
}

/// A builder's badge
///
/// The builder's last finished result as an SVG badge, for READMEs: green
/// for success, yellow for warnings, red for failure, grey for exception,
/// cancelled and no builds yet. Sent with `Cache-Control: no-cache` and an
/// `ETag` of the result; `If-None-Match` with it gets a 304. An unknown
/// builder is a 404: a grey SVG badge when the caller accepts images (an
/// `<img>`), else the JSON error.
#[utoipa::path(
    get,
    path = "/badge/{builder}",
    tag = "builders",
    params(("builder" = String, Path, description = "The builder's full name followed by `.svg`: `/badge/hello-basic.svg`")),
    responses(
        (status = 200, description = "The badge", body = String, content_type = "image/svg+xml"),
        (status = 304, description = "The result is the one the `If-None-Match` names"),
        (status = 404, description = "No such builder, or a name without `.svg`", body = ErrorBody),
    )
)]
pub async fn badge(
    state: Extract<Arc<State>>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = |builder: &str, message: String| {
        let wants_image = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("image/"));
        if wants_image {
            (
                StatusCode::NOT_FOUND,
                [
                    (header::CONTENT_TYPE, SVG),
                    (header::CACHE_CONTROL, NO_CACHE),
                ],
                svg(builder, "not found", colour(None)),
            )
                .into_response()
        } else {
            ApiError::new(StatusCode::NOT_FOUND, message).into_response()
        }
    };
    let Some(builder) = file.strip_suffix(".svg") else {
        return Ok(not_found(&file, "badges are at /badge/BUILDER.svg".into()));
    };
    if state.builder_owner(builder).is_none() {
        return Ok(not_found(builder, format!("builder {builder} not found")));
    }
    let name = builder.to_string();
    let last = state
        .blocking(move |s| s.store.builder_builds(&name, 50))
        .await
        .map_err(crate::megatron::error::Error::from)?
        .into_iter()
        .find(|b| b.state == BuildState::Finished);
    let result = last.as_ref().and_then(|b| b.result);
    let value = result.map_or("no builds", BuildResult::as_str);
    // The picture depends on the builder (the URL) and the result only.
    let etag = format!("\"{}\"", value.replace(' ', "-"));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let headers = [
        (header::CONTENT_TYPE, SVG.to_string()),
        (header::CACHE_CONTROL, NO_CACHE.to_string()),
        (header::ETAG, etag),
    ];
    if cached {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Ok((headers, svg(builder, value, colour(result))).into_response())
}

const SVG: &str = "image/svg+xml; charset=utf-8";

/// Browsers and README proxies ask again each time, and get a 304 while
/// the result is the same.
const NO_CACHE: &str = "no-cache, max-age=0";
