//! The megatron under pressure and the whole system as a user first meets
//! it: concurrent claims, the horizon, a followed log, the page, the demo.

use crate::builds::CYBERTRON;
use crate::common::system::{reply, wait_for, GitRepo, Megatron, Worker, BIN};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

const TRIVIAL: &str = r#"constructicon = #{
    builders: #{ t: #{ commands: ["true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#;

/// Raw worker calls, as a worker would make them.
fn worker_call(
    megatron: &Megatron,
    worker: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    megatron.post_with(
        path,
        body,
        &[
            ("x-constructicon-worker", worker),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
}

#[test]
fn concurrent_claims_hand_each_build_to_exactly_one_worker() {
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let workers: String = names.iter().map(|n| format!("{n}: #{{}},")).collect();
    let megatron = Megatron::start(&format!(
        "cybertron = #{{ workers: #{{ {workers} }}, horizon: 1000 }};"
    ));
    let repo = GitRepo::new("hammer", TRIVIAL);
    megatron.add_repo(&repo.url());
    let tokens: Vec<String> = names.iter().map(|n| megatron.token(n)).collect();
    let total = 120;
    for _ in 0..total {
        megatron.force("hammer-t", json!({}));
    }
    // Eight workers claim as fast as they can, each finishing what it got
    // before claiming again (one build per worker).
    let claimed: Vec<(String, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .zip(&tokens)
            .map(|(name, token)| {
                let megatron = &megatron;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let (status, job) = worker_call(
                            megatron,
                            name,
                            token,
                            "/api/v1/worker/claim",
                            &json!({ "wait_ms": 0 }),
                        );
                        if status == 204 {
                            return mine;
                        }
                        assert_eq!(status, 200, "{job}");
                        let id = job["build"].as_u64().expect("build");
                        // A second claim while busy gets nothing.
                        let (again, _) = worker_call(
                            megatron,
                            name,
                            token,
                            "/api/v1/worker/claim",
                            &json!({ "wait_ms": 0 }),
                        );
                        assert_eq!(again, 204, "{name} is busy");
                        let (status, body) = worker_call(
                            megatron,
                            name,
                            token,
                            &format!("/api/v1/worker/builds/{id}/finish"),
                            &json!({ "lease": job["lease"], "result": "success" }),
                        );
                        assert_eq!(status, 200, "{body}");
                        mine.push((name.clone(), id));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("claimer"))
            .collect()
    });
    let ids: BTreeSet<u64> = claimed.iter().map(|(_, id)| *id).collect();
    assert_eq!(claimed.len(), total, "every build claimed once");
    assert_eq!(ids.len(), total, "no build claimed twice");
    let per_worker: BTreeMap<&str, usize> =
        claimed.iter().fold(BTreeMap::new(), |mut m, (w, _)| {
            *m.entry(w.as_str()).or_default() += 1;
            m
        });
    assert!(
        per_worker.len() > 1,
        "several workers got builds: {per_worker:?}"
    );
    let (_, queue) = megatron.get("/api/v1/queue");
    assert_eq!(queue["pending"], json!([]));
}

#[test]
fn the_horizon_keeps_the_newest_builds_and_their_logs() {
    let megatron = Megatron::start(&CYBERTRON.replace("resources:", "horizon: 2, resources:"));
    let repo = GitRepo::new("short", TRIVIAL);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let ids: Vec<u64> = (0..4)
        .map(|_| {
            let id = megatron.force("short-t", json!({}));
            megatron.wait_finished(id, LONG);
            id
        })
        .collect();
    let (_, history) = megatron.get("/api/v1/builders/short-t/builds");
    let kept: Vec<u64> = history["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| b["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(kept, [ids[3], ids[2]]);
    assert_eq!(megatron.get(&format!("/api/v1/builds/{}", ids[0])).0, 404);
    assert_eq!(
        megatron
            .get(&format!("/api/v1/builds/{}/steps/0/log", ids[0]))
            .0,
        404
    );
    assert!(
        !megatron.log(ids[3], 0).is_empty(),
        "the kept build's checkout log is there"
    );
}

#[test]
fn a_followed_log_streams_while_the_step_runs() {
    let repo = GitRepo::new(
        "stream",
        r#"constructicon = #{
    builders: #{ s: #{ commands: ["echo one; sleep 0.5; echo two; sleep 0.5; echo three"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("stream-s", json!({}));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(LONG))
        .build()
        .into();
    let response = agent
        .get(&format!(
            "{}/api/v1/builds/{id}/steps/1/log?follow=true",
            megatron.url
        ))
        .call()
        .expect("follow");
    let mut reader = BufReader::new(response.into_body().into_reader());
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    assert_eq!(first, "one\n");
    assert_ne!(
        megatron.build(id)["state"],
        "finished",
        "the first line came while the step ran"
    );
    let mut rest = String::new();
    reader
        .read_to_string(&mut rest)
        .expect("the rest, until the step ends");
    assert_eq!(rest, "two\nthree\n");
}

#[test]
fn the_page_shows_repos_builders_and_config_errors() {
    let megatron = Megatron::start(CYBERTRON);
    let good = GitRepo::new("fine", TRIVIAL);
    let bad = GitRepo::new(
        "broken",
        "constructicon = #{ builders: #{ b: #{ comands: [] } } };",
    );
    megatron.add_repo(&good.url());
    let view = megatron.add_repo(&bad.url());
    assert_eq!(
        view["error"]["errors"][1]["path"], "builders.b.comands",
        "{view}"
    );
    let page = megatron.get_text("/");
    assert!(page.contains("fine-t"), "{page}");
    assert!(
        page.contains("builders.b.comands: unused configuration key &#34;comands&#34;"),
        "{page}"
    );
}

#[test]
fn the_repo_keeps_its_config_warnings() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new(
        "idle",
        r#"constructicon = #{
    builders: #{ t: #{ commands: ["true"], schedulers: ["force"] }, idle: #{ commands: ["true"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let view = megatron.add_repo(&repo.url());
    assert_eq!(view["error"], Value::Null, "{view}");
    assert_eq!(
        view["warnings"],
        json!([{
            "message": "no scheduler starts this builder: it never builds, and it cannot be forced",
            "path": "builders.idle",
            "file": "constructicon.rhai",
            "line": 2,
            "column": 69,
            "help": "name one in the builder's \"schedulers\"; defined schedulers: \"force\"",
        }]),
        "{view}"
    );
    // A later config without warnings clears them.
    repo.commit(&[("constructicon.rhai", TRIVIAL)], "no idle builder");
    let view = megatron.add_repo(&repo.url());
    assert_eq!(view["warnings"], json!([]), "{view}");
}

#[test]
fn the_cli_adds_repos_forces_and_waits() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new(
        "cli",
        r#"constructicon = #{
    builders: #{
        ok: #{ commands: ["echo {who}"], schedulers: ["force"] },
        bad: #{ commands: ["exit 1"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ who: "me" } } },
};"#,
    );
    let _worker = Worker::start(&megatron, "w1");
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("CONSTRUCTICON_MEGATRON", &megatron.url)
            .env("CONSTRUCTICON_USER_TOKEN", megatron.admin_token())
            .output()
            .expect("cli");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["repo", "add", &repo.url()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("repo cli: 2 builders"), "{out}");
    let (code, out, err) = cli(&["force", "cli-ok", "-p", "who=you", "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(": success"), "{out}");
    let (code, out, _) = cli(&["force", "cli-bad", "--wait"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(": failure"), "{out}");
    let (code, _, err) = cli(&["force", "cli-ok", "-p", "nope=1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown parameter \"nope\""), "{err}");
    let (code, _, err) = cli(&["force", "cli-ok", "-p", "novalue"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("expected NAME=VALUE"), "{err}");
}

#[test]
fn the_demo_runs_a_build_with_nothing_installed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut demo = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(temp.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = demo.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut build_url = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(url) = line
            .split_whitespace()
            .find(|w| w.contains("/api/v1/builds/"))
        {
            build_url = Some(url.to_string());
            break;
        }
    }
    let build_url = build_url.expect("the demo prints the forced build's URL");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let build = wait_for("the demo's build", LONG, || {
        let (_, build) = reply(agent.get(&build_url).call());
        (build["state"] == "finished").then_some(build)
    });
    let _ = demo.kill();
    let _ = demo.wait();
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(build["builder"], "hello-basic");
}
