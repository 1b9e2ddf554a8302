//! Triggers, measured as users run them (release megatron and worker on
//! loopback):
//! - 200 registered repos polled every second: the megatron's CPU time per
//!   poll cycle (from /proc, user + system);
//! - a push webhook to the build's first configured step starting, 10 times:
//!   median and max.
//!
//! Run with `cargo bench --bench triggers` (or `scripts/bench`).

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{agent, Killed, BIN};

const SECRET: &str = "bench-secret";

fn json_of(mut response: ureq::http::Response<ureq::Body>) -> Value {
    let text = response.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn commit(dir: &Path, name: &str, contents: &str) -> String {
    let repo = match git2::Repository::open(dir) {
        Ok(repo) => repo,
        Err(_) => {
            let mut options = git2::RepositoryInitOptions::new();
            options.initial_head("main");
            git2::Repository::init_opts(dir, &options).expect("init")
        }
    };
    std::fs::write(dir.join(name), contents).expect("write");
    let mut index = repo.index().expect("index");
    index.add_path(Path::new(name)).expect("add");
    index.write().expect("index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let signature = git2::Signature::now("bench", "bench@example.invalid").expect("sig");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &signature, &signature, "c", &tree, &parents)
        .expect("commit")
        .to_string()
}

/// user + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 after ")".
    (ticks(11) + ticks(12)) / 100.0
}

const CONFIG: &str = r#"constructicon = #{
    builders: #{ on_push: #{ commands: ["true"], schedulers: ["commit"] } },
    schedulers: #{ commit: #{ type: "commit", branch_regex: "main" } },
};"#;

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    std::fs::write(
        dir.join("cybertron.rhai"),
        format!(
            r#"cybertron = #{{ workers: #{{ w1: #{{}} }}, poll_interval: 1, webhook_secret: #{{ file: "{}" }}, repos: #{{ allow: ["/*"] }} }};"#,
            dir.join("secret").display()
        ),
    )
    .expect("cybertron");
    let (_megatron, url, pid) = support::start_megatron(dir, "error");
    let agent = agent();

    let admin = std::fs::read_to_string(dir.join("data/admin-token")).expect("admin");
    // 200 repos.
    let repos = dir.join("repos");
    for i in 0..200 {
        let path = repos.join(format!("r{i}"));
        std::fs::create_dir_all(&path).expect("mkdir");
        commit(&path, "constructicon.rhai", CONFIG);
        let added = json_of(
            agent
                .post(&format!("{url}/api/v1/repos"))
                .header("authorization", &format!("Bearer {}", admin.trim()))
                .send_json(json!({ "url": path.display().to_string() }))
                .expect("add"),
        );
        assert!(added["error"].is_null(), "{added}");
    }
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_seconds(pid);
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let per_cycle = (cpu_seconds(pid) - before) / window.as_secs_f64();

    // A worker, then pushes.
    let token = json_of(
        agent
            .post(&format!("{url}/api/v1/workers/w1/token"))
            .header("authorization", &format!("Bearer {}", admin.trim()))
            .send_json(json!({}))
            .expect("token"),
    )["token"]
        .as_str()
        .expect("token")
        .to_string();
    let _worker = Killed(
        Command::new(BIN)
            .args([
                "worker",
                "--megatron",
                &url,
                "--name",
                "w1",
                "--token",
                &token,
                "--workdir",
            ])
            .arg(dir.join("work"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("worker"),
    );
    let target = repos.join("r7");
    let mut latencies = Vec::new();
    // Where each push's time went, from the build's own timestamps (ms):
    // push sent → build queued, queued → claimed, claimed → checkout done.
    let mut segments: Vec<[u64; 3]> = Vec::new();
    for round in 0..10 {
        let sha = commit(&target, "change", &round.to_string());
        let body = json!({
            "ref": "refs/heads/main",
            "after": sha,
            "repository": { "clone_url": target.display().to_string(), "html_url": "x", "ssh_url": "y" },
        })
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac");
        mac.update(body.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let started = Instant::now();
        let sent_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let response = agent
            .post(&format!("{url}/api/v1/hooks/push"))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", &format!("sha256={signature}"))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .expect("push");
        assert_eq!(response.status().as_u16(), 202);
        loop {
            let builds = json_of(
                agent
                    .get(&format!("{url}/api/v1/builders/r7-on_push/builds?limit=1"))
                    .call()
                    .expect("builds"),
            );
            let build = &builds["builds"][0];
            if build["revision"] == sha.as_str() && !build["steps"][1]["started"].is_null() {
                let at = |v: &Value| v.as_u64().unwrap_or(0);
                let (queued, claimed) = (at(&build["created"]), at(&build["started"]));
                let checked_out = at(&build["steps"][0]["finished"]);
                segments.push([
                    queued.saturating_sub(sent_ms),
                    claimed.saturating_sub(queued),
                    checked_out.saturating_sub(claimed),
                ]);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no build for the push: {builds}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    latencies.sort();
    println!("trigger benchmark (release; megatron + 1 worker on loopback)");
    println!(
        "  200 repos polled every second: {:.0} ms of megatron CPU per poll cycle",
        per_cycle * 1000.0
    );
    println!(
        "  push webhook -> first step started, 10 pushes: median {:.0} ms, max {:.0} ms",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
    let median_of = |i: usize| {
        let mut values: Vec<u64> = segments.iter().map(|s| s[i]).collect();
        values.sort();
        values[values.len() / 2]
    };
    println!(
        "    of which (medians): push sent -> build queued {} ms (fetch, evaluate, queue), queued -> claimed {} ms, claimed -> checkout done {} ms",
        median_of(0),
        median_of(1),
        median_of(2)
    );
    println!("  target: push webhook -> first step < 10 ms");
}
