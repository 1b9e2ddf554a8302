//! `GET /metrics` and `GET /badge/{builder}.svg` on a real megatron with a
//! real worker: the metrics' names, values that move with a build, route
//! labels that are templates; the badge's text, colour and headers as
//! results come, and names that try to break out of the SVG.

use crate::common::system::{wait_for, GitRepo, Megatron, Worker};
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

const CYBERTRON: &str = "cybertron = #{ workers: #{ w1: #{} } };";

const CONFIG: &str = r#"constructicon = #{
    builders: #{
        good: #{ commands: ["true"], schedulers: ["force"] },
        bad: #{ commands: ["false"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Status, headers and body of a GET with the admin token and `headers`.
fn get(
    megatron: &Megatron,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, ureq::http::HeaderMap, String) {
    let mut request = agent().get(&format!("{}{path}", megatron.url)).header(
        "authorization",
        &format!("Bearer {}", megatron.admin_token()),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("the megatron answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, headers, body)
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn metrics(megatron: &Megatron) -> String {
    let (status, headers, body) = get(megatron, "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    let kind = headers["content-type"].to_str().unwrap();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    body
}

#[test]
fn metrics_name_everything_and_count_a_build() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new("meter", CONFIG);
    megatron.add_repo(&repo.url());

    let before = metrics(&megatron);
    for name in [
        "# TYPE constructicon_builds counter",
        "# TYPE constructicon_queue_depth gauge",
        "# TYPE constructicon_queue_wait_seconds histogram",
        "# TYPE constructicon_build_duration_seconds histogram",
        "# TYPE constructicon_step_duration_seconds histogram",
        "# TYPE constructicon_workers_online gauge",
        "# TYPE constructicon_workers_busy gauge",
        "# TYPE constructicon_long_polls gauge",
        "# TYPE constructicon_http_requests counter",
        "# TYPE constructicon_http_request_duration_seconds histogram",
        "# TYPE constructicon_store_size_bytes gauge",
        "# TYPE constructicon_status_posts counter",
    ] {
        assert!(before.contains(name), "{name} missing from\n{before}");
    }
    assert_eq!(
        sample(&before, "constructicon_builds_total{result=\"success\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &before,
            "constructicon_status_posts_total{outcome=\"posted\"}"
        ),
        Some(0.0)
    );
    assert!(sample(&before, "constructicon_store_size_bytes{part=\"tree\"}").unwrap() > 0.0);

    // Queued with no worker: the queue holds it.
    let id = megatron.force("meter-good", json!({}));
    let queued = metrics(&megatron);
    assert_eq!(sample(&queued, "constructicon_queue_depth"), Some(1.0));
    assert_eq!(sample(&queued, "constructicon_workers_online"), Some(0.0));

    let _worker = Worker::start(&megatron, "w1");
    let build = megatron.wait_finished(id, LONG);
    assert_eq!(build["result"], "success", "{build}");
    // The record is written a moment before the build is counted.
    let after = wait_for("the build to be counted", LONG, || {
        let text = metrics(&megatron);
        let success = sample(&text, "constructicon_builds_total{result=\"success\"}");
        (success == Some(1.0)).then_some(text)
    });
    assert_eq!(sample(&after, "constructicon_queue_depth"), Some(0.0));
    assert_eq!(
        sample(&after, "constructicon_queue_wait_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "constructicon_build_duration_seconds_count"),
        Some(1.0)
    );
    // The checkout and the command.
    assert_eq!(
        sample(&after, "constructicon_step_duration_seconds_count"),
        Some(2.0)
    );
    assert_eq!(sample(&after, "constructicon_workers_online"), Some(1.0));
    // The worker is back to its claim long-poll.
    wait_for("the worker's claim long-poll", LONG, || {
        let text = metrics(&megatron);
        (sample(&text, "constructicon_long_polls{kind=\"claim\"}") == Some(1.0)).then_some(())
    });

    // Requests are counted by their route's template, never the raw path.
    megatron.build(id);
    let text = metrics(&megatron);
    let series =
        "constructicon_http_requests_total{method=\"GET\",route=\"/api/v1/builds/{id}\",status=\"200\"}";
    assert!(sample(&text, series).unwrap() >= 1.0, "{text}");
    assert!(
        !text.contains(&format!("route=\"/api/v1/builds/{id}\"")),
        "{text}"
    );
    assert!(text.contains(
        "constructicon_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/builds/{id}\",status=\"200\"}"
    ));
    // A path no route matches is one series, whatever the path.
    get(&megatron, "/no/such/thing/1", &[]);
    get(&megatron, "/no/such/thing/2", &[]);
    let text = metrics(&megatron);
    assert!(
        text.contains("route=\"unmatched\",status=\"404\"} 2"),
        "{text}"
    );
    assert!(!text.contains("/no/such/thing"), "{text}");
}

fn badge(megatron: &Megatron, builder: &str) -> (u16, ureq::http::HeaderMap, String) {
    get(megatron, &format!("/badge/{builder}.svg"), &[])
}

#[test]
fn the_badge_follows_the_last_result() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new("shield", CONFIG);
    megatron.add_repo(&repo.url());

    let (status, headers, body) = badge(&megatron, "shield-good");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache, max-age=0");
    assert_eq!(headers["etag"], "\"no-builds\"");
    assert!(body.starts_with("<svg "), "{body}");
    assert!(body.contains(">shield-good</text>"), "{body}");
    assert!(body.contains(">no builds</text>"), "{body}");
    assert!(body.contains("#8c959f"), "grey: {body}");

    let _worker = Worker::start(&megatron, "w1");
    let good = megatron.force("shield-good", json!({}));
    megatron.wait_finished(good, LONG);
    let bad = megatron.force("shield-bad", json!({}));
    megatron.wait_finished(bad, LONG);

    let (_, headers, body) = badge(&megatron, "shield-good");
    assert!(body.contains(">success</text>"), "{body}");
    assert!(body.contains("#2da44e"), "green: {body}");
    assert_eq!(headers["etag"], "\"success\"");
    let (_, headers, body) = badge(&megatron, "shield-bad");
    assert!(body.contains(">failure</text>"), "{body}");
    assert!(body.contains("#cf222e"), "red: {body}");
    assert_eq!(headers["etag"], "\"failure\"");

    // The same result again: a 304 with no body.
    let (status, _, body) = get(
        &megatron,
        "/badge/shield-good.svg",
        &[("if-none-match", "\"success\"")],
    );
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, _, _) = get(
        &megatron,
        "/badge/shield-good.svg",
        &[("if-none-match", "\"failure\"")],
    );
    assert_eq!(status, 200);
}

#[test]
fn badges_of_unknown_or_hostile_names_are_refused_and_escaped() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new("shield", CONFIG);
    megatron.add_repo(&repo.url());

    // As JSON for an API client.
    let (status, headers, body) = badge(&megatron, "nobody");
    assert_eq!(status, 404, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "builder nobody not found");

    // As a picture for an <img>, the name escaped.
    let hostile = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%26";
    let (status, headers, body) = get(
        &megatron,
        &format!("/badge/{hostile}.svg"),
        &[("accept", "image/avif,image/webp,*/*")],
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert!(!body.contains("<script"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;"),
        "{body}"
    );
    assert!(body.contains(">not found</text>"), "{body}");

    // No `.svg`: refused too.
    let (status, _, _) = get(&megatron, "/badge/shield-good", &[]);
    assert_eq!(status, 404);
}
