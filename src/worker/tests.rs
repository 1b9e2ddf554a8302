//! The worker end to end against a fake megatron: a few dozen lines of
//! HTTP/1.1 over std's TcpListener that record every call and answer as
//! each test scripts. It checks what the real megatron relies on: the order
//! of the calls, their headers and bodies, cancel, lost leases, retries,
//! shutdown, deps, `get` and `upload`, without the megatron's own code.
//!
//! This file holds the harness (an upstream repo, jobs, a worker on a
//! thread); the tests live beside [`fake`], one file per subject:
//! - `steps`: a build's steps in order, a failing step, a cancel;
//! - `lifecycle`: a lost lease, a failing megatron, a shutdown;
//! - `artifacts`: the deps, `get` and `upload` steps;
//! - `log_spool`: a step's log while the megatron is away.

use super::*;
use crate::config::Step;
use git2::{Repository, Signature};
use std::collections::BTreeMap;
use std::path::Path;

mod artifacts;
mod fake;
mod lifecycle;
mod log_spool;
mod steps;

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
        first_step_started: true,
        folded_reports: true,
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
