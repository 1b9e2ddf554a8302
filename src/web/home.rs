//! The home page: every repo the caller may see, each builder's last builds
//! as coloured cells (one glance says what is red), a filter by name, and
//! the queue and the workers in numbers.

use super::format::{absolute, ago, build_label, iso};
use super::page::{render, Nav};
use crate::access::caller::Caller;
use crate::config::access::Role;
use crate::megatron::state::State;
use crate::store::{now_ms, BuildRecord};
use crate::sync::{lock, read};
use askama::Template;
use axum::extract::{Extension, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;

/// Cells shown per builder.
const CELLS: usize = 20;

pub struct Cell {
    pub number: u64,
    pub class: &'static str,
    pub title: String,
}

pub struct Last {
    pub word: &'static str,
    pub class: &'static str,
    pub ago: String,
    pub iso: String,
    pub absolute: String,
}

pub struct BuilderRow {
    pub name: String,
    pub cells: Vec<Cell>,
    pub last: Option<Last>,
}

pub struct RepoRow {
    pub name: String,
    pub broken: bool,
    pub error: String,
    /// The config's first errors, `file:line:col: path: message`.
    pub diagnostics: Vec<String>,
    pub builders: Vec<BuilderRow>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    q: String,
    repos: Vec<RepoRow>,
    queued: usize,
    running: usize,
    online: usize,
    workers: usize,
}

#[derive(Deserialize)]
pub struct Filter {
    q: Option<String>,
}

/// A cell's hover text: "#12 success · 3 min ago · forced by ana".
fn title(build: &BuildRecord, now: u64) -> String {
    let label = build_label(build);
    let when = build.finished.or(build.started).unwrap_or(build.created);
    format!(
        "#{} {} · {} · {}",
        build.number,
        label.word,
        ago(when, now),
        build.reason
    )
}

/// A builder's row: its last builds as cells, its last result.
fn builder_row(state: &State, builder: String, now: u64) -> BuilderRow {
    let builds = state
        .store
        .builder_builds(&builder, CELLS)
        .unwrap_or_default();
    let last = builds.iter().find(|b| b.result.is_some()).map(|b| {
        let label = build_label(b);
        let when = b.finished.unwrap_or(b.created);
        Last {
            word: label.word,
            class: label.class,
            ago: ago(when, now),
            iso: iso(when),
            absolute: absolute(when),
        }
    });
    BuilderRow {
        cells: builds
            .iter()
            .map(|b| Cell {
                number: b.number,
                class: build_label(b).class,
                title: title(b, now),
            })
            .collect(),
        last,
        name: builder,
    }
}

pub async fn index(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<Filter>,
) -> Response {
    let q = filter.q.unwrap_or_default();
    let needle = q.to_lowercase();
    // The repos and builder names to show, then their builds from the store.
    let mut shown: Vec<(RepoRow, Vec<String>)> = read(&state.repos)
        .values()
        .filter(|r| caller.may(Role::Viewer, &r.record.name))
        .map(|r| {
            let builders: Vec<String> = r
                .graph
                .as_ref()
                .map(|g| {
                    g.graph
                        .builders
                        .keys()
                        .filter(|b| needle.is_empty() || b.to_lowercase().contains(&needle))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let error = r.record.error.as_ref();
            let row = RepoRow {
                name: r.record.name.clone(),
                broken: error.is_some(),
                error: error.map(|e| e.message.clone()).unwrap_or_default(),
                diagnostics: error
                    .iter()
                    .flat_map(|e| e.errors.iter().take(5).map(ToString::to_string))
                    .collect(),
                builders: Vec::new(),
            };
            (row, builders)
        })
        .filter(|(_, builders)| needle.is_empty() || !builders.is_empty())
        .collect();
    shown.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let rows = state
        .blocking(move |s| {
            let now = now_ms();
            shown
                .into_iter()
                .map(|(mut row, builders)| {
                    row.builders = builders
                        .into_iter()
                        .map(|builder| builder_row(s, builder, now))
                        .collect();
                    row
                })
                .collect::<Vec<_>>()
        })
        .await;
    let workers = state.workers();
    let (queued, running) = {
        let dispatcher = lock(&state.dispatcher);
        (dispatcher.pending_count(), dispatcher.running_count())
    };
    render(
        StatusCode::OK,
        &HomePage {
            nav: Nav::of(Some(&caller)).live("page"),
            q,
            repos: rows,
            queued,
            running,
            online: workers.iter().filter(|w| w.online).count(),
            workers: workers.len(),
        },
    )
}
