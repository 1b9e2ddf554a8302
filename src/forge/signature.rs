//! Whether a delivery carries the shared secret: GitHub, Gitea and Forgejo
//! sign the raw body with HMAC-SHA256, GitLab sends the secret itself.
//! Every comparison is constant-time.

use super::delivery::{header, Forge, HookError};
use super::secret::Secret;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Checks the delivery's signature (or GitLab's token) against the secret.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    secret: &Secret,
    body: &[u8],
) -> Result<(), HookError> {
    match forge {
        Forge::GitHub => {
            let name = "X-Hub-Signature-256";
            let value = header(headers, name).ok_or(HookError::MissingSignature(name))?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(HookError::BadSignature(name))?;
            hmac_matches(secret.expose().as_bytes(), body, hex)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
        Forge::Gitea | Forge::Forgejo => {
            // Forgejo sends both its own header and Gitea's.
            let names: &[&'static str] = match forge {
                Forge::Forgejo => &["X-Forgejo-Signature", "X-Gitea-Signature"],
                _ => &["X-Gitea-Signature"],
            };
            let (name, value) = names
                .iter()
                .find_map(|name| header(headers, name).map(|value| (*name, value)))
                .ok_or(HookError::MissingSignature(names[0]))?;
            hmac_matches(secret.expose().as_bytes(), body, value)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
        Forge::GitLab => {
            let name = "X-Gitlab-Token";
            let value = header(headers, name).ok_or(HookError::MissingSignature(name))?;
            token_matches(secret.expose(), value)
                .then_some(())
                .ok_or(HookError::BadSignature(name))
        }
    }
}

/// Whether `hex` (either case) is the HMAC-SHA256 of `body` under `secret`.
/// The comparison is constant-time (`Mac::verify_slice`), so the time
/// taken says nothing about how many leading bytes were right.
pub fn hmac_matches(secret: &[u8], body: &[u8], hex: &str) -> bool {
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The hex HMAC-SHA256 of `body` under `secret`, as a forge signs it.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether GitLab's plain token equals the secret. Both sides are hashed
/// first so the constant-time compare also hides the secret's length.
pub fn token_matches(secret: &str, given: &str) -> bool {
    let secret = Sha256::digest(secret.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    secret.ct_eq(&given).into()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}
