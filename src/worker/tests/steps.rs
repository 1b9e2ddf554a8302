//! A build's steps end to end: checked out, run and reported in order, each
//! step's log between its start and its finish; a failing step halts the
//! build; a cancel kills the running step.

use super::*;

#[test]
fn a_build_is_checked_out_run_and_reported_in_order() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    megatron.state().jobs.push_back(job(
        7,
        repo_dir.path(),
        &commit,
        vec![
            step(
                "command 1",
                r#"echo "env=$P"; echo arg={P}; echo 'warning: w'"#,
            ),
            step(
                "command 2",
                "cat a.txt; echo $CONSTRUCTICON_BUILD $CONSTRUCTICON_BUILDER",
            ),
        ],
    ));
    let mut worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(7);
    assert!(worker.stop() < Duration::from_millis(500));

    // The claim started the checkout; each step's end carries what would
    // be calls of their own: the revisions, the next step's start, and
    // after the last step the build's end.
    assert_eq!(
        megatron.reports(),
        [
            "builds/7/steps/0/finish",
            "builds/7/steps/1/finish",
            "builds/7/steps/2/finish",
        ]
    );
    let checkout = megatron.find("builds/7/steps/0/finish").unwrap().json();
    assert_eq!(checkout["next"], 1);
    assert_eq!(
        checkout["revisions"],
        serde_json::json!({ repo_dir.path().to_str().unwrap(): commit })
    );
    let without_log = |mut finish: serde_json::Value| {
        finish.as_object_mut().unwrap().remove("log");
        finish
    };
    assert_eq!(
        without_log(megatron.find("builds/7/steps/1/finish").unwrap().json()),
        serde_json::json!({"lease": "lease/1 x", "result": "warnings", "exit_code": 0, "reason": null, "next": 2})
    );
    let last = megatron.find("builds/7/steps/2/finish").unwrap();
    assert_eq!(
        without_log(last.json()),
        serde_json::json!({"lease": "lease/1 x", "result": "success", "exit_code": 0, "reason": null,
            "build": {"result": "warnings", "reason": null}})
    );
    assert!(last
        .headers
        .contains(&("authorization".into(), "Bearer secret".into())));
    assert!(last
        .headers
        .contains(&("x-constructicon-worker".into(), "w1".into())));
    assert!(megatron
        .log(7, 0)
        .contains(&format!("checked out {commit}")));
    assert_eq!(
        megatron.log(7, 1),
        "env=it's $(here)\narg=it's $(here)\nwarning: w\n"
    );
    assert_eq!(megatron.log(7, 2), "one\n7 hello-basic\n");
    // Each step's output is posted between its start and its finish, and
    // what is left at its end goes with the finish: these steps print
    // little, so all of it.
    let requests = megatron.state().requests.clone();
    let paths: Vec<String> = requests.iter().map(|r| r.path.clone()).collect();
    for n in 0..3 {
        let at = |p: &str| paths.iter().position(|q| q == p).unwrap();
        let start = match n {
            0 => at("claim"),
            _ => at(&format!("builds/7/steps/{}/finish", n - 1)),
        };
        let finish = at(&format!("builds/7/steps/{n}/finish"));
        let prefix = format!("builds/7/steps/{n}/log?");
        let mut sent = 0;
        for (i, request) in requests.iter().enumerate() {
            if request.path.starts_with(&prefix) {
                assert!(start < i && i < finish, "{paths:?}");
                // Every log call carries the lease, encoded, where its
                // bytes start in the step's output, and raw bytes.
                assert_eq!(
                    request.path,
                    format!("{prefix}lease=lease%2F1%20x&offset={sent}")
                );
                assert!(request
                    .headers
                    .contains(&("content-type".into(), "application/octet-stream".into())));
                sent += request.body.len() as u64;
            }
        }
        let (offset, tail) = fake::tail_of(&requests[finish].json()).expect("the output's end");
        assert_eq!(offset, sent, "step {n}");
        assert!(!tail.is_empty());
    }
}

#[test]
fn a_failing_step_halts_the_build() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    megatron.state().jobs.push_back(job(
        3,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "exit 2"), step("command 2", "true")],
    ));
    // An unknown revision fails at the checkout. This claim did not start
    // the first step (as a megatron before that did not): the worker says
    // it started.
    let mut unknown = job(4, repo_dir.path(), "nope", vec![step("command 1", "true")]);
    unknown.first_step_started = false;
    unknown.folded_reports = false;
    megatron.state().jobs.push_back(unknown);
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(4);
    let reports = megatron.reports();
    assert!(!megatron.started(3, 2));
    assert_eq!(
        megatron.build_end(3).unwrap(),
        serde_json::json!({"lease": "lease/1 x", "result": "failure", "reason": "command 1: exit code 2"})
    );
    assert_eq!(megatron.build_end(4).unwrap()["result"], "failure");
    assert!(!megatron.started(4, 1));
    assert!(reports.contains(&"builds/4/steps/0/start".to_string()));
    assert!(!reports.contains(&"builds/3/steps/0/start".to_string()));
    assert!(megatron.log(4, 0).contains("unknown revision \"nope\""));
}

#[test]
fn a_cancel_kills_the_running_step_and_reports_cancelled() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    let mut cancelled_job = job(
        5,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "sleep 30"), step("command 2", "true")],
    );
    cancelled_job.upload = BTreeMap::from([("a.txt".to_string(), "a.txt".to_string())]);
    megatron.state().jobs.push_back(cancelled_job);
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("the step\'s start", |s| s.started(5, 1));
    let cancelled = Instant::now();
    megatron.state().cancel = true;
    megatron.wait_for_end(5);
    assert!(
        cancelled.elapsed() < Duration::from_secs(1),
        "{:?}",
        cancelled.elapsed()
    );
    assert_eq!(
        megatron.find("builds/5/steps/1/finish").unwrap().json()["result"],
        "cancelled"
    );
    assert_eq!(megatron.build_end(5).unwrap()["result"], "cancelled");
    // Neither the next step nor the upload runs after a cancel.
    assert!(!megatron.started(5, 2));
    assert!(!megatron.started(5, 3));
}

#[test]
fn a_megatron_from_before_the_folds_gets_every_report_as_a_call_of_its_own() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    let mut old = job(
        21,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "echo one")],
    );
    old.first_step_started = false;
    old.folded_reports = false;
    megatron.state().jobs.push_back(old);
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(21);
    assert_eq!(
        megatron.reports(),
        [
            "builds/21/steps/0/start",
            "builds/21/revisions",
            "builds/21/steps/0/finish",
            "builds/21/steps/1/start",
            "builds/21/steps/1/finish",
            "builds/21/finish",
        ]
    );
    for n in 0..2 {
        let finish = megatron
            .find(&format!("builds/21/steps/{n}/finish"))
            .unwrap()
            .json();
        for folded in ["next", "build", "log", "revisions"] {
            assert!(finish.get(folded).is_none(), "{finish}");
        }
    }
    // The output went in log calls.
    assert_eq!(megatron.log(21, 1), "one\n");
    assert!(megatron
        .state()
        .requests
        .iter()
        .any(|r| r.path.starts_with("builds/21/steps/1/log?")));
    assert_eq!(
        megatron.build_end(21).unwrap(),
        serde_json::json!({"lease": "lease/1 x", "result": "success", "reason": null})
    );
}
