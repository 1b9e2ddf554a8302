//! What an artifact may be called: path checks (an artifact path becomes a
//! file name and a URL), the links a build's `url` map gives, and the
//! content type served for a name.

use super::error::{ArtifactError, Result};
use crate::config::spec::unsafe_relative_path;
pub use crate::model::encode_segment;
use std::collections::BTreeMap;

/// Names starting with this are ours (uploads and extractions in progress):
/// never listed, never served, and refused as a path segment.
pub const TEMP_PREFIX: &str = ".constructicon-partial-";

/// Why `path` may not name something under a build's artifacts, or `None`.
/// Stricter than the config's check: the path also becomes a URL and a file
/// name, so empty and `.` segments, backslashes and our temp names are out.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if let Some(why) = unsafe_relative_path(path) {
        return Some(why);
    }
    if path.contains('\\') {
        return Some("must not contain a backslash");
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Some("must not have empty segments (a leading, trailing or double \"/\")");
        }
        if segment == "." {
            return Some("must not contain \".\" segments");
        }
        if segment.starts_with(TEMP_PREFIX) {
            return Some("uses a name reserved for uploads in progress");
        }
    }
    None
}

/// Checks an upload or download path.
pub fn check_path(path: &str) -> Result<()> {
    match path_problem(path) {
        Some(why) => Err(ArtifactError::BadPath(format!(
            "artifact path \"{}\" {why}",
            path.escape_debug()
        ))),
        None => Ok(()),
    }
}

/// The `links` of a build's artifact listing: each `url` destination →
/// where its link points, `/api/v1/builds/{id}/artifacts/{destination}/{suffix}`.
pub fn links(build: u64, url: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    url.iter()
        .map(|(destination, suffix)| {
            let mut link = format!("/api/v1/builds/{build}/artifacts");
            for part in [destination.as_str(), suffix.as_str()] {
                for segment in part.split('/').filter(|s| !s.is_empty() && *s != ".") {
                    link.push('/');
                    link.push_str(&encode_segment(segment));
                }
            }
            (destination.clone(), link)
        })
        .collect()
}

/// The Content-Type served for a file, from its extension.
pub fn content_type(path: &str) -> &'static str {
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}
