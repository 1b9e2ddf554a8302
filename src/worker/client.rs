//! The worker's side of the job protocol over HTTP: one call at a time, with
//! retries, and the log stream that batches a step's output.
//!
//! Every call carries the worker's token and name. A connection error or a
//! 5xx is the megatron being away or overwhelmed, not an answer: the call is
//! retried with exponential backoff until it gets one, or until the caller
//! gives up (shutdown, lost lease). A 409 means the lease was taken away and
//! is surfaced as [`CallError::LeaseLost`]; any other 4xx is an answer the
//! caller must handle ([`CallError::Rejected`]).

use crate::protocol::{ErrorBody, WORKER_HEADER};
use std::time::{Duration, Instant};

/// Time allowed for a call on top of how long the megatron may hold it.
const CALL_MARGIN: Duration = Duration::from_secs(15);

/// How long a transfer waits for the megatron's answer once the request is
/// sent: generous, since storing (or unzipping) an upload comes first.
const TRANSFER_ANSWER: Duration = Duration::from_secs(600);

/// First wait after a failed call; doubles up to the configured maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest slice of a backoff sleep, so that giving up is noticed promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 409: this worker no longer holds the build.
    #[error("the lease was lost")]
    LeaseLost,
    /// The caller gave up before an answer came.
    #[error("gave up")]
    GaveUp,
    /// A 4xx other than 409: the megatron understood and refused.
    #[error("megatron answered {status}: {message}")]
    Rejected { status: u16, message: String },
}

/// One attempt's failure: worth retrying, or an answer.
#[derive(Debug)]
pub enum AttemptError {
    /// Connection refused or reset, timeout, 5xx.
    Transient(String),
    Answer(CallError),
}

/// What a call sends.
pub enum Body<'a> {
    Json(serde_json::Value),
    Bytes(&'a [u8]),
}

/// A successful answer: 2xx, with its body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            anyhow::anyhow!(
                "unexpected answer from the megatron ({error}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })
    }
}

/// The megatron's address and the worker's credentials. Cheap to share:
/// ureq's agent pools connections behind an `Arc`.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    name: String,
    authorization: String,
    max_backoff: Duration,
}

impl Client {
    pub fn new(base: &str, name: &str, token: &str, max_backoff: Duration) -> Client {
        // One agent for the worker's life, cloned into every thread that
        // calls: its pool keeps the connections, and its resolver starts
        // no thread per call.
        let agent = crate::http_agent::agent(
            ureq::Agent::config_builder()
                // Status codes are answers the worker branches on, not errors.
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .build(),
        );
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
            name: name.to_string(),
            authorization: format!("Bearer {token}"),
            max_backoff,
        }
    }

    /// One POST to `path` (below the base URL, with its query string), no
    /// retry. `hold` is how long the megatron may keep the request open.
    pub fn attempt(&self, path: &str, body: &Body, hold: Duration) -> Result<Reply, AttemptError> {
        let url = format!("{}{}", self.base, path);
        let request = self
            .agent
            .post(&url)
            .header("authorization", &self.authorization)
            .header(WORKER_HEADER, &self.name)
            .config()
            .timeout_global(Some(hold + CALL_MARGIN))
            .build();
        let sent = match body {
            Body::Json(value) => request.send_json(value),
            Body::Bytes(bytes) => request
                .header("content-type", "application/octet-stream")
                .send(*bytes),
        };
        let mut response =
            sent.map_err(|error| AttemptError::Transient(format!("{url}: {error}")))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|error| {
                AttemptError::Transient(format!("{url}: reading the answer: {error}"))
            })?;
        match status {
            200..=299 => Ok(Reply { status, body }),
            _ => Err(answer_error(&url, status, &body)),
        }
    }

    /// The full URL of `path` (below the base URL, with its query string).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A GET of `path` with the worker's headers. No overall timeout: a
    /// download takes as long as the file needs; only the wait for the
    /// answer's head is bounded.
    pub fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent
            .get(self.url(path))
            .header("authorization", &self.authorization)
            .header(WORKER_HEADER, &self.name)
            .config()
            .timeout_recv_response(Some(TRANSFER_ANSWER))
            .build()
    }

    /// A PUT to `path` with the worker's headers, likewise bounded.
    pub fn put(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent
            .put(self.url(path))
            .header("authorization", &self.authorization)
            .header(WORKER_HEADER, &self.name)
            .config()
            .timeout_recv_response(Some(TRANSFER_ANSWER))
            .build()
    }

    /// The longest wait between retries, for callers that retry themselves.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// [`Client::attempt`] until it gets an answer, waiting between attempts;
    /// `give_up` is asked before every attempt and during every wait.
    pub fn call(
        &self,
        path: &str,
        body: &Body,
        hold: Duration,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Reply, CallError> {
        self.call_noting(path, body, hold, give_up, &|| {})
    }

    /// [`Client::call`], calling `unanswered` after every attempt that got
    /// no answer (the megatron away, or failing with a 5xx).
    pub fn call_noting(
        &self,
        path: &str,
        body: &Body,
        hold: Duration,
        give_up: &dyn Fn() -> bool,
        unanswered: &dyn Fn(),
    ) -> Result<Reply, CallError> {
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            if give_up() {
                return Err(CallError::GaveUp);
            }
            match self.attempt(path, body, hold) {
                Ok(reply) => return Ok(reply),
                Err(AttemptError::Answer(error)) => return Err(error),
                Err(AttemptError::Transient(message)) => {
                    unanswered();
                    let wait = backoff.next_wait();
                    tracing::warn!("{message}; retrying in {wait:?}");
                    if !sleep_unless(wait, give_up) {
                        return Err(CallError::GaveUp);
                    }
                }
            }
        }
    }

    /// [`Client::call`] with a JSON body.
    pub fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Reply, CallError> {
        let value = serde_json::to_value(body).map_err(|error| CallError::Rejected {
            status: 0,
            message: format!("encoding the request: {error}"),
        })?;
        self.call(path, &Body::Json(value), Duration::ZERO, give_up)
    }
}

/// What a non-2xx answer means: 409 is a lost lease, another 4xx a refusal
/// with the megatron's message, anything else worth retrying.
pub fn answer_error(url: &str, status: u16, body: &[u8]) -> AttemptError {
    match status {
        409 => AttemptError::Answer(CallError::LeaseLost),
        400..=499 => {
            let message = serde_json::from_slice::<ErrorBody>(body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
            AttemptError::Answer(CallError::Rejected { status, message })
        }
        _ => AttemptError::Transient(format!("{url}: status {status}")),
    }
}

/// Exponential backoff from 100 ms, doubling up to a maximum.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_BACKOFF.min(max),
            max,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

/// Sleeps `duration` in short slices; false when `give_up` answered true
/// before the end.
pub fn sleep_unless(duration: Duration, give_up: &dyn Fn() -> bool) -> bool {
    let end = Instant::now() + duration;
    loop {
        if give_up() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(SLEEP_SLICE));
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// lease in a query string.
pub(super) fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
