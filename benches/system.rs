//! The whole system, measured as users run it: a release megatron process
//! and two release worker processes on loopback, a real git repo, real
//! checkouts.
//!
//! - 200 trivial builds (one `true` step) forced at once across 2 workers:
//!   builds per second, from the first force to the last result.
//! - force → complete of one trivial build on an idle system, 20 times:
//!   median and max.
//! - the megatron's RSS idle and after the 200, and the CPU the megatron
//!   and the workers spend per build over the 200.
//! - `constructicon force --wait`, 10 times: how long after the build's
//!   recorded end the command exits.
//!
//! Run with `cargo bench --bench system` (or `scripts/bench`). Not a test:
//! it prints figures and asserts nothing about them.

mod support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{agent, bin, Killed};

fn post(agent: &ureq::Agent, url: &str, body: &Value, bearer: Option<&str>) -> Value {
    let mut request = agent.post(url);
    if let Some(token) = bearer {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send_json(body).expect("post");
    let text = response.body_mut().read_to_string().expect("body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn get(agent: &ureq::Agent, url: &str) -> Value {
    let mut response = agent.get(url).call().expect("get");
    let text = response.body_mut().read_to_string().expect("body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// CPU time (user + system) a process has used so far, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / per_second
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A `/proc/PID/status` line in kB: `VmRSS:` is all resident memory, code
/// mapped from the binary and shared libraries included; `RssAnon:` is the
/// process's own (heap, stacks).
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Worker protocol calls answered so far, from `/metrics`.
fn worker_calls(agent: &ureq::Agent, url: &str) -> f64 {
    let mut response = agent
        .get(&format!("{url}/metrics"))
        .call()
        .expect("metrics");
    let text = response.body_mut().read_to_string().expect("metrics body");
    text.lines()
        .filter(|l| {
            l.starts_with("constructicon_http_requests_total{") && l.contains("/api/v1/worker/")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const CONFIG: &str = r#"constructicon = #{
    builders: #{
        trivial: #{ commands: ["true"], schedulers: ["force"] },
        big: #{ commands: ["head -c 200000000 /dev/zero > big.bin"], upload: #{ "big.bin": "big.bin" }, schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#;

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    std::fs::write(
        dir.join("cybertron.rhai"),
        r#"cybertron = #{ workers: #{ w1: #{}, w2: #{} }, horizon: 1000, repos: #{ allow: ["/*"] } };"#,
    )
    .expect("cybertron");
    let repo = dir.join("bench");
    support::git_repo(&repo, CONFIG);

    let (_megatron, url, megatron_pid) = support::start_megatron(dir, "warn");
    let agent = agent();

    let admin = std::fs::read_to_string(dir.join("data/admin-token")).expect("admin token");
    let added = post(
        &agent,
        &format!("{url}/api/v1/repos"),
        &json!({ "url": repo.display().to_string() }),
        Some(admin.trim()),
    );
    assert!(added["error"].is_null(), "{added}");
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let token = post(
            &agent,
            &format!("{url}/api/v1/workers/{name}/token"),
            &json!({}),
            Some(admin.trim()),
        );
        let token = token["token"].as_str().expect("token").to_string();
        let child = Command::new(bin())
            .args([
                "worker",
                "--megatron",
                &url,
                "--name",
                name,
                "--token",
                &token,
                "--workdir",
            ])
            .arg(dir.join(format!("work-{name}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("worker");
        workers.push(Killed(child));
    }
    // Let both workers clone once and sit in their claim long-polls.
    let force = |agent: &ureq::Agent| -> u64 {
        let body = post(
            agent,
            &format!("{url}/api/v1/builders/bench-trivial/force"),
            &json!({}),
            Some(admin.trim()),
        );
        body["build"].as_u64().expect("build id")
    };
    // Followed, not polled: the megatron answers when the build has
    // finished (polling every millisecond took CPU from the system measured).
    let wait = |agent: &ureq::Agent, id: u64| loop {
        let build = get(agent, &format!("{url}/api/v1/builds/{id}?wait=true"));
        if build["state"] == "finished" {
            assert_eq!(build["result"], "success", "{build}");
            return;
        }
    };
    for _ in 0..4 {
        let id = force(&agent);
        wait(&agent, id);
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kb(megatron_pid);
    let idle_anon = status_kb(megatron_pid, "RssAnon:");

    // force → complete on an idle system.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let id = force(&agent);
        wait(&agent, id);
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    latencies.sort();

    // 200 at once.
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.0.id()).collect();
    let cpu_before: Vec<u64> = std::iter::once(megatron_pid)
        .chain(worker_pids.iter().copied())
        .map(cpu_ms)
        .collect();
    // For a profile of the 200 alone: with BENCH_PROFILE_PAUSE_S=N set, the
    // megatron's pid is printed and the bench waits N seconds before the
    // 200 (attach `perf record -g -p PID` then).
    if let Some(pause) = std::env::var("BENCH_PROFILE_PAUSE_S")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!("profile now: megatron pid {megatron_pid}");
        std::thread::sleep(Duration::from_secs(pause));
    }
    let calls_before = worker_calls(&agent, &url);
    let started = Instant::now();
    let ids: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| (0..50).map(|_| force(&agent)).collect::<Vec<u64>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("forcing"))
            .collect()
    });
    let forced = started.elapsed();
    for id in &ids {
        wait(&agent, *id);
    }
    let total = started.elapsed();
    let busy_rss = rss_kb(megatron_pid);
    let busy_anon = status_kb(megatron_pid, "RssAnon:");
    let calls = worker_calls(&agent, &url) - calls_before;
    let cpu_spent: Vec<u64> = std::iter::once(megatron_pid)
        .chain(worker_pids.iter().copied())
        .map(cpu_ms)
        .zip(&cpu_before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();

    // `force --wait`: from the build's recorded end to the command's exit.
    std::thread::sleep(Duration::from_millis(200));
    let mut lags = Vec::new();
    for _ in 0..10 {
        let output = Command::new(bin())
            .args(["force", "bench-trivial", "--wait", "--megatron", &url])
            .env("CONSTRUCTICON_USER_TOKEN", admin.trim())
            .stderr(Stdio::null())
            .output()
            .expect("force --wait");
        let exited = now_ms();
        assert!(output.status.success(), "force --wait failed");
        let text = String::from_utf8_lossy(&output.stdout);
        let id: u64 = text
            .split("(build ")
            .nth(1)
            .and_then(|rest| rest.split(')').next()?.parse().ok())
            .expect("the build's id in force's output");
        let build = get(&agent, &format!("{url}/api/v1/builds/{id}"));
        let finished = build["finished"].as_u64().expect("finished");
        lags.push(exited.saturating_sub(finished));
        std::thread::sleep(Duration::from_millis(50));
    }
    lags.sort();

    // A 200 MB artifact: up through the worker, down over HTTP.
    let body = post(
        &agent,
        &format!("{url}/api/v1/builders/bench-big/force"),
        &json!({}),
        Some(admin.trim()),
    );
    let big = body["build"].as_u64().expect("big build");
    wait(&agent, big);
    let build = get(&agent, &format!("{url}/api/v1/builds/{big}"));
    let upload = build["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == "upload"))
        .map(|s| {
            s["finished"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(s["started"].as_u64().unwrap_or(0))
        })
        .unwrap_or(0);
    let started = Instant::now();
    let mut response = agent
        .get(&format!("{url}/api/v1/builds/{big}/artifacts/big.bin"))
        .call()
        .expect("download");
    let downloaded =
        std::io::copy(&mut response.body_mut().as_reader(), &mut std::io::sink()).expect("read");
    let download = started.elapsed();
    let peak = std::fs::read_to_string(format!("/proc/{megatron_pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);

    println!("system benchmark (release; megatron + 2 workers on loopback; one `true` step with checkout)");
    println!(
        "  200 builds forced at once: {:.0} builds/s ({:.2} s in all; forcing took {:.2} s)",
        200.0 / total.as_secs_f64(),
        total.as_secs_f64(),
        forced.as_secs_f64()
    );
    println!(
        "  force -> complete, idle, 20 runs: median {:.1} ms, max {:.1} ms",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
    println!(
        "  megatron RSS: {} MB idle, {} MB after the 200 (its own memory, RssAnon: {:.1} MB idle, {:.1} MB after; the rest is code mapped from the binary and libraries)",
        idle_rss / 1024,
        busy_rss / 1024,
        idle_anon as f64 / 1024.0,
        busy_anon as f64 / 1024.0
    );
    println!(
        "  worker protocol calls per build over the 200 (heartbeats and empty long-polls included): {:.1}",
        calls / 200.0
    );
    println!(
        "  200 MB artifact: upload {:.0} MB/s (the upload step, {} ms), download {:.0} MB/s ({} bytes in {:.2} s)",
        200.0 / (upload.max(1) as f64 / 1000.0),
        upload,
        downloaded as f64 / 1e6 / download.as_secs_f64(),
        downloaded,
        download.as_secs_f64()
    );
    println!("  megatron peak RSS over the whole run: {} MB", peak / 1024);
    println!(
        "  CPU per build over the 200: megatron {:.2} ms, workers {:.2} ms",
        cpu_spent[0] as f64 / 200.0,
        cpu_spent[1..].iter().sum::<u64>() as f64 / 200.0
    );
    println!(
        "  force --wait exits after the build's end, 10 runs: median {} ms, max {} ms",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    println!(
        "  targets: >= 270 builds/s; force -> complete median < 8 ms, none over 50 ms; megatron < 12 MB idle, < 16 MB after the 200; force --wait within 5 ms"
    );
    drop(workers);
}
