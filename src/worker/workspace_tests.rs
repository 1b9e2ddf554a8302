//! Clones, fetches, checkouts and cleaning against real git repos in
//! temporary folders.

use super::*;
use git2::Signature;

/// A repository with a file `name` holding `content`, committed; returns
/// the new commit's id.
pub(crate) fn commit(repo: &Repository, name: &str, content: &str) -> Oid {
    let workdir = repo.workdir().unwrap();
    std::fs::write(workdir.join(name), content).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(name)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = Signature::now("test", "test@example.com").unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        &format!("add {name}"),
        &tree,
        &parents,
    )
    .unwrap()
}

fn never() -> bool {
    false
}

fn run(workspace: &Workspace, url: &str, revision: &str) -> (Result<Oid, StepError>, String) {
    let mut log = String::new();
    let result = sync(
        &workspace.build_dir,
        url,
        Some(revision),
        &mut |line| {
            log.push_str(line);
            log.push('\n');
        },
        &never,
    );
    (result, log)
}

#[test]
fn refuses_names_that_leave_the_workdir() {
    for name in ["", ".", "..", "a/b"] {
        assert!(Workspace::new(Path::new("/w"), name).is_err(), "{name:?}");
    }
    let workspace = Workspace::new(Path::new("/w"), "hello").unwrap();
    assert_eq!(workspace.deps_dir, Path::new("/w/constructicons/hello"));
    assert_eq!(
        workspace.build_dir,
        Path::new("/w/constructicons/hello/hello")
    );
}

#[test]
fn clones_then_fetches_and_leaves_a_clean_checkout() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let upstream = Repository::init(upstream_dir.path()).unwrap();
    let first = commit(&upstream, ".gitignore", "target/\n");
    let second = commit(&upstream, "a.txt", "one\n");
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    let url = upstream_dir.path().to_str().unwrap();

    // First build: a clone, at an older commit than the branch tip.
    let (result, log) = run(&workspace, url, &first.to_string());
    assert_eq!(result.unwrap(), first);
    assert!(log.contains(&format!("cloning {url}")), "{log}");
    assert!(log.contains(&format!("checked out {first}")), "{log}");
    assert!(!workspace.build_dir.join("a.txt").exists());

    // Leftovers of that build: untracked, ignored, nested, empty, and a
    // stray sibling of the build folder.
    let build = &workspace.build_dir;
    std::fs::write(build.join("stale.txt"), "x").unwrap();
    std::fs::create_dir_all(build.join("target/debug")).unwrap();
    std::fs::write(build.join("target/debug/out"), "x").unwrap();
    std::fs::create_dir_all(build.join("new/deeper")).unwrap();
    std::fs::write(build.join("new/deeper/f"), "x").unwrap();
    std::fs::create_dir_all(build.join("empty/too")).unwrap();
    std::fs::write(build.join(".gitignore"), "modified\n").unwrap();
    std::fs::create_dir_all(workspace.deps_dir.join("stray")).unwrap();
    std::fs::write(workspace.deps_dir.join("stray-file"), "x").unwrap();

    let mut removed = String::new();
    remove_strays(
        &workspace.deps_dir,
        &BTreeSet::from(["hello".to_string()]),
        &mut |line| removed.push_str(line),
    )
    .unwrap();
    assert!(
        removed.contains("stray-file, which this build"),
        "{removed}"
    );

    // Upstream moves on; the second build fetches it.
    let third = commit(&upstream, "b.txt", "two\n");
    let (result, log) = run(&workspace, &format!("file://{url}"), &third.to_string());
    assert_eq!(result.unwrap(), third);
    assert!(log.contains("fetching file://"), "{log}");
    assert!(!log.contains("cloning"), "{log}");
    let mut entries: Vec<String> = std::fs::read_dir(build)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, [".git", ".gitignore", "a.txt", "b.txt"]);
    assert_eq!(
        std::fs::read_to_string(build.join(".gitignore")).unwrap(),
        "target/\n"
    );
    let siblings: Vec<_> = std::fs::read_dir(&workspace.deps_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, ["hello"]);
    let repo = Repository::open(build).unwrap();
    assert!(repo.head_detached().unwrap());
    assert_eq!(repo.head().unwrap().target(), Some(third));

    // The same commit again from the same origin: no fetch, still clean.
    std::fs::write(build.join("stale.txt"), "x").unwrap();
    let (result, log) = run(&workspace, &format!("file://{url}"), &third.to_string());
    assert_eq!(result.unwrap(), third);
    assert!(log.contains("is already in"), "{log}");
    assert!(!log.contains("fetching"), "{log}");
    assert!(!build.join("stale.txt").exists());

    // A branch name resolves to the fetched tip, an older commit by id.
    let (result, _) = run(&workspace, url, &second.to_string());
    assert_eq!(result.unwrap(), second);
    assert!(!build.join("b.txt").exists());
    let branch = upstream.head().unwrap().shorthand().unwrap().to_string();
    let (result, _) = run(&workspace, url, &branch);
    assert_eq!(result.unwrap(), third);
}

#[test]
fn an_unknown_revision_is_a_failure() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let upstream = Repository::init(upstream_dir.path()).unwrap();
    commit(&upstream, "a.txt", "one\n");
    let workspace = Workspace::new(workdir.path(), "hello").unwrap();
    let url = upstream_dir.path().to_str().unwrap();
    for revision in ["no-such-branch", &"0".repeat(40), ""] {
        match run(&workspace, url, revision).0 {
            Err(StepError::Failure(message)) => {
                assert!(message.contains("unknown revision"), "{message}")
            }
            other => panic!("{revision}: {other:?}"),
        }
    }
    let missing = workdir.path().join("missing");
    match run(&workspace, missing.to_str().unwrap(), "main").0 {
        Err(StepError::Failure(message)) => {
            assert!(message.starts_with("fetching"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
