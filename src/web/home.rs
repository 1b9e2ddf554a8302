//! The home page at `/`: repos (with their config errors), builders and
//! their latest builds. Everything on it comes from the JSON API too.

use crate::access::caller::Caller;
use crate::config::access::{redact_url, Role};
use crate::megatron::state::State;
use crate::sync::read;
use axum::extract::{Extension, State as Extract};
use axum::response::Html;
use std::fmt::Write as _;
use std::sync::Arc;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub async fn index(
    state: Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
) -> Html<String> {
    let repos: Vec<_> = {
        let repos = read(&state.repos);
        let mut list: Vec<_> = repos
            .values()
            .filter(|r| caller.may(Role::Viewer, &r.record.name))
            .cloned()
            .collect();
        list.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        list
    };
    let builders: Vec<String> = repos
        .iter()
        .filter_map(|r| r.graph.as_ref())
        .flat_map(|g| g.graph.builders.keys().cloned())
        .collect();
    let latest = state
        .blocking(move |s| {
            builders
                .into_iter()
                .map(|b| {
                    let last = s.store.builder_builds(&b, 1).ok().and_then(|mut v| v.pop());
                    (b, last)
                })
                .collect::<Vec<_>>()
        })
        .await;

    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>constructicon</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}\
         .success{color:#080}.warnings{color:#a60}.failure,.exception{color:#c00}.cancelled{color:#666}\
         pre{background:#fee;padding:.5em}</style></head><body><h1>constructicon</h1>",
    );
    let _ = write!(
        page,
        "<h2>Repos</h2><table><tr><th>repo</th><th>url</th><th>commit</th><th>status</th></tr>"
    );
    for repo in &repos {
        let record = &repo.record;
        let status = match &record.error {
            Some(error) => {
                let mut text = format!("<pre>{}", escape(&error.message));
                for diagnostic in &error.errors {
                    let _ = write!(text, "\n{}", escape(&diagnostic.to_string()));
                }
                text + "</pre>"
            }
            None => "ok".to_string(),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
            escape(&record.name),
            escape(&redact_url(&record.url)),
            escape(record.commit.as_deref().unwrap_or("-")),
        );
    }
    let _ = write!(
        page,
        "</table><h2>Builders</h2><table><tr><th>builder</th><th>last build</th></tr>"
    );
    for (builder, last) in &latest {
        let last = match last {
            Some(build) => {
                let result = build.result.map_or("running", |r| r.as_str());
                format!(
                    "<a href=\"/api/v1/builds/{}\">#{}</a> <span class=\"{result}\">{result}</span>",
                    build.id, build.number
                )
            }
            None => "-".to_string(),
        };
        let _ = write!(
            page,
            "<tr><td><a href=\"/api/v1/builders/{0}\">{0}</a></td><td>{last}</td></tr>",
            escape(builder)
        );
    }
    page.push_str("</table></body></html>");
    Html(page)
}
