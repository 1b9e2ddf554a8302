//! Time schedulers under a controllable clock: the megatron's time pass is
//! called with chosen times, in process, on a real store and a real repo.

use crate::common::system::GitRepo;
use chrono::{DateTime, Utc};
use constructicon::config::{evaluate_cybertron, Limits};
use constructicon::megatron::{Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
use std::path::Path;
use std::sync::Arc;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn open(dir: &Path, cybertron: &str) -> Arc<State> {
    let evaluation = evaluate_cybertron(
        "cybertron.rhai",
        cybertron.as_bytes().to_vec(),
        &Limits::default(),
    );
    let cybertron = evaluation.value.expect("cybertron");
    State::open(Options {
        data_dir: dir.to_path_buf(),
        cybertron,
        timing: Timing::default(),
        max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
        cybertron_path: None,
    })
    .expect("open")
}

const CYBERTRON: &str = r#"cybertron = #{
    repos: #{ allow: ["/*"] },
    workers: #{ w1: #{} },
    schedulers: #{ nightly: #{ type: "time", hour: 3, parameters: #{ depth: "full" } } },
    time_zone: "+01:00",
};"#;

fn reasons(state: &State) -> Vec<(String, String)> {
    state
        .store
        .queued_builds()
        .expect("queue")
        .into_iter()
        .map(|b| (b.builder, b.reason))
        .collect()
}

#[test]
fn time_schedulers_fire_once_per_due_time_and_once_after_downtime() {
    let repo = GitRepo::new(
        "clock",
        r#"constructicon = #{
    builders: #{
        nightly: #{ commands: ["true"], schedulers: ["nightly"] },
        hourly: #{ commands: ["true"], schedulers: ["quarter"] },
    },
    schedulers: #{ quarter: #{ type: "time", hour: "*", minute: "15,45" } },
};"#,
    );
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path(), CYBERTRON);
    state.add_repo(&repo.url(), None).expect("repo");

    // The first look only records the time.
    assert_eq!(
        state.time_pass(at("2026-11-25T01:00:00Z")).expect("pass"),
        0
    );
    assert_eq!(
        state.time_pass(at("2026-11-25T01:14:59Z")).expect("pass"),
        0
    );
    assert_eq!(
        state.time_pass(at("2026-11-25T01:15:00Z")).expect("pass"),
        1
    );
    // 03:00 at +01:00 is 02:00 UTC.
    // 01:45 UTC is the next quarter's due time.
    assert_eq!(
        state.time_pass(at("2026-11-25T01:59:00Z")).expect("pass"),
        1
    );
    assert_eq!(
        state.time_pass(at("2026-11-25T02:00:30Z")).expect("pass"),
        1
    );
    assert_eq!(
        state.time_pass(at("2026-11-25T02:10:00Z")).expect("pass"),
        0
    );
    let queued = state.store.queued_builds().expect("queue");
    assert_eq!(queued.len(), 3);
    assert_eq!(queued[0].builder, "clock-hourly");
    assert!(
        queued[0].reason.starts_with(
            "time scheduler clock-quarter (15,45 * * * *) due at 2026-11-25 02:15 +01:00"
        ),
        "{}",
        queued[0].reason
    );
    assert!(
        queued[1].reason.contains("due at 2026-11-25 02:45 +01:00"),
        "{}",
        queued[1].reason
    );
    assert_eq!(queued[2].builder, "clock-nightly");
    assert_eq!(
        queued[2].parameters.get("depth").map(String::as_str),
        Some("full")
    );
    assert!(
        queued[2]
            .reason
            .starts_with("time scheduler nightly (0 3 * * *) due at 2026-11-25 03:00 +01:00"),
        "{}",
        queued[2].reason
    );

    // Down for three days: one build each on restart, which says so.
    drop(state);
    let state = open(data.path(), CYBERTRON);
    assert_eq!(
        state.time_pass(at("2026-11-28T02:05:00Z")).expect("pass"),
        2
    );
    let latest: Vec<(String, String)> = reasons(&state).into_iter().skip(3).collect();
    assert_eq!(latest.len(), 2);
    assert!(
        latest
            .iter()
            .any(|(b, r)| b == "clock-nightly" && r.contains("2 earlier due times missed")),
        "{latest:?}"
    );
    assert!(
        latest
            .iter()
            .any(|(b, r)| b == "clock-hourly" && r.contains("missed while the megatron was down")),
        "{latest:?}"
    );
}

#[test]
fn collapse_keeps_only_the_newest_pending_build_per_branch() {
    let repo = GitRepo::new(
        "squash",
        r#"constructicon = #{
    builders: #{
        merged: #{ commands: ["true"], schedulers: ["force"], collapse: true },
        every: #{ commands: ["true"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path(), CYBERTRON);
    state.add_repo(&repo.url(), None).expect("repo");
    let force = |builder: &str| {
        state
            .force(
                builder,
                constructicon::megatron::queue::ForceRequest::default(),
                None,
            )
            .expect("force")
            .id
    };
    let merged: Vec<u64> = (0..3).map(|_| force("squash-merged")).collect();
    let every: Vec<u64> = (0..3).map(|_| force("squash-every")).collect();
    let queued: Vec<u64> = state
        .store
        .queued_builds()
        .expect("queue")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        queued,
        [merged[2], every[0], every[1], every[2]],
        "requests are never merged silently, unless collapse says so"
    );
    let older = state.store.build(merged[0]).expect("build");
    assert_eq!(
        older.result,
        Some(constructicon::protocol::BuildResult::Cancelled)
    );
    assert_eq!(
        older.result_reason.as_deref(),
        Some(format!("collapsed into the newer build {}", merged[1]).as_str())
    );
}
