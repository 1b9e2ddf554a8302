//! The queue (pending builds in order, and why each waits), the workers
//! (online or when last seen, what each runs), and a repo (where it comes
//! from, its graph's provenance, its config error as `eval` prints it).

use super::format::{absolute, ago, iso, size};
use super::page::{not_found, render, Nav};
use crate::access::caller::Caller;
use crate::config::access::{redact_url, Role};
use crate::megatron::state::State;
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
