//! A step's output on its way to the megatron: a bounded queue in memory,
//! the spool on disk while the megatron is away, and the thread that sends
//! both in order, in batches (see [`LogStream`]).

use super::client::{Body, CallError, Client};
use super::spool::Spool;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Log batching: send when this much is pending, or [`LOG_FLUSH_EVERY`]
/// after the oldest pending byte arrived, whichever comes first.
const LOG_BATCH: usize = 64 * 1024;
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The largest body of one log call.
const LOG_CHUNK: usize = 1024 * 1024;
/// The most of a step's output that may go with its finish instead of a
/// log call of its own ([`LogStream::close_with_tail`]).
pub const LOG_TAIL: usize = LOG_BATCH;
/// Output kept in memory while it waits to be sent, unless the worker is
/// told otherwise ([`super::WorkerConfig::log_queue_bytes`]).
pub const LOG_QUEUE_LIMIT: usize = 64 * 1024 * 1024;

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
    sender: Option<JoinHandle<Result<Option<Tail>, CallError>>>,
}

/// The end of a step's output, not sent: it goes with the step's finish.
#[derive(Debug, PartialEq, Eq)]
pub struct Tail {
    /// Where it starts in the step's output.
    pub offset: u64,
    pub bytes: Vec<u8>,
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
    /// Once closed, what is left (at most [`LOG_TAIL`] bytes, none of it
    /// spooled) is handed back instead of sent.
    keep_tail: bool,
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
    pub fn close(self) -> Result<(), CallError> {
        self.end(false).map(|_| ())
    }

    /// Ends the stream like [`LogStream::close`], except that when what is
    /// left is small (at most [`LOG_TAIL`] bytes, nothing spooled) it is
    /// handed back, unsent, to go with the step's finish: a step with little
    /// output takes no log call at all.
    pub fn close_with_tail(self) -> Result<Option<Tail>, CallError> {
        self.end(true)
    }

    fn end(mut self, keep_tail: bool) -> Result<Option<Tail>, CallError> {
        self.shut(keep_tail);
        match self.sender.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(CallError::GaveUp),
            None => Ok(None),
        }
    }

    /// Closes the queue: the sender sends the rest (or, with `keep_tail`,
    /// hands a small rest back) and ends.
    fn shut(&self, keep_tail: bool) {
        let (lock, ready) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
        queue.closed = true;
        queue.keep_tail = keep_tail;
        ready.notify_one();
    }
}

impl Drop for LogStream {
    /// A stream dropped without `close` still ends its thread.
    fn drop(&mut self) {
        self.shut(false);
    }
}

fn send_loop(
    client: &Client,
    path: &str,
    shared: &(Mutex<LogQueue>, Condvar),
    room: &Condvar,
    give_up: &dyn Fn() -> bool,
) -> Result<Option<Tail>, CallError> {
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
                return Ok(None);
            }
            let tail = queue.closed
                && queue.keep_tail
                && queue.spool.is_empty()
                && queue.pending_bytes <= LOG_TAIL;
            let batch = take_batch(&mut queue);
            room.notify_all();
            if tail {
                return Ok(Some(Tail {
                    offset,
                    bytes: batch,
                }));
            }
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

#[cfg(test)]
#[path = "log_stream_tests.rs"]
mod tests;
