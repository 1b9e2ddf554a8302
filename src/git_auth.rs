//! Credentials for fetching private repos, from where git keeps them for the
//! user the process runs as: git's credential helpers (`credential.helper`,
//! e.g. `store` with `~/.git-credentials`) for http(s), the ssh agent for
//! ssh. Repo URLs never carry credentials (they are shown to everyone), so
//! this is the one way in for the megatron's mirrors and the workers'
//! checkouts alike.

use std::cell::Cell;

/// How many times libgit2 may ask before we give up: a helper that keeps
/// answering with a refused credential would otherwise be asked forever.
const MAX_ATTEMPTS: u32 = 3;

/// Installs the credentials callback on `callbacks`.
pub fn use_git_credentials(callbacks: &mut git2::RemoteCallbacks<'_>) {
    let attempts = Cell::new(0u32);
    callbacks.credentials(move |url, username, allowed| {
        attempts.set(attempts.get() + 1);
        if attempts.get() > MAX_ATTEMPTS {
            return Err(git2::Error::from_str(
                "the credentials git's helpers gave were refused",
            ));
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            let config = git2::Config::open_default()?;
            return git2::Cred::credential_helper(&config, url, username);
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(username.unwrap_or("git"));
        }
        Err(git2::Error::from_str(
            "no credentials of a kind the remote takes",
        ))
    });
}
