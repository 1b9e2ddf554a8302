//! Commit statuses against a fake forge on loopback: the sequence a build
//! posts (success, failure, cancel, collapse), the concurrency cap, retries
//! after a rate limit and a 500, and a megatron killed while the final state
//! waits, which posts it after its restart.

use crate::common::fake_forge::FakeForge;
use crate::common::system::{wait_for, GitRepo, Megatron, Worker};
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "forge-token-not-for-logs";

/// A megatron whose cybertron sends every repo's statuses to `forge` as a
/// GitHub, with this much concurrency.
fn megatron_with(forge: &FakeForge, concurrency: u32) -> Megatron {
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), format!("{TOKEN}\n")).expect("token");
    let (_, path) = token.keep().expect("keep the token file");
    Megatron::start(&format!(
        r#"cybertron = #{{
    workers: #{{ w1: #{{}}, w2: #{{}} }},
    public_url: "https://ci.example.com",
    forges: #{{ fake: #{{ type: "github", api: "{}", repos: ["/*"], token: #{{ file: "{}" }}, concurrency: {concurrency} }} }},
}};"#,
        forge.url,
        path.display()
    ))
}

fn repo(builders: &str) -> GitRepo {
    GitRepo::new(
        "app",
        &format!(
            r#"constructicon = #{{
    builders: #{{ {builders} }},
    schedulers: #{{ force: #{{ type: "force" }} }},
}};"#
        ),
    )
}

#[track_caller]
fn wait_statuses(forge: &FakeForge, context: &str, final_state: &str) -> Vec<(String, String)> {
    wait_for(
        &format!("a {final_state} status for {context}"),
        Duration::from_secs(30),
        || {
            let statuses = forge.statuses(context);
            statuses
                .last()
                .is_some_and(|(state, _)| state == final_state)
                .then_some(statuses)
        },
    )
}

#[test]
fn a_build_posts_pending_running_and_success_on_its_commit() {
    let forge = FakeForge::start();
    let megatron = megatron_with(&forge, 4);
    let repo = repo(r#"ok: #{ commands: ["sleep 1"], schedulers: ["force"] }"#);
    megatron.add_repo(&repo.url());
    let id = megatron.force("app-ok", json!({}));
    // No worker yet: the build waits, and says so on the commit.
    let queued = wait_statuses(&forge, "constructicon/app-ok", "pending");
    assert_eq!(queued, [("pending".into(), "queued".into())]);
    let _worker = Worker::start(&megatron, "w1");
    let statuses = wait_statuses(&forge, "constructicon/app-ok", "success");
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(statuses[1], ("pending".into(), "running on w1".into()));
    assert!(statuses[2].1.starts_with("passed in "), "{statuses:?}");

    let build = megatron.build(id);
    let commit = build["revision"].as_str().expect("revision");
    let posts = forge.received();
    for post in &posts {
        assert_eq!(post.method, "POST");
        assert!(
            post.path.ends_with(&format!("/app/statuses/{commit}")),
            "{}",
            post.path
        );
        assert_eq!(
            post.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(
            post.body["target_url"],
            format!("https://ci.example.com/builds/{id}")
        );
    }
    // The build says how reporting went; the token is nowhere in it.
    wait_for(
        "the build to note the post",
        Duration::from_secs(10),
        || {
            let build = megatron.build(id);
            (build["reporting"]["posted"] == "success").then_some(())
        },
    );
    let build = megatron.build(id);
    assert_eq!(build["reporting"]["forge"], "fake");
    assert_eq!(build["reporting"]["error"], serde_json::Value::Null);
    assert!(!build.to_string().contains(TOKEN));
    let page = megatron.get_text(&format!("/builds/{id}"));
    assert!(
        page.contains("constructicon/app-ok"),
        "the build page shows the status"
    );
    assert!(!page.contains(TOKEN));
}

#[test]
fn a_failure_names_the_command_that_failed() {
    let forge = FakeForge::start();
    let megatron = megatron_with(&forge, 4);
    let repo = repo(r#"test: #{ commands: ["true", "sh -c 'exit 2'"], schedulers: ["force"] }"#);
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    megatron.force("app-test", json!({}));
    let statuses = wait_statuses(&forge, "constructicon/app-test", "failure");
    assert_eq!(
        statuses.last().expect("final").1,
        "command 2 failed: sh -c 'exit 2' (exit 2)"
    );
}

#[test]
fn cancelled_and_collapsed_builds_never_stay_pending() {
    let forge = FakeForge::start();
    let megatron = megatron_with(&forge, 4);
    let repo = repo(
        r#"ok: #{ commands: ["true"], schedulers: ["force"] },
           latest: #{ commands: ["true"], schedulers: ["force"], collapse: true }"#,
    );
    megatron.add_repo(&repo.url());
    // Cancelled while queued.
    let id = megatron.force("app-ok", json!({}));
    wait_statuses(&forge, "constructicon/app-ok", "pending");
    let (status, body) = megatron.post(&format!("/api/v1/builds/{id}/cancel"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let statuses = wait_statuses(&forge, "constructicon/app-ok", "error");
    assert!(
        statuses.last().expect("final").1.contains("cancelled"),
        "{statuses:?}"
    );

    // Collapsed: a newer commit's build replaces the older one's.
    let first = repo.commit(&[("a.txt", "1")], "one");
    let second = repo.commit(&[("a.txt", "2")], "two");
    let force_at = |commit: &str| {
        let (status, body) = megatron.post(
            "/api/v1/builders/app-latest/force",
            &json!({ "revisions": { "app": commit } }),
        );
        assert_eq!(status, 201, "{body}");
        body["build"].as_u64().expect("id")
    };
    let older = force_at(&first);
    let newer = force_at(&second);
    let on = |commit: &str| {
        forge
            .received()
            .into_iter()
            .filter(|r| r.path.ends_with(commit) && r.body["context"] == "constructicon/app-latest")
            .map(|r| r.body["state"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    wait_for(
        "the older commit's final status",
        Duration::from_secs(20),
        || (on(&first).last().map(String::as_str) == Some("error")).then_some(()),
    );
    let older_build = megatron.build(older);
    assert_eq!(older_build["result"], "cancelled");
    let _worker = Worker::start(&megatron, "w1");
    megatron.wait_finished(newer, Duration::from_secs(30));
    wait_for(
        "the newer commit's success",
        Duration::from_secs(20),
        || (on(&second).last().map(String::as_str) == Some("success")).then_some(()),
    );
    assert!(
        forge
            .statuses("constructicon/app-latest")
            .iter()
            .any(|(_, d)| d == &format!("collapsed into the newer build {newer}")),
        "{:?}",
        forge.statuses("constructicon/app-latest")
    );
}

#[test]
fn posts_to_one_forge_never_pass_its_concurrency() {
    let forge = FakeForge::start();
    forge.delay(Duration::from_millis(150));
    let megatron = megatron_with(&forge, 2);
    let builders: Vec<String> = (0..10)
        .map(|i| format!(r#"b{i}: #{{ commands: ["true"], schedulers: ["force"] }}"#))
        .collect();
    let repo = repo(&builders.join(",\n"));
    megatron.add_repo(&repo.url());
    let _w1 = Worker::start(&megatron, "w1");
    let _w2 = Worker::start(&megatron, "w2");
    for i in 0..10 {
        megatron.force(&format!("app-b{i}"), json!({}));
    }
    for i in 0..10 {
        wait_statuses(&forge, &format!("constructicon/app-b{i}"), "success");
    }
    assert!(
        forge.most_at_once() <= 2,
        "{} at once",
        forge.most_at_once()
    );
    assert!(
        forge.most_at_once() == 2,
        "the cap was never reached: a weak test"
    );
}

#[test]
fn a_rate_limit_and_a_500_are_waited_out_and_the_error_shows_meanwhile() {
    let forge = FakeForge::start();
    forge.answer_next(&[(429, &[("retry-after", "2")]), (500, &[])]);
    let megatron = megatron_with(&forge, 4);
    let repo = repo(r#"ok: #{ commands: ["true"], schedulers: ["force"] }"#);
    megatron.add_repo(&repo.url());
    let id = megatron.force("app-ok", json!({}));
    wait_for(
        "the rate limit to show on the build",
        Duration::from_secs(10),
        || {
            let build = megatron.build(id);
            build["reporting"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("rate-limited") && e.contains("429"))
                .then_some(())
        },
    );
    let posts = wait_for("three posts", Duration::from_secs(20), || {
        let posts = forge.received();
        (posts.len() >= 3).then_some(posts)
    });
    assert_eq!(posts.len(), 3, "429, 500, then 201");
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "tried again after {waited:?} despite Retry-After: 2"
    );
    wait_for("the error to clear", Duration::from_secs(10), || {
        let build = megatron.build(id);
        (build["reporting"]["error"].is_null() && build["reporting"]["posted"] == "pending")
            .then_some(())
    });
}

#[test]
fn a_megatron_killed_before_the_final_post_makes_it_after_its_restart() {
    let forge = FakeForge::start();
    forge.answer_always(Some(503));
    let mut megatron = megatron_with(&forge, 4);
    let repo = repo(r#"ok: #{ commands: ["true"], schedulers: ["force"] }"#);
    megatron.add_repo(&repo.url());
    let worker = Worker::start(&megatron, "w1");
    let id = megatron.force("app-ok", json!({}));
    megatron.wait_finished(id, Duration::from_secs(30));
    drop(worker);
    // The forge has refused everything so far.
    wait_for("a refused post", Duration::from_secs(10), || {
        (!forge.received().is_empty()).then_some(())
    });
    megatron.kill9();
    forge.answer_always(None);
    megatron.restart();
    let statuses = wait_statuses(&forge, "constructicon/app-ok", "success");
    assert!(statuses.last().expect("final").1.starts_with("passed"));
}
