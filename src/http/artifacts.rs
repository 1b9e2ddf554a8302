//! Artifacts over HTTP: the worker's upload, and the listing and download
//! that people and `get` use.
//!
//! Bodies stream both ways: an upload's chunks are handed to a blocking
//! thread that writes them to a temp file, counting them against the
//! build's cap, while this side checks the worker's lease as they come; a
//! download is read in 64 KiB pieces on a
//! blocking thread and sent as they come. No artifact is ever whole in
//! memory, and no file I/O runs on the async threads. The checks on paths
//! and archives live in `megatron::artifacts`; this layer maps their refusals
//! to statuses (bad path or archive 400, too large 413, not found 404).

use super::auth::authenticate_worker;
use super::error::ApiError;
use super::extract::parse_id;
use super::schema::{ArtifactList, Uploaded};
use crate::megatron::artifacts::{self, ArtifactError, Upload, CHUNK};
use crate::megatron::state::State;
use crate::protocol::{ErrorBody, UploadKind};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt as _;
use serde::Deserialize;
use std::io::Read as _;
use std::sync::Arc;
use tokio::sync::mpsc;

type AppState = Extract<Arc<State>>;

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> ApiError {
        match error {
            ArtifactError::BadPath(m) | ArtifactError::BadArchive(m) => ApiError::bad_request(m),
            too_large @ ArtifactError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large.to_string())
            }
            ArtifactError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ArtifactError::Megatron(e) => e.into(),
            ArtifactError::Io(e) => {
                crate::megatron::Error::Internal(format!("artifact storage: {e}")).into()
            }
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The job's lease.
    lease: String,
    /// `file` stores the body as is; `zip`, for a path the builder unzips,
    /// extracts it there.
    #[serde(default = "file_kind")]
    kind: UploadKind,
}

fn file_kind() -> UploadKind {
    UploadKind::File
}

/// Uploads an artifact
///
/// Stores the body at `path` under the build's artifacts (or, for a zip the
/// builder unzips, extracts it into the folder `path`), within the
/// megatron's cap for one build's uploads.
#[utoipa::path(
    put,
    path = "/api/v1/worker/builds/{id}/artifacts/{path}",
    operation_id = "upload_artifact",
    tag = "worker protocol",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("path" = String, Path, description = "Where it goes under the build's artifacts, `/`-separated"),
        UploadQuery,
    ),
    request_body(description = "The file's bytes", content(("application/octet-stream"))),
    responses(
        (status = 200, description = "Stored", body = Uploaded),
        (status = 400, description = "A bad path or archive", body = ErrorBody),
        (status = 409, description = "The lease was taken away (the build requeued, cancelled or finished) before the upload was in place: it is discarded", body = ErrorBody),
        (status = 413, description = "Past the build's cap", body = ErrorBody),
    )
)]
pub async fn upload(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Uploaded>, ApiError> {
    let worker = authenticate_worker(&state, &headers).await?;
    let Path((id, path)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id(&id)?;
    let (w, lease, p) = (worker.clone(), query.lease.clone(), path.clone());
    let upload = state
        .blocking(move |s| s.begin_upload(id, &w, &lease, &p, query.kind))
        .await?;

    // The writer takes chunks from a small channel, so a slow disk holds
    // back the reading of the body rather than filling memory. It counts
    // them against the build's cap.
    let (chunks, mut receiver) = mpsc::channel::<Bytes>(8);
    let writer =
        tokio::task::spawn_blocking(move || upload.write_all_from(|| receiver.blocking_recv()));
    let mut stream = body.into_data_stream();
    // The lease is checked while the body arrives, however slowly: an upload
    // for a build taken away from the worker stops at once.
    let every = state.timing.lease_check;
    let mut checked = tokio::time::Instant::now();
    let read: Result<(), ApiError> = loop {
        let next = tokio::time::timeout(every, stream.next()).await;
        if checked.elapsed() >= every {
            let (w, lease) = (worker.clone(), query.lease.clone());
            let holds = state
                .blocking(move |s| s.check_upload_lease(id, &w, &lease))
                .await;
            if let Err(e) = holds {
                break Err(e.into());
            }
            checked = tokio::time::Instant::now();
        }
        match next {
            Err(_) => continue,
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => {
                break Err(ApiError::bad_request(format!("reading the upload: {e}")))
            }
            Ok(Some(Ok(chunk))) => {
                if chunks.send(chunk).await.is_err() {
                    // The writer stopped: its error is the answer.
                    break Ok(());
                }
            }
        }
    };
    drop(chunks);
    let written = match writer.await {
        Ok(written) => written,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let upload: Upload = match (read, written) {
        (Ok(()), Ok(upload)) => upload,
        (Err(e), Ok(upload)) => {
            // Dropping the upload removes its temp file: off the async threads.
            state.blocking(move |_| drop(upload)).await;
            return Err(e);
        }
        (_, Err(e)) => return Err(e.into()),
    };
    let received = upload.received;
    let stored = path.clone();
    let lease = query.lease.clone();
    state
        .blocking(move |s| s.finish_upload(upload, &worker, &lease))
        .await?;
    tracing::debug!(build = id, path = %stored, bytes = received, "artifact stored");
    Ok(Json(Uploaded {
        path: stored,
        bytes: received,
    }))
}

/// A build's artifacts
///
/// Every stored file, and the links of the builder's `url` map.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}/artifacts",
    operation_id = "list_artifacts",
    tag = "artifacts",
    params(("id" = u64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The files and links", body = ArtifactList),
        (status = 404, description = "No such build", body = ErrorBody),
    )
)]
pub async fn list(
    state: AppState,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ArtifactList>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id(&id)?;
    let (listed, links) = state
        .blocking(move |s| -> Result<_, ArtifactError> {
            let build = s.store.build(id)?;
            let listed = artifacts::list_artifacts(&s.artifact_dir(id))?;
            Ok((listed, artifacts::links(id, &build.spec.url)))
        })
        .await?;
    Ok(Json(ArtifactList {
        artifacts: listed,
        links,
    }))
}

/// An artifact
///
/// The file, streamed, with its content type; a folder serves its
/// `index.html`. Pages and SVGs are served sandboxed.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}/artifacts/{path}",
    operation_id = "download_artifact",
    tag = "artifacts",
    params(
        ("id" = u64, Path, description = "The build's id"),
        ("path" = String, Path, description = "The file's path under the build's artifacts"),
    ),
    responses(
        (status = 200, description = "The file, with the content type its name implies", content(("*/*"))),
        (status = 400, description = "A path that leaves the build's artifacts", body = ErrorBody),
        (status = 404, description = "No such build or file", body = ErrorBody),
    )
)]
pub async fn download(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, path)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id(&id)?;
    let opened = state.blocking(move |s| s.open_artifact(id, &path)).await?;
    let content_type = artifacts::content_type(&opened.path);
    let size = opened.size;
    let mut file = opened.file;
    // A blocking reader feeds the response through a small channel; when the
    // client goes away the channel closes and the reader stops.
    let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buffer = vec![0u8; CHUNK];
        let chunk = match file.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                buffer.truncate(n);
                Ok(Bytes::from(buffer))
            }
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if sender.blocking_send(chunk).is_err() || failed {
            return;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if content_type.starts_with("text/html") || content_type.starts_with("image/svg") {
        // Uploaded pages run in an opaque origin: their scripts work, but
        // cannot act on the megatron's own pages and API as its origin.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox allow-scripts allow-popups allow-forms"),
        );
    }
    Ok(response)
}
