//! Commit statuses at scale: 100 builders of one repo each build one commit
//! (one `true` step) on 2 release workers, and a fake forge on loopback
//! that answers every post after a delay (20 ms, a forge's usual answer
//! time) records them. Prints the time from the first force until the
//! forge holds all 100 final statuses, the posts it took, and the most it
//! served at once (the megatron's cap per forge is 4).
//!
//! Run with `cargo bench --bench statuses` (or `scripts/bench`). Not a
//! test: it prints figures.

mod support;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{agent, Killed, BIN};

const BUILDERS: usize = 100;
const FORGE_DELAY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Forge {
    /// context → the last state posted.
    last: Mutex<HashMap<String, String>>,
    posts: AtomicUsize,
    serving: AtomicUsize,
    most: AtomicUsize,
}

fn serve_forge(listener: TcpListener, forge: Arc<Forge>) {
    for stream in listener.incoming().flatten() {
        let forge = forge.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let header = line.trim_end().to_ascii_lowercase();
                if header.is_empty() {
                    break;
                }
                if let Some(v) = header.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let now = forge.serving.fetch_add(1, Ordering::SeqCst) + 1;
            forge.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(FORGE_DELAY);
            let status: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let (Some(context), Some(state)) =
                (status["context"].as_str(), status["state"].as_str())
            {
                forge
                    .last
                    .lock()
                    .expect("last")
                    .insert(context.to_string(), state.to_string());
            }
            forge.posts.fetch_add(1, Ordering::SeqCst);
            forge.serving.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = stream.write_all(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        });
    }
}

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let forge_url = format!("http://{}", listener.local_addr().expect("address"));
    let forge = Arc::new(Forge::default());
    {
        let forge = forge.clone();
        std::thread::spawn(move || serve_forge(listener, forge));
    }
    std::fs::write(dir.join("token"), "bench-token").expect("token");
    std::fs::write(
        dir.join("cybertron.rhai"),
        format!(
            r#"cybertron = #{{ workers: #{{ w1: #{{}}, w2: #{{}} }}, repos: #{{ allow: ["/*"] }},
    forges: #{{ fake: #{{ type: "github", api: "{forge_url}", repos: ["/*"], token: #{{ file: "{}" }} }} }} }};"#,
            dir.join("token").display()
        ),
    )
    .expect("cybertron");
    let builders: Vec<String> = (0..BUILDERS)
        .map(|i| format!(r#"b{i}: #{{ commands: ["true"], schedulers: ["force"] }}"#))
        .collect();
    let config = format!(
        "constructicon = #{{ builders: #{{ {} }}, schedulers: #{{ force: #{{ type: \"force\" }} }} }};",
        builders.join(", ")
    );
    let repo = dir.join("acme").join("app");
    support::git_repo(&repo, &config);
    let (_megatron, url, _pid) = support::start_megatron(dir, "warn");
    let agent = agent();
    let admin = std::fs::read_to_string(dir.join("data/admin-token")).expect("admin token");
    let bearer = format!("Bearer {}", admin.trim());
    let post = |path: &str, body: Value| -> Value {
        let mut response = agent
            .post(&format!("{url}{path}"))
            .header("authorization", &bearer)
            .send_json(body)
            .expect("post");
        serde_json::from_str(&response.body_mut().read_to_string().expect("body"))
            .unwrap_or(Value::Null)
    };
    let added = post(
        "/api/v1/repos",
        json!({ "url": repo.display().to_string() }),
    );
    assert!(added["error"].is_null(), "{added}");
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let token = post(&format!("/api/v1/workers/{name}/token"), json!({}));
        let child = Command::new(BIN)
            .args(["worker", "--megatron", &url, "--name", name, "--token"])
            .arg(token["token"].as_str().expect("token"))
            .arg("--workdir")
            .arg(dir.join(format!("work-{name}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("worker");
        workers.push(Killed(child));
    }
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    for i in 0..BUILDERS {
        post(&format!("/api/v1/builders/app-b{i}/force"), json!({}));
    }
    let forced = started.elapsed();
    let finished = |state: &str| {
        forge
            .last
            .lock()
            .expect("last")
            .values()
            .filter(|s| *s == state)
            .count()
    };
    while finished("success") < BUILDERS {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "statuses never arrived"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let all = started.elapsed();
    println!(
        "commit statuses (release; {BUILDERS} builders on one commit, 2 workers, a forge answering in {} ms)",
        FORGE_DELAY.as_millis()
    );
    println!(
        "  all {BUILDERS} final statuses posted {:.2} s after the first force (forcing took {:.2} s)",
        all.as_secs_f64(),
        forced.as_secs_f64()
    );
    println!(
        "  {} posts in all ({:.1} per build: states still waiting are replaced, not queued), at most {} at once",
        forge.posts.load(Ordering::SeqCst),
        forge.posts.load(Ordering::SeqCst) as f64 / BUILDERS as f64,
        forge.most.load(Ordering::SeqCst)
    );
}
