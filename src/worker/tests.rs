//! The worker end to end against a fake megatron: a few dozen lines of
//! HTTP/1.1 over std's TcpListener that record every call and answer as
//! each test scripts. It checks what the real megatron relies on: the order
//! of the calls, their headers and bodies, cancel, lost leases, retries and
//! shutdown, without the megatron's own code.

use super::*;
use crate::config::Step;
use git2::{Repository, Signature};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

#[derive(Debug, Clone)]
struct Recorded {
    /// Path below `/api/v1/worker/`, query included.
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    jobs: VecDeque<Job>,
    /// How long a claim waits before its answer (job or 204).
    claim_hold: Duration,
    cancel: bool,
    lease_lost: bool,
    /// Answer the next this many claims with 503.
    failing_claims: usize,
    /// Answer the next this many log posts with 500.
    failing_logs: usize,
}

struct FakeMegatron {
    url: String,
    state: Arc<Mutex<State>>,
}

impl FakeMegatron {
    fn start() -> FakeMegatron {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            claim_hold: Duration::from_millis(20),
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeMegatron { url, state }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Waits (polling every 10 ms, 5 s at most) until `condition` holds.
    fn wait_for(&self, what: &str, condition: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition(&self.state()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every recorded call but claims, heartbeats and logs.
    fn reports(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| !p.starts_with("claim") && !p.contains("/heartbeat") && !p.contains("/log"))
            .collect()
    }

    fn find(&self, path: &str) -> Option<Recorded> {
        self.state()
            .requests
            .iter()
            .find(|r| r.path == path)
            .cloned()
    }

    /// The log of step `n`, as the megatron would store it.
    fn log(&self, build: u64, n: usize) -> String {
        let prefix = format!("builds/{build}/steps/{n}/log?");
        let bytes: Vec<u8> = self
            .state()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(&prefix))
            .flat_map(|r| r.body.clone())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        body.resize(length.parse().unwrap(), 0);
        reader.read_exact(&mut body).unwrap();
    } else if header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let path = path
        .strip_prefix("/api/v1/worker/")
        .unwrap_or(&path)
        .to_string();
    let recorded = Recorded {
        path: path.clone(),
        headers,
        body,
    };
    let (status, answer) = answer(state, recorded);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn answer(state: &Mutex<State>, request: Recorded) -> (u16, String) {
    let path = request.path.clone();
    let mut s = state.lock().unwrap();
    s.requests.push(request);
    if path == "claim" {
        if s.failing_claims > 0 {
            s.failing_claims -= 1;
            return (503, r#"{"error":"starting"}"#.into());
        }
        let hold = s.claim_hold;
        drop(s);
        std::thread::sleep(hold);
        return match state.lock().unwrap().jobs.pop_front() {
            Some(job) => (200, serde_json::to_string(&job).unwrap()),
            None => (204, String::new()),
        };
    }
    if path.ends_with("/release") {
        return (200, "{}".into());
    }
    if s.lease_lost {
        return (409, r#"{"error":"lease lost"}"#.into());
    }
    if path.ends_with("/heartbeat") {
        drop(s);
        // A short long-poll: long enough not to spin, short enough that a
        // cancel is heard quickly.
        std::thread::sleep(Duration::from_millis(20));
        let cancel = state.lock().unwrap().cancel;
        return (200, format!(r#"{{"cancel":{cancel}}}"#));
    }
    if path.contains("/log?") && s.failing_logs > 0 {
        s.failing_logs -= 1;
        return (500, r#"{"error":"busy"}"#.into());
    }
    (200, "{}".into())
}

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
                "command 0",
                r#"echo "env=$P"; echo arg={P}; echo 'warning: w'"#,
            ),
            step(
                "command 1",
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
    // Every log call carries the lease, encoded, and raw bytes.
    let logs: Vec<Recorded> = megatron
        .state()
        .requests
        .iter()
        .filter(|r| r.path.contains("/log?"))
        .cloned()
        .collect();
    assert!(!logs.is_empty());
    for log in logs {
        assert!(log.path.ends_with("?lease=lease%2F1%20x"), "{}", log.path);
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
        vec![step("command 0", "exit 2"), step("command 1", "true")],
    ));
    // An unknown revision fails at the checkout.
    megatron.state().jobs.push_back(job(
        4,
        repo_dir.path(),
        "nope",
        vec![step("command 0", "true")],
    ));
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("both builds' ends", |s| {
        s.requests.iter().any(|r| r.path == "builds/4/finish")
    });
    let reports = megatron.reports();
    assert!(!reports.contains(&"builds/3/steps/2/start".to_string()));
    assert_eq!(
        megatron.find("builds/3/finish").unwrap().json(),
        serde_json::json!({"lease": "lease/1 x", "result": "failure", "reason": "command 0: exit code 2"})
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
    megatron.state().jobs.push_back(job(
        5,
        repo_dir.path(),
        &commit,
        vec![step("command 0", "sleep 30"), step("command 1", "true")],
    ));
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
    assert!(!megatron
        .reports()
        .contains(&"builds/5/steps/2/start".to_string()));
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
        vec![step("command 0", "sleep 30")],
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
                "command 0",
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
