//! Complete logs: a step that writes far faster than its output can be
//! sent loses nothing; the worker makes it wait instead.

use crate::common::system::{GitRepo, Megatron, Worker};
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
