//! A cybertron reload in the running megatron: `constructicon megatron
//! reload` reads the file again and re-evaluates every repo.

use crate::common::system::{wait_for, GitRepo, Megatron, BIN};
use std::process::Command;

#[test]
fn a_reload_re_evaluates_every_repo_against_the_new_cybertron() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{ platform: "linux" } } };"#);
    let repo = GitRepo::new(
        "macapp",
        r#"constructicon = #{ builders: #{ build: #{ accept: `features.platform == "mac"`, commands: ["true"] } } };"#,
    );
    let view = megatron.add_repo(&repo.url());
    assert!(
        view["error"]["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no worker accepts"),
        "{view}"
    );

    let reload = |expect: Option<i32>| {
        let out = Command::new(BIN)
            .args(["megatron", "reload", "--megatron", &megatron.url])
            .arg("--admin-token-file")
            .arg(megatron.dir.join("data/admin-token"))
            .output()
            .expect("reload");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), expect, "{text}");
        text
    };

    // A broken cybertron changes nothing.
    std::fs::write(
        megatron.dir.join("cybertron.rhai"),
        "cybertron = #{ workers: 5 };",
    )
    .expect("write");
    let text = reload(Some(1));
    assert!(text.contains("the old one stays"), "{text}");

    std::fs::write(
        megatron.dir.join("cybertron.rhai"),
        r#"cybertron = #{ workers: #{ w1: #{ platform: "linux" }, m1: #{ platform: "mac" } } };"#,
    )
    .expect("write");
    let text = reload(Some(0));
    assert!(text.contains("1 repos re-evaluated"), "{text}");
    let (_, view) = megatron.get("/api/v1/repos/macapp");
    assert!(view["error"].is_null(), "{view}");
    let (_, builder) = megatron.get("/api/v1/builders/macapp-build");
    assert_eq!(builder["spec"]["workers"], serde_json::json!(["m1"]));

    // Without the admin token, no reload.
    let (status, _) = megatron.post_anonymous("/api/v1/admin/reload", &serde_json::json!({}));
    assert_eq!(status, 401);
}

#[test]
fn sighup_reloads_too() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{ platform: "linux" } } };"#);
    let repo = GitRepo::new(
        "hup",
        r#"constructicon = #{ builders: #{ build: #{ accept: `features.platform == "mac"`, commands: ["true"] } } };"#,
    );
    assert!(!megatron.add_repo(&repo.url())["error"].is_null());
    std::fs::write(
        megatron.dir.join("cybertron.rhai"),
        r#"cybertron = #{ workers: #{ m1: #{ platform: "mac" } } };"#,
    )
    .expect("write");
    megatron.signal(libc::SIGHUP);
    wait_for("the reload", std::time::Duration::from_secs(10), || {
        let (_, view) = megatron.get("/api/v1/repos/hup");
        view["error"].is_null().then_some(())
    });
}

#[test]
fn a_commit_that_leaves_the_rhai_files_alone_keeps_the_graph_version() {
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new(
        "steady",
        r#"import "lib/steps" as steps;
constructicon = #{ builders: #{ b: #{ commands: steps::COMMANDS, schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } } };"#,
    );
    repo.commit(
        &[("lib/steps.rhai", r#"export const COMMANDS = ["true"];"#)],
        "lib",
    );
    let first = megatron.add_repo(&repo.url());
    let version = first["graph"]["version"].as_u64().expect("version");
    let config_commit = first["commit"].as_str().expect("commit").to_string();

    // Code changes, the .rhai files do not: the repo moves to the commit,
    // the graph stays, and builds name the commit it was evaluated from.
    let code = repo.commit(&[("src/main.c", "int main() { return 0; }\n")], "code");
    let (status, view) = megatron.post("/api/v1/repos/steady/refresh", &serde_json::json!({}));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["commit"], code.as_str(), "{view}");
    assert_eq!(view["graph"]["version"], version, "{view}");
    assert!(view["error"].is_null(), "{view}");
    let id = megatron.force("steady-b", serde_json::json!({}));
    let build = megatron.build(id);
    assert_eq!(build["revision"], code.as_str(), "{build}");
    assert_eq!(build["provenance"]["graph_version"], version);
    assert_eq!(build["provenance"]["config_commit"], config_commit.as_str());

    // An imported file changes: a new evaluation and a new version.
    let lib = repo.commit(
        &[("lib/steps.rhai", r#"export const COMMANDS = ["echo two"];"#)],
        "lib 2",
    );
    let (status, view) = megatron.post("/api/v1/repos/steady/refresh", &serde_json::json!({}));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["commit"], lib.as_str(), "{view}");
    assert!(
        view["graph"]["version"]
            .as_u64()
            .is_some_and(|v| v > version),
        "{view}"
    );
    let (_, builder) = megatron.get("/api/v1/builders/steady-b");
    assert_eq!(
        builder["spec"]["steps"][0]["command"], "echo two",
        "{builder}"
    );
}
