//! What a repo's and a builder's kept history takes on disk: the answer of
//! `usage`, and what the state keeps of its last count.

use serde::Serialize;
use utoipa::ToSchema;

/// What one builder's kept history takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct BuilderUsage {
    pub builder: String,
    /// Builds kept.
    pub builds: u64,
    /// Bytes of step output kept.
    pub log_bytes: u64,
    /// Bytes of artifacts kept on disk.
    pub artifact_bytes: u64,
}

/// What one repo's builders take, with their sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct RepoUsage {
    pub repo: String,
    pub builds: u64,
    pub log_bytes: u64,
    pub artifact_bytes: u64,
    /// By builder name.
    pub builders: Vec<BuilderUsage>,
}
