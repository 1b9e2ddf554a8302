//! Forge deliveries: detection, signatures against documented vectors, and
//! every payload family.

use super::delivery::*;
use super::push::*;
use super::secret::*;
use super::signature::*;
use crate::config::spec::SecretSource;
use http::HeaderMap;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

const SECRET: &str = "It's a Secret to Everybody";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

fn secret() -> Secret {
    Secret::new(SECRET)
}

/// Trimmed from a real GitHub push delivery.
const GITHUB: &str = r#"{
      "ref": "refs/heads/main",
      "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "repository": {
        "id": 186853002,
        "name": "constructicon",
        "full_name": "octo/constructicon",
        "html_url": "https://github.com/octo/constructicon",
        "git_url": "git://github.com/octo/constructicon.git",
        "ssh_url": "git@github.com:octo/constructicon.git",
        "clone_url": "https://github.com/octo/constructicon.git",
        "default_branch": "main"
      },
      "pusher": { "name": "octo", "email": "octo@example.com" },
      "created": false, "deleted": false, "forced": false,
      "head_commit": { "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README" },
      "commits": [{ "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README" }]
    }"#;

/// Trimmed from GitLab's documented push event.
const GITLAB_PUSH: &str = r#"{
      "object_kind": "push",
      "event_name": "push",
      "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
      "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "ref": "refs/heads/develop",
      "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "user_username": "jsmith",
      "project_id": 15,
      "project": {
        "id": 15,
        "name": "Diaspora",
        "web_url": "http://example.com/mike/diaspora",
        "git_ssh_url": "git@example.com:mike/diaspora.git",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "path_with_namespace": "mike/diaspora",
        "default_branch": "master"
      },
      "repository": {
        "name": "Diaspora",
        "url": "git@example.com:mike/diaspora.git",
        "homepage": "http://example.com/mike/diaspora",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "git_ssh_url": "git@example.com:mike/diaspora.git"
      },
      "commits": [],
      "total_commits_count": 4
    }"#;

/// Trimmed from a Forgejo push delivery (Gitea's is the same shape).
const GITEA: &str = r#"{
      "ref": "refs/heads/feature/x",
      "before": "28e1879d029cb852e4844d9c718537df08844e03",
      "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
      "compare_url": "https://codeberg.example/alice/tool/compare/28e1879...bffeb74",
      "commits": [{ "id": "bffeb74224043ba2feb48d137756c8a9331c449a", "message": "x\n" }],
      "repository": {
        "id": 140,
        "owner": { "login": "alice" },
        "name": "tool",
        "full_name": "alice/tool",
        "html_url": "https://codeberg.example/alice/tool",
        "ssh_url": "git@codeberg.example:alice/tool.git",
        "clone_url": "https://codeberg.example/alice/tool.git",
        "default_branch": "main"
      },
      "pusher": { "login": "alice" }
    }"#;

#[test]
fn detects_each_forge_and_event() {
    // Headers sent, and what they say.
    type Case<'a> = (&'a [(&'a str, &'a str)], Forge, Event);
    let cases: &[Case] = &[
        (&[("X-GitHub-Event", "push")], Forge::GitHub, Event::Push),
        (&[("x-github-event", "ping")], Forge::GitHub, Event::Ping),
        (
            &[("X-GitHub-Event", "issues")],
            Forge::GitHub,
            Event::Other("issues".into()),
        ),
        (
            &[("X-Gitlab-Event", "Push Hook")],
            Forge::GitLab,
            Event::Push,
        ),
        (
            &[("X-Gitlab-Event", "Tag Push Hook")],
            Forge::GitLab,
            Event::Push,
        ),
        (
            &[("X-Gitlab-Event", "Merge Request Hook")],
            Forge::GitLab,
            Event::PullRequest,
        ),
        (
            &[("X-Gitlab-Event", "Note Hook")],
            Forge::GitLab,
            Event::Comment,
        ),
        (
            &[("X-Gitlab-Event", "Pipeline Hook")],
            Forge::GitLab,
            Event::Other("Pipeline Hook".into()),
        ),
        (
            &[("X-GitHub-Event", "pull_request")],
            Forge::GitHub,
            Event::PullRequest,
        ),
        (
            &[("X-Gitea-Event", "issue_comment")],
            Forge::Gitea,
            Event::Comment,
        ),
        // Gitea sends GitHub's header too; its own must win.
        (
            &[("X-GitHub-Event", "push"), ("X-Gitea-Event", "push")],
            Forge::Gitea,
            Event::Push,
        ),
        (
            &[
                ("X-GitHub-Event", "push"),
                ("X-Gitea-Event", "push"),
                ("X-Forgejo-Event", "push"),
            ],
            Forge::Forgejo,
            Event::Push,
        ),
    ];
    for (pairs, forge, event) in cases {
        assert_eq!(
            detect(&headers(pairs)),
            Ok((*forge, event.clone())),
            "{pairs:?}"
        );
    }
    assert_eq!(
        detect(&headers(&[("Content-Type", "application/json")])),
        Err(HookError::UnknownForge)
    );
}

#[test]
fn parses_a_github_push() {
    let push = parse(Forge::GitHub, GITHUB.as_bytes()).expect("parses");
    assert_eq!(
        push.urls,
        [
            "https://github.com/octo/constructicon.git",
            "git@github.com:octo/constructicon.git",
            // html_url is clone_url without `.git`: the same repo.
        ]
    );
    assert_eq!(push.git_ref, "refs/heads/main");
    assert_eq!(push.commit, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert_eq!(push.change(), Change::Branch("main".into()));
}

#[test]
fn parses_a_gitlab_push() {
    let push = parse(Forge::GitLab, GITLAB_PUSH.as_bytes()).expect("parses");
    assert_eq!(
        push.urls,
        [
            "http://example.com/mike/diaspora.git",
            "git@example.com:mike/diaspora.git",
        ]
    );
    assert_eq!(push.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    assert_eq!(push.change(), Change::Branch("develop".into()));
}

#[test]
fn gitlab_falls_back_to_checkout_sha() {
    let mut value: Value = serde_json::from_str(GITLAB_PUSH).expect("json");
    value.as_object_mut().expect("object").remove("after");
    let push = parse(Forge::GitLab, value.to_string().as_bytes()).expect("parses");
    assert_eq!(push.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
}

#[test]
fn parses_a_gitea_push_with_slashes_in_the_branch() {
    for forge in [Forge::Gitea, Forge::Forgejo] {
        let push = parse(forge, GITEA.as_bytes()).expect("parses");
        assert_eq!(
            push.urls,
            [
                "https://codeberg.example/alice/tool.git",
                "git@codeberg.example:alice/tool.git",
            ]
        );
        assert_eq!(push.change(), Change::Branch("feature/x".into()));
        assert_eq!(push.commit, "bffeb74224043ba2feb48d137756c8a9331c449a");
    }
}

#[test]
fn refs_become_branches_tags_deletions_or_other() {
    let zeros = "0".repeat(40);
    let commit = "bffeb74224043ba2feb48d137756c8a9331c449a";
    let cases = [
        ("refs/heads/main", commit, Change::Branch("main".into())),
        (
            "refs/heads/release/1.x",
            commit,
            Change::Branch("release/1.x".into()),
        ),
        ("refs/tags/v1.0", commit, Change::Tag("v1.0".into())),
        // A deleted tag is still a tag: ignored all the same.
        ("refs/tags/v1.0", zeros.as_str(), Change::Tag("v1.0".into())),
        (
            "refs/heads/gone",
            zeros.as_str(),
            Change::Deleted("gone".into()),
        ),
        (
            "refs/heads/gone",
            &"0".repeat(64),
            Change::Deleted("gone".into()),
        ),
        ("refs/notes/x", commit, Change::Other("refs/notes/x".into())),
    ];
    for (git_ref, commit, change) in cases {
        let push = Push {
            urls: vec!["u".into()],
            git_ref: git_ref.into(),
            commit: commit.into(),
        };
        assert_eq!(push.change(), change, "{git_ref} {commit}");
    }
    assert!(!is_zero_commit(""));
    assert!(!is_zero_commit("0000a"));
}

#[test]
fn a_gitlab_branch_deletion_is_seen() {
    let mut value: Value = serde_json::from_str(GITLAB_PUSH).expect("json");
    value["after"] = json_str(&"0".repeat(40));
    value["checkout_sha"] = Value::Null;
    let push = parse(Forge::GitLab, value.to_string().as_bytes()).expect("parses");
    assert_eq!(push.change(), Change::Deleted("develop".into()));
}

fn json_str(s: &str) -> Value {
    Value::String(s.to_string())
}

#[test]
fn bad_payloads_say_what_is_wrong() {
    assert!(matches!(
        parse(Forge::GitHub, b"{not json"),
        Err(HookError::Malformed(_))
    ));
    assert!(matches!(
        parse(Forge::GitHub, b"[1, 2]"),
        Err(HookError::Malformed(_))
    ));
    assert_eq!(
        parse(Forge::GitHub, b"{}"),
        Err(HookError::Missing(vec![
            "repository.clone_url",
            "ref",
            "after"
        ]))
    );
    assert_eq!(
        parse(
            Forge::GitLab,
            br#"{"ref": "refs/heads/x", "project": {"web_url": "http://h/p"}}"#
        ),
        Err(HookError::Missing(vec!["after"]))
    );
    // Wrong types count as missing, not as a crash.
    assert_eq!(
        parse(
            Forge::Gitea,
            br#"{"ref": 3, "after": "abc", "repository": {"clone_url": ["x"]}}"#
        ),
        Err(HookError::Missing(vec!["repository.clone_url", "ref"]))
    );
    let message = HookError::Missing(vec!["ref", "after"]).to_string();
    assert_eq!(message, "the payload lacks ref, after");
}

#[test]
fn hmac_is_checked_in_either_case_and_nothing_else_passes() {
    // The example of GitHub's documentation on validating deliveries.
    let body = b"Hello, World!";
    let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(hmac_hex(SECRET.as_bytes(), body), expected);
    assert!(hmac_matches(SECRET.as_bytes(), body, expected));
    assert!(hmac_matches(
        SECRET.as_bytes(),
        body,
        &expected.to_uppercase()
    ));
    assert!(!hmac_matches(SECRET.as_bytes(), b"Hello, World?", expected));
    assert!(!hmac_matches(b"another secret", body, expected));
    assert!(!hmac_matches(SECRET.as_bytes(), body, ""));
    assert!(!hmac_matches(SECRET.as_bytes(), body, &expected[..62]));
    assert!(!hmac_matches(SECRET.as_bytes(), body, "zz"));
    assert!(!hmac_matches(
        SECRET.as_bytes(),
        body,
        &format!("sha256={expected}")
    ));
}

#[test]
fn github_signatures_need_the_sha256_prefix() {
    let body = GITHUB.as_bytes();
    let hex = hmac_hex(SECRET.as_bytes(), body);
    let with = |value: &str| headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", value)]);
    let ok = verify(
        Forge::GitHub,
        &with(&format!("sha256={hex}")),
        &secret(),
        body,
    );
    assert_eq!(ok, Ok(()));
    let upper = format!("sha256={}", hex.to_uppercase());
    assert_eq!(
        verify(Forge::GitHub, &with(&upper), &secret(), body),
        Ok(())
    );
    for bad in [hex.clone(), format!("sha1={hex}"), "sha256=".into()] {
        assert_eq!(
            verify(Forge::GitHub, &with(&bad), &secret(), body),
            Err(HookError::BadSignature("X-Hub-Signature-256")),
            "{bad}"
        );
    }
    // One byte changed after signing.
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(verify(
        Forge::GitHub,
        &with(&format!("sha256={hex}")),
        &secret(),
        &tampered
    )
    .is_err());
    assert_eq!(
        verify(
            Forge::GitHub,
            &headers(&[("X-GitHub-Event", "push")]),
            &secret(),
            body
        ),
        Err(HookError::MissingSignature("X-Hub-Signature-256"))
    );
}

#[test]
fn gitea_and_forgejo_signatures_are_bare_hex() {
    let body = GITEA.as_bytes();
    let hex = hmac_hex(SECRET.as_bytes(), body);
    let gitea = headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &hex)]);
    assert_eq!(verify(Forge::Gitea, &gitea, &secret(), body), Ok(()));
    let forgejo = headers(&[("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", &hex)]);
    assert_eq!(verify(Forge::Forgejo, &forgejo, &secret(), body), Ok(()));
    // A Forgejo that only sends Gitea's header still passes.
    assert_eq!(verify(Forge::Forgejo, &gitea, &secret(), body), Ok(()));
    let wrong = headers(&[
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Signature", &hmac_hex(b"guess", body)),
    ]);
    assert_eq!(
        verify(Forge::Gitea, &wrong, &secret(), body),
        Err(HookError::BadSignature("X-Gitea-Signature"))
    );
    assert_eq!(
        verify(
            Forge::Forgejo,
            &headers(&[("X-Forgejo-Event", "push")]),
            &secret(),
            body
        ),
        Err(HookError::MissingSignature("X-Forgejo-Signature"))
    );
}

#[test]
fn gitlab_tokens_are_compared_whole() {
    assert!(token_matches(SECRET, SECRET));
    assert!(!token_matches(SECRET, ""));
    assert!(!token_matches(SECRET, &SECRET[..SECRET.len() - 1]));
    assert!(!token_matches(SECRET, &format!("{SECRET}x")));
    assert!(!token_matches(SECRET, &SECRET.to_uppercase()));
    let body = GITLAB_PUSH.as_bytes();
    let with = |token: &str| headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)]);
    assert_eq!(
        verify(Forge::GitLab, &with(SECRET), &secret(), body),
        Ok(())
    );
    assert_eq!(
        verify(Forge::GitLab, &with("nope"), &secret(), body),
        Err(HookError::BadSignature("X-Gitlab-Token"))
    );
    assert_eq!(
        verify(
            Forge::GitLab,
            &headers(&[("X-Gitlab-Event", "Push Hook")]),
            &secret(),
            body
        ),
        Err(HookError::MissingSignature("X-Gitlab-Token"))
    );
}

#[test]
fn secrets_are_read_trimmed_and_never_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).expect("write");
    let source = SecretSource::File(path.display().to_string());
    let read = read_secret(&source).expect("reads");
    assert_eq!(read.expose(), SECRET);
    assert_eq!(format!("{read:?}"), "Secret(..)");
    std::fs::write(&path, "  \n").expect("write");
    assert!(matches!(read_secret(&source), Err(SecretError::Empty(_))));
    let gone = SecretSource::File(dir.path().join("absent").display().to_string());
    assert!(matches!(read_secret(&gone), Err(SecretError::File { .. })));
    let unset = SecretSource::Env("CONSTRUCTICON_TEST_SURELY_UNSET_VARIABLE".into());
    assert!(matches!(read_secret(&unset), Err(SecretError::EnvUnset(_))));
}
