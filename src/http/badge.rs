//! `GET /badge/{builder}.svg`: the builder's last finished result as a small
//! SVG badge, for READMEs; cached for a minute.

use super::error::ApiError;
use crate::megatron::state::State;
use crate::protocol::{BuildResult, ErrorBody};
use crate::store::BuildState;
use axum::extract::{Path, State as Extract};
use axum::http::{header, StatusCode};
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
        Some(BuildResult::Exception) => "#8250df",
        Some(BuildResult::Cancelled) | None => "#8c959f",
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
/// The builder's last finished result as an SVG badge, for READMEs; cached
/// for a minute.
#[utoipa::path(
    get,
    path = "/badge/{builder}",
    tag = "builders",
    params(("builder" = String, Path, description = "The builder's full name followed by `.svg`: `/badge/hello-basic.svg`")),
    responses(
        (status = 200, description = "The badge", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such builder, or a name without `.svg`", body = ErrorBody),
    )
)]
pub async fn badge(
    state: Extract<Arc<State>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let builder = file
        .strip_suffix(".svg")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "badges are at /badge/BUILDER.svg"))?
        .to_string();
    if state.builder_owner(&builder).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("builder {builder} not found"),
        ));
    }
    let name = builder.clone();
    let last = state
        .blocking(move |s| s.store.builder_builds(&name, 50))
        .await
        .map_err(crate::megatron::error::Error::from)?
        .into_iter()
        .find(|b| b.state == BuildState::Finished);
    let result = last.as_ref().and_then(|b| b.result);
    let value = result.map_or("no builds", BuildResult::as_str);
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=60, must-revalidate"),
        ],
        svg(&builder, value, colour(result)),
    )
        .into_response())
}
