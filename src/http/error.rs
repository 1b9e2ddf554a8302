//! One error type for every route: JSON `{error}` with a 4xx for bad input,
//! and for failures of ours a 500 whose body says nothing of the internals
//! (the chain goes to the log).

use crate::megatron::error::Error;
use crate::protocol::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match error {
            Error::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            Error::BadRequest(m) => ApiError::bad_request(m),
            Error::Conflict(m) | Error::LeaseLost(m) => ApiError::new(StatusCode::CONFLICT, m),
            Error::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            Error::Store(crate::store::Error::NotFound(what)) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the megatron's log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such route: {}", uri.path()),
    )
}

/// The longest rejection text turned into a JSON error; anything longer is
/// not one of axum's rejections and is left alone.
const MAX_REJECTION: usize = 16 << 10;

/// Turns every error answer that is not already JSON (axum's rejections of
/// a bad path segment, query, header or body size, a 405) into our
/// `{error}`, so a client never has to parse plain text or an empty body.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // A badge's 404 is a picture for an `<img>`, and stays one.
    let is_ours = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("image/svg+xml"));
    if is_ours {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        match status {
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_string(),
            other => other
                .canonical_reason()
                .unwrap_or("request refused")
                .to_lowercase(),
        }
    } else {
        text
    };
    let mut json = ApiError::new(status, message).into_response();
    // Keep what the rejection said besides its body (`Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
