//! Complete logs: a step that writes far faster than its output can be
//! sent loses nothing; the worker makes it wait instead. A megatron killed
//! while a log streams keeps every line it acknowledged, and a chunk sent
//! again is stored once.

use crate::common::system::{reply, GitRepo, Megatron, Worker};
use std::io::Read;
use std::time::Duration;

/// A process's resident memory now and its peak, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The bytes the files under `dir` take.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn read_whole_log(megatron: &Megatron, id: u64, step: u32) -> Vec<u8> {
    let mut response = ureq::get(&format!(
        "{}/api/v1/builds/{id}/steps/{step}/log",
        megatron.url
    ))
    .header(
        "authorization",
        &format!("Bearer {}", megatron.admin_token()),
    )
    .call()
    .expect("the log");
    let mut log = Vec::new();
    response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .read_to_end(&mut log)
        .expect("read");
    log
}

#[test]
fn a_step_printing_two_hundred_megabytes_stores_every_byte_and_reads_stream() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new(
        "loud",
        r#"constructicon = #{
    builders: #{ loud: #{ commands: ["seq 1 25000000"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let pid = megatron.pid();
    let data = megatron.dir.join("data");
    let (before_rss, _) = memory_kib(pid);
    let before_disk = dir_bytes(&data);
    let id = megatron.force("loud-loud", serde_json::json!({}));
    let build = megatron.wait_finished(id, Duration::from_secs(300));
    assert_eq!(build["result"], "success", "{build}");
    let log_bytes = build["steps"][1]["log_bytes"].as_u64().expect("log_bytes");
    assert!(log_bytes > 200 << 20, "{log_bytes}");

    // The data dir grows by about the log's size, not twice it.
    let grown = dir_bytes(&data) - before_disk;
    assert!(
        grown < log_bytes + log_bytes / 5,
        "the data dir grew by {grown} bytes for a log of {log_bytes}"
    );
    // Memory returns after a large log.
    let (after_rss, _) = memory_kib(pid);
    assert!(
        after_rss < before_rss + 32 * 1024,
        "resident memory went from {before_rss} KiB to {after_rss} KiB"
    );

    // Three readers at once: each gets every byte, and the megatron's peak
    // stays within 50 MB of where it was.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
    let (idle, _) = memory_kib(pid);
    let logs: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| read_whole_log(&megatron, id, 1)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .collect()
    });
    let (_, peak) = memory_kib(pid);
    assert!(
        peak < idle + 50 * 1024,
        "three readers took the megatron from {idle} KiB to {peak} KiB"
    );
    eprintln!(
        "log {log_bytes} B; data dir +{grown} B; rss {before_rss} -> {after_rss} KiB; three readers: {idle} -> peak {peak} KiB"
    );
    for log in &logs[1..] {
        assert!(log == &logs[0], "the readers got different logs");
    }
    let log = &logs[0];
    assert_eq!(log.len() as u64, log_bytes);
    // Every line, in order, and nothing else: 1..=25,000,000.
    let mut expected = 1u64;
    for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let number: u64 = std::str::from_utf8(line)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("line {expected} is {:?}", String::from_utf8_lossy(line)));
        assert_eq!(number, expected, "a line is missing or out of order");
        expected += 1;
    }
    assert_eq!(expected, 25_000_001, "lines stored: {}", expected - 1);
}

#[test]
fn a_runaway_log_is_cut_at_the_cap_with_a_marker_and_the_step_runs_on() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} }, max_log_mb: 1 };"#);
    let repo = GitRepo::new(
        "loud",
        r#"constructicon = #{
    builders: #{ loud: #{ commands: ["seq 1 600000; echo still running > after.txt", "cat after.txt"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("loud-loud", serde_json::json!({}));
    let build = megatron.wait_finished(id, Duration::from_secs(60));
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(build["steps"][1]["log_cut"], true, "{build}");
    let log = megatron.log(id, 1);
    assert!(
        log.ends_with("\n[constructicon: the log was cut here, at 1 MiB (cybertron's max_log_mb); the step ran on]\n"),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    let kept = log.len() - log.lines().last().map_or(0, |l| l.len() + 2);
    assert_eq!(kept, 1 << 20, "exactly the cap is kept before the marker");
    // The step ran to its end: the next step sees what it wrote last.
    assert_eq!(megatron.log(id, 2), "still running\n");
    assert_eq!(build["steps"][2]["log_cut"], false);
}

#[test]
fn kill_9_while_a_log_streams_loses_no_acknowledged_line() {
    // A lease that outlasts the megatron's absence, as the default does.
    let mut megatron = Megatron::start_with_flags(
        r#"cybertron = #{ workers: #{ w1: #{} } };"#,
        &["--lease-ms", "15000"],
    );
    let repo = GitRepo::new(
        "chatty",
        r#"constructicon = #{
    builders: #{ chatty: #{
        commands: ["i=1; while [ $i -le 4000 ]; do echo line $i; i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.2; done; true"],
        schedulers: ["force"],
    } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("chatty-chatty", serde_json::json!({}));

    // Three rounds: wait for the log to grow, note what the megatron has
    // acknowledged, kill it, start it again (once after a few seconds away),
    // and find all of it still there.
    let mut acknowledged = String::new();
    for round in 0..3 {
        let grown = acknowledged.len();
        let log = crate::common::system::wait_for(
            &format!("round {round}: the log to grow past {grown} bytes"),
            Duration::from_secs(30),
            || {
                let build = megatron.build(id);
                let log = megatron.log(id, 1);
                (build["state"] == "running" && log.len() > grown).then_some(log)
            },
        );
        acknowledged = log;
        if round == 1 {
            // Once, the megatron stays away for a few seconds while the
            // step goes on printing (it prints for 8 s, so it still runs
            // when the megatron is back, however slow the restart).
            megatron.kill9();
            std::thread::sleep(Duration::from_secs(3));
        }
        megatron.restart();
        let after = megatron.log(id, 1);
        assert!(
            after.starts_with(&acknowledged),
            "round {round}: {} bytes acknowledged, {} kept after kill -9",
            acknowledged.len(),
            after.len()
        );
    }

    let build = megatron.wait_finished(id, Duration::from_secs(60));
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(build["attempts"], 1, "the build kept its lease: {build}");
    let log = megatron.log(id, 1);
    let expected: String = (1..=4000).map(|i| format!("line {i}\n")).collect();
    assert!(log.starts_with(&acknowledged));
    assert_eq!(log.len(), expected.len(), "every line once");
    assert_eq!(log, expected, "every line once, in order");
}

#[test]
fn a_chunk_sent_again_is_stored_once() {
    // No heartbeats are sent: a lease long enough for a busy machine.
    let megatron = Megatron::start_with_flags(
        r#"cybertron = #{ workers: #{ w1: #{} } };"#,
        &["--lease-ms", "30000"],
    );
    let repo = GitRepo::new(
        "again",
        r#"constructicon = #{
    builders: #{ again: #{ commands: ["true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let token = megatron.token("w1");
    let id = megatron.force("again-again", serde_json::json!({}));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let (status, job) = reply(
        agent
            .post(&format!("{}/api/v1/worker/claim", megatron.url))
            .header("x-constructicon-worker", "w1")
            .header("authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({ "wait_ms": 5000 })),
    );
    assert_eq!((status, job["build"].as_u64()), (200, Some(id)), "{job}");
    let lease = job["lease"].as_str().expect("lease").to_string();
    let send = |offset: &str, body: &str| {
        let (status, answer) = reply(
            agent
                .post(&format!(
                    "{}/api/v1/worker/builds/{id}/steps/1/log?lease={lease}{offset}",
                    megatron.url
                ))
                .header("x-constructicon-worker", "w1")
                .header("authorization", &format!("Bearer {token}"))
                .send(body.as_bytes()),
        );
        assert_eq!(status, 200, "{answer}");
    };
    send("&offset=0", "one\n");
    send("&offset=0", "one\n"); // its answer was lost: sent again
    send("&offset=4", "two\n");
    send("&offset=4", "two\nthree\n"); // again, with more behind it
    send("&offset=14", "four\n");
    send("", "five\n"); // a sender that gives no offset appends
    assert_eq!(megatron.log(id, 1), "one\ntwo\nthree\nfour\nfive\n");
    let step = &megatron.build(id)["steps"][1];
    assert_eq!(step["log_bytes"], 24, "{step}");
    assert_eq!(step["log_lines"], 5, "{step}");
}
