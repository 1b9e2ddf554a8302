//! Mirrors: a bare clone of each repo (and dep) in the data dir, fetched
//! with a deadline, and what is read from one with git2: its branch heads,
//! the branch followed, and the `.rhai` files of a commit's tree (from the
//! object store, never a work tree, so a symlink in the repo cannot lead the
//! sandbox anywhere). Blocking: callers run these on blocking threads.

use crate::config::CONSTRUCTICON_FILE;
use crate::git_auth::use_git_credentials;
use anyhow::Context as _;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// The most `.rhai` files read from one tree, and their size cap.
const MAX_TREE_FILES: usize = 1000;
const MAX_FILE_BYTES: usize = 1 << 20;

/// The longest one fetch or clone may keep transferring: a remote that
/// trickles data forever would otherwise hold its poller thread forever.
const FETCH_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// Fetch options that prune and give up at the deadline (libgit2 calls the
/// progress callback as data arrives; returning false aborts the transfer).
pub(crate) fn fetch_options<'a>() -> git2::FetchOptions<'a> {
    let deadline = Instant::now() + FETCH_DEADLINE;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.transfer_progress(move |_| Instant::now() < deadline);
    use_git_credentials(&mut callbacks);
    let mut options = git2::FetchOptions::new();
    options.prune(git2::FetchPrune::On);
    options.remote_callbacks(callbacks);
    options
}

/// Clones `url` as a bare mirror into `dir`, or fetches into the mirror there.
/// Every branch and tag is fetched, so the poller sees all branch heads.
pub(crate) fn mirror(url: &str, dir: &Path) -> anyhow::Result<git2::Repository> {
    if dir.exists() {
        let repo = git2::Repository::open_bare(dir)
            .with_context(|| format!("opening the mirror {}", dir.display()))?;
        {
            let mut remote = repo
                .find_remote("origin")
                .context("the mirror has no origin")?;
            remote
                .fetch(
                    &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                    Some(&mut fetch_options()),
                    None,
                )
                .with_context(|| format!("fetching {url}"))?;
        }
        return Ok(repo);
    }
    let parent = dir.parent().context("the mirror folder has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Clone beside, then rename: a failed clone leaves nothing behind.
    let staging = parent.join(format!(
        ".{}.cloning",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("repo")
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let cloned = git2::build::RepoBuilder::new()
        .bare(true)
        .fetch_options(fetch_options())
        .clone(url, &staging)
        .with_context(|| format!("cloning {url}"));
    let repo = match cloned {
        Ok(repo) => repo,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // Keep fetching every branch to a local one; and fetch once now, since
    // the clone itself made a local ref of the default branch only.
    repo.remote_add_fetch("origin", "+refs/heads/*:refs/heads/*")
        .ok();
    let fetched = repo.find_remote("origin").and_then(|mut remote| {
        remote.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut fetch_options()),
            None,
        )
    });
    if let Err(e) = fetched {
        drop(repo);
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e).with_context(|| format!("fetching the branches of {url}"));
    }
    drop(repo);
    std::fs::rename(&staging, dir)
        .with_context(|| format!("moving the clone to {}", dir.display()))?;
    git2::Repository::open_bare(dir)
        .with_context(|| format!("opening the mirror {}", dir.display()))
}

/// Every branch of a mirror and its head commit. Branches whose name is not
/// UTF-8 or that do not point at a commit are left out: no scheduler could
/// name them.
pub(crate) fn branch_heads(repo: &git2::Repository) -> anyhow::Result<BTreeMap<String, String>> {
    let mut heads = BTreeMap::new();
    for item in repo
        .branches(Some(git2::BranchType::Local))
        .context("listing the mirror's branches")?
    {
        let (branch, _) = item.context("reading a branch of the mirror")?;
        let Ok(Some(name)) = branch.name() else {
            continue;
        };
        if let Ok(commit) = branch.get().peel_to_commit() {
            heads.insert(name.to_string(), commit.id().to_string());
        }
    }
    Ok(heads)
}

/// The branch followed: the given one, or the one HEAD names.
pub(crate) fn branch_of(repo: &git2::Repository, branch: Option<&str>) -> anyhow::Result<String> {
    if let Some(branch) = branch {
        return Ok(branch.to_string());
    }
    let head = repo
        .find_reference("HEAD")
        .context("the repo has no HEAD")?;
    let target = head
        .symbolic_target()
        .ok()
        .flatten()
        .context("HEAD does not name a branch")?;
    Ok(target
        .strip_prefix("refs/heads/")
        .unwrap_or(target)
        .to_string())
}

/// The head commit of a branch, and the script and importable files of its tree.
pub(super) fn read_head(
    repo: &git2::Repository,
    branch: &str,
) -> anyhow::Result<(String, Option<Vec<u8>>, TreeFiles)> {
    let commit = repo
        .revparse_single(&format!("refs/heads/{branch}"))
        .and_then(|object| object.peel_to_commit())
        .with_context(|| format!("branch {branch} not found"))?;
    let files = tree_files(repo, &commit)?;
    let script = files.get(CONSTRUCTICON_FILE).cloned();
    Ok((commit.id().to_string(), script, files))
}

/// A commit's `.rhai` files by path.
pub(crate) type TreeFiles = HashMap<String, Vec<u8>>;

/// The `.rhai` files of a commit's tree (the config and what it may
/// import), by path, within the tree limits.
pub(crate) fn tree_files(
    repo: &git2::Repository,
    commit: &git2::Commit,
) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let tree = commit.tree().context("reading the commit's tree")?;
    let mut files = HashMap::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |folder, entry| {
        let name = entry.name().unwrap_or_default();
        if entry.kind() != Some(git2::ObjectType::Blob)
            || entry.filemode() == 0o120000
            || !name.ends_with(".rhai")
            || files.len() >= MAX_TREE_FILES
        {
            return git2::TreeWalkResult::Ok;
        }
        match repo.find_blob(entry.id()) {
            Ok(blob) if blob.size() <= MAX_FILE_BYTES => {
                files.insert(format!("{folder}{name}"), blob.content().to_vec());
            }
            Ok(_) => {}
            Err(e) => failure = Some(e),
        }
        git2::TreeWalkResult::Ok
    })
    .context("reading the tree")?;
    if let Some(e) = failure {
        return Err(e).context("reading a file of the tree");
    }
    Ok(files)
}
