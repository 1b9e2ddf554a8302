//! `constructicon eval --against URL`: a working copy's config evaluated by a
//! real megatron as the repo's next one, printed as a diff against the live
//! graph, with nothing changed on the megatron; and its API,
//! `POST /api/v1/repos/{repo}/eval`, refusing what it must.

use crate::common::system::{reply, GitRepo, Megatron, BIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CYBERTRON: &str = r#"cybertron = #{
    workers: #{ w1: #{} },
    resources: ["db"],
    access: #{ anonymous: "viewer", people: #{ vic: "viewer", olga: "operator" } },
};"#;

/// The live config: builders a, b and c.
const LIVE: &str = r#"constructicon = #{
    builders: #{
        a: #{ commands: ["echo a"], schedulers: ["force"] },
        b: #{ commands: ["echo b"], schedulers: ["force"] },
        c: #{ commands: ["echo c"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#;

/// The working copy: a removed, b changed (its command, from an imported
/// file, and its resources), c as it was, d added.
const LOCAL: &str = r#"import "lib/steps" as steps;
constructicon = #{
    builders: #{
        b: #{ commands: [steps::build()], resources: ["db"], schedulers: ["force"] },
        c: #{ commands: ["echo c"], schedulers: ["force"] },
        d: #{ commands: ["echo d"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#;

const STEPS: &str = "fn build() { \"make all\" }\n";

/// A line of `Unused.rhai` that would not even parse: it is not imported, so
/// it is neither sent nor read.
const UNUSED: &str = "this is not rhai (\n";

fn write_local(dir: &Path, config: &str) {
    std::fs::create_dir_all(dir.join("lib")).expect("mkdir");
    std::fs::write(dir.join("constructicon.rhai"), config).expect("write");
    std::fs::write(dir.join("lib/steps.rhai"), STEPS).expect("write");
    std::fs::write(dir.join("lib/unused.rhai"), UNUSED).expect("write");
}

/// A person's token, issued with the admin token.
fn person_token(megatron: &Megatron, person: &str) -> String {
    let (status, body) = megatron.post(&format!("/api/v1/people/{person}/tokens"), &json!({}));
    assert!(status == 200 || status == 201, "{status} {body}");
    body["token"].as_str().expect("token").to_string()
}

/// Runs the command in `dir` as the holder of `token`; returns exit code,
/// stdout and stderr.
fn run(dir: &Path, token: &str, args: &[&str]) -> (i32, String, String) {
    let config = tempfile::tempdir().expect("config home");
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CONSTRUCTICON_MEGATRON")
        .env("CONSTRUCTICON_USER_TOKEN", token)
        .env("XDG_CONFIG_HOME", config.path())
        .stdin(Stdio::null())
        .output()
        .expect("run the command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the megatron holds for the repo: the record with its graph
/// version, and every builder.
fn held(megatron: &Megatron) -> Value {
    let (status, repo) = megatron.get("/api/v1/repos/app");
    assert_eq!(status, 200, "{repo}");
    let (status, builders) = megatron.get("/api/v1/builders");
    assert_eq!(status, 200, "{builders}");
    json!({ "repo": repo, "builders": builders })
}

fn started() -> (Megatron, GitRepo) {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new("app", LIVE);
    let added = megatron.add_repo(&repo.url());
    assert!(added["error"].is_null(), "{added}");
    assert_eq!(added["graph_version"], 1, "{added}");
    (megatron, repo)
}

#[test]
fn eval_against_shows_added_removed_and_changed_builders_and_changes_nothing() {
    let (megatron, _repo) = started();
    let olga = person_token(&megatron, "olga");
    let before = held(&megatron);
    let local = tempfile::tempdir().expect("tempdir");
    write_local(local.path(), LOCAL);

    let (code, out, err) = run(
        local.path(),
        &olga,
        &["eval", "--against", &megatron.url, "--repo", "app", "."],
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("compared with repo app's live graph (version 1, commit "),
        "{out}"
    );
    assert_eq!(
        lines[1..],
        [
            "+ builder app-d",
            "- builder app-a",
            "~ builder app-b: steps[0].command: \"echo b\" → \"make all\"",
            "~ builder app-b: resources: [] → [\"db\"]",
            "~ scheduler app-force: builders: [\"app-a\",\"app-b\",\"app-c\"] → [\"app-b\",\"app-c\",\"app-d\"]",
        ],
        "{out}"
    );

    // As JSON, the answer as it came.
    let (code, out, err) = run(
        local.path(),
        &olga,
        &[
            "eval",
            "--against",
            &megatron.url,
            "--repo",
            "app",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["against"]["version"], 1);
    assert_eq!(answer["builders"]["added"], json!(["app-d"]));
    assert_eq!(answer["builders"]["removed"], json!(["app-a"]));
    assert_eq!(
        answer["builders"]["changed"],
        json!([{"name": "app-b", "keys": [
            {"key": "steps[0].command", "old": "echo b", "new": "make all"},
            {"key": "resources", "old": [], "new": ["db"]},
        ]}])
    );
    assert_eq!(
        answer["schedulers"],
        json!({"added": [], "removed": [], "changed": [{"name": "app-force", "keys": [
            {"key": "builders", "old": ["app-a", "app-b", "app-c"], "new": ["app-b", "app-c", "app-d"]},
        ]}]})
    );

    // Nothing changed on the megatron: same record, graph version, builders.
    assert_eq!(held(&megatron), before);
    let (status, _) = megatron.get("/api/v1/builders/app-d");
    assert_eq!(status, 404, "the added builder is nowhere live");
    let (status, _) = megatron.get("/api/v1/builders/app-a");
    assert_eq!(status, 200, "the removed builder is still live");
}

#[test]
fn eval_against_finds_the_repo_from_the_checkouts_origin() {
    let (megatron, repo) = started();
    let olga = person_token(&megatron, "olga");
    let temp = tempfile::tempdir().expect("tempdir");
    let checkout = temp.path().join("app");
    git2::Repository::clone(&repo.url(), &checkout).expect("clone");
    write_local(&checkout, LOCAL);

    let (code, out, err) = run(&checkout, &olga, &["eval", "--against", &megatron.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\n+ builder app-d\n- builder app-a\n"),
        "{out}"
    );

    // A checkout of another repo gets the repos it could have meant.
    let other = GitRepo::new("elsewhere", LIVE);
    git2::Repository::open(&other.path)
        .expect("open")
        .remote("origin", "https://example.invalid/org/elsewhere.git")
        .expect("add a remote");
    let (code, out, err) = run(&other.path, &olga, &["eval", "--against", &megatron.url]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("no repo on the megatron comes from")
            && err.contains("pass --repo NAME")
            && err.contains("its repos: app ("),
        "{err}"
    );
}

#[test]
fn eval_against_a_config_with_errors_exits_1_with_their_places() {
    let (megatron, _repo) = started();
    let olga = person_token(&megatron, "olga");
    let before = held(&megatron);
    let local = tempfile::tempdir().expect("tempdir");
    let broken = LOCAL.replace("d: #{ commands: [\"echo d\"]", "d: #{ commands: [42]");
    write_local(local.path(), &broken);

    let (code, out, err) = run(
        local.path(),
        &olga,
        &["eval", "--against", &megatron.url, "--repo", "app"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("constructicon.rhai:6:"), "{err}");
    assert!(err.contains("builders.d.commands[0]"), "{err}");
    assert!(
        err.contains(
            "error: 1 error in constructicon.rhai; the megatron would not take this config"
        ),
        "{err}"
    );

    // An error in an imported file is placed in that file.
    std::fs::write(
        local.path().join("lib/steps.rhai"),
        "fn build() {\n    \"make\" +\n}\n",
    )
    .expect("write");
    let (code, out, err) = run(
        local.path(),
        &olga,
        &[
            "eval",
            "--against",
            &megatron.url,
            "--repo",
            "app",
            "--json",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["errors"][0]["file"], "lib/steps.rhai", "{answer}");
    assert!(answer["errors"][0]["line"].is_u64(), "{answer}");
    assert!(
        answer["rendered"]
            .as_str()
            .unwrap()
            .contains("lib/steps.rhai:"),
        "{answer}"
    );
    assert_eq!(held(&megatron), before);
}

/// A POST to the eval route as the holder of `token` (or nobody), with a
/// raw body.
fn post_eval(megatron: &Megatron, token: Option<&str>, repo: &str, body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent
        .post(&format!("{}/api/v1/repos/{repo}/eval", megatron.url))
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    reply(request.send(body))
}

fn files(files: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "files": files })).expect("JSON")
}

#[test]
fn the_eval_api_refuses_paths_outside_too_much_and_viewers() {
    let (megatron, _repo) = started();
    let admin = megatron.admin_token();
    let admin = Some(admin.as_str());
    let before = held(&megatron);

    // The route answers what the command prints from.
    let (status, body) = post_eval(
        &megatron,
        admin,
        "app",
        &files(json!({"constructicon.rhai": LOCAL, "lib/steps.rhai": STEPS})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["builders"]["added"], json!(["app-d"]));

    // An import the files sent do not hold is an error of the import.
    let (status, body) = post_eval(
        &megatron,
        admin,
        "app",
        &files(json!({"constructicon.rhai": LOCAL})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["rendered"]
            .as_str()
            .unwrap()
            .contains("lib/steps.rhai does not exist in the repo"),
        "{body}"
    );

    for path in ["../x.rhai", "/etc/x.rhai", "lib/../x.rhai", "./x.rhai"] {
        let (status, body) = post_eval(
            &megatron,
            admin,
            "app",
            &files(json!({"constructicon.rhai": LIVE, path: ""})),
        );
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(path),
            "{path}: {body}"
        );
    }
    let (status, body) = post_eval(&megatron, admin, "app", &files(json!({"lib/x.rhai": ""})));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("constructicon.rhai"),
        "{body}"
    );
    let (status, body) = post_eval(&megatron, admin, "app", b"not json");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");

    // Too many bytes (in a body the megatron's 4 MiB limit lets through),
    // too many files: 413 with a JSON error.
    let chunk = "x".repeat(900_000);
    let (status, body) = post_eval(
        &megatron,
        admin,
        "app",
        &files(
            json!({"constructicon.rhai": LIVE, "a.rhai": chunk, "b.rhai": chunk, "c.rhai": chunk}),
        ),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bytes"), "{body}");
    let mut many = serde_json::Map::new();
    many.insert("constructicon.rhai".into(), json!(LIVE));
    for i in 0..300 {
        many.insert(format!("lib/f{i}.rhai"), json!(""));
    }
    let (status, body) = post_eval(&megatron, admin, "app", &files(Value::Object(many)));
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("files"), "{body}");

    let (status, body) = post_eval(
        &megatron,
        admin,
        "nope",
        &files(json!({"constructicon.rhai": LIVE})),
    );
    assert_eq!(status, 404, "{body}");

    // Viewers may read the repo but not have the megatron run their
    // script: 403 with a token, 401 without one.
    let vic = person_token(&megatron, "vic");
    let body = files(json!({"constructicon.rhai": LIVE}));
    let (status, answer) = post_eval(&megatron, Some(&vic), "app", &body);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("operator"),
        "{answer}"
    );
    let (status, answer) = post_eval(&megatron, None, "app", &body);
    assert_eq!(status, 401, "{answer}");
    let local = tempfile::tempdir().expect("tempdir");
    write_local(local.path(), LOCAL);
    let (code, out, err) = run(
        local.path(),
        &vic,
        &["eval", "--against", &megatron.url, "--repo", "app"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("HTTP 403"), "{err}");

    assert_eq!(held(&megatron), before);
}
