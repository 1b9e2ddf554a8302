//! The queue (pending builds in order, and why each waits), the workers
//! (online or when last seen, what each runs), and a repo (where it comes
//! from, its graph's provenance, its config error as `eval` prints it).

use super::format::{absolute, ago, build_label, iso, size};
use super::page::{not_found, render, Nav};
use crate::access::caller::Caller;
use crate::config::access::{redact_url, Role};
use crate::megatron::state::State;
use crate::store::pulls::PullState;
use crate::store::{now_ms, RepoError};
use crate::sync::{lock, read};
use askama::Template;
use axum::extract::{Extension, Path, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;

pub struct QueueRow {
    pub id: u64,
    pub builder: String,
    pub number: u64,
    pub reason: String,
    pub ago: String,
    pub iso: String,
    pub absolute: String,
    pub waiting: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    nav: Nav,
    pending: Vec<QueueRow>,
    held: Vec<(String, u64)>,
}

pub async fn queue(state: Extract<Arc<State>>, Extension(caller): Extension<Caller>) -> Response {
    let queued = state
        .blocking(|s| s.store.queued_builds())
        .await
        .unwrap_or_default();
    let waits: HashMap<u64, String> = state
        .queue_waits()
        .into_iter()
        .map(|(build, wait)| (build, wait.describe()))
        .collect();
    let now = now_ms();
    let pending = queued
        .into_iter()
        .filter(|b| caller.may(Role::Viewer, &b.repo))
        .map(|b| QueueRow {
            waiting: waits
                .get(&b.id)
                .cloned()
                .unwrap_or_else(|| "being handed to a worker".into()),
            id: b.id,
            number: b.number,
            reason: b.reason,
            ago: ago(b.created, now),
            iso: iso(b.created),
            absolute: absolute(b.created),
            builder: b.builder,
        })
        .collect();
    let held = lock(&state.dispatcher).held_resources();
    render(
        StatusCode::OK,
        &QueuePage {
            nav: Nav::of(Some(&caller)).live("page"),
            pending,
            held,
        },
    )
}

pub struct WorkerRow {
    pub name: String,
    pub status: &'static str,
    pub seen: String,
    pub seen_iso: String,
    pub seen_absolute: String,
    pub build: Option<u64>,
    pub features: Vec<String>,
    pub repo: Option<String>,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    nav: Nav,
    workers: Vec<WorkerRow>,
}

pub async fn workers(state: Extract<Arc<State>>, Extension(caller): Extension<Caller>) -> Response {
    let now = now_ms();
    let workers = state
        .workers()
        .into_iter()
        .filter(|w| w.repo.as_ref().is_none_or(|r| caller.may(Role::Viewer, r)))
        .map(|w| WorkerRow {
            status: match (w.online, w.build) {
                (_, Some(_)) => "busy",
                (true, None) => "online",
                (false, None) => "offline",
            },
            seen: w.last_seen.map(|t| ago(t, now)).unwrap_or_default(),
            seen_iso: w.last_seen.map(iso).unwrap_or_default(),
            seen_absolute: w.last_seen.map(absolute).unwrap_or_default(),
            build: w.build,
            features: w
                .features
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(text) => format!("{k}={text}"),
                    None => format!("{k}={v}"),
                })
                .collect(),
            repo: w.repo,
            name: w.name,
        })
        .collect();
    render(
        StatusCode::OK,
        &WorkersPage {
            nav: Nav::of(Some(&caller)).live("page"),
            workers,
        },
    )
}

pub struct GraphView {
    pub version: u64,
    pub commit: String,
    pub config_hash: String,
    pub cybertron_hash: String,
    pub ago: String,
    pub iso: String,
    pub absolute: String,
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    nav: Nav,
    name: String,
    url: String,
    branch: Option<String>,
    commit: Option<String>,
    graph: Option<GraphView>,
    error: Option<RepoError>,
    /// What the config's evaluation warned of: `file:line:col: path: message`.
    warnings: Vec<String>,
    builders: Vec<BuilderUse>,
    /// When the disk used was last counted; `None` before the first count.
    counted: Option<String>,
    /// The repo's sums: logs and artifacts kept.
    logs: String,
    artifacts: String,
    /// Open requests first, then the last closed ones.
    pulls: Vec<PullView>,
    may_operate: bool,
}

/// A pull request on its repo's page.
pub struct PullView {
    pub number: u64,
    pub title: String,
    pub author: String,
    pub head: String,
    pub short: String,
    pub fork: bool,
    pub open: bool,
    /// Who approved the head, if someone did.
    pub approved_by: Option<String>,
    pub waiting: Option<String>,
    /// (id, builder, label)
    pub builds: Vec<(u64, String, super::format::Label)>,
    pub ago: String,
}

/// A builder on its repo's page, with the disk its history takes.
pub struct BuilderUse {
    pub name: String,
    pub builds: u64,
    pub logs: String,
    pub artifacts: String,
}

pub async fn repo(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let Some(repo) = read(&state.repos).get(&name).cloned() else {
        return not_found(&caller, &format!("There is no repo {name}."));
    };
    let now = now_ms();
    // The last count, as the usage loop made it: pages never walk every
    // build themselves.
    let counted = read(&state.usage_counted).clone();
    let usage = counted
        .as_ref()
        .and_then(|(_, all)| all.iter().find(|r| r.repo == name).cloned())
        .unwrap_or_default();
    let counted = counted.map(|(at, _)| ago(at, now));
    let pulls = {
        let repo_name = name.clone();
        state
            .blocking(move |s| -> Vec<PullView> {
                let mut pulls = s.store.pulls(&repo_name).unwrap_or_default();
                // Open ones first; a few closed ones after.
                pulls.sort_by_key(|p| (p.state != PullState::Open, std::cmp::Reverse(p.number)));
                pulls
                    .into_iter()
                    .filter(|p| p.state == PullState::Open || p.updated + 7 * 86_400_000 > now)
                    .take(30)
                    .map(|p| PullView {
                        builds: p
                            .builds
                            .iter()
                            .filter_map(|id| s.store.build(*id).ok())
                            .map(|b| (b.id, b.builder.clone(), build_label(&b)))
                            .collect(),
                        short: p.head.chars().take(10).collect(),
                        approved_by: p
                            .approved
                            .as_ref()
                            .filter(|a| a.commit == p.head)
                            .map(|a| a.by.clone()),
                        open: p.state == PullState::Open,
                        ago: ago(p.updated, now),
                        number: p.number,
                        title: p.title,
                        author: p.author,
                        head: p.head,
                        fork: p.fork,
                        waiting: p.waiting,
                    })
                    .collect()
            })
            .await
    };
    let may_operate = caller.may(Role::Operator, &name);
    let graph = repo.graph.as_ref().map(|g| GraphView {
        version: g.version,
        commit: g.commit.clone(),
        config_hash: g.config_hash.clone(),
        cybertron_hash: g.cybertron_hash.clone(),
        ago: ago(g.created, now),
        iso: iso(g.created),
        absolute: absolute(g.created),
    });
    render(
        StatusCode::OK,
        &RepoPage {
            nav: Nav::of(Some(&caller)).live("page"),
            url: redact_url(&repo.record.url),
            branch: repo.record.branch.clone(),
            commit: repo.record.commit.clone(),
            error: repo.record.error.clone(),
            warnings: repo
                .record
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect(),
            // Every builder of the graph, with its count once there is one.
            builders: repo
                .graph
                .as_ref()
                .map(|g| {
                    g.graph
                        .builders
                        .keys()
                        .map(|name| {
                            let b = usage.builders.iter().find(|b| &b.builder == name);
                            let b = b.cloned().unwrap_or_default();
                            BuilderUse {
                                name: name.clone(),
                                builds: b.builds,
                                logs: size(b.log_bytes),
                                artifacts: size(b.artifact_bytes),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
            counted,
            logs: size(usage.log_bytes),
            artifacts: size(usage.artifact_bytes),
            graph,
            pulls,
            may_operate,
            name,
        },
    )
}

/// `GET /events`: a page that lists things hears here when anything
/// changed (at most twice a second), and fetches itself again.
pub async fn changes(state: Extract<Arc<State>>) -> axum::response::Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::response::IntoResponse;
    let mut changes = state.changes.subscribe();
    changes.borrow_and_update();
    let stopping = state.0.clone();
    let stream = futures_util::stream::unfold(changes, move |mut changes| {
        let stopping = stopping.clone();
        async move {
            changes.changed().await.ok()?;
            if stopping.is_stopping() {
                return None;
            }
            // Let a burst of changes settle into one reload.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            changes.borrow_and_update();
            Some((
                Ok::<_, std::convert::Infallible>(Event::default().event("changed").data("")),
                changes,
            ))
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}

/// `POST /repos/{repo}/pulls/{number}/approve` (a form with `commit`):
/// an operator lets a fork's head build, then sees the repo page again.
pub async fn approve_pull(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path((repo, number)): Path<(String, u64)>,
    body: axum::body::Bytes,
) -> Response {
    use axum::response::{IntoResponse, Redirect};
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let commit = fields
        .into_iter()
        .find(|(key, _)| key == "commit")
        .map(|(_, value)| value)
        .unwrap_or_default();
    let by = caller.name().unwrap_or("anonymous").to_string();
    let name = repo.clone();
    match state
        .blocking(move |s| s.approve_pull(&name, number, &commit, &by))
        .await
    {
        Ok(_) => {
            state.queue_changed.notify_waiters();
            Redirect::to(&format!(
                "/repos/{}",
                crate::megatron::artifacts::paths::encode_segment(&repo)
            ))
            .into_response()
        }
        Err(e) => {
            let status = match e {
                crate::megatron::Error::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            super::page::message(&caller, status, "Not approved", &e.to_string())
        }
    }
}
