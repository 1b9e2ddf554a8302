//! Where a secret is: cybertron names an environment variable or a file,
//! never the secret itself, and the megatron reads it when it needs it.

use serde::{Deserialize, Serialize};

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file's path.
    File(String),
}
