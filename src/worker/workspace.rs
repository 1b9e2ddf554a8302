//! The worker's folders, and bringing one git checkout to a revision.
//!
//! Layout (spec "Names, places and results"): `<workdir>/constructicons/<repo>/`
//! is the deps folder, `<workdir>/constructicons/<repo>/<repo>/` the build
//! folder. Deps and fetched results are siblings of the build folder;
//! anything in the deps folder the build did not ask for is removed
//! ([`remove_strays`]), so no build sees what an earlier one left.
//!
//! git2 is blocking, which suits the worker: it runs on the job's thread.

use crate::git_auth::use_git_credentials;
use crate::model::check_name;
use anyhow::Context;
use git2::build::{CheckoutBuilder, RepoBuilder};
use git2::{AutotagOption, FetchOptions, Oid, RemoteCallbacks, Repository, StatusOptions};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where one repo's builds happen on this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// `<workdir>/constructicons/<repo>/`: holds the build folder, deps and
    /// fetched results side by side.
    pub deps_dir: PathBuf,
    /// `<workdir>/constructicons/<repo>/<repo>/`: the repo's checkout, where
    /// steps run.
    pub build_dir: PathBuf,
    /// `<workdir>/tmp/`: scratch space on the same disk (zips being
    /// uploaded), outside every deps folder so no cleaning touches it.
    pub tmp_dir: PathBuf,
}

impl Workspace {
    /// The folders for `repo`, refusing a name that would lead outside them.
    pub fn new(workdir: &Path, repo: &str) -> anyhow::Result<Workspace> {
        if let Some(why) = check_name(repo) {
            anyhow::bail!("repo name {repo:?} cannot be a folder name: {why}");
        }
        let deps_dir = workdir.join("constructicons").join(repo);
        let build_dir = deps_dir.join(repo);
        Ok(Workspace {
            deps_dir,
            build_dir,
            tmp_dir: workdir.join("tmp"),
        })
    }
}

/// Why a step the worker runs itself (checkout, get, upload) did not pass,
/// which decides the step's result.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The build's own inputs are wrong: a revision that does not exist, a
    /// repository that cannot be cloned, an upload source that is missing.
    /// The step is a `failure`.
    #[error("{0}")]
    Failure(String),
    /// The worker could not do its part (disk, permissions). An `exception`.
    #[error("{0:#}")]
    Exception(anyhow::Error),
    /// `stop` answered true mid-way.
    #[error("stopped")]
    Stopped,
    /// The megatron answered that this worker no longer holds the build.
    #[error("the lease was lost")]
    LeaseLost,
}

impl From<anyhow::Error> for StepError {
    fn from(error: anyhow::Error) -> StepError {
        StepError::Exception(error)
    }
}

/// Clones or fetches `url` into `dir`, checks out `revision` (a commit id, a
/// branch or tag name; the remote's default branch when `None`) detached and
/// forced, and removes every untracked and ignored file. Says what it does
/// through `log`, one line per call. Returns the commit id checked out.
pub fn sync(
    dir: &Path,
    url: &str,
    revision: Option<&str>,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<Oid, StepError> {
    sync_with_refs(dir, url, revision, &[], log, stop)
}

/// [`sync`], also fetching `extra_refs` of the remote (a pull request's
/// `refs/pull/7/head`) when the revision is not among its branches and tags.
pub fn sync_with_refs(
    dir: &Path,
    url: &str,
    revision: Option<&str>,
    extra_refs: &[String],
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<Oid, StepError> {
    let repo = match holding(dir, url, revision) {
        Some((repo, id)) => {
            log(&format!("{id} is already in {}: no fetch", dir.display()));
            repo
        }
        None => open_or_clone(dir, url, log, stop)?,
    };
    if let Some(revision) = revision {
        if !extra_refs.is_empty() && resolve(&repo, revision).is_err() {
            fetch_extra_refs(&repo, url, extra_refs, log, stop)?;
        }
    }
    let commit = match revision {
        Some(revision) => resolve(&repo, revision)?,
        None => resolve(&repo, "refs/remotes/origin/HEAD")
            .map_err(|_| StepError::Failure(format!("{url} has no default branch to check out")))?,
    };
    let id = commit.id();

    let mut force = CheckoutBuilder::new();
    force.force();
    repo.checkout_tree(commit.as_object(), Some(&mut force))
        .and_then(|()| repo.set_head_detached(id))
        .map_err(|e| exception(e, &format!("checking out {id} in {}", dir.display())))?;

    let removed = clean(&repo, dir)?;
    if removed > 0 {
        log(&format!("removed {removed} untracked or ignored entries"));
    }
    let summary = String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned();
    log(format!("checked out {id} {summary}").trim_end());
    Ok(id)
}

/// The existing clone when it already holds `revision`, a full commit id,
/// and its origin is `url`: a commit never changes, so nothing a fetch
/// brings could change the checkout. Branch and tag names always fetch.
fn holding(dir: &Path, url: &str, revision: Option<&str>) -> Option<(Repository, Oid)> {
    let revision = revision.filter(|r| r.len() == 40)?;
    let id = Oid::from_str(revision).ok()?;
    if !dir.join(".git").exists() {
        return None;
    }
    let repo = Repository::open(dir).ok()?;
    let same_origin = repo.find_remote("origin").ok()?.url().ok() == Some(url);
    let held = same_origin && repo.find_commit(id).is_ok();
    held.then_some((repo, id))
}

/// The existing clone, its origin pointed at `url` and fetched; or a fresh
/// clone when `dir` holds no usable repository. Either way
/// `refs/remotes/origin/HEAD` names the remote's default branch afterwards.
fn open_or_clone(
    dir: &Path,
    url: &str,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<Repository, StepError> {
    let existing = if dir.join(".git").exists() {
        match Repository::open(dir) {
            Ok(repo) => Some(repo),
            Err(error) => {
                log(&format!(
                    "{} is not a usable repository ({}): cloning again",
                    dir.display(),
                    error.message()
                ));
                None
            }
        }
    } else {
        None
    };

    if let Some(repo) = existing {
        log(&format!("fetching {url} into {}", dir.display()));
        // The URL may have changed since the last build (re-registered,
        // moved): follow it rather than fetch from the old place.
        repo.remote_set_url("origin", url)
            .map_err(|e| exception(e, "setting the origin url"))?;
        let default = {
            let mut remote = repo
                .find_remote("origin")
                .map_err(|e| exception(e, "finding the origin remote"))?;
            let mut options = fetch_options(stop);
            remote
                .fetch(
                    &[
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                    Some(&mut options),
                    None,
                )
                .map_err(|e| git_failure(e, &format!("fetching {url}"), stop))?;
            // Known from the fetch's connection; the default branch may have
            // changed upstream since the clone set origin/HEAD.
            remote
                .default_branch()
                .ok()
                .and_then(|name| name.as_str().ok().map(str::to_string))
        };
        if let Some(branch) = default
            .as_deref()
            .and_then(|b| b.strip_prefix("refs/heads/"))
        {
            let target = format!("refs/remotes/origin/{branch}");
            repo.reference_symbolic("refs/remotes/origin/HEAD", &target, true, "default branch")
                .map_err(|e| exception(e, "recording the remote's default branch"))?;
        }
        return Ok(repo);
    }

    if std::fs::symlink_metadata(dir).is_ok() {
        remove_path(dir)?;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    log(&format!("cloning {url} into {}", dir.display()));
    RepoBuilder::new()
        .fetch_options(fetch_options(stop))
        .clone(url, dir)
        .map_err(|e| git_failure(e, &format!("cloning {url}"), stop))
}

/// Fetches refs beyond branches and tags into `refs/remotes/origin/extra/`.
fn fetch_extra_refs(
    repo: &Repository,
    url: &str,
    refs: &[String],
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<(), StepError> {
    let specs: Vec<String> = refs
        .iter()
        .filter(|r| r.starts_with("refs/") && !r.contains(':') && !r.contains(".."))
        .map(|r| format!("+{r}:refs/remotes/origin/extra/{}", &r["refs/".len()..]))
        .collect();
    log(&format!("fetching {} of {url}", refs.join(", ")));
    let mut remote = repo
        .find_remote("origin")
        .map_err(|e| exception(e, "finding the origin remote"))?;
    remote
        .fetch(&specs, Some(&mut fetch_options(stop)), None)
        .map_err(|e| git_failure(e, &format!("fetching {} of {url}", refs.join(", ")), stop))
}

/// Fetch options that abort the transfer once `stop` answers true.
fn fetch_options<'a>(stop: &'a dyn Fn() -> bool) -> FetchOptions<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.transfer_progress(move |_| !stop());
    use_git_credentials(&mut callbacks);
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks)
        .download_tags(AutotagOption::All);
    options
}

/// The commit `revision` names. A full commit id is looked up as such; a
/// name is tried as a remote branch first, because a local branch of that
/// name (the clone's default branch) is never updated by fetch and would be
/// stale, then as a tag, then as any revparse expression.
fn resolve<'r>(repo: &'r Repository, revision: &str) -> Result<git2::Commit<'r>, StepError> {
    let unknown = || StepError::Failure(format!("unknown revision {revision:?}"));
    if revision.is_empty() {
        return Err(unknown());
    }
    if revision.len() == 40 {
        if let Ok(id) = Oid::from_str(revision) {
            return repo.find_commit(id).map_err(|_| unknown());
        }
    }
    let candidates = [
        format!("refs/remotes/origin/{revision}"),
        format!("refs/tags/{revision}"),
        revision.to_string(),
    ];
    for candidate in &candidates {
        if let Ok(object) = repo.revparse_single(candidate) {
            return object
                .peel_to_commit()
                .map_err(|_| StepError::Failure(format!("revision {revision:?} is not a commit")));
        }
    }
    Err(unknown())
}

/// Removes every untracked and ignored entry of the checkout. Untracked
/// folders are reported whole (no recursion), so a `target/` of a million
/// files is one `remove_dir_all`, not a million status entries; empty
/// folders, which git never reports, are swept afterwards.
fn clean(repo: &Repository, root: &Path) -> anyhow::Result<usize> {
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .include_ignored(true)
        .recurse_untracked_dirs(false)
        .recurse_ignored_dirs(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut options))
        .context("listing untracked files")?;
    let mut removed = 0;
    for entry in statuses.iter() {
        let status = entry.status();
        if !(status.is_wt_new() || status.is_ignored()) {
            continue;
        }
        let relative = Path::new(OsStr::from_bytes(entry.path_bytes()));
        remove_path(&root.join(relative))?;
        removed += 1;
    }
    removed += remove_empty_dirs(root, true)?;
    Ok(removed)
}

/// Removes empty folders below `dir` (and `dir` itself unless `keep`),
/// leaving `.git` alone. Returns how many were removed.
fn remove_empty_dirs(dir: &Path, keep: bool) -> anyhow::Result<usize> {
    let mut removed = 0;
    let mut empty = true;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .with_context(|| format!("inspecting {}", path.display()))?
            .is_dir();
        if is_dir && entry.file_name() != ".git" {
            removed += remove_empty_dirs(&path, false)?;
            if path.exists() {
                empty = false;
            }
        } else {
            empty = false;
        }
    }
    if empty && !keep {
        std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
        removed += 1;
    }
    Ok(removed)
}

/// Removes every entry of `deps_dir` whose name is not in `keep`: what
/// earlier builds fetched and this one did not ask for.
pub fn remove_strays(
    deps_dir: &Path,
    keep: &BTreeSet<String>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(deps_dir).with_context(|| format!("reading {}", deps_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", deps_dir.display()))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| keep.contains(name))
        {
            continue;
        }
        log(&format!(
            "removing {}, which this build did not ask for",
            entry.path().display()
        ));
        remove_path(&entry.path())?;
    }
    Ok(())
}

/// Logs, without touching anything, every entry of the deps folder a build
/// would not ask for.
pub fn report_strays(
    deps_dir: &Path,
    keep: &BTreeSet<String>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(deps_dir).with_context(|| format!("reading {}", deps_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", deps_dir.display()))?;
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|name| keep.contains(name))
        {
            log(&format!(
                "differs: {} is not asked for (a worker would remove it)",
                entry.path().display()
            ));
        }
    }
    Ok(())
}

/// The commit a checkout's HEAD is at.
pub fn head(dir: &Path) -> Result<String, StepError> {
    let repo = Repository::open(dir).map_err(|e| {
        StepError::Failure(format!(
            "{} is not a git checkout: {}",
            dir.display(),
            e.message()
        ))
    })?;
    let commit = repo.head().and_then(|h| h.peel_to_commit()).map_err(|e| {
        StepError::Failure(format!(
            "{} has no commit checked out: {}",
            dir.display(),
            e.message()
        ))
    })?;
    Ok(commit.id().to_string())
}

/// Compares a dep's checkout with what a worker would check out, changing
/// nothing but the remote-tracking refs a fetch updates. Logs each
/// difference (prefixed "differs: "); returns the commit the dep is at, or
/// `None` when it is missing.
pub fn inspect(
    dir: &Path,
    url: &str,
    revision: Option<&str>,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<Option<String>, StepError> {
    if !dir.join(".git").exists() {
        log(&format!(
            "differs: {} is missing (a worker would clone {url} at {})",
            dir.display(),
            revision.unwrap_or("its default branch")
        ));
        return Ok(None);
    }
    let repo = open_or_clone(dir, url, log, stop)?;
    let wanted = match revision {
        Some(revision) => resolve(&repo, revision)?,
        None => resolve(&repo, "refs/remotes/origin/HEAD")?,
    };
    let current = head(dir)?;
    if current != wanted.id().to_string() {
        log(&format!(
            "differs: {} is at {current}, a worker would check out {}",
            dir.display(),
            wanted.id()
        ));
    }
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).include_ignored(false);
    let changed = repo
        .statuses(Some(&mut options))
        .map(|s| s.len())
        .unwrap_or(0);
    if changed > 0 {
        log(&format!(
            "differs: {} has {changed} changed or untracked files (a worker starts clean)",
            dir.display()
        ));
    }
    Ok(Some(current))
}

/// Removes a file, a symlink (not what it points to) or a whole folder.
pub fn remove_path(path: &Path) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(path)
        .with_context(|| format!("inspecting {}", path.display()))?;
    let result = if metadata.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    result.with_context(|| format!("removing {}", path.display()))
}

fn exception(error: git2::Error, doing: &str) -> StepError {
    StepError::Exception(anyhow::Error::new(error).context(doing.to_string()))
}

/// A clone or fetch that failed: stopped on request, or the repository is
/// unreachable, which is the build's input being wrong from here.
fn git_failure(error: git2::Error, doing: &str, stop: &dyn Fn() -> bool) -> StepError {
    if stop() {
        StepError::Stopped
    } else {
        StepError::Failure(format!("{doing}: {}", error.message()))
    }
}

#[cfg(test)]
#[path = "workspace_tests.rs"]
pub(crate) mod tests;
