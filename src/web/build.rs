//! A build's page: its state in words and colours, who and why, revisions,
//! parameters, provenance, artifacts, every step with its log (the tail of
//! a large one, coloured and numbered), the cancel and rebuild buttons for
//! operators; and its live stream, which sends state changes and new log
//! lines as server-sent events, resumed after a reconnect from the offsets
//! in the last event's id.

use super::format::{absolute, ago, build_label, duration, elapsed, iso, size, step_label};
use super::log::{self, Line};
use super::page::{message, render, Nav};
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::artifacts::paths::encode_segment;
use crate::megatron::artifacts::{links, list_artifacts};
use crate::megatron::state::State;
use crate::store::{now_ms, BuildRecord, BuildState, Provenance};
use askama::Template;
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The most log bytes a build page shows before "show all", over all its
/// steps; each step gets a share.
const PAGE_LOG_BUDGET: u64 = 448 << 10;
/// The most log bytes one live event carries.
const EVENT_LOG_BYTES: usize = 256 << 10;

pub struct StepView {
    pub index: usize,
    pub name: String,
    pub command: String,
    pub word: &'static str,
    pub class: &'static str,
    pub took: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub open: bool,
    pub skipped: bool,
    /// The log reached cybertron's cap and the rest was not kept.
    pub cut: bool,
    pub size: String,
    pub lines: Vec<Line>,
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    nav: Nav,
    id: u64,
    number: u64,
    builder: String,
    repo: String,
    label: super::format::Label,
    message: Option<String>,
    may_cancel: bool,
    may_rebuild: bool,
    reason: String,
    result_reason: Option<String>,
    cancelled_by: Option<String>,
    revision: String,
    branch: Option<String>,
    worker: Option<String>,
    attempts: u32,
    /// (iso, absolute, relative)
    created: (String, String, String),
    started: Option<(String, String, String)>,
    took: String,
    parameters: Vec<(String, String)>,
    /// (repo URL, commit, pinned to)
    revisions: Vec<(String, String, String)>,
    got: Vec<(String, u64)>,
    /// (path, href, size)
    artifacts: Vec<(String, String, String)>,
    /// (destination, href)
    links: Vec<(String, String)>,
    steps: Vec<StepView>,
    provenance: Provenance,
    offsets: String,
    /// The commit status on the forge: (context, forge, what was posted
    /// and asked, the last error).
    reporting: Option<(String, String, String, Option<String>)>,
    /// The secrets its builder names that it did not get, and why.
    withheld: Vec<String>,
}

fn when(ms: u64, now: u64) -> (String, String, String) {
    (iso(ms), absolute(ms), ago(ms, now))
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything the page shows, read on a blocking thread.
fn build_page(
    state: &State,
    caller: &Caller,
    id: u64,
    message: Option<String>,
) -> Option<BuildPage> {
    let build = state.store.build(id).ok()?;
    let now = now_ms();
    let finished = build.state == BuildState::Finished;
    let with_logs = build
        .steps
        .iter()
        .filter(|s| s.log_bytes > 0)
        .count()
        .max(1) as u64;
    let share = (PAGE_LOG_BUDGET / with_logs).max(32 << 10);
    let last_started = build.steps.iter().rposition(|s| s.started.is_some());
    let mut offsets = Vec::new();
    let steps: Vec<StepView> = build
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let label = step_label(step, finished);
            let complete = step.finished.is_some() || finished;
            let lines = log::tail(
                state,
                id,
                index as u32,
                step.log_bytes,
                step.log_lines,
                share,
                complete,
            )
            .unwrap_or_default();
            offsets.push(format!("{}:{}", lines.end_offset, lines.end_line));
            let failed = matches!(label.class, "failure" | "exception" | "running");
            StepView {
                index,
                name: step.name.clone(),
                command: step.command.clone(),
                word: label.word,
                class: label.class,
                took: elapsed(step.started, step.finished, now)
                    .map(duration)
                    .unwrap_or_default(),
                exit_code: step.exit_code,
                reason: step.reason.clone(),
                open: failed || Some(index) == last_started,
                skipped: lines.skipped_bytes > 0,
                cut: step.log_cut,
                size: size(step.log_bytes),
                lines: lines.lines,
            }
        })
        .collect();
    let artifacts = list_artifacts(&state.artifact_dir(id))
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let href = format!("/api/v1/builds/{id}/artifacts/{}", encode_path(&a.path));
            (a.path, href, size(a.size))
        })
        .collect();
    let revisions = build
        .revisions
        .iter()
        .map(|(url, commit)| {
            let pinned = build
                .pins
                .iter()
                .find(|(k, _)| crate::model::same_repo_url(k, url) || url.ends_with(k.as_str()))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (
                crate::config::access::redact_url(url),
                commit.clone(),
                pinned,
            )
        })
        .collect();
    let may_operate = caller.may(Role::Operator, &build.repo);
    Some(BuildPage {
        nav: Nav::of(Some(caller)).live(if finished { "" } else { "build" }),
        id,
        number: build.number,
        label: build_label(&build),
        message,
        may_cancel: may_operate && !finished,
        may_rebuild: may_operate && finished,
        reason: build.reason.clone(),
        result_reason: build.result_reason.clone(),
        cancelled_by: build.cancelled_by.clone(),
        revision: build.revision.clone(),
        branch: build.branch.clone(),
        worker: build.worker.clone(),
        attempts: build.attempts,
        created: when(build.created, now),
        started: build.started.map(|s| when(s, now)),
        took: elapsed(build.started, build.finished, now)
            .map(duration)
            .unwrap_or_default(),
        parameters: build.parameters.clone().into_iter().collect(),
        revisions,
        got: build.got.clone().into_iter().collect(),
        artifacts,
        links: links(id, &build.spec.url).into_iter().collect(),
        steps,
        provenance: build.provenance.clone(),
        withheld: build.withheld.clone(),
        reporting: build.reporting.as_ref().map(|r| {
            let word = |s: crate::forge::status::StatusState| s.as_str();
            let posted = match r.posted {
                Some(posted) if posted == r.state => format!("{} posted", word(posted)),
                Some(posted) => format!("{} posted, {} waiting", word(posted), word(r.state)),
                None => format!("{} waiting", word(r.state)),
            };
            (
                r.context.clone(),
                r.forge.clone(),
                format!("{posted}: {}", r.asked),
                r.error.clone(),
            )
        }),
        offsets: offsets.join(","),
        builder: build.builder,
        repo: build.repo,
    })
}

async fn show_with(
    state: &Arc<State>,
    caller: Caller,
    id: u64,
    status: StatusCode,
    note: Option<String>,
) -> Response {
    let who = caller.clone();
    let page = state.blocking(move |s| build_page(s, &who, id, note)).await;
    match page {
        Some(page) => render(status, &page),
        None => super::page::not_found(&caller, &format!("There is no build {id}.")),
    }
}

pub async fn show(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    show_with(&state, caller, id, StatusCode::OK, None).await
}

/// `/builders/{name}/builds/{number}`: a build by its builder's number,
/// the way pages and messages name it.
pub async fn by_number(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path((name, number)): Path<(String, u64)>,
) -> Response {
    let who = name.clone();
    let found = state
        .blocking(move |s| s.store.build_by_number(&who, number).ok())
        .await;
    match found {
        Some(build) => show_with(&state, caller, build.id, StatusCode::OK, None).await,
        None => super::page::not_found(&caller, &format!("There is no build {name} #{number}.")),
    }
}

pub async fn cancel(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let by = caller.name().map(str::to_string);
    match state.blocking(move |s| s.cancel(id, by.as_deref())).await {
        Ok(_) => {
            state.announce();
            Redirect::to(&format!("/builds/{id}")).into_response()
        }
        Err(e) => {
            show_with(
                &state,
                caller,
                id,
                StatusCode::CONFLICT,
                Some(format!("Not cancelled: {e}")),
            )
            .await
        }
    }
}

pub async fn rebuild(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let by = caller.name().map(str::to_string);
    match state.blocking(move |s| s.rebuild(id, by.as_deref())).await {
        Ok(build) => {
            state.queue_changed.notify_waiters();
            state.announce();
            Redirect::to(&format!("/builds/{}", build.id)).into_response()
        }
        Err(e) => {
            let status = match e {
                crate::megatron::error::Error::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            if status == StatusCode::NOT_FOUND {
                return message(&caller, status, "Not rebuilt", &e.to_string());
            }
            show_with(
                &state,
                caller,
                id,
                status,
                Some(format!("Not rebuilt: {e}")),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct Offsets {
    /// Per step, `offset:line` of what the page already shows.
    o: Option<String>,
}

/// `offset:line,offset:line,...` → pairs.
fn parse_offsets(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .map(|pair| {
            let (o, l) = pair.split_once(':').unwrap_or((pair, "0"));
            (o.parse().unwrap_or(0), l.parse().unwrap_or(0))
        })
        .collect()
}

/// Where a live stream stands.
struct Cursor {
    state: Arc<State>,
    id: u64,
    offsets: Vec<(u64, u64)>,
    last: String,
    queued: VecDeque<Event>,
    done: bool,
    changes: tokio::sync::watch::Receiver<u64>,
}

/// The build's state as the page's script applies it.
fn state_json(build: &BuildRecord, now: u64) -> serde_json::Value {
    let finished = build.state == BuildState::Finished;
    let label = build_label(build);
    let steps: Vec<serde_json::Value> = build
        .steps
        .iter()
        .map(|s| {
            let l = step_label(s, finished);
            json!({
                "word": l.word,
                "class": l.class,
                "took": elapsed(s.started, s.finished, now).map(duration).unwrap_or_default(),
                "exit_code": s.exit_code,
                "reason": s.reason,
            })
        })
        .collect();
    json!({
        "word": label.word,
        "class": label.class,
        "took": elapsed(build.started, build.finished, now).map(duration).unwrap_or_default(),
        "finished": finished,
        "steps": steps,
    })
}

/// What changed since the cursor looked last: the state, and new lines of
/// each step's log. Runs on a blocking thread.
fn catch_up(
    state: &State,
    id: u64,
    offsets: &mut Vec<(u64, u64)>,
    last: &str,
) -> (Vec<Event>, Option<String>, bool) {
    let Ok(build) = state.store.build(id) else {
        return (vec![Event::default().event("end").data("gone")], None, true);
    };
    let now = now_ms();
    let mut events = Vec::new();
    let current = state_json(&build, now).to_string();
    // The running time changes every time; compare without it.
    let comparable = current.replace(
        &format!(
            "\"took\":\"{}\"",
            elapsed(build.started, build.finished, now)
                .map(duration)
                .unwrap_or_default()
        ),
        "",
    );
    let changed = comparable != last;
    let finished = build.state == BuildState::Finished;
    offsets.resize(build.steps.len(), (0, 0));
    let mut drained = true;
    for (index, step) in build.steps.iter().enumerate() {
        let (offset, line) = offsets[index];
        if step.log_bytes <= offset {
            continue;
        }
        let Ok(bytes) =
            state
                .store
                .read_log(id, index as u32, offset, step.log_bytes, EVENT_LOG_BYTES)
        else {
            continue;
        };
        let complete = step.finished.is_some() || finished;
        let at_end = offset + bytes.len() as u64 >= step.log_bytes;
        let whole = complete && at_end || bytes.len() == EVENT_LOG_BYTES && !bytes.contains(&b'\n');
        let lines = log::render(&bytes, line + 1, offset, whole);
        if !at_end {
            drained = false;
        }
        if lines.lines.is_empty() {
            continue;
        }
        offsets[index] = (lines.end_offset, lines.end_line);
        let rows: Vec<(u64, String)> = lines
            .lines
            .into_iter()
            .map(|l| (l.number, l.html))
            .collect();
        let cursor: Vec<String> = offsets.iter().map(|(o, l)| format!("{o}:{l}")).collect();
        events.push(
            Event::default()
                .event("log")
                .id(cursor.join(","))
                .data(json!({ "step": index, "lines": rows }).to_string()),
        );
    }
    // The state goes after the lines, so a step is never shown ended
    // before its last lines are.
    if changed {
        events.push(Event::default().event("build").data(current.clone()));
    }
    let done = finished && drained;
    if done {
        events.push(Event::default().event("end").data("finished"));
    }
    (events, changed.then_some(comparable), done)
}

pub async fn events(
    state: Extract<Arc<State>>,
    Path(id): Path<u64>,
    Query(query): Query<Offsets>,
    headers: HeaderMap,
) -> Response {
    // A reconnecting browser says where it got to; that wins over the
    // offsets the page was rendered with.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let offsets = parse_offsets(resumed.as_deref().or(query.o.as_deref()).unwrap_or(""));
    let cursor = Cursor {
        changes: state.changes.subscribe(),
        state: state.0.clone(),
        id,
        offsets,
        last: String::new(),
        queued: VecDeque::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.queued.pop_front() {
                return Some((Ok::<_, Infallible>(event), c));
            }
            if c.done || c.state.is_stopping() {
                return None;
            }
            // Mark what is seen before looking, so a change while looking
            // wakes the next wait.
            c.changes.borrow_and_update();
            let (id, mut offsets, last) = (c.id, std::mem::take(&mut c.offsets), c.last.clone());
            let ((events, state_now, done), offsets) = c
                .state
                .blocking(move |s| {
                    let found = catch_up(s, id, &mut offsets, &last);
                    (found, offsets)
                })
                .await;
            c.offsets = offsets;
            if let Some(state_now) = state_now {
                c.last = state_now;
            }
            c.done = done;
            c.queued.extend(events);
            if c.queued.is_empty() && !c.done {
                // Wait for news; now and then look anyway (a step's running
                // time, a change that came between two looks).
                let _ = tokio::time::timeout(Duration::from_secs(10), c.changes.changed()).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
