//! The worker's side of the job protocol over HTTP: one call at a time, with
//! retries, and the log stream that batches a step's output.
//!
//! Every call carries the worker's token and name. A connection error or a
//! 5xx is the megatron being away or overwhelmed, not an answer: the call is
//! retried with exponential backoff until it gets one, or until the caller
//! gives up (shutdown, lost lease). A 409 means the lease was taken away and
//! is surfaced as [`CallError::LeaseLost`]; any other 4xx is an answer the
//! caller must handle ([`CallError::Rejected`]).

use super::spool::Spool;
use crate::protocol::{ErrorBody, WORKER_HEADER};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
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

/// Log batching: send when this much is pending, or [`LOG_FLUSH_EVERY`]
/// after the oldest pending byte arrived, whichever comes first.
const LOG_BATCH: usize = 64 * 1024;
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The largest body of one log call.
const LOG_CHUNK: usize = 1024 * 1024;
/// Output kept in memory while it waits to be sent, unless the worker is
/// told otherwise ([`super::WorkerConfig::log_queue_bytes`]).
pub const LOG_QUEUE_LIMIT: usize = 64 * 1024 * 1024;

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

/// Streams one step's output to the megatron from a thread of its own, in
/// order, batched, bounded in memory. Nothing is dropped while the sender
/// lives. Output waits in a queue of bounded size; when it is full:
///
/// - while the megatron answers, [`LogStream::push`] waits for room, so the
///   step's pipe is not read and the step waits (back-pressure);
/// - while the megatron is unreachable (no answer, or a 5xx), output goes
///   to the step's [`Spool`] on disk and the step runs on. Once anything is
///   spooled, newer output follows it there, so the spool is sent in order
///   before it; when the spool is full, the step waits again.
///
/// [`LogStream::close`] sends the rest.
pub struct LogStream {
    shared: Arc<(Mutex<LogQueue>, Condvar)>,
    /// Woken when the sender took a batch or found the megatron away: room
    /// in the queue, or a spool to write to.
    room: Arc<Condvar>,
    give_up: Arc<dyn Fn() -> bool + Send + Sync>,
    sender: Option<JoinHandle<Result<(), CallError>>>,
}

#[derive(Default)]
struct LogQueue {
    /// Output not yet sent, oldest first; all of it older than the spool's.
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    /// The most `pending` holds before output waits or is spooled.
    limit: usize,
    /// Output that came while the queue was full and the megatron away, and
    /// everything after it until the spool is empty again.
    spool: Spool,
    /// The sender's last attempt got no answer: the megatron is away.
    away: bool,
    /// When the oldest pending byte arrived: batching counts from it.
    oldest: Option<Instant>,
    /// Bytes dropped since the last send, for the marker line: only once
    /// the sender gave up (shutdown, a lost lease) is anything dropped.
    dropped: usize,
    closed: bool,
    /// The sender thread ended: nothing more will be sent.
    sender_gone: bool,
    /// The megatron keeps no more of this log (its cap): output is read
    /// and let go, so the step runs on at full speed.
    capped: bool,
}

impl LogQueue {
    /// Bytes waiting to be sent, in memory and spooled.
    fn waiting(&self) -> u64 {
        self.pending_bytes as u64 + self.spool.unread()
    }
}

impl LogStream {
    /// Starts the sender thread for `path` (the step's log URL with its
    /// lease), with at most `limit` bytes waiting in memory and `spool` for
    /// more while the megatron is away. `give_up` stops retries: shutdown or
    /// a lost lease.
    pub fn start(
        client: Client,
        path: String,
        limit: usize,
        spool: Spool,
        give_up: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> anyhow::Result<LogStream> {
        let queue = LogQueue {
            limit,
            spool,
            ..LogQueue::default()
        };
        let shared = Arc::new((Mutex::new(queue), Condvar::new()));
        let room = Arc::new(Condvar::new());
        let sender = {
            let (shared, room, give_up) = (shared.clone(), room.clone(), give_up.clone());
            std::thread::Builder::new()
                .name("log-sender".into())
                .spawn(move || {
                    let result = send_loop(&client, &path, &shared, &room, &*give_up);
                    let (lock, _) = &*shared;
                    let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
                    queue.sender_gone = true;
                    // Nothing more of it will be sent.
                    queue.spool.discard();
                    room.notify_all();
                    result
                })?
        };
        Ok(LogStream {
            shared,
            room,
            give_up,
            sender: Some(sender),
        })
    }

    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let (lock, ready) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if queue.capped {
                return;
            }
            if queue.sender_gone || (self.give_up)() {
                // Nothing more will be sent: keep the newest output within
                // the limit, count the rest for the marker line.
                queue.pending.push_back(bytes.to_vec());
                queue.pending_bytes += bytes.len();
                while queue.pending_bytes > queue.limit {
                    match queue.pending.pop_front() {
                        Some(oldest) => {
                            queue.pending_bytes -= oldest.len();
                            queue.dropped += oldest.len();
                        }
                        None => break,
                    }
                }
                return;
            }
            if queue.spool.is_empty() && queue.pending_bytes < queue.limit {
                queue.pending.push_back(bytes.to_vec());
                queue.pending_bytes += bytes.len();
                queue.oldest.get_or_insert_with(Instant::now);
                if queue.pending_bytes >= LOG_BATCH {
                    ready.notify_one();
                }
                return;
            }
            // Output goes to the spool while the megatron is away, and after
            // that for as long as the spool holds anything, so that it keeps
            // its order.
            let spooling = queue.away || !queue.spool.is_empty();
            if spooling && queue.spool.has_room(bytes.len()) {
                if queue.spool.is_empty() {
                    tracing::info!(
                        "the megatron is unreachable: the step's output goes to {}",
                        queue.spool.path().display()
                    );
                }
                match queue.spool.append(bytes) {
                    Ok(()) => {
                        queue.oldest.get_or_insert_with(Instant::now);
                        ready.notify_one();
                        return;
                    }
                    Err(error) => tracing::warn!(
                        "spooling the log to {}: {error}; the step waits for the megatron",
                        queue.spool.path().display()
                    ),
                }
            }
            // Back-pressure: wait for the sender to make room, or to find
            // the megatron away.
            ready.notify_one();
            queue = self
                .room
                .wait_timeout(queue, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sends what is left and ends the stream; returns when everything was
    /// sent, or the sender gave up.
    pub fn close(mut self) -> Result<(), CallError> {
        self.shut();
        match self.sender.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(CallError::GaveUp),
            None => Ok(()),
        }
    }

    fn shut(&self) {
        let (lock, ready) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        ready.notify_one();
    }
}

impl Drop for LogStream {
    /// A stream dropped without `close` still ends its thread.
    fn drop(&mut self) {
        self.shut();
    }
}

fn send_loop(
    client: &Client,
    path: &str,
    shared: &(Mutex<LogQueue>, Condvar),
    room: &Condvar,
    give_up: &dyn Fn() -> bool,
) -> Result<(), CallError> {
    let (lock, ready) = shared;
    let lock_queue = || lock.lock().unwrap_or_else(|p| p.into_inner());
    // Where the next batch starts in the step's output: the megatron knows
    // a batch sent again by it and stores it once.
    let mut offset: u64 = 0;
    loop {
        let batch = {
            let mut queue = lock_queue();
            loop {
                let due = queue
                    .oldest
                    .map(|oldest| oldest + LOG_FLUSH_EVERY)
                    .filter(|_| queue.waiting() > 0 || queue.dropped > 0);
                let now = Instant::now();
                let full = queue.waiting() >= LOG_BATCH as u64;
                if queue.closed || full || due.is_some_and(|due| now >= due) {
                    break;
                }
                let wait = due.map_or(LOG_FLUSH_EVERY, |due| due - now);
                queue = ready
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if queue.waiting() == 0 && queue.dropped == 0 {
                // Closed and nothing left.
                return Ok(());
            }
            let batch = take_batch(&mut queue);
            room.notify_all();
            batch
        };
        let at = format!("{path}&offset={offset}");
        offset += batch.len() as u64;
        let away = || {
            lock_queue().away = true;
            room.notify_all();
        };
        let sent = client.call_noting(&at, &Body::Bytes(&batch), Duration::ZERO, give_up, &away);
        lock_queue().away = false;
        match sent {
            Ok(_) => {}
            Err(CallError::Rejected {
                status: 413,
                message,
            }) => {
                // The log reached its cap: nothing more of it is kept, so
                // nothing more is sent.
                tracing::info!("{message}");
                let mut queue = lock_queue();
                queue.capped = true;
                queue.pending.clear();
                queue.pending_bytes = 0;
                queue.spool.discard();
                queue.oldest = None;
                room.notify_all();
            }
            Err(CallError::Rejected { status, message }) => {
                // The megatron refuses this piece (too large, unknown step):
                // the rest of the step still matters more than this piece.
                tracing::warn!(
                    "log chunk of {} bytes refused ({status}): {message}",
                    batch.len()
                );
            }
            Err(error) => return Err(error),
        }
    }
}

/// Up to [`LOG_CHUNK`] bytes from the front of the queue, then of the
/// spool, led by a marker line when output was dropped. A spool that cannot
/// be read back is lost, and a marker line says so where it would have been.
fn take_batch(queue: &mut LogQueue) -> Vec<u8> {
    let mut batch = Vec::new();
    if queue.dropped > 0 {
        batch.extend_from_slice(
            format!(
                "\n[constructicon: {} bytes of output dropped: the log could no longer be sent]\n",
                queue.dropped
            )
            .as_bytes(),
        );
        queue.dropped = 0;
    }
    while let Some(front) = queue.pending.front_mut() {
        let room = LOG_CHUNK.saturating_sub(batch.len());
        if room == 0 {
            break;
        }
        if front.len() <= room {
            batch.extend_from_slice(front);
            queue.pending_bytes -= front.len();
            queue.pending.pop_front();
        } else {
            batch.extend_from_slice(&front[..room]);
            front.drain(..room);
            queue.pending_bytes -= room;
        }
    }
    let room = LOG_CHUNK.saturating_sub(batch.len());
    if room > 0 && !queue.spool.is_empty() {
        let unread = queue.spool.unread();
        match queue.spool.take(room) {
            Ok(bytes) => batch.extend_from_slice(&bytes),
            Err(error) => {
                tracing::error!(
                    "reading the spool {}: {error}; {unread} bytes of the log are lost",
                    queue.spool.path().display()
                );
                batch.extend_from_slice(
                    format!(
                        "\n[constructicon: {unread} bytes of output lost: the worker could not read them back from its spool ({error})]\n"
                    )
                    .as_bytes(),
                );
            }
        }
    }
    queue.oldest = if queue.waiting() == 0 {
        None
    } else {
        Some(Instant::now())
    };
    batch
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
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(500));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn batches_are_bounded_and_marked_when_output_was_dropped() {
        let mut queue = LogQueue::default();
        queue.pending.push_back(vec![b'a'; LOG_CHUNK - 10]);
        queue.pending.push_back(vec![b'b'; 30]);
        queue.pending_bytes = LOG_CHUNK + 20;
        let batch = take_batch(&mut queue);
        assert_eq!(batch.len(), LOG_CHUNK);
        assert_eq!(&batch[LOG_CHUNK - 11..], b"abbbbbbbbbb");
        assert_eq!(queue.pending_bytes, 20);

        queue.dropped = 5;
        let batch = take_batch(&mut queue);
        assert!(batch.starts_with(b"\n[constructicon: 5 bytes of output dropped"));
        assert!(batch.ends_with(&[b'b'; 20]));
        assert_eq!(queue.pending_bytes, 0);
        assert!(queue.oldest.is_none());
    }

    #[test]
    fn the_spool_follows_the_queue_and_a_spool_lost_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1-1");
        let mut queue = LogQueue {
            spool: Spool::new(path.clone(), 1024),
            ..LogQueue::default()
        };
        queue.pending.push_back(b"one\n".to_vec());
        queue.pending_bytes = 4;
        queue.spool.append(b"two\n").unwrap();
        assert_eq!(take_batch(&mut queue), b"one\ntwo\n");
        assert!(queue.oldest.is_none());
        assert!(!path.exists());

        queue.pending.push_back(b"three\n".to_vec());
        queue.pending_bytes = 6;
        queue.spool.append(b"four\nfive\n").unwrap();
        // The file is cut under the worker: what it held cannot be sent.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let batch = String::from_utf8(take_batch(&mut queue)).unwrap();
        assert!(
            batch.starts_with("three\n\n[constructicon: 10 bytes of output lost: the worker could not read them back from its spool"),
            "{batch}"
        );
        assert_eq!(queue.waiting(), 0);
    }

    #[test]
    fn a_call_to_nowhere_gives_up_when_asked() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let client = Client::new(
            &format!("http://127.0.0.1:{port}"),
            "w",
            "t",
            Duration::from_millis(50),
        );
        let begun = Instant::now();
        let result = client.post_json("/x", &serde_json::json!({}), &|| {
            begun.elapsed() > Duration::from_millis(300)
        });
        assert!(matches!(result, Err(CallError::GaveUp)), "{result:?}");
        assert!(begun.elapsed() < Duration::from_secs(2));
    }
}
