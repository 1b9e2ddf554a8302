//! End-to-end builds: a real megatron, real workers, real git repos, HTTP
//! over loopback. Forced builds with parameters, warnings, failures,
//! timeouts, cancel, resources and one build per worker.

use crate::common::system::{wait_for, GitRepo, Megatron, Worker};
use serde_json::{json, Value};
use std::time::Duration;

pub const CYBERTRON: &str = r#"cybertron = #{
    workers: #{ w1: #{ platform: "linux" }, w2: #{ platform: "linux" } },
    resources: ["lab"],
};"#;

const LONG: Duration = Duration::from_secs(20);

fn step_results(build: &Value) -> Vec<(String, Value)> {
    build["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_string(),
                s["result"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_forced_build_gets_its_parameters_literally() {
    let repo = GitRepo::new(
        "hello",
        r#"constructicon = #{
    builders: #{
        params: #{
            commands: [
                "printf '%s\n' {greeting} > sub.txt",
                "printf '%s\n' \"$greeting\" > env.txt",
                "cat sub.txt env.txt; echo count={count}",
                "test ! -e pwned",
            ],
            schedulers: ["force"],
        },
        quiet: #{ commands: ["true"] },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ greeting: "hello", count: "3" } } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    let view = megatron.add_repo(&repo.url());
    assert_eq!(
        view["builders"],
        json!(["hello-params", "hello-quiet"]),
        "{view}"
    );
    assert!(view["error"].is_null(), "{view}");
    let _worker = Worker::start(&megatron, "w1");

    let hostile = r#"it's "quoted" $(touch pwned) `touch pwned` ; touch pwned"#;
    let id = megatron.force("hello-params", json!({ "greeting": hostile }));
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(
        build["parameters"],
        json!({ "greeting": hostile, "count": "3" })
    );
    assert_eq!(build["worker"], "w1");
    assert_eq!(build["number"], 1);
    let names: Vec<String> = step_results(&build).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "checkout",
            "command 1",
            "command 2",
            "command 3",
            "command 4"
        ]
    );
    assert_eq!(
        megatron.log(id, 3),
        format!("{hostile}\n{hostile}\ncount=3\n")
    );
    assert!(build["steps"][1]["started"].as_u64().is_some());
    assert!(build["provenance"]["config_hash"]
        .as_str()
        .is_some_and(|h| h.len() == 64));
    assert_eq!(build["provenance"]["config_commit"], build["revision"]);

    // Bad requests are refused and change nothing.
    let (status, body) = megatron.post(
        "/api/v1/builders/hello-params/force",
        &json!({ "parameters": { "nope": "x" } }),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "unknown parameter \"nope\" for builder hello-params (declared: count, greeting)"
    );
    let (status, body) = megatron.post("/api/v1/builders/hello-quiet/force", &json!({}));
    assert_eq!(
        (status, body["error"].as_str()),
        (
            400,
            Some(
                "builder hello-quiet cannot be forced: none of its schedulers is a force scheduler"
            )
        )
    );
    let (status, _) = megatron.post("/api/v1/builders/nope/force", &json!({}));
    assert_eq!(status, 404);
    let (status, body) = megatron.post(
        "/api/v1/builders/hello-params/force",
        &json!({ "parameters": 5 }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid JSON body")),
        "{body}"
    );
    let (_, builds) = megatron.get("/api/v1/builders/hello-params/builds");
    assert_eq!(builds["builds"].as_array().map(Vec::len), Some(1));
}

#[test]
fn warnings_mark_the_build_and_a_failing_step_halts_it() {
    let repo = GitRepo::new(
        "res",
        r#"constructicon = #{
    builders: #{
        warn: #{ commands: ["echo 'warning: careful'", #{ command: "echo 'WARN x'; echo 'WARN known'", warnings: ["^WARN"], suppress_warnings: ["known"] }], schedulers: ["force"] },
        quiet: #{ commands: [#{ command: "echo 'WARN known'", warnings: ["^WARN"], suppress_warnings: ["known"] }], schedulers: ["force"] },
        fail: #{ commands: ["echo one", "exit 3", "echo never"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let warn = megatron.force("res-warn", json!({}));
    let quiet = megatron.force("res-quiet", json!({}));
    let fail = megatron.force("res-fail", json!({}));

    let build = megatron.wait_finished(warn, LONG);
    assert_eq!(build["result"], "warnings");
    assert_eq!(step_results(&build)[1].1, "warnings");
    assert_eq!(step_results(&build)[2].1, "warnings");
    assert_eq!(megatron.wait_finished(quiet, LONG)["result"], "success");

    let build = megatron.wait_finished(fail, LONG);
    assert_eq!(build["result"], "failure");
    let steps = step_results(&build);
    assert_eq!(steps[2].1, "failure");
    assert_eq!(build["steps"][2]["exit_code"], 3);
    assert!(
        steps[3].1.is_null(),
        "the step after a failure does not run: {build}"
    );
    assert!(build["steps"][3]["started"].is_null());
}

#[test]
fn a_silent_step_that_ignores_sigterm_is_killed() {
    let repo = GitRepo::new(
        "slow",
        r#"constructicon = #{
    builders: #{ stuck: #{ commands: [#{ command: "trap '' TERM; echo started; sleep 30", timeout: 1 }], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let started = std::time::Instant::now();
    let id = megatron.force("slow-stuck", json!({}));
    let build = megatron.wait_finished(id, LONG);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(build["result"], "failure", "{build}");
    let reason = build["steps"][1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no output"), "{build}");
    assert_eq!(megatron.log(id, 1), "started\n");
}

#[test]
fn cancel_reaches_a_running_step_within_a_second() {
    let repo = GitRepo::new(
        "long",
        r#"constructicon = #{
    builders: #{ sleep: #{ commands: ["echo going; sleep 60", "echo never"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("long-sleep", json!({}));
    // The running step's log can be read while it runs.
    wait_for("the step's output", LONG, || {
        (megatron.log(id, 1) == "going\n").then_some(())
    });
    let cancelled_at = std::time::Instant::now();
    let (status, _) = megatron.post(&format!("/api/v1/builds/{id}/cancel"), &json!({}));
    assert_eq!(status, 200);
    let build = megatron.wait_finished(id, LONG);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(build["result"], "cancelled", "{build}");
    assert!(build["steps"][2]["started"].is_null());
    let (status, body) = megatron.post(&format!("/api/v1/builds/{id}/cancel"), &json!({}));
    assert_eq!(status, 409, "{body}");

    // A queued build is cancelled at once.
    let _blocker = megatron.force("long-sleep", json!({}));
    let queued = megatron.force("long-sleep", json!({}));
    megatron.post(&format!("/api/v1/builds/{queued}/cancel"), &json!({}));
    let build = megatron.build(queued);
    assert_eq!(
        (build["state"].as_str(), build["result"].as_str()),
        (Some("finished"), Some("cancelled"))
    );
}

/// [started, finished] of each build, by id.
fn intervals(megatron: &Megatron, ids: &[u64]) -> Vec<(u64, u64, String)> {
    ids.iter()
        .map(|id| {
            let build = megatron.wait_finished(*id, LONG);
            assert_eq!(build["result"], "success", "{build}");
            (
                build["started"].as_u64().expect("started"),
                build["finished"].as_u64().expect("finished"),
                build["worker"].as_str().expect("worker").to_string(),
            )
        })
        .collect()
}

fn assert_disjoint(mut spans: Vec<(u64, u64)>, what: &str) {
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{what} overlap: {pair:?}");
    }
}

#[test]
fn a_resource_is_held_by_one_build_at_a_time_and_a_worker_runs_one_build() {
    let repo = GitRepo::new(
        "lab",
        r#"constructicon = #{
    builders: #{
        a: #{ commands: ["sleep 0.2"], resources: ["lab"], schedulers: ["force"] },
        b: #{ commands: ["sleep 0.2"], resources: ["lab"], schedulers: ["force"] },
        free: #{ commands: ["sleep 0.2"], schedulers: ["force"], accept: "worker == \"w1\"" },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _w1 = Worker::start(&megatron, "w1");
    let _w2 = Worker::start(&megatron, "w2");
    let mut locked = Vec::new();
    for _ in 0..3 {
        locked.push(megatron.force("lab-a", json!({})));
        locked.push(megatron.force("lab-b", json!({})));
    }
    let spans = intervals(&megatron, &locked);
    let workers: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.2.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers took builds: {spans:?}");
    assert_disjoint(
        spans.iter().map(|s| (s.0, s.1)).collect(),
        "builds holding \"lab\"",
    );

    let free: Vec<u64> = (0..3)
        .map(|_| megatron.force("lab-free", json!({})))
        .collect();
    let spans = intervals(&megatron, &free);
    assert!(spans.iter().all(|s| s.2 == "w1"));
    assert_disjoint(
        spans.iter().map(|s| (s.0, s.1)).collect(),
        "builds on one worker",
    );
}
