//! Artifact transfers with the megatron: listings and downloads for `get`,
//! uploads for `upload`. Files stream between disk and socket in pieces, so
//! a file of any size costs a buffer of memory, never the file. A connection
//! error restarts the file from its beginning after the usual backoff; an
//! answer (a refusal, a lost lease) ends the transfer at once.

use super::client::{answer_error, url_encode, AttemptError, Backoff, CallError, Client};
use super::workspace::StepError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// The piece of a file read or written at once.
const BUFFER: usize = 256 * 1024;

/// The largest answer read whole (listings, error bodies).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// One attempt's failure.
enum Attempt {
    /// Worth another try: connection refused or reset, 5xx.
    Retry(String),
    Done(StepError),
}

impl From<std::io::Error> for Attempt {
    /// A local file error: the worker's disk, not the network.
    fn from(error: std::io::Error) -> Attempt {
        Attempt::Done(StepError::Exception(error.into()))
    }
}

/// `attempt` until it succeeds or fails for good, waiting between tries;
/// `stop` is asked before each try and during each wait.
fn with_retries<T>(
    client: &Client,
    stop: &dyn Fn() -> bool,
    log: &mut dyn FnMut(&str),
    mut attempt: impl FnMut() -> Result<T, Attempt>,
) -> Result<T, StepError> {
    let mut backoff = Backoff::new(client.max_backoff());
    loop {
        if stop() {
            return Err(StepError::Stopped);
        }
        match attempt() {
            Ok(value) => return Ok(value),
            Err(Attempt::Done(error)) => return Err(error),
            Err(Attempt::Retry(_)) if stop() => return Err(StepError::Stopped),
            Err(Attempt::Retry(message)) => {
                let wait = backoff.next_wait();
                log(&format!("{message}; retrying in {wait:?}"));
                if !super::client::sleep_unless(wait, stop) {
                    return Err(StepError::Stopped);
                }
            }
        }
    }
}

/// What a non-2xx answer means for a transfer.
fn refusal(url: &str, response: &mut ureq::http::Response<ureq::Body>) -> Attempt {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .unwrap_or_default();
    match answer_error(url, status, &body) {
        AttemptError::Transient(message) => Attempt::Retry(message),
        AttemptError::Answer(CallError::LeaseLost) => Attempt::Done(StepError::LeaseLost),
        AttemptError::Answer(CallError::GaveUp) => Attempt::Done(StepError::Stopped),
        AttemptError::Answer(CallError::Rejected { message, .. }) => {
            Attempt::Done(StepError::Failure(message))
        }
    }
}

/// One GET of `path` that answered 2xx; a refusal or a broken connection as
/// what the retry loop makes of it.
fn get_ok(
    client: &Client,
    path: &str,
    url: &str,
) -> Result<ureq::http::Response<ureq::Body>, Attempt> {
    let mut response = client
        .get(path)
        .call()
        .map_err(|e| Attempt::Retry(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(refusal(url, &mut response));
    }
    Ok(response)
}

/// GETs `path` and decodes its JSON answer.
pub fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    stop: &dyn Fn() -> bool,
    log: &mut dyn FnMut(&str),
) -> Result<T, StepError> {
    let url = client.url(path);
    with_retries(client, stop, log, || {
        let mut response = get_ok(client, path, &url)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| Attempt::Retry(format!("{url}: reading the answer: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| {
            Attempt::Done(StepError::Failure(format!(
                "unexpected answer from {url}: {e}"
            )))
        })
    })
}

/// GETs `path` into the file `to` (created, or truncated on a retry);
/// returns the bytes written.
pub fn download(
    client: &Client,
    path: &str,
    to: &Path,
    stop: &dyn Fn() -> bool,
    log: &mut dyn FnMut(&str),
) -> Result<u64, StepError> {
    let url = client.url(path);
    with_retries(client, stop, log, || {
        let mut response = get_ok(client, path, &url)?;
        let mut file = File::create(to)?;
        let mut reader = response.body_mut().as_reader();
        let mut buffer = vec![0u8; BUFFER];
        let mut total = 0u64;
        loop {
            if stop() {
                return Err(Attempt::Done(StepError::Stopped));
            }
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Attempt::Retry(format!("{url}: reading: {e}"))),
            };
            file.write_all(&buffer[..n])?;
            total += n as u64;
        }
        file.flush()?;
        Ok(total)
    })
}

/// PUTs the file `from` to `path` as the body; returns the bytes sent.
pub fn upload(
    client: &Client,
    path: &str,
    from: &Path,
    stop: &dyn Fn() -> bool,
    log: &mut dyn FnMut(&str),
) -> Result<u64, StepError> {
    let url = client.url(path);
    with_retries(client, stop, log, || {
        let file = File::open(from)?;
        let size = file.metadata()?.len();
        let mut reader = StopReader { inner: file, stop };
        let sent = client
            .put(path)
            .header("content-type", "application/octet-stream")
            // A length up front lets the megatron refuse too large a file
            // before a byte of it is sent, answering the 100-continue.
            .header("content-length", size.to_string())
            .header("expect", "100-continue")
            .send(ureq::SendBody::from_reader(&mut reader));
        let mut response = sent.map_err(|e| Attempt::Retry(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(refusal(&url, &mut response));
        }
        Ok(size)
    })
}

/// A reader that fails once `stop` answers true, so that a cancel ends an
/// upload mid-file.
struct StopReader<'a> {
    inner: File,
    stop: &'a dyn Fn() -> bool,
}

impl Read for StopReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if (self.stop)() {
            return Err(std::io::Error::other("stopped"));
        }
        self.inner.read(buffer)
    }
}

/// `path` percent-encoded segment by segment: RFC 3986's unreserved
/// characters stay, `/` separates, everything else is escaped.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(url_encode)
        .collect::<Vec<_>>()
        .join("/")
}
