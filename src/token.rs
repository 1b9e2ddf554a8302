//! Random secrets and how they are kept: every token the megatron issues
//! (admin, worker, personal, lease) is random, and only its sha256 is stored.

use sha2::{Digest, Sha256};

/// sha256 of a secret, hex: tokens are kept only as this.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random secret, 32 hex characters (128 bits).
pub fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
