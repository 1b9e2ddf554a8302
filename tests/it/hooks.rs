//! Push webhooks end to end: a real megatron with a secret file, a real git
//! repo registered with it, and deliveries signed the way each forge signs
//! them, sent as exact raw bytes (an HMAC covers the bytes, not the JSON).

use crate::common::system::{reply, GitRepo, Megatron};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const SECRET: &str = "correct horse battery staple";

const TRIVIAL: &str = r#"constructicon = #{
    builders: #{ t: #{ commands: ["true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#;

/// A megatron whose webhook secret is in a file; the temp dir holding the
/// file lives as long as the megatron. The poll interval is long so only
/// the webhooks move the repo during a test.
fn megatron_with_secret() -> (Megatron, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("webhook-secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write the secret");
    let megatron = Megatron::start(&format!(
        "cybertron = #{{ workers: #{{ w1: #{{}} }}, poll_interval: 3600, webhook_secret: #{{ file: {:?} }} }};",
        file.display().to_string()
    ));
    (megatron, dir)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POSTs exactly these bytes with these headers to the push hook.
fn deliver(megatron: &Megatron, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent
        .post(&format!("{}/api/v1/hooks/push", megatron.url))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    reply(request.send(body))
}

#[derive(Clone, Copy, Debug)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

const FORGES: [Forge; 4] = [Forge::GitHub, Forge::GitLab, Forge::Gitea, Forge::Forgejo];

/// A push payload as `forge` would send it for a repo at `url`.
fn payload(forge: Forge, url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let value = match forge {
        Forge::GitLab => json!({
            "object_kind": "push",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": after,
            "ref": git_ref,
            "checkout_sha": after,
            "user_username": "jsmith",
            "project": {
                "name": "hooked",
                "web_url": "http://gitlab.example/mike/hooked",
                "git_ssh_url": "git@gitlab.example:mike/hooked.git",
                "git_http_url": url,
            },
            "repository": {
                "name": "hooked",
                "git_http_url": url,
                "git_ssh_url": "git@gitlab.example:mike/hooked.git",
            },
            "commits": [],
            "total_commits_count": 1,
        }),
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => json!({
            "ref": git_ref,
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": after,
            "repository": {
                "name": "hooked",
                "full_name": "octo/hooked",
                "html_url": "https://forge.example/octo/hooked",
                "ssh_url": "git@forge.example:octo/hooked.git",
                "clone_url": url,
            },
            "pusher": { "name": "octo" },
            "commits": [{ "id": after, "message": "change" }],
        }),
    };
    // Pretty-printed, as GitHub sends it: the signature must cover these
    // exact bytes, whitespace included.
    serde_json::to_vec_pretty(&value).expect("json")
}

/// The headers `forge` sends with `body`, signed with `secret`.
fn signed(forge: Forge, secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let hex = hmac_hex(secret, body);
    match forge {
        Forge::GitHub => vec![
            ("X-GitHub-Event", "push".into()),
            (
                "X-GitHub-Delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            ("X-Hub-Signature-256", format!("sha256={hex}")),
        ],
        Forge::GitLab => vec![
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", secret.into()),
        ],
        // Gitea and Forgejo also send GitHub's event header.
        Forge::Gitea => vec![
            ("X-GitHub-Event", "push".into()),
            ("X-Gitea-Event", "push".into()),
            ("X-Gitea-Signature", hex),
        ],
        Forge::Forgejo => vec![
            ("X-GitHub-Event", "push".into()),
            ("X-Gitea-Event", "push".into()),
            ("X-Forgejo-Event", "push".into()),
            ("X-Forgejo-Signature", hex),
        ],
    }
}

/// The commit the repo's serving graph comes from.
#[track_caller]
fn repo_commit(megatron: &Megatron, name: &str) -> Value {
    let (status, body) = megatron.get(&format!("/api/v1/repos/{name}"));
    assert_eq!(status, 200, "{body}");
    assert!(body["commit"].is_string(), "a configured repo: {body}");
    body["commit"].clone()
}

#[test]
fn each_forge_polls_on_a_signed_push_and_nothing_on_a_bad_one() {
    let (megatron, _secret) = megatron_with_secret();
    let repo = GitRepo::new("hooked", TRIVIAL);
    megatron.add_repo(&repo.url());
    for (i, forge) in FORGES.into_iter().enumerate() {
        let old = repo_commit(&megatron, "hooked");
        // A commit to the config: a poll would move the repo to it.
        let new = repo.commit(
            &[("constructicon.rhai", &format!("{TRIVIAL}\n// change {i}\n"))],
            "change",
        );
        assert_ne!(old, json!(new));
        let body = payload(forge, &repo.url(), "refs/heads/main", &new);

        // Signed with the wrong secret: refused, and nothing was fetched.
        let (status, reply) = deliver(&megatron, &signed(forge, "guess", &body), &body);
        assert_eq!(status, 401, "{forge:?}: {reply}");
        assert!(reply["error"].is_string(), "{reply}");
        // Right signature, other bytes: the HMAC covers the raw body
        // (GitLab's token is the secret itself and signs nothing).
        if !matches!(forge, Forge::GitLab) {
            let mut tampered = body.clone();
            tampered.push(b'\n');
            let (status, reply) = deliver(&megatron, &signed(forge, SECRET, &body), &tampered);
            assert_eq!(status, 401, "{forge:?}: {reply}");
        }
        assert_eq!(repo_commit(&megatron, "hooked"), old, "{forge:?}");

        let (status, reply) = deliver(&megatron, &signed(forge, SECRET, &body), &body);
        assert_eq!(status, 202, "{forge:?}: {reply}");
        assert_eq!(
            reply,
            json!({ "repos": ["hooked"], "branch": "main", "commit": new }),
            "{forge:?}"
        );
        // The poll happened before the answer.
        assert_eq!(repo_commit(&megatron, "hooked"), json!(new), "{forge:?}");
    }
}

#[test]
fn bad_deliveries_get_a_4xx_and_change_nothing() {
    let (megatron, _secret) = megatron_with_secret();
    let repo = GitRepo::new("hooked", TRIVIAL);
    megatron.add_repo(&repo.url());
    let old = repo_commit(&megatron, "hooked");
    let new = repo.commit(
        &[("constructicon.rhai", &format!("{TRIVIAL}\n// x\n"))],
        "x",
    );

    // Signed, but not JSON.
    let junk = b"{\"ref\": \"refs/heads/main\", ".to_vec();
    let (status, reply) = deliver(&megatron, &signed(Forge::GitHub, SECRET, &junk), &junk);
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{reply}"
    );

    // Signed JSON without the fields a push has: the answer names them.
    let empty = br#"{"zen": "Keep it logically awesome."}"#.to_vec();
    let (status, reply) = deliver(&megatron, &signed(Forge::Gitea, SECRET, &empty), &empty);
    assert_eq!(status, 400, "{reply}");
    let error = reply["error"].as_str().unwrap_or("");
    for field in ["repository.clone_url", "ref", "after"] {
        assert!(error.contains(field), "{field} in {reply}");
    }

    let body = payload(Forge::GitHub, &repo.url(), "refs/heads/main", &new);
    // No event header of any forge.
    let headers = [(
        "X-Hub-Signature-256",
        format!("sha256={}", hmac_hex(SECRET, &body)),
    )];
    let (status, reply) = deliver(&megatron, &headers, &body);
    assert_eq!(status, 400, "{reply}");
    // No signature at all.
    let (status, reply) = deliver(&megatron, &[("X-GitHub-Event", "push".into())], &body);
    assert_eq!(status, 401, "{reply}");
    // GitHub's signature with the old SHA-1 prefix.
    let headers = [
        ("X-GitHub-Event", "push".into()),
        (
            "X-Hub-Signature-256",
            format!("sha1={}", hmac_hex(SECRET, &body)),
        ),
    ];
    let (status, reply) = deliver(&megatron, &headers, &body);
    assert_eq!(status, 401, "{reply}");
    // Over a mebibyte, even when signed.
    let mut big = body.clone();
    big.extend(std::iter::repeat_n(b' ', 1 << 20));
    let (status, reply) = deliver(&megatron, &signed(Forge::GitHub, SECRET, &big), &big);
    assert_eq!(status, 413, "{reply}");

    assert_eq!(repo_commit(&megatron, "hooked"), old);
}

#[test]
fn pings_tags_deletions_and_unknown_repos_are_answered_without_a_build() {
    let (megatron, _secret) = megatron_with_secret();
    let repo = GitRepo::new("hooked", TRIVIAL);
    megatron.add_repo(&repo.url());
    let old = repo_commit(&megatron, "hooked");
    let new = repo.commit(
        &[("constructicon.rhai", &format!("{TRIVIAL}\n// y\n"))],
        "y",
    );

    let ping = br#"{"zen": "Design for failure.", "hook_id": 1}"#.to_vec();
    let headers = [
        ("X-GitHub-Event", "ping".into()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(SECRET, &ping)),
        ),
    ];
    assert_eq!(
        deliver(&megatron, &headers, &ping),
        (200, json!({ "ok": true }))
    );

    let tag = payload(Forge::GitHub, &repo.url(), "refs/tags/v1.0", &new);
    let (status, reply) = deliver(&megatron, &signed(Forge::GitHub, SECRET, &tag), &tag);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["repos"], json!([]));
    assert!(
        reply["ignored"].as_str().unwrap_or("").contains("tag"),
        "{reply}"
    );

    let zeros = "0".repeat(40);
    let gone = payload(Forge::GitLab, &repo.url(), "refs/heads/main", &zeros);
    let (status, reply) = deliver(&megatron, &signed(Forge::GitLab, SECRET, &gone), &gone);
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["ignored"].as_str().unwrap_or("").contains("deleted"),
        "{reply}"
    );
    assert_eq!(repo_commit(&megatron, "hooked"), old);

    let elsewhere = payload(
        Forge::Forgejo,
        "https://forge.example/octo/unknown.git",
        "refs/heads/main",
        &new,
    );
    let (status, reply) = deliver(
        &megatron,
        &signed(Forge::Forgejo, SECRET, &elsewhere),
        &elsewhere,
    );
    assert_eq!(
        (status, reply),
        (200, json!({ "repos": [], "branch": "main", "commit": new }))
    );
    assert_eq!(repo_commit(&megatron, "hooked"), old);
}

#[test]
fn without_a_secret_every_push_is_refused() {
    let megatron = Megatron::start("cybertron = #{ workers: #{ w1: #{} }, poll_interval: 3600 };");
    let repo = GitRepo::new("hooked", TRIVIAL);
    megatron.add_repo(&repo.url());
    let old = repo_commit(&megatron, "hooked");
    let new = repo.commit(
        &[("constructicon.rhai", &format!("{TRIVIAL}\n// z\n"))],
        "z",
    );
    for forge in FORGES {
        let body = payload(forge, &repo.url(), "refs/heads/main", &new);
        let (status, reply) = deliver(&megatron, &signed(forge, SECRET, &body), &body);
        assert_eq!(status, 403, "{forge:?}: {reply}");
        assert_eq!(
            reply["error"],
            "push webhooks are off: cybertron sets no webhook_secret"
        );
    }
    assert_eq!(repo_commit(&megatron, "hooked"), old);
}
