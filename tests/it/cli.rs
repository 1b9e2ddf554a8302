//! Every command of the command line against a real megatron and worker:
//! what a person reads, and with `--json` what a script parses.

use crate::common::system::{GitRepo, Megatron, Worker, BIN};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO: &str = r#"constructicon = #{
    builders: #{
        ok: #{ commands: ["echo hello {who}", "echo second step"], schedulers: ["force"] },
        slow: #{ commands: ["echo started; sleep 30"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ who: "world" } } },
};"#;

struct Cli<'a> {
    megatron: &'a Megatron,
    config: tempfile::TempDir,
}

impl<'a> Cli<'a> {
    fn new(megatron: &'a Megatron) -> Cli<'a> {
        Cli {
            megatron,
            config: tempfile::tempdir().expect("config home"),
        }
    }

    /// Runs the command as the admin; returns exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env("CONSTRUCTICON_MEGATRON", &self.megatron.url)
            .env("CONSTRUCTICON_USER_TOKEN", self.megatron.admin_token())
            .env("XDG_CONFIG_HOME", self.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("run the command");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }
}

#[test]
fn every_command_answers_people_and_scripts() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new("app", REPO);
    let cli = Cli::new(&megatron);
    cli.ok(&["repo", "add", &repo.url()]);
    let _worker = Worker::start(&megatron, "w1");

    // Nothing built yet.
    let out = cli.ok(&["builders"]);
    assert!(out.starts_with("BUILDER"), "{out}");
    assert!(
        out.contains("app-ok") && out.contains("no builds yet"),
        "{out}"
    );

    // force --wait streams the steps' output, then the result and the page.
    let (code, out, err) = cli.run(&["force", "app-ok", "-p", "who=you", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hello you\nsecond step\n"), "{out}");
    assert!(err.contains("── command"), "each step is named: {err}");
    assert!(out.contains("app-ok #1 queued (build 1)"), "{out}");
    assert!(
        out.contains("app-ok #1: success in ")
            && out.contains(&format!("{}/builds/1", megatron.url)),
        "{out}"
    );

    let out = cli.ok(&["builders"]);
    assert!(out.contains("#1 success"), "{out}");
    let json = cli.json(&["builders"]);
    let ok = json["builders"]
        .as_array()
        .expect("builders")
        .iter()
        .find(|b| b["name"] == "app-ok")
        .expect("app-ok");
    assert_eq!(ok["last"]["result"], "success");
    assert_eq!(ok["workers"], serde_json::json!(["w1"]));

    let out = cli.ok(&["builds", "app-ok"]);
    assert!(out.contains("#1") && out.contains("success"), "{out}");
    assert_eq!(cli.json(&["builds", "app-ok"])["builds"][0]["number"], 1);

    // A build by id or by BUILDER#N.
    for name in ["1", "app-ok#1"] {
        let out = cli.ok(&["build", name]);
        assert!(out.starts_with("app-ok #1: success"), "{out}");
        assert!(out.contains("parameter: who=you"), "{out}");
        assert!(out.contains("command 1"), "{out}");
        assert_eq!(cli.json(&["build", name])["id"], 1);
    }
    let (code, _, err) = cli.run(&["build", "app-ok#9"]);
    assert_eq!(code, 1);
    assert!(err.contains("build app-ok #9 not found"), "{err}");

    // Logs: all steps, one by number or name.
    let out = cli.ok(&["log", "app-ok#1"]);
    assert!(
        out.contains("hello you") && out.contains("second step"),
        "{out}"
    );
    assert_eq!(cli.ok(&["log", "1", "2"]), "second step\n");
    assert_eq!(cli.ok(&["log", "1", "command 1"]), "hello you\n");
    let (code, _, err) = cli.run(&["log", "1", "command 9"]);
    assert_eq!(code, 1);
    assert!(err.contains("build 1 has no step \"command 9\""), "{err}");

    // Rebuild queues it again with the same parameters.
    let out = cli.ok(&["rebuild", "app-ok#1"]);
    assert!(out.starts_with("app-ok #2 (build 2): queued"), "{out}");
    let rebuilt = megatron.wait_finished(2, Duration::from_secs(20));
    assert_eq!(rebuilt["parameters"]["who"], "you");

    // Cancel a running build; the queue and workers say what goes on.
    cli.ok(&["force", "app-slow"]);
    crate::common::system::wait_for("the slow build to run", Duration::from_secs(20), || {
        (megatron.build(3)["state"] == "running").then_some(())
    });
    cli.ok(&["force", "app-ok"]);
    let out = cli.ok(&["queue"]);
    assert!(
        out.contains("app-ok #3") && out.contains("all its workers are busy (w1 runs build 3)"),
        "{out}"
    );
    assert_eq!(cli.json(&["queue"])["pending"][0]["build"], 4);
    let out = cli.ok(&["workers"]);
    assert!(
        out.contains("w1") && out.contains("busy (build 3)"),
        "{out}"
    );
    assert_eq!(cli.json(&["workers"])["workers"][0]["build"], 3);
    let out = cli.ok(&["cancel", "app-slow#1"]);
    assert!(out.contains("app-slow #1: asked to stop"), "{out}");
    let cancelled = megatron.wait_finished(3, Duration::from_secs(10));
    assert_eq!(cancelled["result"], "cancelled");
    assert_eq!(cancelled["cancelled_by"], "admin");
    megatron.wait_finished(4, Duration::from_secs(20));
    assert_eq!(cli.ok(&["queue"]), "nothing waits\n");

    // Disk used: the builds kept and their logs, per builder.
    let usage = cli.json(&["usage"]);
    let ok = usage["repos"][0]["builders"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["builder"] == "app-ok"))
        .unwrap_or_else(|| panic!("no app-ok in {usage}"));
    assert!(ok["builds"].as_u64() >= Some(1), "{usage}");
    assert!(ok["log_bytes"].as_u64() > Some(0), "{usage}");
    assert_eq!(usage["log_bytes"], usage["repos"][0]["log_bytes"]);
    let out = cli.ok(&["usage"]);
    assert!(
        out.starts_with("REPO") && out.contains("app-ok") && out.contains("total"),
        "{out}"
    );

    // Repos: listed, and removed.
    let out = cli.ok(&["repo", "list"]);
    assert!(out.contains("app") && out.contains("ok"), "{out}");
    assert_eq!(cli.json(&["repo", "list"])["repos"][0]["name"], "app");
    let out = cli.ok(&["repo", "remove", "app"]);
    assert!(
        out.contains("removed repo app; 0 queued build(s) cancelled"),
        "{out}"
    );
    assert_eq!(cli.json(&["builders"])["builders"], serde_json::json!([]));
    // Its builds stay readable by id.
    assert_eq!(cli.json(&["build", "1"])["result"], "success");
}

#[test]
fn build_ids_count_up_by_one_across_restarts() {
    let mut megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new("app", REPO);
    megatron.add_repo(&repo.url());
    let first: Vec<u64> = (0..3)
        .map(|_| megatron.force("app-ok", serde_json::json!({})))
        .collect();
    assert_eq!(first, [1, 2, 3]);
    megatron.restart();
    let after: Vec<u64> = (0..2)
        .map(|_| megatron.force("app-ok", serde_json::json!({})))
        .collect();
    assert_eq!(after, [4, 5]);
}

#[test]
fn a_second_megatron_on_the_same_data_dir_says_so() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let out = Command::new(BIN)
        .arg("megatron")
        .arg("--cybertron")
        .arg(megatron.dir.join("cybertron.rhai"))
        .arg("--data")
        .arg(megatron.dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("a second megatron");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("is already in use by another megatron").count(),
        1,
        "{err}"
    );
}

#[test]
fn repo_add_refuses_a_missing_branch_or_path_and_changes_nothing() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new("app", REPO);
    let cli = Cli::new(&megatron);
    cli.ok(&["repo", "add", &repo.url()]);
    let (code, _, err) = cli.run(&["repo", "add", &repo.url(), "--branch", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{} has no branch nope (its branches: main); nothing changed",
            repo.url()
        )),
        "{err}"
    );
    let listed = cli.json(&["repo", "list"]);
    assert_eq!(listed["repos"][0]["branch"], Value::Null, "{listed}");
    assert!(listed["repos"][0]["error"].is_null(), "{listed}");
    // A new repo at a branch it lacks is not taken.
    let other = GitRepo::new("other", REPO);
    let (code, _, err) = cli.run(&["repo", "add", &other.url(), "--branch", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no branch nope"), "{err}");
    assert_eq!(
        cli.json(&["repo", "list"])["repos"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A path with no repo says so.
    let missing = repo.path.parent().expect("parent").join("no-such-repo");
    let (code, _, err) = cli.run(&["repo", "add", missing.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("no repository at {}", missing.display())),
        "{err}"
    );
}

#[test]
fn a_worker_the_megatron_refuses_says_why_and_exits() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let work = tempfile::tempdir().expect("workdir");
    let worker = |name: &str, token: &str| {
        let out = Command::new(BIN)
            .args([
                "worker",
                "--megatron",
                &megatron.url,
                "--name",
                name,
                "--token",
                token,
            ])
            .arg("--workdir")
            .arg(work.path())
            .env("RUST_LOG", "error")
            .output()
            .expect("worker");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = worker("w1", "not-the-token");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the megatron refuses this worker: wrong token for worker w1: an admin issues a new one with `constructicon token w1`"),
        "{err}"
    );
    let token = megatron.token("ghost");
    let (code, err) = worker("ghost", &token);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no cybertron or registered repo declares a worker named ghost"),
        "{err}"
    );
}

#[test]
fn the_megatrons_log_is_plain_words() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("cybertron.rhai"),
        r#"cybertron = #{ workers: #{ w1: #{} }, repos: #{ allow: ["/*"] } };"#,
    )
    .expect("cybertron");
    let mut child = Command::new(BIN)
        .arg("megatron")
        .arg("--cybertron")
        .arg(dir.path().join("cybertron.rhai"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("megatron");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("address");
    let url = first
        .trim()
        .trim_start_matches("megatron listening on ")
        .to_string();
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token")).expect("admin");
    let post = |path: &str, body: Value| {
        crate::common::system::reply(
            ureq::post(&format!("{url}{path}"))
                .config()
                .http_status_as_error(false)
                .build()
                .header("authorization", &format!("Bearer {}", admin.trim()))
                .send_json(body),
        )
    };
    let good = GitRepo::new("app", REPO);
    let bad = GitRepo::new("bad", "constructicon = #{ builders: 3 };");
    post("/api/v1/repos", serde_json::json!({ "url": good.url() }));
    post("/api/v1/repos", serde_json::json!({ "url": bad.url() }));
    let (_, token) = post("/api/v1/workers/w1/token", serde_json::json!({}));
    let mut worker = Command::new(BIN)
        .args(["worker", "--megatron", &url, "--name", "w1", "--token"])
        .arg(token["token"].as_str().expect("token"))
        .arg("--workdir")
        .arg(dir.path().join("work"))
        .env("RUST_LOG", "error")
        .spawn()
        .expect("worker");
    let (_, forced) = post("/api/v1/builders/app-ok/force", serde_json::json!({}));
    let id = forced["build"].as_u64().expect("id");
    crate::common::system::wait_for("the build to end", Duration::from_secs(20), || {
        let build =
            crate::common::system::reply(ureq::get(&format!("{url}/api/v1/builds/{id}")).call()).1;
        (build["state"] == "finished").then_some(())
    });
    let _ = worker.kill();
    let _ = worker.wait();
    // SAFETY: kill(2) on our own child's pid: a clean stop flushes the log.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut log)
        .expect("log");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {log:?}"
    );
    assert!(log.contains("reconfigured repo=app version=1"), "{log}");
    assert!(
        log.contains("config not taken; the last good graph keeps serving repo=bad error=1 error in constructicon.rhai"),
        "{log}"
    );
    assert!(
        log.contains("build finished build=1 builder=app-ok number=1 result=success"),
        "{log}"
    );
}

#[test]
fn a_force_builds_the_head_as_of_the_force() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new("app", REPO);
    megatron.add_repo(&repo.url());
    // A commit the megatron has not fetched yet.
    let head = repo.commit(&[("notes.txt", "new")], "a later commit");
    let id = megatron.force("app-ok", serde_json::json!({}));
    let build = megatron.build(id);
    assert_eq!(build["revision"], head.as_str(), "{build}");
    assert_eq!(build["reason"], "forced by admin");
    // A pin of a dep's own dep is taken (the worker applies pins at any depth).
    let (status, body) = megatron.post(
        "/api/v1/builders/app-ok/force",
        &serde_json::json!({ "revisions": { "https://example.invalid/deep/dep.git": "v1" } }),
    );
    assert_eq!(status, 201, "{body}");
    // When the fetch fails, it builds the last fetched commit and says so.
    std::fs::rename(&repo.path, repo.path.with_extension("gone")).expect("move the repo away");
    let id = megatron.force("app-ok", serde_json::json!({}));
    let build = megatron.build(id);
    assert_eq!(build["revision"], head.as_str());
    let reason = build["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("forced by admin; fetching failed (")
            && reason.ends_with("), so it builds the last fetched commit"),
        "{reason}"
    );
}

#[test]
fn the_first_poll_after_registration_builds_a_new_commit() {
    let megatron = Megatron::start_with_flags(
        r#"cybertron = #{ workers: #{ w1: #{} } };"#,
        &["--poll-ms", "100"],
    );
    let repo = GitRepo::new(
        "app",
        r#"constructicon = #{
    builders: #{ ok: #{ commands: ["true"], schedulers: ["on-commit"] } },
    schedulers: #{ "on-commit": #{ type: "commit", branch_regex: "main" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let head = repo.commit(&[("notes.txt", "new")], "a commit after registration");
    let build = crate::common::system::wait_for(
        "a build of the new commit",
        Duration::from_secs(10),
        || {
            let (_, builds) = megatron.get("/api/v1/builders/app-ok/builds");
            builds["builds"].as_array()?.first().cloned()
        },
    );
    assert_eq!(build["revision"], head.as_str(), "{build}");
}

#[test]
fn the_first_ctrl_c_of_force_wait_leaves_the_build_running() {
    use std::io::{BufRead, BufReader};
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new("app", REPO);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let mut child = Command::new(BIN)
        .args(["force", "app-slow", "--wait"])
        .env("CONSTRUCTICON_MEGATRON", &megatron.url)
        .env("CONSTRUCTICON_USER_TOKEN", megatron.admin_token())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("force --wait");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    // Its output streams: the step's first line comes while it runs.
    let mut line = String::new();
    while !line.contains("started") {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "the output ended"
        );
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(
        err.contains("the build goes on at") && err.contains("constructicon cancel 1"),
        "{err}"
    );
    assert_eq!(megatron.build(1)["state"], "running");
}
