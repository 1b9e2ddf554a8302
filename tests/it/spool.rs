//! Logs survive the megatron's absence: while it is unreachable the worker
//! spools a step's output to disk and the step runs on; once it is back the
//! spool is sent in order, every line once, and removed.

use crate::common::system::{wait_for, GitRepo, Megatron, Worker};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lines of `seq 1 LINES`: about 6.9 MB, far beyond the worker's queue.
const LINES: u64 = 1_000_000;

fn spool_files(worker: &Worker) -> Vec<PathBuf> {
    match std::fs::read_dir(worker.workdir.join("spool")) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
        Err(_) => vec![],
    }
}

/// A repo whose step says it is ready, waits for `gate`, prints
/// `seq 1 LINES`, then writes `done`.
fn gated_repo(ready: &Path, gate: &Path, done: &Path) -> GitRepo {
    let command = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.02; done; seq 1 {LINES}; touch '{}'",
        ready.display(),
        gate.display(),
        done.display()
    );
    GitRepo::new(
        "away",
        &format!(
            r#"constructicon = #{{
    builders: #{{ away: #{{ commands: [{command:?}], schedulers: ["force"] }} }},
    schedulers: #{{ force: #{{ type: "force" }} }},
}};"#
        ),
    )
}

/// Every line of `seq 1 LINES`, once, in order.
#[track_caller]
fn assert_every_line(log: &str) {
    let mut expected = 1u64;
    for line in log.lines() {
        assert_eq!(
            line,
            expected.to_string(),
            "line {expected} is missing or out of order"
        );
        expected += 1;
    }
    assert_eq!(expected, LINES + 1, "lines stored: {}", expected - 1);
}

#[test]
fn a_step_runs_on_while_the_megatron_is_away_and_its_spooled_log_arrives_whole() {
    // A lease that outlasts the megatron's absence, as the default does.
    let mut megatron = Megatron::start_with_flags(
        r#"cybertron = #{ workers: #{ w1: #{} } };"#,
        &["--lease-ms", "30000"],
    );
    let signals = tempfile::tempdir().expect("tempdir");
    let ready = signals.path().join("ready");
    let gate = signals.path().join("gate");
    let done = signals.path().join("done");
    let repo = gated_repo(&ready, &gate, &done);
    megatron.add_repo(&repo.url());
    // 256 KiB of output in memory at most: the step's output is 27 times that.
    let worker = Worker::start_with_flags(&megatron, "w1", &["--log-queue-kb", "256"]);
    let id = megatron.force("away-away", serde_json::json!({}));
    wait_for("the step to start", Duration::from_secs(30), || {
        ready.exists().then_some(())
    });

    // The megatron goes away before the step prints a byte.
    megatron.kill9();
    std::fs::write(&gate, "").expect("open the gate");
    // The step prints everything and ends while nobody answers: it did not
    // wait for the megatron.
    wait_for(
        "the step to finish while the megatron is away",
        Duration::from_secs(60),
        || done.exists().then_some(()),
    );
    let spooled = spool_files(&worker);
    assert_eq!(spooled.len(), 1, "one spool file: {spooled:?}");
    let size = std::fs::metadata(&spooled[0]).expect("spool").len();
    let output: u64 = (1..=LINES).map(|i| i.to_string().len() as u64 + 1).sum();
    // All but what memory and the batch in flight hold is on disk.
    assert!(
        size + (1 << 20) >= output,
        "{size} of {output} bytes spooled"
    );

    megatron.restart();
    let build = megatron.wait_finished(id, Duration::from_secs(120));
    assert_eq!(build["result"], "success", "{build}");
    assert_eq!(build["attempts"], 1, "the build kept its lease: {build}");
    let log = megatron.log(id, 1);
    assert_eq!(log.len() as u64, output, "every byte once");
    assert_every_line(&log);
    assert_eq!(spool_files(&worker), Vec::<PathBuf>::new(), "spool emptied");
}

#[test]
fn a_full_spool_makes_the_step_wait_and_nothing_is_lost() {
    let mut megatron = Megatron::start_with_flags(
        r#"cybertron = #{ workers: #{ w1: #{} } };"#,
        &["--lease-ms", "30000"],
    );
    let signals = tempfile::tempdir().expect("tempdir");
    let ready = signals.path().join("ready");
    let gate = signals.path().join("gate");
    let done = signals.path().join("done");
    let repo = gated_repo(&ready, &gate, &done);
    megatron.add_repo(&repo.url());
    // 1 MiB of spool and 256 KiB of memory for 6.9 MB of output.
    let worker = Worker::start_with_flags(
        &megatron,
        "w1",
        &["--log-queue-kb", "256", "--spool-mb", "1"],
    );
    let id = megatron.force("away-away", serde_json::json!({}));
    wait_for("the step to start", Duration::from_secs(30), || {
        ready.exists().then_some(())
    });

    megatron.kill9();
    std::fs::write(&gate, "").expect("open the gate");
    // The spool fills up to its bound (less than one more read of the
    // step's pipe from it) and no further.
    let size = wait_for("the spool to fill", Duration::from_secs(60), || {
        let size = spool_files(&worker)
            .first()
            .and_then(|file| std::fs::metadata(file).ok())
            .map_or(0, |m| m.len());
        (size + 64 * 1024 > 1 << 20).then_some(size)
    });
    assert!(size <= 1 << 20, "{size} bytes spooled");
    // Memory, spool and the batch in flight hold far less than the output:
    // the step can only be waiting.
    assert!(!done.exists(), "the step ran on past a full spool");

    megatron.restart();
    let build = megatron.wait_finished(id, Duration::from_secs(120));
    assert_eq!(build["result"], "success", "{build}");
    assert!(done.exists());
    assert_every_line(&megatron.log(id, 1));
    assert_eq!(spool_files(&worker), Vec::<PathBuf>::new(), "spool emptied");
}
