//! 1,000 idle workers long-polling one release megatron: each a thread of
//! this process that claims (`POST /api/v1/worker/claim`, held up to the
//! megatron's claim wait) and claims again, as a worker does with nothing
//! to run. Prints the megatron's CPU over 30 s (as a share of one core) and
//! its resident memory, idle before and with the 1,000 connected.
//!
//! Run with `cargo bench --bench idle_workers` (or `scripts/bench`). Not a
//! test: it prints figures.

mod support;

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::agent;

const WORKERS: usize = 1000;
const WINDOW: Duration = Duration::from_secs(30);

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 14th
    // field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (ticks(11) + ticks(12)) as f64 / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let names: Vec<String> = (0..WORKERS).map(|i| format!("idle-{i}")).collect();
    let workers: Vec<String> = names.iter().map(|n| format!("\"{n}\": #{{}}")).collect();
    std::fs::write(
        dir.join("cybertron.rhai"),
        format!(
            "cybertron = #{{ workers: #{{ {} }}, repos: #{{ allow: [\"/*\"] }} }};",
            workers.join(", ")
        ),
    )
    .expect("cybertron");
    let (megatron, url, pid) = support::start_megatron(dir, "warn");
    let admin = std::fs::read_to_string(dir.join("data/admin-token")).expect("admin token");
    let bearer = format!("Bearer {}", admin.trim());
    let http = agent();
    let tokens: Vec<String> = names
        .iter()
        .map(|name| {
            let mut response = http
                .post(&format!("{url}/api/v1/workers/{name}/token"))
                .header("authorization", &bearer)
                .send_json(json!({}))
                .expect("token");
            let body: Value =
                serde_json::from_str(&response.body_mut().read_to_string().expect("body"))
                    .expect("json");
            body["token"].as_str().expect("token").to_string()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (_, idle_rss) = proc_stat(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let claims = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (name, token) in names.iter().zip(tokens) {
        let (url, name, stop, claims) = (url.clone(), name.clone(), stop.clone(), claims.clone());
        threads.push(
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(90)))
                        .build()
                        .into();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = agent
                            .post(&format!("{url}/api/v1/worker/claim"))
                            .header("x-constructicon-worker", &name)
                            .header("authorization", &format!("Bearer {token}"))
                            .send_json(json!({ "wait_ms": 30000 }));
                        claims.fetch_add(1, Ordering::Relaxed);
                        if answer.is_err() {
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                })
                .expect("thread"),
        );
    }
    // Let every worker connect and settle into its long-poll.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_before, _) = proc_stat(pid);
    let claims_before = claims.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(WINDOW);
    let (cpu_after, busy_rss) = proc_stat(pid);
    let elapsed = started.elapsed().as_secs_f64();
    let claims_made = claims.load(Ordering::Relaxed) - claims_before;
    stop.store(true, Ordering::Relaxed);
    println!("{WORKERS} idle workers long-polling one megatron (release, loopback)");
    println!(
        "  megatron CPU: {:.2} % of a core over {:.0} s ({claims_made} claims answered: the long-polls ending empty and renewed)",
        (cpu_after - cpu_before) / elapsed * 100.0,
        elapsed
    );
    println!(
        "  megatron RSS: {:.1} MB idle, {:.1} MB with the {WORKERS} connected",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0
    );
    println!("  targets: < 1 % of a core, < 64 MB");
    // The threads would end only after their current long-poll: the
    // megatron goes first, and the process exits without waiting for them.
    drop(megatron);
    drop(temp);
    std::process::exit(0);
}
