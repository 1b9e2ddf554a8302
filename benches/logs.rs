//! Log throughput, worker → megatron: one release worker runs a step that
//! prints about 500 MB as fast as `seq` can (57,000,000 numbered lines), on
//! loopback. Prints the step's time and the rate its output was stored at,
//! and the megatron's and the worker's resident memory, idle and at their
//! peak while the log streams (sampled every 20 ms), and what the data dir
//! grew by. Checks that every byte arrived.
//!
//! Run with `cargo bench --bench logs` (or `scripts/bench`). Not a test: it
//! prints figures and asserts nothing about them but the log's size.

mod support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{agent, Killed, BIN};

const LINES: u64 = 57_000_000;

const CONFIG: &str = r#"constructicon = #{
    builders: #{ loud: #{ commands: ["seq 1 57000000"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#;

fn json(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Value {
    let mut response = response.expect("request");
    let text = response.body_mut().read_to_string().expect("body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => total += dir_bytes(&entry.path()),
            Ok(meta) => total += meta.len(),
            Err(_) => {}
        }
    }
    total
}

/// The bytes `seq 1 n` prints.
fn seq_bytes(n: u64) -> u64 {
    let (mut total, mut low, mut digits) = (0, 1, 1);
    while low <= n {
        let high = (low * 10 - 1).min(n);
        total += (high - low + 1) * (digits + 1);
        low *= 10;
        digits += 1;
    }
    total
}

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    std::fs::write(
        dir.join("cybertron.rhai"),
        r#"cybertron = #{ workers: #{ w1: #{} }, max_log_mb: 1024, repos: #{ allow: ["/*"] } };"#,
    )
    .expect("cybertron");
    let repo = dir.join("loud");
    support::git_repo(&repo, CONFIG);
    let (_megatron, url, megatron_pid) = support::start_megatron(dir, "warn");
    let agent = agent();
    let admin = std::fs::read_to_string(dir.join("data/admin-token")).expect("admin token");
    let bearer = format!("Bearer {}", admin.trim());
    let added = json(
        agent
            .post(&format!("{url}/api/v1/repos"))
            .header("authorization", &bearer)
            .send_json(json!({ "url": repo.display().to_string() })),
    );
    assert!(added["error"].is_null(), "{added}");
    let token = json(
        agent
            .post(&format!("{url}/api/v1/workers/w1/token"))
            .header("authorization", &bearer)
            .send_json(json!({})),
    );
    let token = token["token"].as_str().expect("token").to_string();
    let worker = Command::new(BIN)
        .args([
            "worker",
            "--megatron",
            &url,
            "--name",
            "w1",
            "--token",
            &token,
        ])
        .arg("--workdir")
        .arg(dir.join("work"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("worker");
    let worker_pid = worker.id();
    let _worker = Killed(worker);
    std::thread::sleep(Duration::from_millis(500));
    let idle = (rss_kb(megatron_pid), rss_kb(worker_pid));
    let disk_before = dir_bytes(&dir.join("data"));

    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (build, peaks) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peaks = idle;
            while !done.load(Ordering::Relaxed) {
                peaks.0 = peaks.0.max(rss_kb(megatron_pid));
                peaks.1 = peaks.1.max(rss_kb(worker_pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peaks
        });
        let forced = json(
            agent
                .post(&format!("{url}/api/v1/builders/loud-loud/force"))
                .header("authorization", &bearer)
                .send_json(json!({})),
        );
        let id = forced["build"].as_u64().expect("build id");
        let build = loop {
            let build = json(agent.get(&format!("{url}/api/v1/builds/{id}")).call());
            if build["state"] == "finished" {
                break build;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        done.store(true, Ordering::Relaxed);
        (build, sampler.join().expect("sampler"))
    });
    let whole = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = (rss_kb(megatron_pid), rss_kb(worker_pid));
    let step = &build["steps"][1];
    let bytes = step["log_bytes"].as_u64().unwrap_or(0);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(bytes, seq_bytes(LINES), "every byte of the log arrived");
    let ms = step["finished"].as_u64().unwrap_or(0) - step["started"].as_u64().unwrap_or(0);
    let grown = dir_bytes(&dir.join("data")) - disk_before;
    let mb = |b: u64| b as f64 / 1e6;
    println!("log throughput (release; one worker on loopback; `seq 1 {LINES}`)");
    println!(
        "  {:.1} MB stored in {:.2} s of step time: {:.0} MB/s ({:.2} s force -> finished)",
        mb(bytes),
        ms as f64 / 1000.0,
        mb(bytes) / (ms as f64 / 1000.0),
        whole.as_secs_f64()
    );
    println!(
        "  megatron RSS: {:.1} MB idle, {:.1} MB peak while streaming, {:.1} MB after",
        idle.0 as f64 / 1024.0,
        peaks.0 as f64 / 1024.0,
        after.0 as f64 / 1024.0
    );
    println!(
        "  worker RSS:   {:.1} MB idle, {:.1} MB peak while streaming, {:.1} MB after",
        idle.1 as f64 / 1024.0,
        peaks.1 as f64 / 1024.0,
        after.1 as f64 / 1024.0
    );
    println!(
        "  data dir grew by {:.1} MB ({:.3}x the log)",
        mb(grown),
        grown as f64 / bytes as f64
    );
    println!("  targets: >= 200 MB/s; the megatron back within 10 MB of idle after the log");
}
