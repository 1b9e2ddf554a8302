//! The webhook secret: read from where cybertron says (an environment
//! variable or a file) per request, never stored, never shown.

use crate::config::spec::SecretSource;

/// The secret, read per request and dropped after it; `Debug` never shows
/// it so it cannot reach a log by accident.
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from elsewhere (a forge token, a test's key).
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the configured secret could not be had; the message names where it
/// was looked for, never what was found.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("webhook_secret: environment variable {0} is not set")]
    EnvUnset(String),
    #[error("webhook_secret: reading {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("webhook_secret: {0} holds an empty secret")]
    Empty(String),
}

/// Reads the secret from where cybertron says it is. Surrounding
/// whitespace is dropped: files written by `echo` end in a newline that
/// is not part of the secret the forge was given.
pub fn read_secret(source: &SecretSource) -> Result<Secret, SecretError> {
    let (text, place) = match source {
        SecretSource::Env(name) => (
            std::env::var(name).map_err(|_| SecretError::EnvUnset(name.clone()))?,
            format!("environment variable {name}"),
        ),
        SecretSource::File(path) => (
            std::fs::read_to_string(path).map_err(|error| SecretError::File {
                path: path.clone(),
                error,
            })?,
            path.clone(),
        ),
    };
    let secret = text.trim();
    // An empty key would make every signature computable by anyone.
    if secret.is_empty() {
        return Err(SecretError::Empty(place));
    }
    Ok(Secret(secret.to_string()))
}
