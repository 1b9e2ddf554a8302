//! Posts the commit statuses waiting in the store's outbox to their forges.
//!
//! Posting is apart from building: the core puts each status in the outbox
//! with the build's own write, and this loop sends them, at most
//! `concurrency` at once per forge (forges rate-limit parallel writes),
//! never two for the same status line at once and never an older state
//! after a newer one (a newer state replaces the one waiting). A failed
//! post is tried again with back-off; a rate-limit answer is honoured to
//! the second it names. The outbox is in sled, so a megatron restarted
//! mid-way still posts the final state. Nothing here can delay or fail a
//! build: how posting went is noted on the build, and that is all.

use crate::config::forges::ForgeSpec;
use crate::forge::secret::{read_secret, SecretError};
use crate::forge::status::{auth_header, rate_limit_wait, request};
use crate::megatron::state::State;
use crate::store::now_ms;
use crate::store::outbox::Outgoing;
use crate::sync::{lock, read};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Tries of one state before it is given up (the last error stays on the
/// build): transient failures back off to five minutes, so about an hour
/// and a half of a forge being down.
const MAX_TRIES: u32 = 20;
/// Tries of a state the forge refuses outright (bad token, unknown repo).
const MAX_REFUSED_TRIES: u32 = 5;
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How one post went.
#[derive(Debug, PartialEq)]
enum Outcome {
    Posted,
    Retry { after: Duration, error: String },
    GiveUp(String),
}

fn backoff(tries: u32) -> Duration {
    Duration::from_secs(1u64 << tries.min(9)).min(MAX_BACKOFF)
}

fn token_error(forge: &ForgeSpec, error: SecretError) -> String {
    let place = match &forge.token {
        crate::config::secret_source::SecretSource::Env(name) => {
            format!("environment variable {name}")
        }
        crate::config::secret_source::SecretSource::File(path) => path.clone(),
    };
    match error {
        SecretError::EnvUnset(_) => format!("forge {}: its token's {place} is not set", forge.name),
        SecretError::File { error, .. } => {
            format!(
                "forge {}: reading its token from {place}: {error}",
                forge.name
            )
        }
        SecretError::Empty(_) => format!("forge {}: its token's {place} is empty", forge.name),
    }
}

/// What the forge said, in a line: its status and its `message` field if
/// it sent JSON (GitHub, Gitea and GitLab all do).
fn answer_line(code: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").map(|m| m.to_string()))
        .map(|m| m.trim_matches('"').chars().take(200).collect::<String>());
    match message {
        Some(message) => format!("HTTP {code}: {message}"),
        None => format!("HTTP {code}"),
    }
}

/// Sends one status; blocking (run it off the async threads).
fn post(agent: &ureq::Agent, forge: &ForgeSpec, outgoing: &Outgoing) -> Outcome {
    let tries = outgoing.tries + 1;
    let token = match read_secret(&forge.token) {
        Ok(token) => token,
        Err(error) => {
            let error = token_error(forge, error);
            return if tries >= MAX_REFUSED_TRIES {
                Outcome::GiveUp(error)
            } else {
                Outcome::Retry {
                    after: backoff(tries).max(Duration::from_secs(10)),
                    error,
                }
            };
        }
    };
    let to = request(
        forge.kind,
        &forge.api,
        &outgoing.project,
        &outgoing.commit,
        &outgoing.status,
    );
    let (name, value) = auth_header(forge.kind, token.expose());
    let answer = agent
        .post(&to.url)
        .header(name, &value)
        .header("accept", "application/json")
        .header(
            "user-agent",
            concat!("constructicon/", env!("CARGO_PKG_VERSION")),
        )
        .send_json(&to.body);
    let mut response = match answer {
        Ok(response) => response,
        Err(error) => {
            let error = format!("forge {}: {error}", forge.name);
            return if tries >= MAX_TRIES {
                Outcome::GiveUp(error)
            } else {
                Outcome::Retry {
                    after: backoff(tries),
                    error,
                }
            };
        }
    };
    let code = response.status().as_u16();
    if (200..300).contains(&code) {
        return Outcome::Posted;
    }
    let headers = response.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    let line = answer_line(code, &body);
    if let Some(after) = rate_limit_wait(code, header, now_ms() / 1000) {
        return Outcome::Retry {
            after,
            error: format!(
                "forge {}: rate-limited ({line}); trying again in {} s",
                forge.name,
                after.as_secs()
            ),
        };
    }
    let error = format!("forge {}: {line}", forge.name);
    let limit = if code >= 500 || code == 408 {
        MAX_TRIES
    } else {
        MAX_REFUSED_TRIES
    };
    if tries >= limit {
        Outcome::GiveUp(error)
    } else {
        Outcome::Retry {
            after: backoff(tries),
            error,
        }
    }
}

/// Notes how a post went, in the outbox and on the build.
fn record(state: &State, outgoing: &Outgoing, outcome: Outcome) {
    let key = outgoing.key();
    state.metrics.status_post(match outcome {
        Outcome::Posted => "posted",
        Outcome::Retry { .. } => "retry",
        Outcome::GiveUp(_) => "gave_up",
    });
    let written = match outcome {
        Outcome::Posted => state
            .store
            .status_posted(&key, outgoing.version)
            .map_err(crate::megatron::Error::from)
            .and_then(|_| state.status_outcome(outgoing, Ok(()))),
        Outcome::Retry { after, error } => {
            tracing::warn!(build = outgoing.build, %error, "commit status not posted; trying again");
            let at = now_ms() + after.as_millis() as u64;
            state
                .store
                .status_failed(&key, outgoing.version, Some(at), &error)
                .map_err(crate::megatron::Error::from)
                .and_then(|()| state.status_outcome(outgoing, Err(error)))
        }
        Outcome::GiveUp(error) => {
            tracing::warn!(build = outgoing.build, %error, "commit status given up");
            let error = format!("gave up after {} tries: {error}", outgoing.tries + 1);
            state
                .store
                .status_failed(&key, outgoing.version, None, &error)
                .map_err(crate::megatron::Error::from)
                .and_then(|()| state.status_outcome(outgoing, Err(error)))
        }
    };
    if let Err(e) = written.and_then(|()| Ok(state.store.flush()?)) {
        tracing::warn!(build = outgoing.build, error = %e, "noting a commit status");
    }
}

/// Posts the outbox's statuses until the megatron stops.
pub async fn report_loop(state: Arc<State>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let in_flight: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
    let mut permits: HashMap<String, (usize, Arc<Semaphore>)> = HashMap::new();
    let (done, mut finished) = mpsc::unbounded_channel::<()>();
    loop {
        if state.is_stopping() {
            return;
        }
        let waiting = match state.blocking(|s| s.store.waiting_statuses()).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "reading the commit statuses waiting");
                Vec::new()
            }
        };
        let forges = read(&state.cybertron).spec.forges.clone();
        let now = now_ms();
        let mut next_due: Option<u64> = None;
        for outgoing in waiting {
            let key = outgoing.key();
            if lock(&in_flight).contains(&key) {
                continue;
            }
            if outgoing.not_before > now {
                next_due =
                    Some(next_due.map_or(outgoing.not_before, |n| n.min(outgoing.not_before)));
                continue;
            }
            let Some(forge) = forges.iter().find(|f| f.name == outgoing.forge).cloned() else {
                // The forge left cybertron: nowhere to post it.
                let error = format!("forge {} is no longer in cybertron", outgoing.forge);
                let state = state.clone();
                state
                    .blocking(move |s| record(s, &outgoing, Outcome::GiveUp(error)))
                    .await;
                continue;
            };
            let (cap, semaphore) = permits.entry(forge.name.clone()).or_insert_with(|| {
                (
                    forge.concurrency,
                    Arc::new(Semaphore::new(forge.concurrency)),
                )
            });
            if *cap != forge.concurrency {
                *cap = forge.concurrency;
                *semaphore = Arc::new(Semaphore::new(forge.concurrency));
            }
            // At the cap: a post that ends wakes this loop again.
            let Ok(permit) = semaphore.clone().try_acquire_owned() else {
                continue;
            };
            lock(&in_flight).insert(key.clone());
            let (state, agent, in_flight, done) = (
                state.clone(),
                agent.clone(),
                in_flight.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                let sent = {
                    let outgoing = outgoing.clone();
                    tokio::task::spawn_blocking(move || post(&agent, &forge, &outgoing)).await
                };
                let outcome = sent.unwrap_or_else(|e| Outcome::Retry {
                    after: backoff(1),
                    error: format!("posting failed: {e}"),
                });
                state.blocking(move |s| record(s, &outgoing, outcome)).await;
                drop(permit);
                lock(&in_flight).remove(&key);
                let _ = done.send(());
            });
        }
        let wait = next_due.map_or(Duration::from_secs(60), |at| {
            Duration::from_millis(at.saturating_sub(now)).min(Duration::from_secs(60))
        });
        tokio::select! {
            _ = state.statuses_waiting.notified() => {}
            _ = finished.recv() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn the_forges_message_is_kept_short() {
        assert_eq!(
            answer_line(422, r#"{"message":"No commit found for SHA: abc"}"#),
            "HTTP 422: No commit found for SHA: abc"
        );
        assert_eq!(answer_line(502, "<html>bad gateway</html>"), "HTTP 502");
    }
}
