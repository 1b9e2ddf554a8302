//! End-to-end resilience: tokens, user workers, workers and the megatron
//! killed with SIGKILL, config errors and reconfigs under way, SIGTERM, and
//! bad requests. Real processes, real git repos, HTTP over loopback.

use crate::common::system::{reply, wait_for, GitRepo, Megatron, Worker};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CYBERTRON: &str = r#"cybertron = #{
    workers: #{ w1: #{ platform: "linux" }, w2: #{ platform: "linux" } },
    resources: ["lab"],
};"#;

const LONG: Duration = Duration::from_secs(20);

/// A `constructicon.rhai` with these builders and a force scheduler.
fn config(builders: &str) -> String {
    format!(
        "constructicon = #{{\n    builders: #{{\n{builders}\n    }},\n    schedulers: #{{ force: #{{ type: \"force\" }} }},\n}};\n"
    )
}

/// Asserts `check` for the whole `span`, polling.
#[track_caller]
fn holds_for(what: &str, span: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        assert!(check(), "{what} stopped holding");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until build `id` runs its step `step` in its attempt `attempts`.
#[track_caller]
fn wait_step_started(megatron: &Megatron, id: u64, step: usize, attempts: u64) -> Value {
    wait_for(&format!("build {id} to start step {step}"), LONG, || {
        let build = megatron.build(id);
        (build["state"] == "running"
            && build["attempts"] == attempts
            && !build["steps"][step]["started"].is_null())
        .then_some(build)
    })
}

/// Waits for build `id` to finish and checks it succeeded on `worker`.
#[track_caller]
fn succeeded_on(megatron: &Megatron, id: u64, worker: &str) -> Value {
    let build = megatron.wait_finished(id, LONG);
    let got = (build["result"].as_str(), build["worker"].as_str());
    assert_eq!(got, (Some("success"), Some(worker)), "{build}");
    build
}

fn step_names(build: &Value) -> Vec<String> {
    let steps = build["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect()
}

/// A POST with a raw body, for bodies that are not JSON.
fn post_raw(megatron: &Megatron, path: &str, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let request = agent.post(&format!("{}{path}", megatron.url)).header(
        "authorization",
        &format!("Bearer {}", megatron.admin_token()),
    );
    reply(
        request
            .header("content-type", "application/json")
            .send(body),
    )
}

#[track_caller]
fn assert_json_error(answer: &(u16, Value), status: u16, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    let message = answer.1["error"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty(),
        "{what}: no JSON {{error}}: {}",
        answer.1
    );
}

#[test]
fn a_wrong_token_is_refused() {
    let megatron = Megatron::start(CYBERTRON);
    let w1 = format!("Bearer {}", megatron.token("w1"));
    megatron.token("w2");
    let claim = |headers: &[(&str, &str)]| {
        megatron.post_with("/api/v1/worker/claim", &json!({ "wait_ms": 0 }), headers)
    };
    let wrong = [
        ("x-constructicon-worker", "w1"),
        ("authorization", "Bearer WRONG"),
    ];
    assert_json_error(&claim(&wrong), 401, "a wrong token");
    assert_json_error(&claim(&[]), 401, "no headers");
    assert_json_error(&claim(&[("x-constructicon-worker", "w1")]), 401, "no token");
    assert_json_error(&claim(&[("authorization", &w1)]), 401, "no worker name");
    let borrowed = [
        ("x-constructicon-worker", "w2"),
        ("authorization", w1.as_str()),
    ];
    assert_json_error(&claim(&borrowed), 401, "w1's token used as w2");
    let report = json!({ "lease": "x", "result": "success", "exit_code": 0, "reason": null });
    for path in [
        "/api/v1/worker/builds/1/heartbeat",
        "/api/v1/worker/builds/1/steps/1/start",
        "/api/v1/worker/builds/1/steps/1/log?lease=x",
        "/api/v1/worker/builds/1/steps/1/finish",
        "/api/v1/worker/builds/1/finish",
        "/api/v1/worker/builds/1/release",
    ] {
        assert_json_error(&megatron.post_with(path, &report, &wrong), 401, path);
    }

    // Only the admin token issues worker tokens; a worker's token is not it.
    let issue = |headers: &[(&str, &str)]| {
        megatron.post_with("/api/v1/workers/w3/token", &json!({}), headers)
    };
    assert_json_error(&issue(&[]), 401, "a token issued without the admin token");
    assert_json_error(
        &issue(&[("authorization", "Bearer WRONG")]),
        401,
        "a wrong admin token",
    );
    assert_json_error(
        &issue(&[("authorization", &w1)]),
        401,
        "a worker's token as admin",
    );

    let right = [
        ("x-constructicon-worker", "w1"),
        ("authorization", w1.as_str()),
    ];
    let started = Instant::now();
    let (status, body) = claim(&right);
    assert_eq!(status, 204, "nothing queued: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "wait_ms 0 took {:?}",
        started.elapsed()
    );

    // A token issued again replaces the old one.
    let newer = format!("Bearer {}", megatron.token("w1"));
    assert_json_error(&claim(&right), 401, "a replaced token");
    let (status, body) = claim(&[("x-constructicon-worker", "w1"), ("authorization", &newer)]);
    assert_eq!(status, 204, "{body}");
}

#[test]
fn a_user_worker_takes_only_its_own_repos_builds() {
    let alpha = GitRepo::new(
        "alpha",
        r#"constructicon = #{
    workers: #{ "alpha-laptop": #{ owner: "alpha" } },
    builders: #{ mine: #{ commands: ["echo alpha on $CONSTRUCTICON_BUILDER"], accept: "features.owner == \"alpha\"", schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let beta = GitRepo::new(
        "beta",
        &config(r#"any: #{ commands: ["echo beta"], schedulers: ["force"] },"#),
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&alpha.url());
    megatron.add_repo(&beta.url());
    let (_, mine) = megatron.get("/api/v1/builders/alpha-mine");
    assert_eq!(mine["spec"]["workers"], json!(["alpha-laptop"]), "{mine}");
    let (_, any) = megatron.get("/api/v1/builders/beta-any");
    assert_eq!(any["spec"]["workers"], json!(["w1", "w2"]), "{any}");

    let _laptop = Worker::start(&megatron, "alpha-laptop");
    let theirs = megatron.force("beta-any", json!({}));
    let own = megatron.force("alpha-mine", json!({}));
    succeeded_on(&megatron, own, "alpha-laptop");
    assert_eq!(megatron.log(own, 1), "alpha on alpha-mine\n");
    // The laptop is idle and beta's build was queued first, yet it waits.
    holds_for(
        "beta's build queued with no worker",
        Duration::from_millis(500),
        || {
            let build = megatron.build(theirs);
            build["state"] == "queued" && build["worker"].is_null() && build["attempts"] == 0
        },
    );

    let _w1 = Worker::start(&megatron, "w1");
    let build = succeeded_on(&megatron, theirs, "w1");
    assert_eq!(build["attempts"], 1);
}

#[test]
fn a_worker_killed_mid_build_is_requeued_once_then_exception() {
    let repo = GitRepo::new(
        "crash",
        &config(
            r#"long: #{ commands: ["echo going; sleep 30"], resources: ["lab"], accept: "worker == \"w1\"", schedulers: ["force"] },
        other: #{ commands: ["echo other"], resources: ["lab"], accept: "worker == \"w2\"", schedulers: ["force"] },"#,
        ),
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let began = Instant::now();
    let mut first = Worker::start(&megatron, "w1");
    let _w2 = Worker::start(&megatron, "w2");
    let id = megatron.force("crash-long", json!({}));
    wait_step_started(&megatron, id, 1, 1);
    wait_for("the first attempt's output", LONG, || {
        (megatron.log(id, 1) == "going\n").then_some(())
    });
    let other = megatron.force("crash-other", json!({}));
    holds_for(
        "\"other\" waits for lab while w2 idles",
        Duration::from_millis(300),
        || megatron.build(other)["state"] == "queued",
    );

    first.kill9();
    let build = wait_for("the build to be requeued", LONG, || {
        let build = megatron.build(id);
        (build["state"] == "queued").then_some(build)
    });
    assert_eq!(build["attempts"], 1, "{build}");
    assert!(build["worker"].is_null(), "{build}");
    let reason = build["result_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("w1") && reason.contains("stopped reporting"),
        "{build}"
    );
    assert!(
        build["steps"][1]["started"].is_null(),
        "steps start afresh: {build}"
    );
    assert_eq!(megatron.log(id, 1), "", "the lost attempt's log is dropped");
    // The lost build's lab is free again: "other" runs on w2 meanwhile.
    succeeded_on(&megatron, other, "w2");
    assert_eq!(megatron.build(id)["state"], "queued", "no w1 runs");

    let mut second = Worker::start(&megatron, "w1");
    wait_step_started(&megatron, id, 1, 2);
    wait_for("the second attempt's output", LONG, || {
        (megatron.log(id, 1) == "going\n").then_some(())
    });
    second.kill9();
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "exception", "{build}");
    assert_eq!(build["attempts"], 2, "{build}");
    let reason = build["result_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("stopped reporting") && reason.contains("requeued once"),
        "{build}"
    );
    let (_, queue) = megatron.get("/api/v1/queue");
    assert_eq!(queue["resources"], json!([]), "lab is free: {queue}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
}

#[test]
fn the_megatron_survives_kill_9() {
    let outside = tempfile::tempdir().expect("tempdir");
    let ran = outside.path().join("ran.txt");
    let record = format!("echo $CONSTRUCTICON_BUILD >> '{}'", ran.display());
    let repo = GitRepo::new(
        "keep",
        &config(&format!(
            r#"quick: #{{ commands: ["echo hello $CONSTRUCTICON_BUILD; {record}"], accept: "worker == \"w1\"", schedulers: ["force"] }},
        later: #{{ commands: ["echo later; {record}"], accept: "worker == \"w2\"", schedulers: ["force"] }},
        slow: #{{ commands: ["echo slow; sleep 3; {record}"], accept: "worker == \"w1\"", schedulers: ["force"] }},"#
        )),
    );
    let mut megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _w1 = Worker::start(&megatron, "w1");
    let quick: Vec<u64> = (0..2)
        .map(|_| megatron.force("keep-quick", json!({})))
        .collect();
    let before: Vec<(Value, String, String)> = quick
        .iter()
        .map(|id| {
            let build = megatron.wait_finished(*id, LONG);
            assert_eq!(build["result"], "success", "{build}");
            assert_eq!(megatron.log(*id, 1), format!("hello {id}\n"));
            (build, megatron.log(*id, 0), megatron.log(*id, 1))
        })
        .collect();
    let later: Vec<u64> = (0..3)
        .map(|_| megatron.force("keep-later", json!({})))
        .collect();
    let slow = megatron.force("keep-slow", json!({}));
    wait_step_started(&megatron, slow, 1, 1);

    megatron.restart();
    let (status, queue) = megatron.get("/api/v1/queue");
    assert_eq!(status, 200, "{queue}");
    let pending: Vec<u64> = queue["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|p| p["build"].as_u64().expect("id"))
        .collect();
    assert_eq!(pending, later, "the queue, in order: {queue}");
    for (id, (build, checkout, step)) in quick.iter().zip(&before) {
        assert_eq!(&megatron.build(*id), build, "build {id} after the restart");
        assert_eq!(&megatron.log(*id, 0), checkout);
        assert_eq!(&megatron.log(*id, 1), step);
    }
    let state = megatron.build(slow)["state"].clone();
    assert!(state == "running" || state == "queued", "{state}");

    let _w2 = Worker::start(&megatron, "w2");
    let mut all: Vec<u64> = quick.iter().chain(&later).copied().collect();
    all.push(slow);
    for id in &all {
        let build = megatron.wait_finished(*id, LONG);
        assert_eq!(build["result"], "success", "{build}");
    }
    let slow_build = megatron.build(slow);
    assert!(
        matches!(slow_build["attempts"].as_u64(), Some(1 | 2)),
        "{slow_build}"
    );
    assert_eq!(
        megatron.log(slow, 1),
        "slow\n",
        "one run's log: {slow_build}"
    );

    // The numbers go on where they were.
    let next = megatron.force("keep-quick", json!({}));
    assert!(next > *all.iter().max().expect("ids"), "a fresh id: {next}");
    let build = megatron.wait_finished(next, LONG);
    assert_eq!(
        (build["number"].as_u64(), build["result"].as_str()),
        (Some(3), Some("success")),
        "{build}"
    );
    assert_eq!(megatron.build(later[2])["number"], 3);
    all.push(next);

    // Every build completed exactly once.
    let text = std::fs::read_to_string(&ran).expect("ran.txt");
    let mut completed: Vec<u64> = text.lines().map(|l| l.parse().expect("an id")).collect();
    completed.sort();
    all.sort();
    assert_eq!(completed, all, "ran.txt:\n{text}");
}

#[test]
fn a_config_error_shows_while_the_last_good_graph_keeps_building() {
    let good = GitRepo::new(
        "good",
        &config(r#"b: #{ commands: ["echo old"], schedulers: ["force"] },"#),
    );
    let other = GitRepo::new(
        "other",
        &config(r#"c: #{ commands: ["echo c"], schedulers: ["force"] },"#),
    );
    let megatron = Megatron::start(CYBERTRON);
    let old = megatron.add_repo(&good.url())["commit"]
        .as_str()
        .expect("commit")
        .to_string();
    megatron.add_repo(&other.url());
    let _w1 = Worker::start(&megatron, "w1");

    let broken = good.commit(
        &[(
            "constructicon.rhai",
            &config(r#"b: #{ commands: 42, schedulers: ["force"] },"#),
        )],
        "break",
    );
    let (status, view) = megatron.post("/api/v1/repos/good/refresh", &json!({}));
    assert_eq!(status, 200, "{view}");
    let error = &view["error"];
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(&broken)),
        "{view}"
    );
    assert_eq!(error["commit"], broken.as_str(), "{view}");
    let first = &error["errors"][0];
    assert_eq!(first["path"], "builders.b.commands", "{view}");
    assert!(first["line"].as_u64().is_some_and(|l| l > 1), "{view}");
    assert!(first["column"].as_u64().is_some_and(|c| c > 1), "{view}");
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.contains("expected an array")),
        "{view}"
    );
    assert_eq!(
        view["commit"],
        old.as_str(),
        "the last good graph serves: {view}"
    );
    assert_eq!(view["builders"], json!(["good-b"]), "{view}");
    let (_, repo) = megatron.get("/api/v1/repos/good");
    assert_eq!(repo["error"], *error);
    let (status, builder) = megatron.get("/api/v1/builders/good-b");
    assert_eq!(status, 200, "{builder}");
    assert_eq!(builder["error"]["commit"], broken.as_str(), "{builder}");
    assert_eq!(
        builder["spec"]["steps"][0]["command"], "echo old",
        "{builder}"
    );
    let (_, unaffected) = megatron.get("/api/v1/repos/other");
    assert!(unaffected["error"].is_null(), "{unaffected}");
    let (_, unaffected) = megatron.get("/api/v1/builders/other-c");
    assert!(unaffected["error"].is_null(), "{unaffected}");

    let id = megatron.force("good-b", json!({}));
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(megatron.log(id, 1), "old\n");
    assert_eq!(build["revision"], old.as_str());
    assert_eq!(build["provenance"]["config_commit"], old.as_str());
    let id = megatron.force("other-c", json!({}));
    assert_eq!(megatron.wait_finished(id, LONG)["result"], "success");

    let fixed = good.commit(
        &[(
            "constructicon.rhai",
            &config(r#"b: #{ commands: ["echo new"], schedulers: ["force"] },"#),
        )],
        "fix",
    );
    let (status, view) = megatron.post("/api/v1/repos/good/refresh", &json!({}));
    assert_eq!(status, 200, "{view}");
    assert!(view["error"].is_null(), "{view}");
    assert_eq!(view["commit"], fixed.as_str());
    let (_, builder) = megatron.get("/api/v1/builders/good-b");
    assert!(builder["error"].is_null(), "{builder}");
    let id = megatron.force("good-b", json!({}));
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(megatron.log(id, 1), "new\n");
    assert_eq!(build["provenance"]["config_commit"], fixed.as_str());
}

#[test]
fn a_reconfig_while_a_build_runs_does_not_change_it() {
    let repo = GitRepo::new(
        "live",
        &config(
            r#"b: #{ commands: ["echo v1; sleep 1", "echo v1-done"], schedulers: ["force"] },"#,
        ),
    );
    let megatron = Megatron::start(CYBERTRON);
    let view = megatron.add_repo(&repo.url());
    let old_version = view["graph"]["version"].as_u64().expect("version");
    let old_commit = view["commit"].as_str().expect("commit").to_string();
    let _w1 = Worker::start(&megatron, "w1");
    let first = megatron.force("live-b", json!({}));
    wait_step_started(&megatron, first, 1, 1);

    let new_commit = repo.commit(
        &[(
            "constructicon.rhai",
            &config(r#"b: #{ commands: ["echo v2"], schedulers: ["force"] },"#),
        )],
        "v2",
    );
    let (status, view) = megatron.post("/api/v1/repos/live/refresh", &json!({}));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["commit"], new_commit.as_str(), "{view}");
    assert!(
        view["graph"]["version"]
            .as_u64()
            .is_some_and(|v| v > old_version),
        "{view}"
    );
    let (status, view) = megatron.post("/api/v1/repos", &json!({ "url": repo.url() }));
    assert_eq!(status, 200, "taking a repo again: {view}");
    assert_eq!(view["commit"], new_commit.as_str(), "{view}");
    assert!(view["error"].is_null(), "{view}");
    let new_version = view["graph"]["version"].as_u64().expect("version");
    assert!(new_version > old_version, "{view}");
    assert_eq!(
        megatron.build(first)["state"],
        "running",
        "the reconfig came while it ran"
    );

    let build = megatron.wait_finished(first, LONG);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(step_names(&build), ["checkout", "command 1", "command 2"]);
    assert_eq!(build["steps"][2]["command"], "echo v1-done");
    assert_eq!(megatron.log(first, 1), "v1\n");
    assert_eq!(megatron.log(first, 2), "v1-done\n");
    assert_eq!(build["provenance"]["graph_version"], old_version);
    assert_eq!(build["provenance"]["config_commit"], old_commit.as_str());

    let second = megatron.force("live-b", json!({}));
    let build = megatron.wait_finished(second, LONG);
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(step_names(&build), ["checkout", "command 1"]);
    assert_eq!(megatron.log(second, 1), "v2\n");
    assert_eq!(build["provenance"]["graph_version"], new_version);
    assert_eq!(build["provenance"]["config_commit"], new_commit.as_str());
}

#[test]
fn a_worker_stops_cleanly_on_sigterm() {
    let outside = tempfile::tempdir().expect("tempdir");
    let flag = outside.path().join("flag");
    let repo = GitRepo::new(
        "term",
        &config(&format!(
            r#"quick: #{{ commands: ["echo hi"], schedulers: ["force"] }},
        long: #{{ commands: ["echo started; test -e '{}' || sleep 30"], schedulers: ["force"] }},"#,
            flag.display()
        )),
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());

    // Idle: it ran a build and went back to its claim long-poll.
    let mut idle = Worker::start(&megatron, "w1");
    let id = megatron.force("term-quick", json!({}));
    assert_eq!(megatron.wait_finished(id, LONG)["result"], "success");
    let status = idle.terminate(Duration::from_secs(1));
    assert!(
        status.success(),
        "an idle worker exits 0 on SIGTERM: {status}"
    );

    // Busy: the step is stopped and the build given back.
    let mut busy = Worker::start(&megatron, "w1");
    let id = megatron.force("term-long", json!({}));
    wait_step_started(&megatron, id, 1, 1);
    wait_for("the step's output", LONG, || {
        (megatron.log(id, 1) == "started\n").then_some(())
    });
    let status = busy.terminate(Duration::from_secs(4));
    assert!(
        status.success(),
        "a busy worker exits 0 on SIGTERM: {status}"
    );
    let build = wait_for("the build to be given back", LONG, || {
        let build = megatron.build(id);
        (build["state"] == "queued").then_some(build)
    });
    assert_eq!(build["attempts"], 0, "a release is not an attempt: {build}");
    assert!(build["worker"].is_null(), "{build}");

    // It runs again from scratch on the next worker, with one run's log.
    std::fs::write(&flag, "").expect("flag");
    let _again = Worker::start(&megatron, "w2");
    let build = succeeded_on(&megatron, id, "w2");
    assert_eq!(build["attempts"], 1, "{build}");
    assert_eq!(
        megatron.log(id, 1),
        "started\n",
        "the released run's output is not kept: {build}"
    );
}

#[test]
fn bad_requests_get_json_errors() {
    let megatron = Megatron::start(CYBERTRON);
    assert_json_error(
        &post_raw(&megatron, "/api/v1/repos", "{not json"),
        400,
        "invalid JSON",
    );
    assert_json_error(&megatron.post("/api/v1/repos", &json!({})), 400, "no url");
    assert_json_error(
        &megatron.post("/api/v1/repos", &json!({ "url": 5 })),
        400,
        "a number as url",
    );
    assert_json_error(
        &megatron.post("/api/v1/repos", &json!({ "url": "" })),
        400,
        "an empty url",
    );
    assert_json_error(
        &megatron.post("/api/v1/repos", &json!({ "url": "/x/y", "nope": 1 })),
        400,
        "an unknown field",
    );
    let missing = tempfile::tempdir().expect("tempdir");
    let url = missing
        .path()
        .join("nowhere")
        .join("ghost")
        .display()
        .to_string();
    assert_json_error(
        &megatron.post("/api/v1/repos", &json!({ "url": url })),
        400,
        "a URL that cannot be cloned",
    );
    let (status, repos) = megatron.get("/api/v1/repos");
    assert_eq!(
        (status, &repos["repos"]),
        (200, &json!([])),
        "nothing registered: {repos}"
    );
    assert_json_error(
        &megatron.get("/api/v1/repos/ghost"),
        404,
        "the refused repo",
    );

    assert_json_error(
        &megatron.get("/api/v1/builds/abc"),
        400,
        "a build id that is not a number",
    );
    assert_json_error(
        &megatron.get("/api/v1/builds/999999"),
        404,
        "a build that does not exist",
    );
    assert_json_error(
        &megatron.get("/api/v1/builds/999999/steps/0/log"),
        404,
        "the log of no build",
    );
    assert_json_error(&megatron.get("/api/v1/nope"), 404, "an unknown route");
    assert_json_error(
        &megatron.post("/api/v1/repos/ghost/refresh", &json!({})),
        404,
        "refreshing no repo",
    );

    let first = GitRepo::new(
        "dup",
        &config(r#"b: #{ commands: ["true"], schedulers: ["force"] },"#),
    );
    let second = GitRepo::new(
        "dup",
        &config(r#"c: #{ commands: ["true"], schedulers: ["force"] },"#),
    );
    assert_ne!(first.url(), second.url());
    megatron.add_repo(&first.url());
    let conflict = megatron.post("/api/v1/repos", &json!({ "url": second.url() }));
    assert_json_error(&conflict, 409, "another repo of the same name");
    let (_, repos) = megatron.get("/api/v1/repos");
    let listed = repos["repos"].as_array().expect("repos");
    assert_eq!(listed.len(), 1, "{repos}");
    assert_eq!(listed[0]["url"], first.url().as_str());
    assert_eq!(listed[0]["builders"], json!(["dup-b"]));
}
