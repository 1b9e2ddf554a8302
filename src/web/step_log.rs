//! One step's whole log, a window of lines at a time (anywhere in it, by
//! line number, so any line has a permalink), and the search over all of
//! it, run on the server.

use super::format::size;
use super::log::{self, Line};
use super::page::{not_found, render, Nav};
use crate::access::caller::Caller;
use crate::megatron::state::State;
use askama::Template;
use axum::extract::{Extension, Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;

/// Lines per window.
const WINDOW: u64 = 5000;
/// Search results shown at most.
const MATCHES: usize = 1000;

#[derive(Template)]
#[template(path = "step_log.html")]
struct StepLogPage {
    nav: Nav,
    id: u64,
    number: u64,
    builder: String,
    step: String,
    index: usize,
    size: String,
    total_lines: u64,
    q: String,
    more: bool,
    /// Where the windows before and after this one start.
    before: Option<u64>,
    after: Option<u64>,
    lines: Vec<Line>,
}

#[derive(Deserialize)]
pub struct View {
    from: Option<u64>,
    q: Option<String>,
}

pub async fn show(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Path((id, index)): Path<(u64, usize)>,
    Query(view): Query<View>,
) -> Response {
    let q = view.q.unwrap_or_default().trim().to_string();
    let from = view.from.unwrap_or(1).max(1);
    let who = caller.clone();
    let page = state
        .blocking(move |s| {
            let build = s.store.build(id).ok()?;
            let step = build.steps.get(index)?.clone();
            let (lines, more) = if q.is_empty() {
                let lines = log::window(s, id, index as u32, from, WINDOW).ok()?;
                (lines.lines, false)
            } else {
                log::search(s, id, index as u32, &q, MATCHES).ok()?
            };
            Some(StepLogPage {
                nav: Nav::of(Some(&who)),
                id,
                number: build.number,
                builder: build.builder,
                step: step.name,
                index,
                size: size(step.log_bytes),
                total_lines: step.log_lines,
                before: (from > 1).then(|| from.saturating_sub(WINDOW).max(1)),
                after: (q.is_empty() && from + WINDOW <= step.log_lines).then_some(from + WINDOW),
                q,
                more,
                lines,
            })
        })
        .await;
    match page {
        Some(page) => render(StatusCode::OK, &page),
        None => not_found(&caller, &format!("Build {id} has no step {index}.")),
    }
}
