//! Repos: taken, fetched into their mirror ([`super::mirror`]), their config
//! read from the branch head's tree and evaluated into a graph version with
//! its provenance; removed; re-evaluated when cybertron is reloaded.
//!
//! A config with errors leaves the last good graph serving and shows the
//! errors on the repo; other repos are untouched.

use super::error::{Error, Result};
use super::mirror::{branch_heads, branch_of, mirror, read_head, tree_files, TreeFiles};
use super::state::{RepoState, State};
use crate::config::{
    self, evaluate_repo, Cybertron, Evaluation, Graph, MemoryLoader, RepoInput, CONSTRUCTICON_FILE,
};
use crate::model::repo_name_from_url;
use crate::store::{now_ms, GraphRecord, RepoError, RepoRecord};
use crate::sync::{lock, read, write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl State {
    /// The lock that serialises fetching into, and reconfiguring from, one
    /// mirror: a repo's by its name, a dep's by its mirror folder (names
    /// cannot contain `/`, so the two never meet).
    pub(crate) fn refresh_lock(&self, repo: &str) -> Arc<Mutex<()>> {
        lock(&self.refreshing)
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Takes a repo (or re-takes it: fetches and reconfigures).
    pub fn add_repo(&self, url: &str, branch: Option<String>) -> Result<RepoState> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::BadRequest("url is empty".into()));
        }
        // Cybertron says which URLs may be taken: the megatron clones them,
        // so a local path or an internal address is not for everyone.
        if let Some(why) = read(&self.cybertron).spec.repos.refusal(url) {
            return Err(Error::BadRequest(why));
        }
        if crate::config::access::is_local_url(url) {
            let path = url.strip_prefix("file://").unwrap_or(url);
            if !Path::new(path).exists() {
                return Err(Error::BadRequest(format!("no repository at {path}")));
            }
        }
        let name = repo_name_from_url(url).ok_or_else(|| {
            Error::BadRequest(format!("cannot tell a repo name from the URL {url:?}"))
        })?;
        if let Some(branch) = &branch {
            if branch.is_empty() || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
            {
                return Err(Error::BadRequest(format!(
                    "{branch:?} is not a valid branch name"
                )));
            }
        }
        let existing = read(&self.repos).get(&name).map(|r| r.record.clone());
        let record = match existing {
            Some(record) if record.url != url => {
                return Err(Error::Conflict(format!(
                    "a repo named {name} is already registered from {}; repo names come from the URL's last segment",
                    record.url
                )));
            }
            Some(mut record) => {
                if branch.is_some() && branch != record.branch {
                    record.branch = branch;
                    // A branch that is not there changes nothing.
                    return self.sync_checked(record, false, true);
                }
                record
            }
            None => RepoRecord {
                name: name.clone(),
                url: url.to_string(),
                branch,
                commit: None,
                graph_version: None,
                error: None,
                warnings: Vec::new(),
                updated: now_ms(),
            },
        };
        let is_new =
            record.commit.is_none() && record.graph_version.is_none() && record.error.is_none();
        let check = is_new && record.branch.is_some();
        self.sync_checked(record, is_new, check)
    }

    /// Fetches a registered repo and reconfigures it.
    pub fn refresh_repo(&self, name: &str) -> Result<RepoState> {
        let record = read(&self.repos)
            .get(name)
            .map(|r| r.record.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {name} not found")))?;
        self.sync(record, false)
    }

    /// Fetch, read, evaluate, store. A repo that cannot be cloned the first
    /// time is refused; later fetch failures show on the repo.
    fn sync(&self, record: RepoRecord, is_new: bool) -> Result<RepoState> {
        self.sync_checked(record, is_new, false)
    }

    /// [`Self::sync`], refusing (and changing nothing) when `check_branch`
    /// and the record's branch is not in the fetched repo.
    fn sync_checked(
        &self,
        record: RepoRecord,
        is_new: bool,
        check_branch: bool,
    ) -> Result<RepoState> {
        let refresh = self.refresh_lock(&record.name);
        let _one_at_a_time = lock(&refresh);
        let fetched = mirror(&record.url, &self.repo_dir(&record.name));
        if let (true, Some(branch), Ok(repo)) = (check_branch, &record.branch, &fetched) {
            let heads = branch_heads(repo).unwrap_or_default();
            if !heads.contains_key(branch) {
                if is_new {
                    let _ = std::fs::remove_dir_all(self.repo_dir(&record.name));
                }
                let known: Vec<&str> = heads.keys().map(String::as_str).collect();
                return Err(Error::BadRequest(format!(
                    "{} has no branch {branch} (its branches: {}); nothing changed",
                    crate::config::access::redact_url(&record.url),
                    known.join(", ")
                )));
            }
        }
        // A repo's branches as registered count as seen: the first push or
        // poll after it with a new commit builds.
        let heads = match (is_new, &fetched) {
            (true, Ok(repo)) => branch_heads(repo).ok(),
            _ => None,
        };
        let url = record.url.clone();
        let configured = self.configure(record, is_new, fetched)?;
        if let Some(heads) = heads {
            let key = crate::model::url_key(&url);
            if self.store.branch_heads(key)?.is_empty() {
                self.store.set_branch_heads(key, &heads)?;
                self.store.flush()?;
            }
        }
        Ok(configured)
    }

    /// Reads the followed branch's config from a fetched mirror (or records
    /// why fetching failed), evaluates it and stores the new graph; on any
    /// error the last good graph keeps serving. The caller holds the repo's
    /// refresh lock and did the fetching, so the poller can look at the
    /// branches of the same fetch before reconfiguring.
    pub(crate) fn configure(
        &self,
        mut record: RepoRecord,
        is_new: bool,
        fetched: anyhow::Result<git2::Repository>,
    ) -> Result<RepoState> {
        let dir = self.repo_dir(&record.name);
        let serving = read(&self.repos).get(&record.name).cloned();
        let fetched = fetched.and_then(|repo| {
            let branch = branch_of(&repo, record.branch.as_deref())?;
            let (commit, script, files) = read_head(&repo, &branch)?;
            Ok((commit, script, files, repo))
        });
        let (commit, script, files, repo) = match fetched {
            Ok(head) => head,
            Err(e) if is_new => {
                if !read(&self.repos).contains_key(&record.name) {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return Err(Error::BadRequest(format!(
                    "cannot take {}: {e:#}",
                    record.url
                )));
            }
            Err(e) => {
                record.error = Some(RepoError {
                    commit: None,
                    message: format!("{e:#}"),
                    errors: Vec::new(),
                    rendered: String::new(),
                    at: now_ms(),
                });
                return self.save_repo(record, None);
            }
        };
        // The serving graph serves this commit too when it was evaluated,
        // under the cybertron serving now, from the same `.rhai` files: from
        // this very commit, from one the repo already moved to, or from one
        // whose files are these. Then there is nothing to evaluate and no
        // new version (a force fetches first, and most fetches find nothing
        // new); a new commit moves the repo to it, and its builds name the
        // graph's commit as their config commit, whose files are the same.
        let keeps = serving.as_ref().filter(|current| {
            current.record.error.is_none()
                && current.record.branch == record.branch
                && current.graph.as_ref().is_some_and(|g| {
                    g.cybertron_hash == read(&self.cybertron).hash
                        && (g.commit == commit
                            || current.record.commit.as_deref() == Some(commit.as_str())
                            || same_config_files(&repo, &g.commit, &files))
                })
        });
        if let Some(current) = keeps {
            if current.record.commit.as_deref() == Some(commit.as_str()) {
                return Ok(current.clone());
            }
            record.commit = Some(commit);
            record.graph_version = current.record.graph_version;
            record.error = None;
            record.warnings = current.record.warnings.clone();
            return self.save_repo(record, None);
        }
        drop(repo);
        let loader = MemoryLoader::new(files);
        let Some(script) = script else {
            record.error = Some(RepoError {
                commit: Some(commit.clone()),
                message: format!(
                    "{CONSTRUCTICON_FILE} not found at the root of the repo at {commit}"
                ),
                errors: Vec::new(),
                rendered: String::new(),
                at: now_ms(),
            });
            return self.save_repo(record, None);
        };
        let evaluation = self.evaluate_config(&record.name, script, loader);
        let Some(graph) = evaluation.value else {
            let count = evaluation.errors.len();
            record.error = Some(RepoError {
                commit: Some(commit.clone()),
                message: format!(
                    "{count} {} in {CONSTRUCTICON_FILE} at {commit}",
                    if count == 1 { "error" } else { "errors" }
                ),
                rendered: config::diagnostic::render(&evaluation.errors, &evaluation.sources),
                errors: evaluation.errors,
                at: now_ms(),
            });
            return self.save_repo(record, None);
        };
        if let Some(clash) = self.builder_clash(&record.name, &graph) {
            record.error = Some(RepoError {
                commit: Some(commit.clone()),
                message: clash,
                errors: Vec::new(),
                rendered: String::new(),
                at: now_ms(),
            });
            return self.save_repo(record, None);
        }
        let graph_record = GraphRecord {
            version: 0,
            repo: record.name.clone(),
            commit: commit.clone(),
            cybertron_hash: graph.cybertron_hash.clone(),
            config_hash: graph.config_hash.clone(),
            graph,
            created: now_ms(),
        };
        let version = self.store.add_graph(graph_record.clone())?;
        record.graph_version = Some(version);
        record.commit = Some(commit);
        record.error = None;
        record.warnings = evaluation.warnings;
        self.save_repo(
            record,
            Some(GraphRecord {
                version,
                ..graph_record
            }),
        )
    }

    /// Evaluates a repo's config with the cybertron serving now, as every
    /// reconfig does (and a speculative evaluation, which must not differ):
    /// the same file name, limits and sandbox, the imports from `loader`.
    pub(crate) fn evaluate_config(
        &self,
        repo: &str,
        script: Vec<u8>,
        loader: MemoryLoader,
    ) -> Evaluation<Graph> {
        let cybertron: Arc<Cybertron> = read(&self.cybertron).clone();
        evaluate_repo(
            RepoInput {
                name: repo.to_string(),
                file: CONSTRUCTICON_FILE.to_string(),
                bytes: script,
                loader: Some(Arc::new(loader)),
            },
            cybertron,
            &config::Limits::default(),
        )
    }

    /// Why `repo` may not take `graph`: one of its builders' full names is
    /// another repo's already. Full names are `<repo>-<builder>`, so repos
    /// "a" and "a-b" could both claim "a-b-c".
    pub(crate) fn builder_clash(&self, repo: &str, graph: &Graph) -> Option<String> {
        read(&self.repos).values().find_map(|other| {
            if other.record.name == repo {
                return None;
            }
            let other_graph = other.graph.as_ref()?;
            graph
                .builders
                .keys()
                .find(|b| other_graph.graph.builders.contains_key(*b))
                .map(|b| {
                    format!(
                        "builder {b} is already defined by repo {}",
                        other.record.name
                    )
                })
        })
    }

    pub(crate) fn save_repo(
        &self,
        mut record: RepoRecord,
        graph: Option<GraphRecord>,
    ) -> Result<RepoState> {
        record.updated = now_ms();
        self.store.put_repo(&record)?;
        self.store.flush()?;
        // Every reconfig and every config that was not taken is in the log.
        match (&graph, &record.error) {
            (Some(graph), _) => tracing::info!(
                repo = %record.name,
                version = graph.version,
                commit = %graph.commit,
                builders = graph.graph.builders.len(),
                "reconfigured"
            ),
            (None, Some(error)) => tracing::warn!(
                repo = %record.name,
                error = %error.message,
                "config not taken; the last good graph keeps serving"
            ),
            (None, None) => {}
        }
        let mut repos = write(&self.repos);
        let graph = match graph {
            Some(graph) => Some(Arc::new(graph)),
            None => repos.get(&record.name).and_then(|r| r.graph.clone()),
        };
        let state = RepoState { record, graph };
        repos.insert(state.record.name.clone(), state.clone());
        Ok(state)
    }
}

impl State {
    /// Fetches a repo (and reconfigures it when its config changed) before
    /// a force builds its branch head, waiting at most `limit`. Returns a
    /// note for the build's reason when the head could not be had fresh.
    pub async fn refresh_for_force(
        self: &Arc<Self>,
        repo: String,
        limit: Duration,
    ) -> Option<String> {
        let fetching = self.blocking(move |s| s.refresh_repo(&repo));
        let last = "so it builds the last fetched commit";
        match tokio::time::timeout(limit, fetching).await {
            Err(_) => Some(format!(
                "the fetch did not finish within {} s, {last}",
                limit.as_secs()
            )),
            Ok(Err(e)) => Some(format!("fetching failed ({e}), {last}")),
            Ok(Ok(state)) => match &state.record.error {
                Some(error) if error.commit.is_none() => {
                    Some(format!("fetching failed ({}), {last}", error.message))
                }
                Some(error) => Some(format!(
                    "the config at {} has errors, so it builds with the last good one",
                    error.commit.as_deref().unwrap_or("the head")
                )),
                None => None,
            },
        }
    }
}

impl State {
    /// Removes a repo: its queued builds are cancelled, its builders leave
    /// the system, its mirror goes; builds under way finish, and history
    /// stays readable by build id. Returns how many builds were cancelled.
    pub fn remove_repo(&self, name: &str, by: Option<&str>) -> Result<usize> {
        let refresh = self.refresh_lock(name);
        let _one_at_a_time = lock(&refresh);
        if !read(&self.repos).contains_key(name) {
            return Err(Error::NotFound(format!("repo {name} not found")));
        }
        let mut cancelled = 0;
        for build in self.store.queued_builds()? {
            if build.repo == name {
                self.cancel(build.id, by)?;
                cancelled += 1;
            }
        }
        self.store.remove_repo(name)?;
        self.store.flush()?;
        write(&self.repos).remove(name);
        let mirror = self.repo_dir(name);
        if let Err(e) = std::fs::remove_dir_all(&mirror) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(repo = %name, error = %e, "removing the repo's mirror");
            }
        }
        tracing::info!(repo = %name, cancelled, by = by.unwrap_or("-"), "repo removed");
        Ok(cancelled)
    }
}

impl State {
    /// Reads cybertron again and re-evaluates every repo against it. A
    /// cybertron with errors changes nothing and says why. Returns how many
    /// repos were re-evaluated.
    pub fn reload_cybertron(&self) -> Result<usize> {
        let path = self.cybertron_path.clone().ok_or_else(|| {
            Error::Conflict("this megatron's cybertron is built in: nothing to reload".into())
        })?;
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::BadRequest(format!("cannot read {}: {e}", path.display())))?;
        let evaluation = crate::config::evaluate_cybertron(
            &path.display().to_string(),
            bytes,
            &crate::config::Limits::default(),
        );
        let Some(cybertron) = evaluation.value else {
            let errors: Vec<String> = evaluation.errors.iter().map(ToString::to_string).collect();
            return Err(Error::BadRequest(format!(
                "the cybertron has errors; the old one stays: {}",
                errors.join("; ")
            )));
        };
        *write(&self.cybertron) = Arc::new(cybertron);
        let names: Vec<String> = read(&self.repos).keys().cloned().collect();
        for name in &names {
            if let Err(e) = self.refresh_repo(name) {
                tracing::error!(repo = %name, error = %e, "re-evaluating after a cybertron reload");
            }
        }
        Ok(names.len())
    }
}

/// Whether the `.rhai` files of commit `graph_commit` in `repo` are
/// exactly `files`.
fn same_config_files(repo: &git2::Repository, graph_commit: &str, files: &TreeFiles) -> bool {
    git2::Oid::from_str(graph_commit)
        .and_then(|id| repo.find_commit(id))
        .ok()
        .and_then(|old| tree_files(repo, &old).ok())
        .is_some_and(|old| &old == files)
}
