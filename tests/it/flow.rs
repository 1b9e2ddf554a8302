//! Builds whose results flow: deps fetched beside the build (at a branch, a
//! commit, recursively through a dep's builder, pinned when forcing), stale
//! folders removed, uploads stored and served, a second builder `get`ting
//! them, and `constructicon get` doing the same for a person.

use crate::builds::CYBERTRON;
use crate::common::system::{GitRepo, Megatron, Worker, BIN};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

/// Points a new branch at the current HEAD of a test repo.
fn branch(repo: &GitRepo, name: &str) {
    let git = git2::Repository::open(&repo.path).expect("open");
    let head = git.head().and_then(|h| h.peel_to_commit()).expect("head");
    git.branch(name, &head, true).expect("branch");
}

struct Deps {
    lib: GitRepo,
    tools: GitRepo,
    mid: GitRepo,
    base: GitRepo,
    tools_first: String,
}

fn dep_repos() -> Deps {
    let lib = GitRepo::new(
        "lib",
        "// no builders needed\nconstructicon = #{ builders: #{} };",
    );
    lib.commit(&[("version", "1\n")], "v1");
    branch(&lib, "stable");
    lib.commit(&[("version", "2\n")], "v2");
    let tools = GitRepo::new("tools", "constructicon = #{ builders: #{} };");
    let tools_first = tools.commit(&[("t", "1\n")], "t1");
    tools.commit(&[("t", "2\n")], "t2");
    let base = GitRepo::new("base", "constructicon = #{ builders: #{} };");
    base.commit(&[("base.txt", "base\n")], "base");
    let mid = GitRepo::new(
        "mid",
        &format!(
            r#"constructicon = #{{ builders: #{{ build: #{{ deps: ["{}"], commands: ["true"] }} }} }};"#,
            base.url()
        ),
    );
    Deps {
        lib,
        tools,
        mid,
        base,
        tools_first,
    }
}

fn app_config(deps: &Deps, with_tools: bool) -> String {
    let tools = if with_tools {
        format!(
            r#"#{{ url: "{}", revision: "{}" }},"#,
            deps.tools.url(),
            deps.tools_first
        )
    } else {
        String::new()
    };
    format!(
        r#"constructicon = #{{
    builders: #{{
        deps: #{{
            deps: [
                #{{ url: "{lib}", revision: "stable" }},
                {tools}
                #{{ url: "{mid}", builder: "build" }},
            ],
            commands: ["cat ../lib/version; ls .. | sort | tr '\n' ' '; echo"],
            schedulers: ["force"],
        }},
        up: #{{
            commands: [
                "mkdir -p out/sub pkg site && echo a > out/a.txt && echo b > out/sub/b.txt && echo r > report.txt",
                "echo p > pkg/p.txt && echo '<h1>hi</h1>' > site/index.html",
            ],
            upload: #{{ "report.txt": "report.txt", "out": "files", "pkg": "pkg.zip", "site": "site" }},
            zip: ["pkg", "site"],
            unzip: ["site"],
            url: #{{ "site": "index.html" }},
            schedulers: ["force"],
        }},
        down: #{{
            get: #{{ "up": ["build.number"] }},
            commands: ["cat ../up/report.txt ../up/files/a.txt ../up/files/sub/b.txt ../up/site/index.html && test -f ../up/pkg.zip"],
            schedulers: ["force"],
        }},
    }},
    schedulers: #{{ force: #{{ type: "force" }} }},
}};"#,
        lib = deps.lib.url(),
        mid = deps.mid.url(),
    )
}

#[test]
fn deps_land_beside_the_build_at_their_revisions() {
    let deps = dep_repos();
    let app = GitRepo::new("app", &app_config(&deps, true));
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&app.url());
    let _worker = Worker::start(&megatron, "w1");

    let id = megatron.force("app-deps", json!({}));
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(
        build["result"],
        "success",
        "{build}\n{}",
        megatron.log(id, 0)
    );
    assert_eq!(megatron.log(id, 1), "1\napp base lib mid tools \n");
    let revisions = &build["revisions"];
    assert_eq!(
        revisions[deps.tools.url()],
        deps.tools_first.as_str(),
        "{build}"
    );
    for repo in [&deps.lib, &deps.mid, &deps.base, &app] {
        assert!(
            revisions[repo.url()]
                .as_str()
                .is_some_and(|c| c.len() == 40),
            "{}: {build}",
            repo.url()
        );
    }

    // A pin when forcing wins over the dep's revision.
    let (status, body) = megatron.post(
        "/api/v1/builders/app-deps/force",
        &json!({ "revisions": { deps.lib.url(): "main" } }),
    );
    assert_eq!(status, 201, "{body}");
    let pinned = body["build"].as_u64().expect("id");
    assert_eq!(megatron.wait_finished(pinned, LONG)["result"], "success");
    assert!(
        megatron.log(pinned, 1).starts_with("2\n"),
        "{}",
        megatron.log(pinned, 1)
    );

    // A dep dropped from the config is removed before the next build.
    app.commit(
        &[("constructicon.rhai", &app_config(&deps, false))],
        "no tools",
    );
    megatron.post("/api/v1/repos/app/refresh", &json!({}));
    let id = megatron.force("app-deps", json!({}));
    assert_eq!(megatron.wait_finished(id, LONG)["result"], "success");
    assert_eq!(megatron.log(id, 1), "1\napp base lib mid \n");

    // A cycle is a clear failure of the checkout step.
    deps.mid.commit(
        &[(
            "constructicon.rhai",
            &format!(r#"constructicon = #{{ builders: #{{ build: #{{ deps: ["{}"], commands: ["true"] }} }} }};"#, app.url()),
        )],
        "cycle",
    );
    let id = megatron.force("app-deps", json!({}));
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "failure");
    assert_eq!(build["steps"][0]["result"], "failure");
    let reason = build["steps"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("dependency cycle: app → mid → app"),
        "{build}"
    );
}

#[test]
fn uploads_are_served_and_a_later_build_gets_them() {
    let deps = dep_repos();
    let app = GitRepo::new("app", &app_config(&deps, true));
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&app.url());
    let _worker = Worker::start(&megatron, "w1");

    // Nothing to get yet: the get step fails clearly.
    let early = megatron.force("app-down", json!({}));
    let build = megatron.wait_finished(early, LONG);
    assert_eq!(build["result"], "failure");
    assert_eq!(build["steps"][1]["name"], "get");
    assert!(
        build["steps"][1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no build of app-up"),
        "{build}"
    );

    let up = megatron.force("app-up", json!({}));
    let build = megatron.wait_finished(up, LONG);
    assert_eq!(build["result"], "success", "{build}");
    let paths: Vec<&str> = build["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "files/a.txt",
            "files/sub/b.txt",
            "pkg.zip",
            "report.txt",
            "site/index.html"
        ]
    );
    assert_eq!(
        megatron.get_text(&format!("/api/v1/builds/{up}/artifacts/files/sub/b.txt")),
        "b\n"
    );
    let link = build["links"]["site"].as_str().expect("link");
    assert_eq!(megatron.get_text(link), "<h1>hi</h1>\n");

    let down = megatron.force("app-down", json!({}));
    let build = megatron.wait_finished(down, LONG);
    assert_eq!(
        build["result"],
        "success",
        "{build}\n{}",
        megatron.log(down, 1)
    );
    assert_eq!(build["got"]["app-up"], up);
    assert_eq!(megatron.log(down, 2), "r\na\nb\n<h1>hi</h1>\n");
}

fn cli_get(megatron: &Megatron, checkout: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("get")
        .args(args)
        .current_dir(checkout)
        .env("CONSTRUCTICON_MEGATRON", &megatron.url)
        .env("CONSTRUCTICON_USER_TOKEN", megatron.admin_token())
        .output()
        .expect("get");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_person_gets_what_a_worker_would_have() {
    let deps = dep_repos();
    let app = GitRepo::new("app", &app_config(&deps, true));
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&app.url());
    let _worker = Worker::start(&megatron, "w1");
    let up = megatron.force("app-up", json!({}));
    assert_eq!(megatron.wait_finished(up, LONG)["result"], "success");

    // A person's own clone, with a stray folder beside it.
    let desk = tempfile::tempdir().expect("tempdir");
    let checkout = desk.path().join("app");
    git2::Repository::clone(&app.url(), &checkout).expect("clone");
    std::fs::create_dir(desk.path().join("junk")).expect("junk");
    std::fs::write(checkout.join("my-work.txt"), "precious").expect("work");

    let (code, text) = cli_get(&megatron, &checkout, &["deps", "--keep"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("junk is not asked for"), "{text}");
    assert!(text.contains("lib is missing"), "{text}");
    assert!(desk.path().join("junk").exists(), "--keep destroys nothing");
    assert!(!desk.path().join("lib").exists());

    let (code, text) = cli_get(&megatron, &checkout, &["deps"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!desk.path().join("junk").exists(), "{text}");
    assert_eq!(
        std::fs::read_to_string(desk.path().join("lib/version")).expect("lib"),
        "1\n"
    );
    assert!(desk.path().join("base/base.txt").exists(), "{text}");
    assert_eq!(
        std::fs::read_to_string(checkout.join("my-work.txt")).expect("work"),
        "precious",
        "the person's checkout is untouched"
    );

    let (code, text) = cli_get(&megatron, &checkout, &["deps", "--keep"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 differences"), "{text}");

    let (code, text) = cli_get(&megatron, &checkout, &["app-down"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        std::fs::read_to_string(desk.path().join("up/files/sub/b.txt")).expect("got"),
        "b\n"
    );
}
