//! Complete logs: a step that writes far faster than its output can be
//! sent loses nothing; the worker makes it wait instead. A megatron killed
//! while a log streams keeps every line it acknowledged, and a chunk sent
//! again is stored once.

use crate::common::system::{reply, GitRepo, Megatron, Worker};
use std::io::Read;
use std::time::Duration;

#[test]
fn a_step_printing_a_hundred_megabytes_stores_every_byte() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new(
        "loud",
        r#"constructicon = #{
    builders: #{ loud: #{ commands: ["seq 1 14000000"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("loud-loud", serde_json::json!({}));
    let build = megatron.wait_finished(id, Duration::from_secs(240));
    assert_eq!(build["result"], "success", "{build}");
    let mut response = ureq::get(&format!("{}/api/v1/builds/{id}/steps/1/log", megatron.url))
        .header(
            "authorization",
            &format!("Bearer {}", megatron.admin_token()),
        )
        .call()
        .expect("the log");
    let mut log = Vec::new();
    response
        .body_mut()
        .as_reader()
        .read_to_end(&mut log)
        .expect("read");
    // Every line, in order, and nothing else: 1..=14,000,000.
    let mut expected = 1u64;
    for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let number: u64 = std::str::from_utf8(line)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("line {expected} is {:?}", String::from_utf8_lossy(line)));
        assert_eq!(number, expected, "a line is missing or out of order");
        expected += 1;
    }
    assert_eq!(expected, 14_000_001, "lines stored: {}", expected - 1);
    assert_eq!(build["steps"][1]["log_bytes"], log.len());
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
        commands: ["i=1; while [ $i -le 4000 ]; do echo line $i; i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.1; done; true"],
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
            // step goes on printing.
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
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
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
