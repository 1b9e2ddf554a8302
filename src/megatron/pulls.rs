//! Pull and merge requests: each head is built with the request's own
//! config, evaluated speculatively (it never touches the repo's live graph),
//! by the builders of its commit schedulers that say `pull_requests: true`.
//! A request from a fork builds only once an operator approved that exact
//! head commit; a newer push needs a new approval and supersedes the older
//! head's pending builds. Everything a forge should show (awaiting approval,
//! a config that does not evaluate) goes to the commit as a status.

use super::error::{Error, Result};
use super::mirror::{fetch_options, tree_files};
use super::speculate::Speculation;
use super::state::State;
use crate::config::accept::workers_accepting;
use crate::config::access::{role_on, Role};
use crate::config::spec::SchedulerSpec;
use crate::config::Limits;
use crate::forge::pull::{ok_to_test, PullAction, PullComment, PullEvent};
use crate::forge::status::{Status, StatusState};
use crate::model::same_repo_url;
use crate::protocol::BuildResult;
use crate::store::pulls::{Approval, PullRecord, PullState};
use crate::store::{now_ms, BuildState, Provenance, PullRef};
use crate::sync::{lock, read};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::Path;

use super::queue::StartRequest;

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Fetches the request's head into the repo's mirror (under its own ref,
/// kept apart from the branches) and reads its config files.
fn fetch_head(dir: &Path, fetch_ref: &str, head: &str) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let repo = git2::Repository::open_bare(dir)
        .with_context(|| format!("opening the mirror {}", dir.display()))?;
    let oid = git2::Oid::from_str(head).with_context(|| format!("{head:?} is not a commit id"))?;
    if repo.find_commit(oid).is_err() {
        let mut remote = repo
            .find_remote("origin")
            .context("the mirror has no origin")?;
        remote
            .fetch(
                &[format!("+{fetch_ref}:{fetch_ref}")],
                Some(&mut fetch_options()),
                None,
            )
            .with_context(|| format!("fetching {fetch_ref}"))?;
    }
    let commit = repo
        .find_commit(oid)
        .with_context(|| format!("commit {head} is not in {fetch_ref}"))?;
    tree_files(&repo, &commit)
}

impl State {
    /// A pull request event, for every registered repo its URLs name.
    /// Returns each repo's record as it stands after.
    pub fn pull_event(&self, event: &PullEvent) -> Result<Vec<PullRecord>> {
        if event.head.len() < 40 || !event.head.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadRequest(format!(
                "the request's head {:?} is not a full commit id",
                event.head
            )));
        }
        if !event.fetch_ref.starts_with("refs/") || event.fetch_ref.contains("..") {
            return Err(Error::BadRequest("the request's ref is not a ref".into()));
        }
        let repos: Vec<String> = read(&self.repos)
            .values()
            .filter(|r| event.urls.iter().any(|u| same_repo_url(&r.record.url, u)))
            .map(|r| r.record.name.clone())
            .collect();
        let mut records = Vec::new();
        for repo in repos {
            records.push(self.pull_in_repo(&repo, event)?);
        }
        Ok(records)
    }

    fn pull_in_repo(&self, repo: &str, event: &PullEvent) -> Result<PullRecord> {
        let old = self.store.pull(repo, event.number)?;
        let mut record = old.clone().unwrap_or_else(|| PullRecord {
            repo: repo.to_string(),
            number: event.number,
            title: String::new(),
            author: String::new(),
            head: String::new(),
            head_ref: String::new(),
            base_ref: String::new(),
            fetch_ref: String::new(),
            fork: event.fork,
            state: PullState::Open,
            approved: None,
            waiting: None,
            builds: Vec::new(),
            updated: 0,
        });
        record.title = event.title.clone();
        record.author = event.author.clone();
        record.head_ref = event.head_ref.clone();
        record.base_ref = event.base_ref.clone();
        record.fetch_ref = event.fetch_ref.clone();
        record.fork = event.fork;
        record.updated = now_ms();
        let new_head = record.head != event.head;
        match event.action {
            PullAction::Closed => {
                record.state = PullState::Closed;
                record.waiting = None;
                self.supersede(
                    &record.builds,
                    &format!("pull request #{} was closed", record.number),
                )?;
            }
            PullAction::Other if old.is_some() => {}
            PullAction::Other | PullAction::Updated => {
                let reopened = record.state == PullState::Closed;
                record.state = PullState::Open;
                if new_head {
                    self.supersede(
                        &record.builds,
                        &format!(
                            "superseded by {} pushed to pull request #{}",
                            short(&event.head),
                            record.number
                        ),
                    )?;
                    record.builds.clear();
                    record.head = event.head.clone();
                }
                if new_head || reopened || record.builds.is_empty() {
                    self.start_pull(&mut record)?;
                }
            }
        }
        self.store.put_pull(&record)?;
        self.store.flush()?;
        self.announce();
        Ok(record)
    }

    /// Ends the queued ones among `ids` as cancelled, saying why; running
    /// ones finish (their statuses are on an older commit).
    fn supersede(&self, ids: &[u64], why: &str) -> Result<()> {
        let _write = lock(&self.build_write);
        for id in ids {
            let mut build = match self.store.build(*id) {
                Ok(build) => build,
                Err(crate::store::Error::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if build.state != BuildState::Queued {
                continue;
            }
            lock(&self.dispatcher).dequeue(build.id);
            build.state = BuildState::Finished;
            build.result = Some(BuildResult::Cancelled);
            build.result_reason = Some(why.to_string());
            build.finished = Some(now_ms());
            self.ask_status(&mut build);
            self.store.put_build(&build)?;
        }
        drop(_write);
        self.build_changed.notify_waiters();
        Ok(())
    }

    /// Builds the request's head, or notes why not (awaiting approval, a
    /// config that does not evaluate, nothing that builds requests).
    fn start_pull(&self, record: &mut PullRecord) -> Result<()> {
        let repo_url = read(&self.repos)
            .get(&record.repo)
            .map(|r| r.record.url.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {} not found", record.repo)))?;
        let head = record.head.clone();
        let approved = record.approved.as_ref().is_some_and(|a| a.commit == head);
        if record.fork && !approved {
            // A fork's own config is not read before approval: whether the
            // repo builds requests at all is its live config's say, so a
            // repo that does not never shows a status that waits forever.
            let opted_in = read(&self.repos)
                .get(&record.repo)
                .and_then(|r| r.graph.clone())
                .is_some_and(|g| {
                    g.graph.schedulers.values().any(|s| {
                        matches!(
                            s.spec,
                            SchedulerSpec::Commit {
                                pull_requests: true,
                                ..
                            }
                        )
                    })
                });
            if !opted_in {
                record.waiting = Some(
                    "the repo's config builds no pull requests (no commit scheduler says pull_requests: true)"
                        .into(),
                );
                return Ok(());
            }
            let why = format!(
                "awaiting approval: a pull request from a fork builds once an operator approves commit {} (comment `/ok-to-test {}` on the request, or approve it on the repo's page)",
                short(&head),
                short(&head)
            );
            record.waiting = Some(why);
            self.queue_status(
                &repo_url,
                &head,
                0,
                Status {
                    context: "constructicon/approval".into(),
                    state: StatusState::Pending,
                    description: format!("awaiting approval: /ok-to-test {}", short(&head)),
                    target_url: None,
                },
            );
            return Ok(());
        }
        let files = {
            let refresh = self.refresh_lock(&record.repo);
            let _one_at_a_time = lock(&refresh);
            fetch_head(&self.repo_dir(&record.repo), &record.fetch_ref, &head)
        };
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                record.waiting = Some(format!("its head could not be fetched: {e:#}"));
                return Ok(());
            }
        };
        let speculated = match self.speculate(&record.repo, files)? {
            Speculation::Refused(refused) => {
                let first = refused
                    .errors
                    .first()
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| refused.message.clone());
                record.waiting = Some(format!(
                    "its constructicon.rhai does not evaluate; nothing was built and the repo's live graph is unchanged:\n{}",
                    refused.rendered
                ));
                self.queue_status(
                    &repo_url,
                    &head,
                    0,
                    Status {
                        context: "constructicon/config".into(),
                        state: StatusState::Failure,
                        description: format!("{}: {first}", refused.message),
                        target_url: None,
                    },
                );
                return Ok(());
            }
            Speculation::Evaluated(speculated) => speculated,
        };
        let graph = &speculated.graph;
        let (cybertron_hash, fork_workers, workers) = {
            let cybertron = read(&self.cybertron);
            (
                cybertron.hash.clone(),
                cybertron.spec.fork_workers.clone(),
                cybertron.spec.workers.clone(),
            )
        };
        let allowed = match (&fork_workers, record.fork) {
            (Some(expression), true) => Some(
                workers_accepting(expression, &workers, &Limits::default())
                    .map_err(Error::Internal)?,
            ),
            _ => None,
        };
        let mut started = Vec::new();
        let mut skipped = Vec::new();
        for (name, scheduler) in &graph.schedulers {
            let SchedulerSpec::Commit {
                parameters,
                branch_regex,
                pull_requests: true,
                ..
            } = &scheduler.spec
            else {
                continue;
            };
            let matches = regex::Regex::new(&format!("^(?:{branch_regex})$"))
                .is_ok_and(|r| r.is_match(&record.base_ref));
            if !matches {
                continue;
            }
            for builder in &scheduler.builders {
                let Some(spec) = graph.builders.get(builder) else {
                    continue;
                };
                if started.iter().any(|(b, _): &(String, u64)| b == builder) {
                    continue;
                }
                let mut spec = spec.clone();
                if let Some(allowed) = &allowed {
                    spec.workers.retain(|w| allowed.contains(w));
                    if spec.workers.is_empty() {
                        skipped.push(format!(
                            "{builder}: no worker for fork pull requests (cybertron's pull_requests.fork_workers) runs it"
                        ));
                        continue;
                    }
                }
                let provenance = Provenance {
                    config_commit: head.clone(),
                    config_hash: graph.config_hash.clone(),
                    cybertron_hash: cybertron_hash.clone(),
                    // Speculative: the request's own config, never a version
                    // of the repo's graph.
                    graph_version: 0,
                    system_version: env!("CARGO_PKG_VERSION").to_string(),
                };
                let request = StartRequest {
                    builder: builder.clone(),
                    parameters: parameters.clone(),
                    revision: Some(head.clone()),
                    branch: Some(format!("pull/{}", record.number)),
                    pins: Default::default(),
                    reason: format!(
                        "pull request #{} ({}) by {} at {} (scheduler {name})",
                        record.number,
                        record.title,
                        record.author,
                        short(&head)
                    ),
                    by: None,
                    trigger: crate::config::secrets::TriggerKind::PullRequest,
                };
                let pull = PullRef {
                    number: record.number,
                    fetch_ref: record.fetch_ref.clone(),
                    fork: record.fork,
                };
                let build =
                    self.queue_build(&record.repo, spec, provenance, request, Some(pull))?;
                started.push((builder.clone(), build.id));
            }
        }
        record.builds = started.iter().map(|(_, id)| *id).collect();
        record.waiting = if started.is_empty() {
            Some(if skipped.is_empty() {
                format!(
                    "no commit scheduler of its config with pull_requests: true matches the branch {}",
                    record.base_ref
                )
            } else {
                skipped.join("; ")
            })
        } else {
            None
        };
        Ok(())
    }

    /// An operator lets a fork's head commit build (`commit` may be a
    /// prefix of 7 or more hex digits). A head that moved on needs a new
    /// approval of its own commit.
    pub fn approve_pull(
        &self,
        repo: &str,
        number: u64,
        commit: &str,
        by: &str,
    ) -> Result<PullRecord> {
        let mut record = self
            .store
            .pull(repo, number)?
            .ok_or_else(|| Error::NotFound(format!("repo {repo} has no pull request #{number}")))?;
        if record.state == PullState::Closed {
            return Err(Error::Conflict(format!("pull request #{number} is closed")));
        }
        let commit = commit.trim().to_ascii_lowercase();
        if commit.len() < 7 || !record.head.starts_with(&commit) {
            return Err(Error::Conflict(format!(
                "pull request #{number}'s head is {}, not {commit}: approve the commit it has now",
                record.head
            )));
        }
        if !record.fork {
            return Err(Error::Conflict(format!(
                "pull request #{number} is not from a fork: it builds without approval"
            )));
        }
        if record
            .approved
            .as_ref()
            .is_some_and(|a| a.commit == record.head)
        {
            return Ok(record);
        }
        record.approved = Some(Approval {
            commit: record.head.clone(),
            by: by.to_string(),
            at: now_ms(),
        });
        let repo_url = read(&self.repos)
            .get(repo)
            .map(|r| r.record.url.clone())
            .unwrap_or_default();
        self.queue_status(
            &repo_url,
            &record.head.clone(),
            0,
            Status {
                context: "constructicon/approval".into(),
                state: StatusState::Success,
                description: format!("approved by {by}"),
                target_url: None,
            },
        );
        tracing::info!(repo, number, commit = %record.head, by, "pull request approved");
        self.start_pull(&mut record)?;
        record.updated = now_ms();
        self.store.put_pull(&record)?;
        self.store.flush()?;
        self.announce();
        Ok(record)
    }

    /// A comment on a request: `/ok-to-test <sha>` from a person cybertron
    /// makes an operator of the repo approves; anything else, or anyone
    /// else, changes nothing. Returns what each repo made of it.
    pub fn pull_comment(&self, comment: &PullComment) -> Result<Vec<(String, String)>> {
        let Some(commit) = ok_to_test(&comment.body) else {
            return Ok(Vec::new());
        };
        let repos: Vec<String> = read(&self.repos)
            .values()
            .filter(|r| comment.urls.iter().any(|u| same_repo_url(&r.record.url, u)))
            .map(|r| r.record.name.clone())
            .collect();
        let mut outcomes = Vec::new();
        for repo in repos {
            let role = {
                let cybertron = read(&self.cybertron);
                cybertron
                    .spec
                    .access
                    .people
                    .get(&comment.author)
                    .and_then(|grants| role_on(grants, Some(&repo)))
            };
            let outcome = if role.is_some_and(|r| r >= Role::Operator) {
                match self.approve_pull(&repo, comment.number, &commit, &comment.author) {
                    Ok(_) => format!("approved {commit} by {}", comment.author),
                    Err(e) => format!("not approved: {e}"),
                }
            } else {
                tracing::warn!(repo, author = %comment.author, "an /ok-to-test from someone who is no operator of the repo");
                format!(
                    "not approved: {} is no operator of {repo} in cybertron's access.people",
                    comment.author
                )
            };
            outcomes.push((repo, outcome));
        }
        Ok(outcomes)
    }
}
