//! The worker when things around the build go wrong: a lost lease, a
//! megatron that fails calls, a shutdown while a claim is pending.

use super::*;

#[test]
fn a_lost_lease_stops_the_build_and_reports_nothing_more() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    megatron.state().jobs.push_back(job(
        6,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "sleep 30")],
    ));
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("the step\'s start", |s| s.started(6, 1));
    let claims_before = megatron
        .state()
        .requests
        .iter()
        .filter(|r| r.path == "claim")
        .count();
    megatron.state().lease_lost = true;
    // The worker is free again: it claims the next job.
    megatron.wait_for("a new claim", |s| {
        s.requests.iter().filter(|r| r.path == "claim").count() > claims_before
    });
    let reports = megatron.reports();
    assert!(!reports.contains(&"builds/6/steps/1/finish".to_string()));
    assert!(!reports.contains(&"builds/6/finish".to_string()));
    assert!(megatron.build_end(6).is_none());
}

#[test]
fn calls_are_retried_while_the_megatron_fails() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    {
        let mut state = megatron.state();
        state.failing_claims = 3;
        state.failing_logs = 2;
        state.jobs.push_back(job(
            8,
            repo_dir.path(),
            &commit,
            vec![step(
                "command 1",
                "for i in 1 2 3 4 5; do echo line $i; sleep 0.05; done",
            )],
        ));
    }
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(8);
    assert_eq!(
        megatron.log(8, 1),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    assert_eq!(megatron.build_end(8).unwrap()["result"], "success");
}

#[test]
fn shutdown_ends_a_pending_claim_and_gives_back_a_late_job() {
    let repo_dir = tempfile::tempdir().unwrap();
    let megatron = FakeMegatron::start();
    megatron.state().claim_hold = Duration::from_millis(400);
    let mut worker = RunningWorker::start(&megatron);
    megatron.wait_for("a claim", |s| s.requests.iter().any(|r| r.path == "claim"));
    // The job reaches the worker only after it was told to stop.
    megatron
        .state()
        .jobs
        .push_back(job(9, repo_dir.path(), "main", vec![]));
    let took = worker.stop();
    assert!(took < Duration::from_millis(200), "{took:?}");
    megatron.wait_for("the release", |s| {
        s.requests.iter().any(|r| r.path == "builds/9/release")
    });
    assert_eq!(
        megatron.find("builds/9/release").unwrap().json(),
        serde_json::json!({"lease": "lease/1 x"})
    );
    assert!(megatron.reports().iter().all(|p| !p.contains("steps")));
}
