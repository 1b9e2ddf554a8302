//! The checkout step with deps, against real git repos in temporary folders.

use super::*;
use crate::worker::workspace::tests::commit;
use git2::{Oid, Repository};
use std::path::PathBuf;

/// Repos under one temporary folder, each in a folder of its name, so the
/// names derived from their paths are those names.
struct Upstreams {
    root: tempfile::TempDir,
}

impl Upstreams {
    fn new() -> Upstreams {
        Upstreams {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self, name: &str) -> String {
        self.root.path().join(name).to_str().unwrap().to_string()
    }

    /// A new repo `name` with one commit of `file`.
    fn repo(&self, name: &str, file: &str, content: &str) -> (Repository, Oid) {
        let dir: PathBuf = self.root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repository::init(&dir).unwrap();
        let id = commit(&repo, file, content);
        (repo, id)
    }

    /// A repo whose config has a builder `build` with `deps`.
    fn with_builder(&self, name: &str, deps: &[String]) -> Oid {
        let list: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
        let source = format!(
            "constructicon = #{{ builders: #{{ build: #{{ commands: [\"x\"], deps: [{}] }} }} }};",
            list.join(", ")
        );
        self.repo(name, CONSTRUCTICON_FILE, &source).1
    }
}

fn dep(url: &str, revision: Option<&str>, builder: Option<&str>) -> DepSpec {
    DepSpec {
        url: url.to_string(),
        name: crate::model::repo_name_from_url(url).unwrap(),
        revision: revision.map(str::to_string),
        builder: builder.map(str::to_string),
    }
}

fn run(
    workspace: &Workspace,
    upstreams: &Upstreams,
    deps: &[DepSpec],
    pins: &BTreeMap<String, String>,
) -> (Checkout, String) {
    let url = upstreams.url("hello");
    let request = Request {
        repo: "hello",
        repo_url: &url,
        revision: "HEAD",
        fetch_refs: &[],
        deps,
        pins,
        get_folders: vec!["hello-other"],
        mode: crate::worker::deps::Mode::Worker,
    };
    let mut log = String::new();
    let checkout = checkout(
        workspace,
        &request,
        &mut |line| {
            log.push_str(line);
            log.push('\n');
        },
        &|| false,
    );
    (checkout, log)
}

fn siblings(workspace: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&workspace.deps_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn head(workspace: &Workspace, name: &str) -> Oid {
    let repo = Repository::open(workspace.deps_dir.join(name)).unwrap();
    let id = repo.head().unwrap().target().unwrap();
    id
}

fn failure(checkout: Checkout) -> String {
    match checkout.result {
        Err(StepError::Failure(message)) => message,
        other => panic!("expected a failure: {other:?}"),
    }
}

#[test]
fn deps_at_a_branch_a_commit_and_through_a_builder_are_siblings() {
    let upstreams = Upstreams::new();
    upstreams.repo("hello", "a.txt", "hello\n");
    // liba: a branch `stable` left behind the default branch.
    let (liba, a1) = upstreams.repo("liba", "a.txt", "one\n");
    liba.branch("stable", &liba.find_commit(a1).unwrap(), false)
        .unwrap();
    let a2 = commit(&liba, "a.txt", "two\n");
    // libb: its builder needs libc; checked out at its first commit.
    let b1 = upstreams.with_builder("libb", &[upstreams.url("libc")]);
    let libb = Repository::open(upstreams.root.path().join("libb")).unwrap();
    commit(&libb, "later.txt", "later\n");
    let (_, c1) = upstreams.repo("libc", "c.txt", "c\n");

    let workdir = tempfile::tempdir().unwrap();
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    std::fs::create_dir_all(workspace.deps_dir.join("stale")).unwrap();
    std::fs::create_dir_all(workspace.deps_dir.join("hello-other")).unwrap();
    let deps = [
        dep(&upstreams.url("liba"), Some("stable"), None),
        dep(&upstreams.url("libb"), Some(&b1.to_string()), Some("build")),
    ];
    let (checkout, log) = run(&workspace, &upstreams, &deps, &BTreeMap::new());
    checkout.result.unwrap();
    assert_eq!(
        siblings(&workspace),
        ["hello", "hello-other", "liba", "libb", "libc"],
        "{log}"
    );
    assert_eq!(head(&workspace, "liba"), a1);
    assert_eq!(head(&workspace, "libb"), b1);
    assert_eq!(head(&workspace, "libc"), c1);
    assert!(
        log.contains("stale, which this build did not ask for"),
        "{log}"
    );
    assert!(
        log.contains("dep libb: its builder build needs libc"),
        "{log}"
    );
    assert!(log.contains("dep libc: "), "{log}");
    assert!(log.contains("at its default branch"), "{log}");
    assert_eq!(checkout.revisions.len(), 4);
    assert_eq!(checkout.revisions[&upstreams.url("liba")], a1.to_string());
    assert_eq!(checkout.revisions[&upstreams.url("libc")], c1.to_string());

    // A pin by URL overrides the branch, one by name the default; the
    // clones are reused, and what a build left in them is cleaned.
    std::fs::write(workspace.deps_dir.join("liba/junk"), "x").unwrap();
    let c2 = commit(
        &Repository::open(upstreams.root.path().join("libc")).unwrap(),
        "c.txt",
        "c2\n",
    );
    let pins = BTreeMap::from([
        (upstreams.url("liba"), a2.to_string()),
        ("libc".to_string(), c1.to_string()),
    ]);
    let (checkout, log) = run(&workspace, &upstreams, &deps, &pins);
    checkout.result.unwrap();
    assert_eq!(head(&workspace, "liba"), a2);
    assert_eq!(head(&workspace, "libc"), c1);
    assert!(!workspace.deps_dir.join("liba/junk").exists());
    assert!(log.contains("(pinned)"), "{log}");
    assert!(!log.contains("cloning"), "{log}");

    // Without the pin, the default branch has moved on: fetched.
    let (checkout, _) = run(&workspace, &upstreams, &deps, &BTreeMap::new());
    checkout.result.unwrap();
    assert_eq!(head(&workspace, "libc"), c2);
}

#[test]
fn a_cycle_back_to_the_builds_repo_fails() {
    let upstreams = Upstreams::new();
    upstreams.repo("hello", "a.txt", "hello\n");
    upstreams.with_builder("libx", &[upstreams.url("hello")]);
    let workdir = tempfile::tempdir().unwrap();
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    let deps = [dep(&upstreams.url("libx"), None, Some("build"))];
    let (checkout, _) = run(&workspace, &upstreams, &deps, &BTreeMap::new());
    // The repo and libx were checked out before the cycle showed.
    assert_eq!(checkout.revisions.len(), 2);
    assert_eq!(failure(checkout), "dependency cycle: hello → libx → hello");
}

#[test]
fn one_folder_for_two_urls_fails() {
    let upstreams = Upstreams::new();
    upstreams.repo("hello", "a.txt", "hello\n");
    upstreams.repo("liba", "a.txt", "a\n");
    upstreams.repo("other/liba", "a.txt", "another a\n");
    upstreams.with_builder("liby", &[upstreams.url("other/liba")]);
    let workdir = tempfile::tempdir().unwrap();
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    let deps = [
        dep(&upstreams.url("liba"), None, None),
        dep(&upstreams.url("liby"), None, Some("build")),
    ];
    let (checkout, _) = run(&workspace, &upstreams, &deps, &BTreeMap::new());
    let message = failure(checkout);
    assert_eq!(
        message,
        format!(
            "two repos want the folder \"liba\": {} and {}",
            upstreams.url("liba"),
            upstreams.url("other/liba")
        )
    );
}

#[test]
fn a_get_folder_may_not_be_a_dep() {
    let upstreams = Upstreams::new();
    upstreams.repo("hello", "a.txt", "hello\n");
    upstreams.repo("hello-other", "a.txt", "a\n");
    let workdir = tempfile::tempdir().unwrap();
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    let deps = [dep(&upstreams.url("hello-other"), None, None)];
    let (checkout, _) = run(&workspace, &upstreams, &deps, &BTreeMap::new());
    assert!(failure(checkout).contains("get folder \"hello-other\" is also a dep"));
}
