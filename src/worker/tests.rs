//! The worker end to end against a fake megatron: a few dozen lines of
//! HTTP/1.1 over std's TcpListener that record every call and answer as
//! each test scripts. It checks what the real megatron relies on: the order
//! of the calls, their headers and bodies, cancel, lost leases, retries,
//! shutdown, deps, `get` and `upload`, without the megatron's own code.

use super::*;
use crate::config::spec::DepSpec;
use crate::config::Step;
use crate::protocol::GetJob;
use git2::{Repository, Signature};
use std::collections::BTreeMap;
use std::path::Path;

mod fake;
use fake::{FakeMegatron, Recorded};

/// A repository in `dir` with one committed file; returns the commit.
fn upstream(dir: &Path) -> String {
    let repo = Repository::init(dir).unwrap();
    std::fs::write(dir.join("a.txt"), "one\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("a.txt")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = Signature::now("test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
        .unwrap()
        .to_string()
}

fn step(name: &str, command: &str) -> Step {
    Step {
        name: name.into(),
        command: command.into(),
        timeout: 10,
        warnings: vec![".*warning[: ]".into()],
        suppress_warnings: vec![],
    }
}

fn job(build: u64, repo_dir: &Path, revision: &str, steps: Vec<Step>) -> Job {
    Job {
        build,
        lease: "lease/1 x".into(),
        builder: "hello-basic".into(),
        repo: "hello".into(),
        repo_url: repo_dir.to_str().unwrap().into(),
        revision: revision.into(),
        parameters: BTreeMap::from([("P".to_string(), "it's $(here)".to_string())]),
        steps,
        max_step_seconds: 60,
        heartbeat_ms: 200,
        deps: vec![],
        fetch_refs: vec![],
        revisions: BTreeMap::new(),
        get: vec![],
        upload: BTreeMap::new(),
        zip: vec![],
        max_upload_bytes: 0,
        secrets: vec![],
        withheld: vec![],
    }
}

/// A worker on its own thread; stops it and waits for it on drop.
struct RunningWorker {
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    _workdir: tempfile::TempDir,
}

impl RunningWorker {
    fn start(megatron: &FakeMegatron) -> RunningWorker {
        let workdir = tempfile::tempdir().unwrap();
        let mut config = WorkerConfig::new(&megatron.url, "w1", "secret", workdir.path().into());
        config.claim_wait = Duration::from_millis(100);
        config.kill_grace = Duration::from_millis(200);
        config.max_backoff = Duration::from_millis(50);
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || run(config, shutdown))
        };
        RunningWorker {
            shutdown,
            thread: Some(thread),
            _workdir: workdir,
        }
    }

    /// Sets the shutdown flag; returns how long `run` took to return.
    fn stop(&mut self) -> Duration {
        let begun = Instant::now();
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
        begun.elapsed()
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }
}

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
    megatron.wait_for("the build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/7/finish")
    });
    assert!(worker.stop() < Duration::from_millis(500));

    assert_eq!(
        megatron.reports(),
        [
            "builds/7/steps/0/start",
            "builds/7/revisions",
            "builds/7/steps/0/finish",
            "builds/7/steps/1/start",
            "builds/7/steps/1/finish",
            "builds/7/steps/2/start",
            "builds/7/steps/2/finish",
            "builds/7/finish",
        ]
    );
    let finish = megatron.find("builds/7/finish").unwrap();
    assert_eq!(
        finish.json(),
        serde_json::json!({"lease": "lease/1 x", "result": "warnings", "reason": null})
    );
    assert!(finish
        .headers
        .contains(&("authorization".into(), "Bearer secret".into())));
    assert!(finish
        .headers
        .contains(&("x-constructicon-worker".into(), "w1".into())));
    assert_eq!(
        megatron.find("builds/7/steps/1/finish").unwrap().json(),
        serde_json::json!({"lease": "lease/1 x", "result": "warnings", "exit_code": 0, "reason": null})
    );
    assert!(megatron
        .log(7, 0)
        .contains(&format!("checked out {commit}")));
    assert_eq!(
        megatron.log(7, 1),
        "env=it's $(here)\narg=it's $(here)\nwarning: w\n"
    );
    assert_eq!(megatron.log(7, 2), "one\n7 hello-basic\n");
    // Each step's output is posted between its start and its finish.
    let paths: Vec<String> = megatron
        .state()
        .requests
        .iter()
        .map(|r| r.path.clone())
        .collect();
    for n in 0..3 {
        let at = |p: &str| paths.iter().position(|q| q == p).unwrap();
        let start = at(&format!("builds/7/steps/{n}/start"));
        let finish = at(&format!("builds/7/steps/{n}/finish"));
        let prefix = format!("builds/7/steps/{n}/log?");
        for (i, path) in paths.iter().enumerate() {
            if path.starts_with(&prefix) {
                assert!(start < i && i < finish, "{paths:?}");
            }
        }
    }
    // Every log call carries the lease, encoded, where its bytes start in
    // the step's output, and raw bytes.
    let logs: Vec<Recorded> = megatron
        .state()
        .requests
        .iter()
        .filter(|r| r.path.contains("/log?"))
        .cloned()
        .collect();
    assert!(!logs.is_empty());
    let mut sent: std::collections::HashMap<String, usize> = Default::default();
    for log in logs {
        let (step, query) = log.path.split_once('?').unwrap();
        let offset = sent.entry(step.to_string()).or_default();
        assert_eq!(
            query,
            format!("lease=lease%2F1%20x&offset={offset}"),
            "{}",
            log.path
        );
        *offset += log.body.len();
        assert!(log
            .headers
            .contains(&("content-type".into(), "application/octet-stream".into())));
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
    // An unknown revision fails at the checkout.
    megatron.state().jobs.push_back(job(
        4,
        repo_dir.path(),
        "nope",
        vec![step("command 1", "true")],
    ));
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("both builds' ends", |s| {
        s.requests.iter().any(|r| r.path == "builds/4/finish")
    });
    let reports = megatron.reports();
    assert!(!reports.contains(&"builds/3/steps/2/start".to_string()));
    assert_eq!(
        megatron.find("builds/3/finish").unwrap().json(),
        serde_json::json!({"lease": "lease/1 x", "result": "failure", "reason": "command 1: exit code 2"})
    );
    assert_eq!(
        megatron.find("builds/4/finish").unwrap().json()["result"],
        "failure"
    );
    assert!(!reports.contains(&"builds/4/steps/1/start".to_string()));
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
    megatron.wait_for("the step's start", |s| {
        s.requests
            .iter()
            .any(|r| r.path == "builds/5/steps/1/start")
    });
    let cancelled = Instant::now();
    megatron.state().cancel = true;
    megatron.wait_for("the build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/5/finish")
    });
    assert!(
        cancelled.elapsed() < Duration::from_secs(1),
        "{:?}",
        cancelled.elapsed()
    );
    assert_eq!(
        megatron.find("builds/5/steps/1/finish").unwrap().json()["result"],
        "cancelled"
    );
    assert_eq!(
        megatron.find("builds/5/finish").unwrap().json()["result"],
        "cancelled"
    );
    // Neither the next step nor the upload runs after a cancel.
    let reports = megatron.reports();
    assert!(!reports.contains(&"builds/5/steps/2/start".to_string()));
    assert!(!reports.contains(&"builds/5/steps/3/start".to_string()));
}

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
    megatron.wait_for("the step's start", |s| {
        s.requests
            .iter()
            .any(|r| r.path == "builds/6/steps/1/start")
    });
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
    megatron.wait_for("the build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/8/finish")
    });
    assert_eq!(
        megatron.log(8, 1),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    assert_eq!(
        megatron.find("builds/8/finish").unwrap().json()["result"],
        "success"
    );
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

#[test]
fn deps_get_and_upload_run_in_the_layouts_steps() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let libs = tempfile::tempdir().unwrap();
    let lib_dir = libs.path().join("lib");
    std::fs::create_dir_all(&lib_dir).unwrap();
    let lib_commit = upstream(&lib_dir);
    let lib_url = lib_dir.to_str().unwrap().to_string();
    let megatron = FakeMegatron::start();
    let mut job = job(
        7,
        repo_dir.path(),
        &commit,
        vec![
            step(
                "command 1",
                "cat ../lib/a.txt ../hello-lib/one.txt '../hello-lib/dir/t wo.txt'; \
                 mkdir -p out/sub zipme; echo A > out/a.txt; echo B > out/sub/b.txt; \
                 echo Z > zipme/z.txt; ln -s /etc out/etc; echo R > report.txt",
            ),
            step("command 2", "exit 3"),
            step("command 3", "echo never"),
        ],
    );
    job.deps = vec![DepSpec {
        url: lib_url.clone(),
        name: "lib".into(),
        revision: None,
        builder: None,
    }];
    job.get = vec![GetJob {
        builder: "hello-lib".into(),
        folder: "hello-lib".into(),
        build: Some(41),
        reason: None,
    }];
    job.upload = BTreeMap::from([
        ("out".to_string(), "results".to_string()),
        ("zipme".to_string(), "zipped".to_string()),
        ("report.txt".to_string(), "report.txt".to_string()),
    ]);
    job.zip = vec!["zipme".into()];
    job.max_upload_bytes = 1 << 20;
    {
        let mut state = megatron.state();
        state.artifacts.insert(
            41,
            vec![
                ("one.txt".into(), "first\n".into()),
                ("dir/t wo.txt".into(), "second\n".into()),
            ],
        );
        state.jobs.push_back(job);
    }
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("the build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/7/finish")
    });

    // Layout: 0 checkout, 1 get, 2..=4 the commands, 5 upload; command 3
    // is skipped after command 2 failed, the upload is not.
    let reports: Vec<String> = megatron
        .reports()
        .into_iter()
        .filter(|p| !p.starts_with("/api/v1/builds/"))
        .map(|p| p.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(
        reports,
        [
            "builds/7/steps/0/start",
            "builds/7/revisions",
            "builds/7/steps/0/finish",
            "builds/7/steps/1/start",
            "builds/7/steps/1/finish",
            "builds/7/steps/2/start",
            "builds/7/steps/2/finish",
            "builds/7/steps/3/start",
            "builds/7/steps/3/finish",
            "builds/7/steps/5/start",
            "builds/7/artifacts/results/a.txt",
            "builds/7/artifacts/results/sub/b.txt",
            "builds/7/artifacts/report.txt",
            "builds/7/artifacts/zipped",
            "builds/7/steps/5/finish",
            "builds/7/finish",
        ]
    );
    assert_eq!(
        megatron.find("builds/7/revisions").unwrap().json(),
        serde_json::json!({"lease": "lease/1 x", "revisions": {
            repo_dir.path().to_str().unwrap(): commit,
            lib_url: lib_commit,
        }})
    );
    assert!(
        megatron.log(7, 1).contains("got 2 files"),
        "{}",
        megatron.log(7, 1)
    );
    assert_eq!(megatron.log(7, 2), "one\nfirst\nsecond\n");
    let finish = megatron.find("builds/7/finish").unwrap().json();
    assert_eq!(finish["result"], "failure");
    assert_eq!(finish["reason"], "command 2: exit code 3");
    assert_eq!(
        megatron.find("builds/7/steps/5/finish").unwrap().json()["result"],
        "success"
    );
    let upload_log = megatron.log(7, 5);
    assert!(
        upload_log.contains("skipping etc: a symlink"),
        "{upload_log}"
    );

    // The downloads went out encoded, the uploads with kind and lease.
    let paths: Vec<String> = megatron
        .state()
        .requests
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(paths.contains(&"/api/v1/builds/41/artifacts/dir/t%20wo.txt".to_string()));
    let puts: Vec<Recorded> = megatron
        .state()
        .requests
        .iter()
        .filter(|r| r.method == "PUT")
        .cloned()
        .collect();
    assert_eq!(
        puts[2].path,
        "builds/7/artifacts/report.txt?lease=lease%2F1%20x&kind=file"
    );
    assert_eq!(puts[2].body, b"R\n");
    assert!(puts[2]
        .headers
        .contains(&("x-constructicon-worker".into(), "w1".into())));
    assert_eq!(puts[1].body, b"B\n");
    assert_eq!(
        puts[3].path,
        "builds/7/artifacts/zipped?lease=lease%2F1%20x&kind=zip"
    );
    let archive = zip::ZipArchive::new(std::io::Cursor::new(puts[3].body.clone())).unwrap();
    assert_eq!(archive.file_names().collect::<Vec<_>>(), ["z.txt"]);
}

#[test]
fn heartbeats_go_on_while_an_upload_is_under_way() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    let mut job = job(
        8,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "echo R > report.txt")],
    );
    job.upload = BTreeMap::from([("report.txt".to_string(), "report.txt".to_string())]);
    {
        let mut state = megatron.state();
        state.hold_uploads = true;
        state.jobs.push_back(job);
    }
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("the upload", |s| {
        s.requests.iter().any(|r| r.method == "PUT")
    });
    let beats = |s: &fake::State| {
        s.requests
            .iter()
            .filter(|r| r.path == "builds/8/heartbeat")
            .count()
    };
    let before = beats(&megatron.state());
    // The upload's answer is held: only a heartbeat thread of its own can
    // keep the lease meanwhile.
    megatron.wait_for("heartbeats while the upload is held", |s| {
        beats(s) >= before + 3
    });
    megatron.state().hold_uploads = false;
    megatron.wait_for("the build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/8/finish")
    });
    let finish = megatron.find("builds/8/finish").unwrap().json();
    assert_eq!(finish["result"], "success", "{finish}");
}

#[test]
fn get_and_upload_failures_are_step_failures() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    // No build to get from: the get step fails, the commands do not run.
    let mut nothing = job(
        10,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "true")],
    );
    nothing.get = vec![GetJob {
        builder: "hello-lib".into(),
        folder: "hello-lib".into(),
        build: None,
        reason: Some("no successful build of hello-lib".into()),
    }];
    // Over the cap: refused before sending.
    let mut big = job(
        11,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "head -c 1100000 /dev/zero > big")],
    );
    big.upload = BTreeMap::from([("big".to_string(), "big".to_string())]);
    big.max_upload_bytes = 1 << 20;
    megatron.state().jobs.extend([nothing, big]);
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("both ends", |s| {
        s.requests.iter().any(|r| r.path == "builds/11/finish")
    });
    assert_eq!(
        megatron.find("builds/10/finish").unwrap().json()["reason"],
        "get: no successful build of hello-lib"
    );
    assert!(!megatron
        .reports()
        .contains(&"builds/10/steps/2/start".to_string()));
    assert_eq!(
        megatron.find("builds/11/finish").unwrap().json()["reason"],
        "upload: uploads exceed the megatron's cap of 1 MiB"
    );

    // The megatron refuses: its message is the step's.
    let mut refused = job(12, repo_dir.path(), &commit, vec![]);
    refused.upload = BTreeMap::from([("a.txt".to_string(), "a.txt".to_string())]);
    {
        let mut state = megatron.state();
        state.refuse_uploads = Some("the build's uploads exceed 0 MiB".into());
        state.jobs.push_back(refused);
    }
    megatron.wait_for("the refused build's end", |s| {
        s.requests.iter().any(|r| r.path == "builds/12/finish")
    });
    assert_eq!(
        megatron.find("builds/12/finish").unwrap().json()["reason"],
        "upload: uploading a.txt: the build's uploads exceed 0 MiB"
    );
}

/// A log as the megatron stores it: every call's bytes at its offset, so a
/// chunk sent again (after a failed call) counts once.
fn log_by_offsets(megatron: &FakeMegatron, prefix: &str) -> Vec<u8> {
    let mut log = Vec::new();
    for request in megatron.state().requests.iter() {
        let Some(query) = request.path.strip_prefix(prefix) else {
            continue;
        };
        let offset: usize = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("offset="))
            .expect("every log call has its offset")
            .parse()
            .unwrap();
        let end = offset + request.body.len();
        assert!(offset <= log.len(), "a gap before offset {offset}");
        if log.len() < end {
            log.resize(end, 0);
        }
        log[offset..end].copy_from_slice(&request.body);
    }
    log
}

#[test]
fn a_full_spool_makes_the_step_wait_and_loses_nothing() {
    let megatron = FakeMegatron::start();
    // Away: every log call fails until the test says otherwise.
    megatron.state().failing_logs = usize::MAX;
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool").join("5-1");
    let (queue_limit, spool_limit) = (4096, 16 * 1024);
    let client = Client::new(&megatron.url, "w1", "secret", Duration::from_millis(20));
    let stream = log_stream::LogStream::start(
        client,
        "/api/v1/worker/builds/5/steps/1/log?lease=l".into(),
        queue_limit,
        spool::Spool::new(spool_path.clone(), spool_limit),
        Arc::new(|| false),
    )
    .unwrap();
    let lines: Vec<String> = (1..=10_000).map(|i| format!("line {i}\n")).collect();
    let expected: String = lines.concat();
    let pushed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pusher = {
        let pushed = pushed.clone();
        std::thread::spawn(move || {
            for line in &lines {
                stream.push(line.as_bytes());
                pushed.fetch_add(1, Ordering::SeqCst);
            }
            stream
        })
    };

    // The spool fills up to its bound, and no further.
    let full = |len: u64| len + "line 10000\n".len() as u64 > spool_limit;
    let deadline = Instant::now() + Duration::from_secs(10);
    let spooled = loop {
        let len = std::fs::metadata(&spool_path).map_or(0, |m| m.len());
        if full(len) {
            break len;
        }
        assert!(Instant::now() < deadline, "the spool never filled: {len}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(spooled <= spool_limit, "{spooled} bytes spooled");
    // Then the step waits: far more than memory, spool and the batch in
    // flight hold is still to come, and only waiting keeps it.
    assert!(!pusher.is_finished(), "the step ran on past a full spool");
    let waiting_at = pushed.load(Ordering::SeqCst);
    assert!(waiting_at < 5_000, "{waiting_at} lines pushed");

    // Back: everything arrives, in order, once, and the spool is gone.
    megatron.state().failing_logs = 0;
    let stream = pusher.join().unwrap();
    stream.close().unwrap();
    let log = log_by_offsets(&megatron, "builds/5/steps/1/log?");
    assert_eq!(log.len(), expected.len());
    assert!(log == expected.as_bytes(), "every line once, in order");
    assert!(!spool_path.exists(), "the spool is removed once delivered");
}
