//! A small forge on loopback: an HTTP server that records every request it
//! is sent and answers what the test scripts (201 by default, or 500, or a
//! rate limit), optionally after a delay. It counts the requests it is
//! serving at once, so a test can check a concurrency cap.

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the forge got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer to give: status and extra headers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Answers for the next requests, in order; then `fallback`.
    script: Mutex<VecDeque<Answer>>,
    fallback: Mutex<Option<Answer>>,
    delay: Mutex<Duration>,
    serving: AtomicUsize,
    most_at_once: AtomicUsize,
    stop: AtomicBool,
}

pub struct FakeForge {
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeForge {
    pub fn start() -> FakeForge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if serving.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = serving.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        FakeForge { url, shared }
    }

    /// The next requests get these answers, in order.
    pub fn answer_next(&self, answers: &[(u16, &[(&str, &str)])]) {
        let mut script = self.shared.script.lock().expect("script");
        for (status, headers) in answers {
            script.push_back(Answer {
                status: *status,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            });
        }
    }

    /// Every request after the scripted ones gets this status (`None`: 201).
    pub fn answer_always(&self, status: Option<u16>) {
        *self.shared.fallback.lock().expect("fallback") = status.map(|status| Answer {
            status,
            headers: Vec::new(),
        });
    }

    /// Each request is answered after this long.
    pub fn delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("delay") = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }

    /// The statuses posted for one context, as (state, description), in the
    /// order they came.
    pub fn statuses(&self, context: &str) -> Vec<(String, String)> {
        self.received()
            .iter()
            .filter(|r| r.body["context"] == context || r.body["name"] == context)
            .map(|r| {
                (
                    r.body["state"].as_str().unwrap_or_default().to_string(),
                    r.body["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// The most requests it was serving at once.
    pub fn most_at_once(&self) -> usize {
        self.shared.most_at_once.load(Ordering::SeqCst)
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    // One request per connection: the answer closes it.
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let now = shared.serving.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_at_once.fetch_max(now, Ordering::SeqCst);
    shared.received.lock().expect("received").push(Received {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let delay = *shared.delay.lock().expect("delay");
    std::thread::sleep(delay);
    let answer = shared
        .script
        .lock()
        .expect("script")
        .pop_front()
        .or_else(|| shared.fallback.lock().expect("fallback").clone())
        .unwrap_or(Answer {
            status: 201,
            headers: Vec::new(),
        });
    let text = if answer.status < 300 {
        r#"{"id":1}"#.to_string()
    } else {
        format!(r#"{{"message":"scripted answer {}"}}"#, answer.status)
    };
    let mut response = format!(
        "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        text.len()
    );
    for (name, value) in &answer.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&text);
    shared.serving.fetch_sub(1, Ordering::SeqCst);
    let _ = writer.write_all(response.as_bytes());
    let _ = writer.flush();
}
