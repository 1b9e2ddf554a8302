//! Pull requests end to end: signed GitHub deliveries to a real megatron, a
//! real repo whose `refs/pull/<n>/head` holds each request's head (as the
//! forge keeps it), a worker, and a fake forge recording the statuses.

use crate::common::fake_forge::FakeForge;
use crate::common::system::{reply, wait_for, GitRepo, Megatron, Worker};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "pull request hook secret";

const LIVE: &str = r#"constructicon = #{
    builders: #{ test: #{ commands: ["echo live config"], schedulers: ["ci", "force"] } },
    schedulers: #{
        ci: #{ type: "commit", branch_regex: "main", pull_requests: true },
        force: #{ type: "force" },
    },
};"#;

/// The request's own config: `test` says so, and a builder only it has.
const PROPOSED: &str = r#"constructicon = #{
    builders: #{
        test: #{ commands: ["echo proposed config"], schedulers: ["ci"] },
        extra: #{ commands: ["echo an extra builder"], schedulers: ["ci"] },
    },
    schedulers: #{ ci: #{ type: "commit", branch_regex: "main", pull_requests: true } },
};"#;

struct Setup {
    megatron: Megatron,
    forge: FakeForge,
    repo: GitRepo,
    _files: tempfile::TempDir,
}

fn setup() -> Setup {
    let forge = FakeForge::start();
    let files = tempfile::tempdir().expect("tempdir");
    let secret = files.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let token = files.path().join("token");
    std::fs::write(&token, "forge-token").expect("token");
    let deploy = files.path().join("deploy");
    std::fs::write(&deploy, "deploy-secret-value").expect("deploy secret");
    let megatron = Megatron::start(&format!(
        r#"cybertron = #{{
    workers: #{{ w1: #{{ trusted: true }}, sandbox: #{{ untrusted: true }} }},
    poll_interval: 3600,
    webhook_secret: #{{ file: {secret:?} }},
    forges: #{{ fake: #{{ type: "github", api: "{}", repos: ["/*"], token: #{{ file: {token:?} }} }} }},
    access: #{{ people: #{{ ana: "operator", vic: "viewer" }} }},
    pull_requests: #{{ fork_workers: `features.untrusted == true` }},
    secrets: #{{ deploy_token: #{{ file: {deploy:?}, triggers: ["pull_request"] }} }},
}};"#,
        forge.url
    ));
    let repo = GitRepo::new("app", LIVE);
    megatron.add_repo(&repo.url());
    Setup {
        megatron,
        forge,
        repo,
        _files: files,
    }
}

/// A commit off `main` holding `config`, at `refs/pull/<number>/head`, as
/// the forge keeps a request's head; `main` does not move.
fn push_head(repo: &Path, number: u64, config: &str, marker: &str) -> String {
    let git = git2::Repository::open(repo).expect("open");
    let parent = git
        .find_reference(&format!("refs/pull/{number}/head"))
        .or_else(|_| git.find_reference("refs/heads/main"))
        .and_then(|r| r.peel_to_commit())
        .expect("parent");
    let mut builder = git
        .treebuilder(Some(&parent.tree().expect("tree")))
        .expect("builder");
    for (name, text) in [("constructicon.rhai", config), ("marker.txt", marker)] {
        let blob = git.blob(text.as_bytes()).expect("blob");
        builder.insert(name, blob, 0o100644).expect("insert");
    }
    let tree = git.find_tree(builder.write().expect("tree")).expect("tree");
    let signature = git2::Signature::now("pr", "pr@example.invalid").expect("signature");
    let commit = git
        .commit(None, &signature, &signature, marker, &tree, &[&parent])
        .expect("commit");
    git.reference(
        &format!("refs/pull/{number}/head"),
        commit,
        true,
        "pull request head",
    )
    .expect("ref");
    commit.to_string()
}

fn deliver(megatron: &Megatron, event: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(&bytes);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    reply(
        agent
            .post(&format!("{}/api/v1/hooks/push", megatron.url))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-hub-signature-256", &format!("sha256={signature}"))
            .send(&bytes[..]),
    )
}

fn pull_event(repo: &GitRepo, action: &str, number: u64, head: &str, from: &str) -> Value {
    json!({
        "action": action,
        "number": number,
        "pull_request": {
            "title": format!("request {number}"),
            "user": { "login": "mallory" },
            "head": { "sha": head, "ref": "topic", "repo": { "full_name": from } },
            "base": { "ref": "main", "repo": { "full_name": "acme/app", "clone_url": repo.url() } },
        },
        "repository": { "clone_url": repo.url() },
    })
}

fn comment(repo: &GitRepo, number: u64, author: &str, body: &str) -> Value {
    json!({
        "action": "created",
        "issue": { "number": number, "pull_request": { "url": "x" } },
        "comment": { "body": body, "user": { "login": author } },
        "repository": { "clone_url": repo.url() },
    })
}

fn person_token(megatron: &Megatron, person: &str) -> String {
    let (status, body) = megatron.post(&format!("/api/v1/people/{person}/tokens"), &json!({}));
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_string()
}

#[test]
fn a_request_builds_its_head_with_its_own_config_and_the_live_graph_stays() {
    let s = setup();
    let head = push_head(&s.repo.path, 1, PROPOSED, "one");
    let (status, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 1, &head, "acme/app"),
    );
    assert_eq!(status, 202, "{body}");
    let pull = &body["pulls"][0];
    assert_eq!(pull["waiting"], Value::Null, "{body}");
    let builds: Vec<u64> = pull["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| b.as_u64().expect("id"))
        .collect();
    assert_eq!(builds.len(), 2, "test and extra: {body}");
    let _worker = Worker::start(&s.megatron, "w1");
    for id in &builds {
        let build = s.megatron.wait_finished(*id, Duration::from_secs(60));
        assert_eq!(build["result"], "success", "{build}");
        assert_eq!(build["revision"], head.as_str());
        assert_eq!(build["pull_request"]["number"], 1);
    }
    let logs: Vec<String> = builds.iter().map(|id| s.megatron.log(*id, 1)).collect();
    assert!(logs.contains(&"proposed config\n".to_string()), "{logs:?}");
    // The live graph is the repo's own: no `extra`, `test` unchanged.
    let (_, builders) = s.megatron.get("/api/v1/builders");
    let names: Vec<&str> = builders["builders"]
        .as_array()
        .expect("builders")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert!(!names.contains(&"app-extra"), "{names:?}");
    let (_, test) = s.megatron.get("/api/v1/builders/app-test");
    assert!(test.to_string().contains("echo live config"), "{test}");
    // The statuses go to the head commit.
    wait_for("the head's success", Duration::from_secs(20), || {
        (s.forge
            .statuses("constructicon/app-test")
            .last()
            .map(|(st, _)| st.as_str())
            == Some("success"))
        .then_some(())
    });
    assert!(s.forge.received().iter().all(|r| r.path.ends_with(&head)));
    let (_, pulls) = s.megatron.get("/api/v1/repos/app/pulls");
    assert_eq!(pulls["pulls"][0]["head"], head.as_str());
    let page = s.megatron.get_text("/repos/app");
    assert!(
        page.contains("request 1"),
        "the repo page lists the request"
    );
}

#[test]
fn a_newer_push_supersedes_the_older_pending_builds() {
    let s = setup();
    let first = push_head(&s.repo.path, 4, LIVE, "first");
    let (_, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 4, &first, "acme/app"),
    );
    let older = body["pulls"][0]["builds"][0].as_u64().expect("a build");
    let second = push_head(&s.repo.path, 4, LIVE, "second");
    let (status, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "synchronize", 4, &second, "acme/app"),
    );
    assert_eq!(status, 202, "{body}");
    let older = s.megatron.build(older);
    assert_eq!(older["result"], "cancelled");
    assert!(
        older["result_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("superseded"),
        "{older}"
    );
    let newer = body["pulls"][0]["builds"][0].as_u64().expect("a build");
    assert_eq!(s.megatron.build(newer)["revision"], second.as_str());
}

#[test]
fn a_broken_config_in_a_request_fails_its_status_and_leaves_the_live_graph() {
    let s = setup();
    let (_, before) = s.megatron.get("/api/v1/repos/app");
    let head = push_head(
        &s.repo.path,
        2,
        "constructicon = #{ builders: 3 };",
        "broken",
    );
    let (status, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 2, &head, "acme/app"),
    );
    assert_eq!(status, 202, "{body}");
    let waiting = body["pulls"][0]["waiting"].as_str().unwrap_or_default();
    assert!(waiting.contains("does not evaluate"), "{body}");
    assert!(
        waiting.contains("constructicon.rhai:1:"),
        "placed diagnostics: {waiting}"
    );
    assert_eq!(body["pulls"][0]["builds"], json!([]));
    let statuses = wait_for("the config status", Duration::from_secs(20), || {
        let statuses = s.forge.statuses("constructicon/config");
        (!statuses.is_empty()).then_some(statuses)
    });
    assert_eq!(statuses[0].0, "failure");
    assert!(statuses[0].1.contains("error"), "{statuses:?}");
    let (_, after) = s.megatron.get("/api/v1/repos/app");
    assert_eq!(before["graph_version"], after["graph_version"]);
    assert_eq!(
        after["error"],
        Value::Null,
        "the repo itself has no error: {after}"
    );
}

#[test]
fn a_fork_waits_for_an_operator_and_each_push_for_a_new_approval() {
    let s = setup();
    let head = push_head(&s.repo.path, 3, LIVE, "fork one");
    let (status, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 3, &head, "mallory/app"),
    );
    assert_eq!(status, 202, "{body}");
    assert!(
        body["pulls"][0]["waiting"]
            .as_str()
            .unwrap_or_default()
            .contains("awaiting approval"),
        "{body}"
    );
    assert_eq!(body["pulls"][0]["builds"], json!([]));
    wait_for("the approval status", Duration::from_secs(20), || {
        (s.forge
            .statuses("constructicon/approval")
            .last()
            .map(|(st, _)| st.as_str())
            == Some("pending"))
        .then_some(())
    });

    // A viewer may not approve; an operator may, through the API.
    let vic = person_token(&s.megatron, "vic");
    let approve = json!({ "commit": &head[..10] });
    let (status, _) = s.megatron.post_with(
        "/api/v1/repos/app/pulls/3/approve",
        &approve,
        &[("authorization", &format!("Bearer {vic}"))],
    );
    assert_eq!(status, 403);
    // An operator approves with the command line.
    let ana = person_token(&s.megatron, "ana");
    let config = tempfile::tempdir().expect("config home");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::system::BIN)
            .args(args)
            .env("CONSTRUCTICON_MEGATRON", &s.megatron.url)
            .env("CONSTRUCTICON_USER_TOKEN", &ana)
            .env("XDG_CONFIG_HOME", config.path())
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, listed) = cli(&["pulls", "app"]);
    assert_eq!(code, Some(0));
    assert!(
        listed.contains("#3 request 3 (by mallory, from a fork)"),
        "{listed}"
    );
    assert!(listed.contains("awaiting approval"), "{listed}");
    let (code, out) = cli(&["approve", "app", "3", &head[..10], "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let body: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(body["approved"]["by"], "ana");
    let build = body["builds"][0].as_u64().expect("built once approved");
    // Fork builds go only to the workers cybertron keeps for them.
    let _trusted = Worker::start(&s.megatron, "w1");
    let _sandbox = Worker::start(&s.megatron, "sandbox");
    let build = s.megatron.wait_finished(build, Duration::from_secs(60));
    assert_eq!(build["worker"], "sandbox", "{build}");

    // A new push needs a new approval; a viewer's comment gives none.
    let newer = push_head(&s.repo.path, 3, LIVE, "fork two");
    let (_, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "synchronize", 3, &newer, "mallory/app"),
    );
    assert_eq!(body["pulls"][0]["builds"], json!([]), "{body}");
    let (status, body) = deliver(
        &s.megatron,
        "issue_comment",
        &comment(&s.repo, 3, "vic", &format!("/ok-to-test {}", &newer[..7])),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["outcomes"]["app"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not approved"),
        "{body}"
    );
    let (_, pulls) = s.megatron.get("/api/v1/repos/app/pulls");
    assert_eq!(pulls["pulls"][0]["builds"], json!([]));
    // An operator's comment on the old commit approves nothing either.
    let (_, body) = deliver(
        &s.megatron,
        "issue_comment",
        &comment(&s.repo, 3, "ana", &format!("/ok-to-test {}", &head[..7])),
    );
    assert!(
        body["outcomes"]["app"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not approved"),
        "{body}"
    );
    // The operator's comment on the new head does.
    let (_, body) = deliver(
        &s.megatron,
        "issue_comment",
        &comment(&s.repo, 3, "ana", &format!("lgtm\n/ok-to-test {newer}")),
    );
    assert!(
        body["outcomes"]["app"]
            .as_str()
            .unwrap_or_default()
            .starts_with("approved"),
        "{body}"
    );
    let (_, pulls) = s.megatron.get("/api/v1/repos/app/pulls");
    let id = pulls["pulls"][0]["builds"][0]
        .as_u64()
        .expect("built after the comment");
    let build = s.megatron.wait_finished(id, Duration::from_secs(60));
    assert_eq!(build["revision"], newer.as_str());
    assert_eq!(build["result"], "success");
}

#[test]
fn a_forks_build_gets_no_secret_a_same_repo_request_does() {
    let s = setup();
    let config = r#"constructicon = #{
    builders: #{ deploy: #{ commands: ["if [ -n \"$DEPLOY_TOKEN\" ]; then echo got the token; else echo no token; fi"], schedulers: ["ci"], secrets: ["deploy_token"] } },
    schedulers: #{ ci: #{ type: "commit", branch_regex: "main", pull_requests: true } },
};"#;
    let own = push_head(&s.repo.path, 5, config, "own");
    let (_, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 5, &own, "acme/app"),
    );
    let own_build = body["pulls"][0]["builds"][0].as_u64().expect("a build");
    let fork = push_head(&s.repo.path, 6, config, "fork");
    deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&s.repo, "opened", 6, &fork, "mallory/app"),
    );
    let (status, body) = s.megatron.post(
        "/api/v1/repos/app/pulls/6/approve",
        &json!({ "commit": fork }),
    );
    assert_eq!(status, 200, "{body}");
    let fork_build = body["builds"][0].as_u64().expect("a build");
    let _w1 = Worker::start(&s.megatron, "w1");
    let _sandbox = Worker::start(&s.megatron, "sandbox");
    let own_build = s.megatron.wait_finished(own_build, Duration::from_secs(60));
    let fork_build = s
        .megatron
        .wait_finished(fork_build, Duration::from_secs(60));
    assert_eq!(
        s.megatron.log(own_build["id"].as_u64().expect("id"), 1),
        "got the token\n"
    );
    assert_eq!(own_build["withheld"], json!([]));
    assert_eq!(
        s.megatron.log(fork_build["id"].as_u64().expect("id"), 1),
        "no token\n"
    );
    assert_eq!(
        fork_build["withheld"],
        json!(["deploy_token withheld: pull request from a fork"])
    );
}

#[test]
fn a_repo_that_builds_no_requests_shows_no_status_for_a_fork() {
    let s = setup();
    let plain = GitRepo::new(
        "plain",
        r#"constructicon = #{
    builders: #{ t: #{ commands: ["true"], schedulers: ["ci"] } },
    schedulers: #{ ci: #{ type: "commit", branch_regex: "main" } },
};"#,
    );
    s.megatron.add_repo(&plain.url());
    let head = push_head(&plain.path, 9, LIVE, "fork");
    let (status, body) = deliver(
        &s.megatron,
        "pull_request",
        &pull_event(&plain, "opened", 9, &head, "mallory/plain"),
    );
    assert_eq!(status, 202, "{body}");
    let waiting = body["pulls"][0]["waiting"].as_str().unwrap_or_default();
    assert!(waiting.contains("builds no pull requests"), "{body}");
    // A status that could only wait forever is never posted.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        forge_posts_for(&s.forge, &head).is_empty(),
        "{:?}",
        forge_posts_for(&s.forge, &head)
    );
}

fn forge_posts_for(forge: &FakeForge, commit: &str) -> Vec<Value> {
    forge
        .received()
        .into_iter()
        .filter(|r| r.path.ends_with(commit))
        .map(|r| r.body)
        .collect()
}
