//! The fake megatron: HTTP/1.1 over std's TcpListener, recording every
//! call and answering as each test scripts, artifacts included.

use crate::protocol::Job;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub(super) method: String,
    /// Path below `/api/v1/worker/`, query included; other paths whole.
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Recorded {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The build's end as the worker reported it, `{lease, result, reason}`:
/// `POST builds/N/finish`, or carried by its last step's finish.
fn end_of(requests: &[Recorded], build: u64) -> Option<Value> {
    let finish = format!("builds/{build}/finish");
    let steps = format!("builds/{build}/steps/");
    requests.iter().find_map(|r| {
        if r.path == finish {
            return Some(r.json());
        }
        if r.path.starts_with(&steps) && r.path.ends_with("/finish") {
            let body = r.json();
            let end = body.get("build")?;
            return Some(serde_json::json!({
                "lease": body["lease"], "result": end["result"], "reason": end["reason"],
            }));
        }
        None
    })
}

/// The end of a step's output a finish carries: where it starts, its bytes.
pub(super) fn tail_of(finish: &Value) -> Option<(u64, Vec<u8>)> {
    use base64::Engine as _;
    let tail = finish.get("log")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(tail["base64"].as_str()?)
        .ok()?;
    Some((tail["offset"].as_u64()?, bytes))
}

#[derive(Default)]
pub(super) struct State {
    pub(super) requests: Vec<Recorded>,
    pub(super) jobs: VecDeque<Job>,
    /// How long a claim waits before its answer (job or 204).
    pub(super) claim_hold: Duration,
    pub(super) cancel: bool,
    pub(super) lease_lost: bool,
    /// Answer the next this many claims with 503.
    pub(super) failing_claims: usize,
    /// Answer the next this many log posts with 500.
    pub(super) failing_logs: usize,
    /// Build → its artifacts (path, content), served at
    /// `/api/v1/builds/{id}/artifacts[/path]`.
    pub(super) artifacts: BTreeMap<u64, Vec<(String, String)>>,
    /// Answer every upload with 413 and this error, before its body.
    pub(super) refuse_uploads: Option<String>,
    /// Hold every upload's answer, its body read, while this is set: an
    /// upload that takes long.
    pub(super) hold_uploads: bool,
}

pub(super) struct FakeMegatron {
    pub(super) url: String,
    pub(super) state: Arc<Mutex<State>>,
}

impl State {
    pub(super) fn build_end(&self, build: u64) -> Option<Value> {
        end_of(&self.requests, build)
    }

    /// Whether step `n` of `build` was reported started: by its own start
    /// call, or as the `next` of the step before it. (A claim's first step
    /// starts with the claim.)
    pub(super) fn started(&self, build: u64, n: u64) -> bool {
        let steps = format!("builds/{build}/steps/");
        self.requests.iter().any(|r| {
            r.path == format!("{steps}{n}/start")
                || (r.path.starts_with(&steps)
                    && r.path.ends_with("/finish")
                    && r.json()["next"] == n)
        })
    }
}

impl FakeMegatron {
    pub(super) fn build_end(&self, build: u64) -> Option<Value> {
        self.state().build_end(build)
    }

    pub(super) fn started(&self, build: u64, n: u64) -> bool {
        self.state().started(build, n)
    }

    pub(super) fn wait_for_end(&self, build: u64) {
        self.wait_for(&format!("build {build}'s end"), |s| {
            s.build_end(build).is_some()
        });
    }

    pub(super) fn start() -> FakeMegatron {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            claim_hold: Duration::from_millis(20),
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeMegatron { url, state }
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Waits (polling every 10 ms, 5 s at most) until `condition` holds.
    pub(super) fn wait_for(&self, what: &str, condition: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition(&self.state()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every recorded call but claims, heartbeats and logs.
    pub(super) fn reports(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| !p.starts_with("claim") && !p.contains("/heartbeat") && !p.contains("/log"))
            .collect()
    }

    pub(super) fn find(&self, path: &str) -> Option<Recorded> {
        self.state()
            .requests
            .iter()
            .find(|r| r.path == path)
            .cloned()
    }

    /// The log of step `n`, as the megatron would store it: its log calls'
    /// bodies and the end its finish carried, each at its offset (a chunk
    /// sent again lands where it did before).
    pub(super) fn log(&self, build: u64, n: usize) -> String {
        let prefix = format!("builds/{build}/steps/{n}/log?");
        let finish = format!("builds/{build}/steps/{n}/finish");
        let mut bytes = Vec::new();
        let mut place = |offset: usize, piece: &[u8]| {
            bytes.truncate(offset);
            bytes.extend_from_slice(piece);
        };
        for request in &self.state().requests {
            if request.path.starts_with(&prefix) {
                let offset = request
                    .path
                    .split_once("offset=")
                    .and_then(|(_, o)| o.parse().ok())
                    .expect("a log call's offset");
                place(offset, &request.body);
            } else if request.path == finish {
                if let Some((offset, tail)) = tail_of(&request.json()) {
                    place(offset as usize, &tail);
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut words = request_line.split(' ');
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if method == "PUT" {
        let refusal = state.lock().unwrap().refuse_uploads.clone();
        if let Some(error) = refusal {
            // As a real server answers a 100-continue it will not take.
            state.lock().unwrap().requests.push(Recorded {
                method,
                path: path.trim_start_matches("/api/v1/worker/").to_string(),
                headers,
                body: vec![],
            });
            let answer = serde_json::json!({ "error": error }).to_string();
            let _ = write!(
                &stream,
                "HTTP/1.1 413 X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            return;
        }
    }
    if header("expect").as_deref() == Some("100-continue") {
        let _ = (&stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        body.resize(length.parse().unwrap(), 0);
        reader.read_exact(&mut body).unwrap();
    } else if header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let path = path
        .strip_prefix("/api/v1/worker/")
        .unwrap_or(&path)
        .to_string();
    let recorded = Recorded {
        method,
        path: path.clone(),
        headers,
        body,
    };
    let (status, answer) = answer(state, recorded);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn answer(state: &Mutex<State>, request: Recorded) -> (u16, String) {
    let path = request.path.clone();
    let put = request.method == "PUT";
    let mut s = state.lock().unwrap();
    s.requests.push(request);
    if put && s.hold_uploads {
        drop(s);
        while state.lock().unwrap().hold_uploads {
            std::thread::sleep(Duration::from_millis(10));
        }
        s = state.lock().unwrap();
    }
    if path == "claim" {
        if s.failing_claims > 0 {
            s.failing_claims -= 1;
            return (503, r#"{"error":"starting"}"#.into());
        }
        let hold = s.claim_hold;
        drop(s);
        std::thread::sleep(hold);
        return match state.lock().unwrap().jobs.pop_front() {
            Some(job) => (200, serde_json::to_string(&job).unwrap()),
            None => (204, String::new()),
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v1/builds/") {
        return artifacts(&s, rest);
    }
    if path.ends_with("/release") {
        return (200, "{}".into());
    }
    if s.lease_lost {
        return (409, r#"{"error":"lease lost"}"#.into());
    }
    if path.ends_with("/heartbeat") {
        drop(s);
        // A short long-poll: long enough not to spin, short enough that a
        // cancel is heard quickly.
        std::thread::sleep(Duration::from_millis(20));
        let cancel = state.lock().unwrap().cancel;
        return (200, format!(r#"{{"cancel":{cancel}}}"#));
    }
    if path.contains("/log?") && s.failing_logs > 0 {
        s.failing_logs -= 1;
        return (500, r#"{"error":"busy"}"#.into());
    }
    (200, "{}".into())
}

/// `GET /api/v1/builds/{id}/artifacts[/path]`.
fn artifacts(state: &State, rest: &str) -> (u16, String) {
    let (build, rest) = rest.split_once('/').unwrap();
    let files = state
        .artifacts
        .get(&build.parse::<u64>().unwrap())
        .cloned()
        .unwrap_or_default();
    if rest == "artifacts" {
        let list: Vec<Value> = files
            .iter()
            .map(|(path, content)| serde_json::json!({"path": path, "size": content.len()}))
            .collect();
        return (
            200,
            serde_json::json!({ "artifacts": list, "total": 2 }).to_string(),
        );
    }
    let wanted = percent_decode(rest.strip_prefix("artifacts/").unwrap());
    match files.iter().find(|(path, _)| *path == wanted) {
        Some((_, content)) => (200, content.clone()),
        None => (404, r#"{"error":"no such artifact"}"#.into()),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
