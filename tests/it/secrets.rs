//! Secrets end to end: a real megatron with maintainers' secrets in files,
//! repos with encrypted secrets of their own, a maintainers' worker and a
//! user worker. Each secret reaches exactly the builds its filters allow,
//! the others say why it was withheld, logs show masks, and no value is
//! anywhere a person or the data dir could read it.

use crate::common::system::{GitRepo, Megatron, Worker, BIN};
use crate::common::Repo;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEPLOY: &str = "s3cr3t-deploy-value";
const KEY_LINES: [&str; 2] = ["MIIEabcdefgh1234", "qrstuvwxyz567890"];
const USER: &str = "user-secret-value";
const LIMIT: Duration = Duration::from_secs(60);

fn key() -> String {
    format!(
        "-----BEGIN TEST KEY-----\n{}\n{}\n-----END TEST KEY-----",
        KEY_LINES[0], KEY_LINES[1]
    )
}

/// `constructicon encrypt --repo REPO --against URL` with `value` on stdin.
fn encrypt(megatron: &Megatron, repo: &str, value: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["encrypt", "--repo", repo, "--against", &megatron.url])
        .env("CONSTRUCTICON_USER_TOKEN", megatron.admin_token())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run encrypt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{value}\n").as_bytes())
        .expect("write the value");
    let output = child.wait_with_output().expect("encrypt ends");
    assert!(
        output.status.success(),
        "encrypt: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    assert!(!text.contains(value));
    text
}

/// A step's check that `variable` holds `value`, without the value in the
/// command (commands are shown with the build).
fn holds(variable: &str, value: &str) -> String {
    let hash: String = sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(r#"test "$(printf %s "${variable}" | sha256sum | cut -d' ' -f1)" = {hash}"#)
}

fn withheld(build: &Value) -> Vec<String> {
    build["withheld"]
        .as_array()
        .expect("withheld")
        .iter()
        .map(|w| w.as_str().expect("text").to_string())
        .collect()
}

fn refresh(megatron: &Megatron, repo: &str) {
    let (status, body) = megatron.post(&format!("/api/v1/repos/{repo}/refresh"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body["error"].is_null(), "{body}");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path, found: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_reach_only_the_builds_they_are_for_and_never_show() {
    let files = tempfile::tempdir().expect("tempdir");
    let deploy_file = files.path().join("deploy");
    std::fs::write(&deploy_file, format!("{DEPLOY}\n")).unwrap();
    let key_file = files.path().join("key");
    std::fs::write(&key_file, key()).unwrap();
    let short_file = files.path().join("short");
    std::fs::write(&short_file, "abc").unwrap();
    let cybertron = format!(
        r#"cybertron = #{{
    workers: #{{ w1: #{{ kind: "shared" }} }},
    secrets: #{{
        deploy_token: #{{ file: "{}", repos: ["app*"], branches: "^main$" }},
        signing_key: #{{ file: "{}", as_file: true }},
        short: #{{ file: "{}" }},
        commit_only: #{{ file: "{}", triggers: ["commit", "push"] }},
    }},
}};"#,
        deploy_file.display(),
        key_file.display(),
        short_file.display(),
        deploy_file.display()
    );
    let megatron = Megatron::start_logged(&cybertron);

    // The app repo first without secrets of its own: its key is asked for
    // once it is registered.
    let plain_app = r#"constructicon = #{
    workers: #{ "app-w9": #{ kind: "user" } },
    schedulers: #{ manual: #{ type: "force" } },
    builders: #{ deploy: #{ commands: ["true"], schedulers: ["manual"], accept: `features.kind == "shared"` } },
};"#;
    let app = GitRepo::new("app", plain_app);
    megatron.add_repo(&app.url());
    let ciphertext = encrypt(&megatron, "app", USER);
    let (status, key_answer) = megatron.get("/api/v1/repos/app/public-key");
    assert_eq!(status, 200, "{key_answer}");
    assert!(key_answer["public_key"]
        .as_str()
        .unwrap()
        .starts_with("age1"));
    let keys: Vec<std::path::PathBuf> = std::fs::read_dir(megatron.dir.join("data/repo-keys"))
        .expect("the keys' folder")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("app-") && name.ends_with(".age"), "{name}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&keys[0])
            .expect("the key file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let steps = [
        holds("DEPLOY_TOKEN", DEPLOY),
        holds("TOKEN", USER),
        format!(r#"KEY="$(cat "$SIGNING_KEY")"; {}"#, holds("KEY", &key())),
        r#"test -z "$SHORT""#.to_string(),
        r#"echo "token: $DEPLOY_TOKEN user: $TOKEN"; cat "$SIGNING_KEY"; echo"#.to_string(),
        r#"printf '%s' "$DEPLOY_TOKEN" | base64; printf '%s' "$TOKEN" | base64 | tr '+/' '-_' | tr -d '='; echo "$DEPLOY_TOKEN" | base64"#.to_string(),
    ];
    let app_config = format!(
        r#"constructicon = #{{
    secrets: #{{ token: `{ciphertext}` }},
    workers: #{{ "app-w9": #{{ kind: "user" }} }},
    schedulers: #{{ manual: #{{ type: "force" }} }},
    builders: #{{
        deploy: #{{ commands: {commands}, schedulers: ["manual"], accept: `features.kind == "shared"`,
            secrets: ["deploy_token", "token", "signing_key", "short"] }},
        on_user: #{{ commands: [`test -z "$DEPLOY_TOKEN"`, `{user_holds}`], schedulers: ["manual"],
            accept: `features.kind == "user"`, secrets: ["deploy_token", "token"] }},
    }},
}};"#,
        commands = serde_json::to_string(&steps).unwrap(),
        user_holds = holds("TOKEN", USER),
    );
    app.commit(&[("constructicon.rhai", &app_config)], "secrets");
    refresh(&megatron, "app");

    // The same ciphertext copied into another repo, and a branch of the app
    // the deploy token is not for.
    let lib_config = format!(
        r#"constructicon = #{{
    secrets: #{{ token: `{ciphertext}` }},
    schedulers: #{{ manual: #{{ type: "force" }} }},
    builders: #{{ deploy: #{{ commands: [`test -z "$DEPLOY_TOKEN$TOKEN$COMMIT_ONLY"`], schedulers: ["manual"], secrets: ["deploy_token", "token", "commit_only"] }} }},
}};"#
    );
    let lib = GitRepo::new("lib", &lib_config);
    megatron.add_repo(&lib.url());
    let feature = GitRepo::new(
        "appfeature",
        r#"constructicon = #{
    schedulers: #{ manual: #{ type: "force" } },
    builders: #{ deploy: #{ commands: [`test -z "$DEPLOY_TOKEN"`], schedulers: ["manual"], secrets: ["deploy_token"] } },
};"#,
    );
    {
        let repo = git2::Repository::open(&feature.path).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        repo.branch("feature-x", &head, false).unwrap();
    }
    // A branch that is not the remote's default is taken at once.
    let (status, body) = megatron.post(
        "/api/v1/repos",
        &json!({ "url": feature.url(), "branch": "feature-x" }),
    );
    assert_eq!(status, 201, "{body}");

    let _shared = Worker::start(&megatron, "w1");
    let _user = Worker::start(&megatron, "app-w9");

    let deploy = megatron.force("app-deploy", json!({}));
    let build = megatron.wait_finished(deploy, LIMIT);
    assert_eq!(build["result"], "success", "{build:#}");
    assert_eq!(
        withheld(&build),
        ["short withheld: its value is shorter than 6 characters, too short to mask in logs"]
    );
    let echoed = megatron.log(deploy, 5);
    assert!(
        echoed.contains("token: ******** user: ********"),
        "{echoed}"
    );
    assert_eq!(
        echoed, "token: ******** user: ********\n********\n",
        "the key is masked whole: {echoed}"
    );
    let line = megatron.log(deploy, 0);
    assert!(line.contains("secret short withheld"), "{line}");
    let encoded = megatron.log(deploy, 6);
    assert_eq!(encoded, "********\n********\n********\n", "{encoded}");

    let on_user = megatron.force("app-on_user", json!({}));
    let build = megatron.wait_finished(on_user, LIMIT);
    assert_eq!(build["result"], "success", "{build:#}");
    assert_eq!(build["worker"], "app-w9");
    assert_eq!(
        withheld(&build),
        ["deploy_token withheld: user worker app-w9"]
    );

    let copied = megatron.force("lib-deploy", json!({}));
    let build = megatron.wait_finished(copied, LIMIT);
    assert_eq!(build["result"], "success", "{build:#}");
    assert_eq!(
        withheld(&build),
        [
            "deploy_token withheld: repo lib does not match app*",
            "token withheld: it was not encrypted to repo lib's key (copied from another repo?); encrypt it with `constructicon encrypt --repo lib`",
            "commit_only withheld: started by force, and it is given only to builds started by commit, push",
        ]
    );

    let branch = megatron.force("appfeature-deploy", json!({}));
    let build = megatron.wait_finished(branch, LIMIT);
    assert_eq!(build["result"], "success", "{build:#}");
    assert_eq!(
        withheld(&build),
        ["deploy_token withheld: branch feature-x does not match ^main$"]
    );
    let page = megatron.get_text(&format!("/builds/{branch}"));
    assert!(
        page.contains("deploy_token withheld: branch feature-x does not match ^main$"),
        "{page}"
    );

    // No value anywhere: the API's answers, the pages, the data dir (store,
    // logs, mirrors, keys) and the megatron's own log.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut values: Vec<String> = vec![DEPLOY.into(), USER.into(), b64.encode(DEPLOY)];
    values.extend(KEY_LINES.iter().map(|l| l.to_string()));
    let mut answers = Vec::new();
    for id in [deploy, on_user, copied, branch] {
        answers.push(megatron.get_text(&format!("/api/v1/builds/{id}")));
        answers.push(megatron.get_text(&format!("/builds/{id}")));
        for step in 0..8 {
            answers.push(megatron.get_text(&format!("/api/v1/builds/{id}/steps/{step}/log")));
        }
    }
    for path in [
        "/api/v1/repos",
        "/api/v1/repos/app",
        "/api/v1/builders",
        "/api/v1/builders/app-deploy",
        "/api/v1/builders/app-deploy/builds",
        "/api/v1/queue",
        "/api/v1/workers",
        "/",
        "/repos/app",
        "/builders/app-deploy",
    ] {
        answers.push(megatron.get_text(path));
    }
    for value in &values {
        for answer in &answers {
            assert!(!answer.contains(value.as_str()), "{value} in {answer}");
        }
    }
    let mut stored = Vec::new();
    files_under(&megatron.dir, &mut stored);
    assert!(stored
        .iter()
        .any(|(path, _)| path.ends_with("megatron.log")));
    for value in &values {
        for (path, bytes) in &stored {
            assert!(!contains(bytes, value), "{value} in {}", path.display());
        }
    }
}

#[test]
fn eval_refuses_unknown_secrets_and_malformed_ciphertexts() {
    let repo = Repo::with_config(
        r#"constructicon = #{
    secrets: #{ token: "-----BEGIN AGE ENCRYPTED FILE-----\nbm90IGFnZQ==\n-----END AGE ENCRYPTED FILE-----\n" },
    schedulers: #{ manual: #{ type: "force" } },
    builders: #{ b: #{ commands: ["true"], schedulers: ["manual"], secrets: ["deploy_token"] } },
};"#,
    );
    let output = repo.eval(&[]);
    assert_eq!(output.code, Some(1), "{output:?}");
    for expected in [
        "hello/constructicon.rhai:2:24: secrets.token: the encrypted secret is malformed",
        "hello/constructicon.rhai:4:78: builders.b.secrets[0]: secret \"deploy_token\" is not declared",
    ] {
        assert!(output.stdout.contains(expected) || output.stderr.contains(expected), "{expected}\n{output:?}");
    }
}
