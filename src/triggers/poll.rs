//! Commit polling: the megatron fetches every registered repo (and every dep
//! its builders name) and acts on what moved: a new commit on a repo's
//! tracked branch reconfigures it; a new commit on a branch a commit
//! scheduler matches starts that scheduler's builders.
//!
//! One pass ([`State::poll_pass`]) plus a loop ([`poll_loop`]), as the lease
//! check does, so tests drive passes directly. A pass fetches on a small pool
//! of threads, each URL under its own lock: a slow or unreachable remote
//! holds one thread and its own lock, never the others, and the next pass
//! skips a URL whose fetch is still running. Push webhooks come in through
//! [`State::poll_url`], which takes the same path but waits for a running
//! fetch of that URL and then fetches again, so the pushed commit is seen.
//!
//! The heads seen are stored (and flushed) before anything is started: after
//! a crash between the two, a commit may go unbuilt but is never built
//! twice, and a restart does not rebuild heads already seen.

use crate::config::access::redact_url;
use crate::config::secrets::TriggerKind;
use crate::config::spec::SchedulerSpec;
use crate::megatron::error::{Error, Result};
use crate::megatron::mirror::{branch_heads, branch_of, mirror};
use crate::megatron::queue::StartRequest;
use crate::megatron::state::State;
use crate::model::repo_name_from_url;
use crate::store::{now_ms, RepoError, RepoRecord};
use crate::sync::{lock, read};
use crate::token::secret_hash;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

/// How many fetches one pass runs at once: enough that a few slow remotes
/// do not hold up the rest, few enough not to swamp the host or the forge.
pub const POLL_THREADS: usize = 4;

pub use crate::model::{same_repo_url, url_key};

/// What one pass (or one webhook poll) did; a bench divides CPU time by it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    /// Registered repos fetched (or tried).
    pub repos: usize,
    /// Dep mirrors fetched (or tried).
    pub deps: usize,
    /// URLs left alone because a fetch of them was still running.
    pub busy: usize,
    /// Fetches that failed.
    pub failures: usize,
    /// Repos whose config was evaluated again because their branch moved.
    pub reconfigured: usize,
    pub builds_started: usize,
}

impl PollReport {
    fn add(&mut self, other: &PollReport) {
        self.repos += other.repos;
        self.deps += other.deps;
        self.busy += other.busy;
        self.failures += other.failures;
        self.reconfigured += other.reconfigured;
        self.builds_started += other.builds_started;
    }
}

/// One URL to fetch: a registered repo (into its mirror) or a dep.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// The registered repo's name; `None` for a dep no repo registers.
    repo: Option<String>,
    /// What the builds it starts say started them: a poll finds commits,
    /// a push webhook announces them.
    cause: TriggerKind,
}

/// What to do when another fetch of the same URL is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenBusy {
    /// The loop: leave it, the running fetch will see what there is.
    Skip,
    /// A push: wait, then fetch again, since the running fetch may have
    /// started before the push.
    Wait,
}

/// One branch that moved to a new commit.
struct Moved {
    branch: String,
    commit: String,
}

impl State {
    /// The poll interval now: the override if one is set, else cybertron's
    /// (read each time, so a cybertron reload changes it).
    pub fn poll_interval(&self) -> Duration {
        if let Some(every) = *read(&self.poll_every) {
            return every;
        }
        Duration::from_secs(read(&self.cybertron).spec.poll_interval.max(1))
    }

    /// Where the bare mirror of a dep is kept: one per URL key, named for
    /// reading and hashed for uniqueness.
    pub fn dep_dir(&self, url: &str) -> PathBuf {
        let key = url_key(url);
        let name = repo_name_from_url(key).unwrap_or_else(|| "dep".to_string());
        let hash = secret_hash(key);
        self.data_dir
            .join("deps")
            .join(format!("{name}-{}.git", &hash[..16]))
    }

    /// Every URL to poll: each registered repo, then each distinct dep URL
    /// the current graphs' builders name that no repo registers.
    fn poll_targets(&self) -> Vec<Target> {
        let repos = read(&self.repos);
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        let mut names: Vec<&String> = repos.keys().collect();
        names.sort();
        for name in names {
            let record = &repos[name].record;
            if seen.insert(url_key(&record.url).to_string()) {
                targets.push(Target {
                    url: record.url.clone(),
                    repo: Some(name.clone()),
                    cause: TriggerKind::Commit,
                });
            }
        }
        let mut dep_urls = BTreeSet::new();
        for repo in repos.values() {
            let Some(graph) = &repo.graph else { continue };
            for builder in graph.graph.builders.values() {
                for dep in &builder.deps {
                    dep_urls.insert(dep.url.clone());
                }
            }
        }
        for url in dep_urls {
            if seen.insert(url_key(&url).to_string()) {
                targets.push(Target {
                    url,
                    repo: None,
                    cause: TriggerKind::Commit,
                });
            }
        }
        targets
    }

    /// One pass over every registered repo and every dep URL: fetch, note
    /// what moved, reconfigure, start builds. Blocking (git2 and sled): call
    /// it from a blocking thread. Failures of one URL show on its repo (or in
    /// the log, for a dep) and do not stop the pass.
    pub fn poll_pass(&self) -> Result<PollReport> {
        let targets = self.poll_targets();
        Ok(self.poll_targets_now(&targets, WhenBusy::Skip))
    }

    /// Polls now every registered repo and dep whose URL is `url` (a push
    /// webhook names a repo by URL), waiting for a fetch of it that is
    /// already running. Returns the names of the registered repos it
    /// concerns: the repos with that URL, and for a dep, the repos whose
    /// builders name it; empty when the URL is unknown here.
    pub fn poll_url(&self, url: &str) -> Result<Vec<String>> {
        let targets: Vec<Target> = self
            .poll_targets()
            .into_iter()
            .filter(|t| same_repo_url(&t.url, url))
            .map(|t| Target {
                cause: TriggerKind::Push,
                ..t
            })
            .collect();
        let mut names: Vec<String> = read(&self.repos)
            .values()
            .filter(|r| {
                same_repo_url(&r.record.url, url)
                    || r.graph.as_ref().is_some_and(|g| {
                        g.graph
                            .builders
                            .values()
                            .any(|b| b.deps.iter().any(|d| same_repo_url(&d.url, url)))
                    })
            })
            .map(|r| r.record.name.clone())
            .collect();
        names.sort();
        self.poll_targets_now(&targets, WhenBusy::Wait);
        Ok(names)
    }

    /// Polls one registered repo now, by name.
    pub fn poll_repo(&self, name: &str) -> Result<PollReport> {
        let url = read(&self.repos)
            .get(name)
            .map(|r| r.record.url.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {name} not found")))?;
        let target = Target {
            url,
            repo: Some(name.to_string()),
            cause: TriggerKind::Commit,
        };
        Ok(self.poll_targets_now(&[target], WhenBusy::Wait))
    }

    /// Polls the targets on up to [`POLL_THREADS`] threads and adds up what
    /// each did.
    fn poll_targets_now(&self, targets: &[Target], when_busy: WhenBusy) -> PollReport {
        let next = AtomicUsize::new(0);
        let total = Mutex::new(PollReport::default());
        let threads = POLL_THREADS.min(targets.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some(target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let report = self.poll_target(target, when_busy);
                        lock(&total).add(&report);
                    }
                });
            }
        });
        total
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches one URL under its lock and acts on it. Errors are recorded
    /// (on the repo) or logged (for a dep) here, never passed up: one URL's
    /// trouble is not the pass's.
    fn poll_target(&self, target: &Target, when_busy: WhenBusy) -> PollReport {
        let mut report = PollReport::default();
        let (lock_key, dir) = match &target.repo {
            Some(name) => (name.clone(), self.repo_dir(name)),
            None => {
                let dir = self.dep_dir(&target.url);
                (format!("/deps/{}", dir.display()), dir)
            }
        };
        let mutex: Arc<Mutex<()>> = self.refresh_lock(&lock_key);
        let _guard = match when_busy {
            WhenBusy::Wait => lock(&mutex),
            WhenBusy::Skip => match mutex.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    report.busy += 1;
                    return report;
                }
            },
        };
        match &target.repo {
            Some(_) => report.repos += 1,
            None => report.deps += 1,
        }
        let result = self.fetch_and_act(target, &dir, &mut report);
        if let Err(e) = result {
            // Only the store can fail here; the fetch's own failures were
            // handled inside. Say so and carry on with the other URLs.
            tracing::error!(url = %redact_url(&target.url), error = %e, "polling");
        }
        report
    }

    fn fetch_and_act(
        &self,
        target: &Target,
        dir: &std::path::Path,
        report: &mut PollReport,
    ) -> Result<()> {
        // The record as it is now, under the lock: a refresh may have
        // changed it since the pass listed its targets.
        let record = match &target.repo {
            Some(name) => match read(&self.repos).get(name) {
                Some(repo) => Some(repo.record.clone()),
                // Removed since the pass started: nothing to do.
                None => return Ok(()),
            },
            None => None,
        };
        let fetched = mirror(&target.url, dir).and_then(|repo| {
            let heads = branch_heads(&repo)?;
            Ok((repo, heads))
        });
        let (repo, heads) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                report.failures += 1;
                match record {
                    Some(record) => self.show_fetch_error(record, format!("{e:#}"))?,
                    None => {
                        tracing::warn!(url = %redact_url(&target.url), error = format!("{e:#}"), "fetching a dep")
                    }
                }
                return Ok(());
            }
        };
        let moved = self.note_heads(&target.url, &heads)?;
        if let Some(record) = record {
            let tracked = branch_of(&repo, record.branch.as_deref()).ok();
            let head = tracked.as_ref().and_then(|b| heads.get(b));
            if needs_configure(&record, head) {
                self.configure(record, false, Ok(repo))?;
                report.reconfigured += 1;
            }
        }
        for moved in moved {
            report.builds_started += self.start_commit_builds(&target.url, &moved, target.cause);
        }
        Ok(())
    }

    /// Shows a failed fetch on the repo. The same failure again is not
    /// written again: the message keeps the time it began, and a pass over
    /// a long-broken repo costs no write.
    fn show_fetch_error(&self, mut record: RepoRecord, message: String) -> Result<()> {
        if let Some(error) = &record.error {
            if error.commit.is_none() && error.message == message {
                return Ok(());
            }
        }
        tracing::warn!(repo = %record.name, error = %message, "fetching a repo");
        record.error = Some(RepoError {
            commit: None,
            message,
            errors: Vec::new(),
            rendered: String::new(),
            at: now_ms(),
        });
        self.save_repo(record, None)?;
        Ok(())
    }

    /// Stores a URL's heads as seen now (durably, before anything acts on
    /// them) and returns the branches that moved. A branch not seen before
    /// is recorded without counting as moved, as the original did.
    fn note_heads(&self, url: &str, heads: &BTreeMap<String, String>) -> Result<Vec<Moved>> {
        let key = url_key(url);
        let seen = self.store.branch_heads(key)?;
        if seen == *heads {
            return Ok(Vec::new());
        }
        let moved = heads
            .iter()
            .filter(|(branch, commit)| seen.get(*branch).is_some_and(|old| old != *commit))
            .map(|(branch, commit)| Moved {
                branch: branch.clone(),
                commit: commit.clone(),
            })
            .collect();
        self.store.set_branch_heads(key, heads)?;
        self.store.flush()?;
        Ok(moved)
    }

    /// Starts the builders of every commit scheduler that matches a moved
    /// branch of `url`, in every repo whose graph has one: builders of the
    /// repo at `url` build that commit; builders that name `url` as a dep
    /// build their own repo's current commit with the dep pinned to it.
    /// Returns how many builds started.
    fn start_commit_builds(&self, url: &str, moved: &Moved, cause: TriggerKind) -> usize {
        let mut requests = Vec::new();
        for repo in read(&self.repos).values() {
            let Some(graph) = &repo.graph else { continue };
            let own = same_repo_url(&repo.record.url, url);
            for (name, scheduler) in &graph.graph.schedulers {
                let SchedulerSpec::Commit {
                    parameters,
                    branch_regex,
                    branches,
                    ..
                } = &scheduler.spec
                else {
                    continue;
                };
                match branch_matches(branch_regex, branches, url, &moved.branch) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        // The config check compiles it already; an old graph
                        // from before that check could still hold a bad one.
                        tracing::warn!(scheduler = %name, error = %e, "commit scheduler regex");
                        continue;
                    }
                }
                for builder in &scheduler.builders {
                    let Some(spec) = graph.graph.builders.get(builder) else {
                        continue;
                    };
                    let dep = spec.deps.iter().find(|d| same_repo_url(&d.url, url));
                    if !own && dep.is_none() {
                        continue;
                    }
                    let short: String = moved.commit.chars().take(7).collect();
                    let reason = format!(
                        "commit {short} on {} of {url} (scheduler {name})",
                        moved.branch
                    );
                    requests.push(if own {
                        StartRequest {
                            builder: builder.clone(),
                            parameters: parameters.clone(),
                            revision: Some(moved.commit.clone()),
                            branch: Some(moved.branch.clone()),
                            pins: BTreeMap::new(),
                            reason,
                            by: None,
                            trigger: cause,
                        }
                    } else {
                        let dep_url = dep
                            .map(|d| d.url.clone())
                            .unwrap_or_else(|| url.to_string());
                        StartRequest {
                            builder: builder.clone(),
                            parameters: parameters.clone(),
                            // The repo's own commit of its current graph,
                            // on the branch it follows.
                            revision: None,
                            branch: None,
                            pins: BTreeMap::from([(dep_url, moved.commit.clone())]),
                            reason,
                            by: None,
                            trigger: cause,
                        }
                    });
                }
            }
        }
        // Started outside the repos lock: start_build takes it itself.
        let mut started = 0;
        for request in requests {
            let builder = request.builder.clone();
            match self.start_build(request) {
                Ok(build) => {
                    started += 1;
                    tracing::info!(build = build.id, %builder, reason = %build.reason, "commit build");
                }
                Err(e) => tracing::error!(%builder, error = %e, "starting a commit build"),
            }
        }
        if started > 0 {
            self.queue_changed.notify_waiters();
            self.announce();
        }
        started
    }
}

/// Whether a repo's config must be evaluated again: its followed branch is
/// at a commit other than the one it was last evaluated from, or the repo
/// shows a fetch error that this successful fetch clears.
fn needs_configure(record: &RepoRecord, head: Option<&String>) -> bool {
    let last = match &record.error {
        Some(RepoError { commit: None, .. }) => return true,
        Some(RepoError {
            commit: Some(commit),
            ..
        }) => Some(commit),
        None => record.commit.as_ref(),
    };
    match head {
        Some(head) => last != Some(head),
        // The followed branch is gone: configure says so on the repo.
        None => true,
    }
}

/// Whether a commit scheduler takes a branch of `url`: the regex must match
/// the whole name, and a `branches` entry for the URL names the only branch.
pub fn branch_matches(
    branch_regex: &str,
    branches: &BTreeMap<String, String>,
    url: &str,
    branch: &str,
) -> std::result::Result<bool, regex::Error> {
    if let Some((_, only)) = branches.iter().find(|(u, _)| same_repo_url(u, url)) {
        if only != branch {
            return Ok(false);
        }
    }
    let anchored = regex::Regex::new(&format!("^(?:{branch_regex})$"))?;
    Ok(anchored.is_match(branch))
}

/// Polls forever, every [`State::poll_interval`]. A pass still running when
/// the next is due (a remote that hangs) is left to finish while a new one
/// starts: the new pass skips the URLs still being fetched, so one stuck
/// remote holds up nothing else.
pub async fn poll_loop(state: Arc<State>) {
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::time::sleep(state.poll_interval()).await;
        if running.as_ref().is_some_and(|pass| !pass.is_finished()) {
            tracing::debug!("the previous poll pass is still running; polling the rest");
        }
        let pass_state = state.clone();
        running = Some(tokio::spawn(async move {
            let started = Instant::now();
            match pass_state.blocking(|s| s.poll_pass()).await {
                Ok(report) => tracing::debug!(
                    repos = report.repos,
                    deps = report.deps,
                    busy = report.busy,
                    failures = report.failures,
                    reconfigured = report.reconfigured,
                    builds = report.builds_started,
                    ms = started.elapsed().as_millis() as u64,
                    "poll pass"
                ),
                Err(e) => tracing::error!(error = %e, "poll pass"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_whole_branch_names() {
        let none = BTreeMap::new();
        assert_eq!(branch_matches(".*", &none, "u", "main").ok(), Some(true));
        assert_eq!(branch_matches("main", &none, "u", "main").ok(), Some(true));
        assert_eq!(
            branch_matches("main", &none, "u", "main2").ok(),
            Some(false)
        );
        assert_eq!(
            branch_matches("main", &none, "u", "not-main").ok(),
            Some(false)
        );
        assert_eq!(branch_matches("a|b", &none, "u", "b").ok(), Some(true));
        assert_eq!(branch_matches("a|b", &none, "u", "ab").ok(), Some(false));
        assert!(branch_matches("(", &none, "u", "main").is_err());
    }

    #[test]
    fn branches_restrict_their_url_only() {
        let only = BTreeMap::from([("https://x/a.git".to_string(), "stable".to_string())]);
        assert_eq!(
            branch_matches(".*", &only, "https://x/a", "stable").ok(),
            Some(true)
        );
        assert_eq!(
            branch_matches(".*", &only, "https://x/a/", "main").ok(),
            Some(false)
        );
        assert_eq!(
            branch_matches(".*", &only, "https://x/b", "main").ok(),
            Some(true)
        );
    }

    #[test]
    fn urls_compare_without_git_suffix_or_slash() {
        assert!(same_repo_url("https://x/a.git", "https://x/a/"));
        assert!(!same_repo_url("https://x/a", "https://x/ab"));
    }
}
