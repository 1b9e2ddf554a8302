//! A builder's page: its schedulers, the workers that accept it (online or
//! not), its history a page at a time with a small duration chart, a badge,
//! and the force form (operators only) with the force scheduler's
//! parameters filled in and optional revision pins.

use super::format::{absolute, ago, build_label, duration, elapsed, iso, short};
use super::page::{render, Nav};
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::config::spec::SchedulerSpec;
use crate::megatron::queue::ForceRequest;
use crate::megatron::state::State;
use crate::store::{now_ms, BuildRecord};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Builds per page of history.
const PAGE: usize = 25;

pub struct HistoryRow {
    pub number: u64,
    pub word: &'static str,
    pub class: &'static str,
    pub revision: String,
    pub reason: String,
    pub ago: String,
    pub iso: String,
    pub absolute: String,
    pub duration: String,
}

pub struct ForceForm {
    /// Parameter → its default.
    pub parameters: Vec<(String, String)>,
    /// The deps' folder names, for pins.
    pub deps: Vec<String>,
}

#[derive(Template)]
#[template(path = "builder.html")]
struct BuilderPage {
    nav: Nav,
    name: String,
    repo: String,
    error: Option<String>,
    message: Option<String>,
    schedulers: Vec<(String, String)>,
    /// (worker, "online" | "busy" | "offline")
    workers: Vec<(String, &'static str)>,
    force: Option<ForceForm>,
    chart: String,
    history: Vec<HistoryRow>,
    older: Option<u64>,
}

fn describe(spec: &SchedulerSpec) -> String {
    let parameters = |p: &BTreeMap<String, String>| {
        if p.is_empty() {
            String::new()
        } else {
            format!(
                " with {}",
                p.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    match spec {
        SchedulerSpec::Force { parameters: p } => format!("forced by a person{}", parameters(p)),
        SchedulerSpec::Time {
            parameters: p,
            month,
            day_of_month,
            day_of_week,
            hour,
            minute,
        } => format!(
            "at minute {minute}, hour {hour}, day {day_of_month}, month {month}, weekday {day_of_week}{}",
            parameters(p)
        ),
        SchedulerSpec::Commit {
            parameters: p,
            branch_regex,
            ..
        } => format!("on a commit to a branch matching {branch_regex}{}", parameters(p)),
    }
}

/// Bars of the last builds' durations, oldest on the left, coloured by
/// result: numbers and classes only, so it can go into the page as it is.
fn chart(builds: &[BuildRecord], now: u64) -> String {
    let bars: Vec<(u64, &'static str, String)> = builds
        .iter()
        .rev()
        .filter_map(|b| {
            let took = elapsed(b.started, b.finished, now)?;
            Some((
                took,
                build_label(b).class,
                format!("#{} {}", b.number, duration(took)),
            ))
        })
        .collect();
    let Some(longest) = bars.iter().map(|b| b.0).max().filter(|m| *m > 0) else {
        return String::new();
    };
    let (width, height, gap) = (8u64, 60u64, 2u64);
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="durations of the last {} builds" width="{}" height="{height}" viewBox="0 0 {} {height}">"#,
        bars.len(),
        bars.len() as u64 * (width + gap),
        bars.len() as u64 * (width + gap),
    );
    for (i, (took, class, title)) in bars.iter().enumerate() {
        let h = (took * (height - 2) / longest).max(2);
        let _ = write!(
            svg,
            r#"<rect class="bar {class}" x="{}" y="{}" width="{width}" height="{h}"><title>{title}</title></rect>"#,
            i as u64 * (width + gap),
            height - h,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[derive(Deserialize)]
pub struct Page {
    before: Option<u64>,
}

async fn page(
    state: &Arc<State>,
    caller: &Caller,
    name: String,
    before: Option<u64>,
    status: StatusCode,
    message: Option<String>,
) -> Response {
    let Some((repo, graph)) = state.builder_owner(&name) else {
        return super::page::not_found(caller, &format!("There is no builder {name}."));
    };
    let spec = graph.graph.builders[&name].clone();
    let error = crate::sync::read(&state.repos)
        .get(&repo)
        .and_then(|r| r.record.error.as_ref().map(|e| e.message.clone()));
    let mut parameters: Vec<(String, String)> = Vec::new();
    let mut forceable = false;
    let schedulers = spec
        .schedulers
        .iter()
        .filter_map(|s| graph.graph.schedulers.get(s).map(|sched| (s, sched)))
        .map(|(s, sched)| {
            if let SchedulerSpec::Force { parameters: p } = &sched.spec {
                forceable = true;
                for (k, v) in p {
                    if !parameters.iter().any(|(name, _)| name == k) {
                        parameters.push((k.clone(), v.clone()));
                    }
                }
            }
            (s.clone(), describe(&sched.spec))
        })
        .collect();
    let views = state.workers();
    let workers = spec
        .workers
        .iter()
        .map(|w| {
            let view = views.iter().find(|v| &v.name == w);
            let status = match view {
                Some(v) if v.build.is_some() => "busy",
                Some(v) if v.online => "online",
                _ => "offline",
            };
            (w.clone(), status)
        })
        .collect();
    let force = (forceable && caller.may(Role::Operator, &repo)).then(|| ForceForm {
        parameters,
        deps: spec.deps.iter().map(|d| d.name.clone()).collect(),
    });
    let who = name.clone();
    let builds = state
        .blocking(move |s| s.store.builder_builds_before(&who, before, PAGE + 1))
        .await
        .unwrap_or_default();
    let now = now_ms();
    let older = (builds.len() > PAGE).then(|| builds[PAGE - 1].number);
    let shown = &builds[..builds.len().min(PAGE)];
    let history = shown
        .iter()
        .map(|b| {
            let label = build_label(b);
            let when = b.started.unwrap_or(b.created);
            HistoryRow {
                number: b.number,
                word: label.word,
                class: label.class,
                revision: short(&b.revision).to_string(),
                reason: b.reason.clone(),
                ago: ago(when, now),
                iso: iso(when),
                absolute: absolute(when),
                duration: elapsed(b.started, b.finished, now)
                    .map(duration)
                    .unwrap_or_default(),
            }
        })
        .collect();
    render(
        status,
        &BuilderPage {
            nav: Nav::of(Some(caller)).live("page"),
            chart: if before.is_none() {
                chart(shown, now)
            } else {
                String::new()
            },
            name,
            repo,
            error,
            message,
            schedulers,
            workers,
            force,
            history,
            older,
        },
    )
}

pub async fn show(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(query): Query<Page>,
) -> Response {
    page(&state, &caller, name, query.before, StatusCode::OK, None).await
}

/// The force form: `p.NAME` fields are parameters, non-empty `r.REPO`
/// fields pins. Success goes to the new build's page.
pub async fn force(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let mut request = ForceRequest::default();
    for (key, value) in fields {
        if let Some(parameter) = key.strip_prefix("p.") {
            request.parameters.insert(parameter.to_string(), value);
        } else if let Some(repo) = key.strip_prefix("r.") {
            if !value.trim().is_empty() {
                request
                    .revisions
                    .insert(repo.to_string(), value.trim().to_string());
            }
        }
    }
    let by = caller.name().map(str::to_string);
    let forced = state.force_fresh(name.clone(), request, by).await;
    match forced {
        Ok(build) => {
            state.queue_changed.notify_waiters();
            state.announce();
            Redirect::to(&format!("/builds/{}", build.id)).into_response()
        }
        Err(e) => {
            page(
                &state,
                &caller,
                name,
                None,
                StatusCode::BAD_REQUEST,
                Some(format!("Not forced: {e}")),
            )
            .await
        }
    }
}
