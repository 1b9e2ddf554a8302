//! The checkout step: the build's repo, then its deps beside it, then the
//! deps folder swept of everything the build did not ask for.
//!
//! Deps are other repos cloned as siblings of the build folder
//! (`<deps folder>/<dep name>`), each at its revision: a pin given when the
//! build was forced wins, then the dep's own `revision`, then the remote's
//! default branch. A dep with `builder` brings that builder's deps too, read
//! from the dep's own `constructicon.rhai`, recursively. Each repo is fetched
//! once, by folder name: two URLs wanting one folder is an error, and so is a
//! dep leading back to a repo on the path that led to it (a cycle), since
//! either would make the layout depend on the order deps were visited in.
//!
//! Everything here is blocking git and file work with no HTTP, so the
//! person-facing `constructicon get` can reuse it as is.

use super::workspace::{self, StepError, Workspace};
use crate::config::spec::DepSpec;
use crate::config::{FsLoader, Limits, RepoInput, SourceLoader, CONSTRUCTICON_FILE};
use crate::model::{check_name, same_repo_url};
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// What the checkout step is asked to bring.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The build's repo: its name (the build folder's) and URL.
    pub repo: &'a str,
    pub repo_url: &'a str,
    /// The repo's revision; the megatron already applied any pin to it.
    pub revision: &'a str,
    /// Refs of the repo to fetch besides branches and tags (a pull
    /// request's head).
    pub fetch_refs: &'a [String],
    pub deps: &'a [DepSpec],
    /// URL or folder name → revision, winning over a dep's own.
    pub pins: &'a BTreeMap<String, String>,
    /// Folders the get step fills: kept by the sweep, and refused when they
    /// collide with the build folder or a dep.
    pub get_folders: Vec<&'a str>,
    /// How far the checkout may change things.
    pub mode: Mode,
}

/// Who checks out: a worker owns its whole deps folder; a person running
/// `constructicon get` owns their checkout, which is never touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A worker: the build folder too is checked out and cleaned.
    Worker,
    /// A person's checkout: the build folder is left alone, deps are made to
    /// match, and what the build did not ask for is removed.
    Local,
    /// A person's checkout with `--keep`: nothing is changed; deps are only
    /// fetched, and every difference from what a worker would have is logged.
    Keep,
}

/// The checkout's end.
#[derive(Debug)]
pub struct Checkout {
    /// URL → commit for the repo and every dep checked out, also those
    /// checked out before something failed.
    pub revisions: BTreeMap<String, String>,
    pub result: Result<(), StepError>,
}

/// Checks out the repo and every dep, then removes the deps folder's other
/// entries. Logs each action through `log`.
pub fn checkout(
    workspace: &Workspace,
    request: &Request,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Checkout {
    let mut revisions = BTreeMap::new();
    let result = checkout_into(workspace, request, &mut revisions, log, stop);
    Checkout { revisions, result }
}

fn checkout_into(
    workspace: &Workspace,
    request: &Request,
    revisions: &mut BTreeMap<String, String>,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<(), StepError> {
    std::fs::create_dir_all(&workspace.deps_dir)
        .with_context(|| format!("creating {}", workspace.deps_dir.display()))?;
    let commit = match request.mode {
        Mode::Worker => workspace::sync_with_refs(
            &workspace.build_dir,
            request.repo_url,
            Some(request.revision),
            request.fetch_refs,
            log,
            stop,
        )?
        .to_string(),
        Mode::Local | Mode::Keep => workspace::head(&workspace.build_dir)?,
    };
    revisions.insert(request.repo_url.to_string(), commit);

    let mut walk = Walk {
        deps_dir: &workspace.deps_dir,
        keep: request.mode == Mode::Keep,
        pins: request.pins,
        fetched: Vec::new(),
        log,
        stop,
    };
    let mut path = vec![Visited {
        name: request.repo.to_string(),
        url: request.repo_url.to_string(),
    }];
    let walked = walk.visit(&mut path, request.deps);
    for fetched in &walk.fetched {
        revisions.insert(fetched.url.clone(), fetched.commit.clone());
    }
    walked?;

    let mut keep: BTreeSet<String> = walk.fetched.iter().map(|f| f.name.clone()).collect();
    keep.insert(request.repo.to_string());
    for folder in &request.get_folders {
        if keep.contains(*folder) {
            let what = if *folder == request.repo {
                "the build folder"
            } else {
                "a dep"
            };
            return Err(StepError::Failure(format!(
                "the get folder \"{folder}\" is also {what}: the two cannot share it"
            )));
        }
    }
    keep.extend(request.get_folders.iter().map(|f| f.to_string()));
    if request.mode == Mode::Keep {
        workspace::report_strays(&workspace.deps_dir, &keep, walk.log)?;
    } else {
        workspace::remove_strays(&workspace.deps_dir, &keep, walk.log)?;
    }
    Ok(())
}

/// A repo on the way from the build's repo to the dep being visited.
struct Visited {
    name: String,
    url: String,
}

/// A dep checked out.
struct Fetched {
    name: String,
    url: String,
    commit: String,
}

/// The depth-first walk over deps and their builders' deps.
struct Walk<'a> {
    deps_dir: &'a Path,
    /// Report differences instead of checking out.
    keep: bool,
    pins: &'a BTreeMap<String, String>,
    fetched: Vec<Fetched>,
    log: &'a mut dyn FnMut(&str),
    stop: &'a dyn Fn() -> bool,
}

impl Walk<'_> {
    fn visit(&mut self, path: &mut Vec<Visited>, deps: &[DepSpec]) -> Result<(), StepError> {
        for dep in deps {
            if let Some(why) = check_name(&dep.name) {
                return Err(StepError::Failure(format!(
                    "dep {} cannot be a folder name: {why}",
                    dep.url
                )));
            }
            if let Some(at) = path.iter().position(|v| v.name == dep.name) {
                if !same_repo_url(&path[at].url, &dep.url) {
                    return Err(clash(&dep.name, &path[at].url, &dep.url));
                }
                let names: Vec<&str> = path[at..].iter().map(|v| v.name.as_str()).collect();
                return Err(StepError::Failure(format!(
                    "dependency cycle: {} → {}",
                    names.join(" → "),
                    dep.name
                )));
            }
            if let Some(done) = self.fetched.iter().find(|f| f.name == dep.name) {
                if !same_repo_url(&done.url, &dep.url) {
                    return Err(clash(&dep.name, &done.url, &dep.url));
                }
                (self.log)(&format!("dep {}: already checked out", dep.name));
                continue;
            }

            let pinned = pin(self.pins, dep);
            let revision = pinned.or(dep.revision.as_deref());
            (self.log)(&format!(
                "dep {}: {} at {}{}",
                dep.name,
                dep.url,
                revision.unwrap_or("its default branch"),
                if pinned.is_some() { " (pinned)" } else { "" }
            ));
            let dir = self.deps_dir.join(&dep.name);
            let commit = if self.keep {
                workspace::inspect(&dir, &dep.url, revision, self.log, self.stop)?
            } else {
                Some(workspace::sync(&dir, &dep.url, revision, self.log, self.stop)?.to_string())
            };
            self.fetched.push(Fetched {
                name: dep.name.clone(),
                url: dep.url.clone(),
                commit: commit.clone().unwrap_or_default(),
            });
            if commit.is_none() {
                // Missing, so its builder's deps cannot be read yet.
                continue;
            }

            if let Some(builder) = &dep.builder {
                let more = builder_deps(&dir, &dep.name, builder)?;
                (self.log)(&format!(
                    "dep {}: its builder {builder} needs {}",
                    dep.name,
                    if more.is_empty() {
                        "no deps".to_string()
                    } else {
                        more.iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
                path.push(Visited {
                    name: dep.name.clone(),
                    url: dep.url.clone(),
                });
                self.visit(path, &more)?;
                path.pop();
            }
        }
        Ok(())
    }
}

fn clash(name: &str, first: &str, second: &str) -> StepError {
    StepError::Failure(format!(
        "two repos want the folder \"{name}\": {first} and {second}"
    ))
}

/// The pinned revision of `dep`: by URL first, then by folder name.
fn pin<'p>(pins: &'p BTreeMap<String, String>, dep: &DepSpec) -> Option<&'p str> {
    pins.iter()
        .find(|(key, _)| same_repo_url(key, &dep.url))
        .map(|(_, revision)| revision.as_str())
        .or_else(|| pins.get(&dep.name).map(String::as_str))
}

/// The deps of `builder` as the dep checked out in `dir` declares them.
fn builder_deps(dir: &Path, name: &str, builder: &str) -> Result<Vec<DepSpec>, StepError> {
    let loader = FsLoader::new(dir).with_context(|| format!("opening {}", dir.display()))?;
    // Through the loader, so a config that is a symlink out of the dep is refused.
    let bytes = loader.load(CONSTRUCTICON_FILE).map_err(|error| {
        StepError::Failure(format!(
            "dep {name}: cannot read the deps of its builder {builder}: {error}"
        ))
    })?;
    let input = RepoInput {
        name: name.to_string(),
        file: CONSTRUCTICON_FILE.to_string(),
        bytes,
        loader: Some(Arc::new(loader)),
    };
    crate::config::builder_deps(input, builder, &Limits::default()).map_err(|error| {
        StepError::Failure(format!(
            "dep {name}: reading the deps of its builder {builder}: {error}"
        ))
    })
}

#[cfg(test)]
#[path = "deps_tests.rs"]
mod tests;
