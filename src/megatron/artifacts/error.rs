//! Why an artifact operation was refused; the HTTP layer branches on it.

use crate::megatron::error::Error;
use std::io;

/// Why an artifact operation was refused; the HTTP layer branches on it.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A path (of an upload, a download or an archive entry) that could
    /// leave the artifact folder or is malformed: 400.
    #[error("{0}")]
    BadPath(String),
    /// An archive that cannot be read or has entries we refuse: 400.
    #[error("{0}")]
    BadArchive(String),
    /// The build's artifacts would exceed the cap: 413.
    #[error("the build's artifacts may take at most {} in all; this upload would exceed that", human_bytes(*cap))]
    TooLarge { cap: u64 },
    /// No such build or artifact: 404.
    #[error("{0}")]
    NotFound(String),
    /// Refused by the megatron (lease lost, unknown build...).
    #[error(transparent)]
    Megatron(#[from] Error),
    /// A failure of ours (disk full, permissions): 500.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<crate::store::Error> for ArtifactError {
    fn from(error: crate::store::Error) -> ArtifactError {
        ArtifactError::Megatron(error.into())
    }
}

pub type Result<T> = std::result::Result<T, ArtifactError>;

/// `1 MiB`, `3 GiB`, or the bytes when not a whole number of either.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}
