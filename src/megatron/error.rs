//! Why the core refused or failed a request. The HTTP layer maps each cause
//! to a status; nothing here knows of HTTP.

use crate::store;

/// Why a request was refused; the HTTP layer maps these to statuses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The worker's lease on the build is gone: it must stop.
    #[error("{0}")]
    LeaseLost(String),
    /// More than a cap allows (a step's log past `max_log_mb`).
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;
