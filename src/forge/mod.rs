//! Forges' webhooks: which forge sent a delivery, whether it carries the shared
//! secret, and what the push says (repo URLs, ref, new commit).
//!
//! Everything here is a pure function of headers, bytes and the secret, so
//! the HTTP handler only orders the checks and the tests need no server.
//! Three payload families are understood:
//!
//! - GitHub: `X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex HMAC>`;
//! - GitLab: `X-Gitlab-Event`, `X-Gitlab-Token: <the secret itself>`;
//! - Gitea and Forgejo: `X-Gitea-Event` / `X-Forgejo-Event`,
//!   `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC>`.
//!
//! The HMAC is always checked on the raw body before any parsing, so nothing
//! from an unauthenticated sender reaches the JSON parser.
//!
//! - [`delivery`]: the forge and event of a delivery; [`secret`]: the
//!   shared secret; [`signature`]: its check; [`push`]: the push payload.

pub mod delivery;
pub mod pull;
pub mod push;
pub mod secret;
pub mod signature;
pub mod status;

pub use delivery::{detect, Event, Forge, HookError, MAX_PAYLOAD};
pub use push::{parse, Change, Push};
pub use secret::{read_secret, Secret, SecretError};
pub use signature::verify;

#[cfg(test)]
mod tests;
