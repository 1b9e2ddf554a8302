//! The store's key encodings and transactions, on a real sled in a temp dir.

use super::step_logs::{log_key, log_prefix, INLINE_LOG};
use super::*;
use crate::config::{Builder, Graph};
use std::collections::BTreeMap;

/// Opens the store again in the same process. sled's background threads
/// let go of the dropped instance's file lock a moment after the drop, so
/// `Locked` is waited out (a new process, as after a restart, never sees it).
fn reopen(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Err(Error::Locked) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            opened => return opened.expect("reopen"),
        }
    }
}

fn builder(name: &str) -> Builder {
    Builder {
        name: name.into(),
        repo: "r".into(),
        workers: vec!["w".into()],
        accept: vec!["true".into()],
        steps: Vec::new(),
        schedulers: Vec::new(),
        resources: Vec::new(),
        deps: Vec::new(),
        upload: BTreeMap::new(),
        zip: Vec::new(),
        unzip: Vec::new(),
        url: BTreeMap::new(),
        get: Vec::new(),
        collapse: false,
        secrets: Vec::new(),
    }
}

fn queued(builder_name: &str) -> BuildRecord {
    BuildRecord {
        id: 0,
        number: 0,
        builder: builder_name.into(),
        repo: "r".into(),
        repo_url: "file:///r".into(),
        revision: "abc".into(),
        branch: None,
        parameters: BTreeMap::new(),
        reason: "forced".into(),
        by: None,
        cancelled_by: None,
        state: BuildState::Queued,
        result: None,
        result_reason: None,
        worker: None,
        attempts: 0,
        lease: None,
        cancel_requested: false,
        queue_sequence: None,
        created: now_ms(),
        started: None,
        finished: None,
        steps: Vec::new(),
        provenance: Provenance {
            config_commit: "abc".into(),
            config_hash: "h".into(),
            cybertron_hash: "c".into(),
            graph_version: 1,
            system_version: "0".into(),
        },
        spec: builder(builder_name),
        pins: BTreeMap::new(),
        revisions: BTreeMap::new(),
        got: BTreeMap::new(),
        reporting: None,
        pull_request: None,
        trigger: None,
        withheld: Vec::new(),
    }
}

#[test]
fn builds_get_ids_numbers_and_a_place_in_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let a = store.create_build(queued("r-a")).expect("a");
    let b = store.create_build(queued("r-a")).expect("b");
    let c = store.create_build(queued("r-b")).expect("c");
    assert_eq!((a.number, b.number, c.number), (1, 2, 1));
    assert!(a.id < b.id && b.id < c.id);
    let queue: Vec<u64> = store
        .queued_builds()
        .expect("queue")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(queue, [a.id, b.id, c.id]);

    let mut running = b.clone();
    running.state = BuildState::Running;
    store.put_build(&running).expect("put");
    let queue: Vec<u64> = store
        .queued_builds()
        .expect("queue")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(queue, [a.id, c.id], "a running build leaves the queue");
    assert_eq!(store.running_builds().expect("running").len(), 1);

    store.requeue_build(&mut running).expect("requeue");
    let queue: Vec<u64> = store
        .queued_builds()
        .expect("queue")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        queue,
        [a.id, c.id, b.id],
        "a requeued build goes to the back"
    );

    let history: Vec<u64> = store
        .builder_builds("r-a", 10)
        .expect("history")
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(history, [2, 1], "newest first");
    assert!(matches!(store.build(999_999), Err(Error::NotFound(_))));
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = Store::open(dir.path()).expect("open");
        let build = store.create_build(queued("r-a")).expect("build");
        assert_eq!(store.append_log(build.id, 1, 0, b"hello ").expect("log"), 0);
        assert_eq!(store.append_log(build.id, 1, 6, b"world").expect("log"), 6);
        store.put_token_hash("w", "abc").expect("token");
        store.flush().expect("flush");
        build.id
    };
    let store = reopen(dir.path());
    assert_eq!(store.build(id).expect("build").number, 1);
    assert_eq!(
        store.read_log(id, 1, 0, 11, 100).expect("log"),
        b"hello world"
    );
    assert_eq!(store.read_log(id, 1, 3, 11, 4).expect("log"), b"lo w");
    assert_eq!(store.read_log(id, 1, 0, 5, 100).expect("log"), b"hello");
    assert_eq!(store.read_log(id, 1, 100, 200, 4).expect("log"), b"");
    assert_eq!(
        store.token_hash("w").expect("token").as_deref(),
        Some("abc")
    );
    assert_eq!(store.queued_builds().expect("queue").len(), 1);
    let next = store.create_build(queued("r-a")).expect("next");
    assert_eq!(next.number, 2, "numbers go on after a restart");
    assert!(next.id > id);
}

#[test]
fn the_horizon_drops_old_finished_builds_and_their_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let mut build = store.create_build(queued("r-a")).expect("build");
        build.state = BuildState::Finished;
        store.put_build(&build).expect("finish");
        store.append_log(build.id, 0, 0, b"x").expect("log");
        ids.push(build.id);
    }
    let removed = store.apply_horizon("r-a", 2).expect("horizon");
    assert_eq!(removed, ids[..3]);
    let left: Vec<u64> = store
        .builder_builds("r-a", 10)
        .expect("history")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, [ids[4], ids[3]]);
    assert!(store.read_log(ids[0], 0, 0, 1, 10).expect("log").is_empty());
    assert_eq!(store.read_log(ids[4], 0, 0, 1, 10).expect("log"), b"x");
    assert!(!dir.path().join("logs").join(ids[0].to_string()).exists());
}

#[test]
fn an_append_overwrites_what_a_crash_left_past_the_acknowledged_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    // Big enough for a file of its own.
    let big = vec![b'k'; INLINE_LOG + 5];
    let n = big.len() as u64;
    store.append_log(7, 1, 0, &big).expect("log");
    // Written, never acknowledged: the record still says `n` bytes.
    store.append_log(7, 1, n, b"lost in a crash").expect("log");
    assert_eq!(store.append_log(7, 1, n, b"next").expect("log"), n);
    assert_eq!(
        store.read_log(7, 1, n - 2, n + 4, 100).expect("log"),
        b"kknext"
    );
    let file = dir.path().join("logs/7/1.log");
    assert_eq!(std::fs::metadata(&file).expect("file").len(), n + 4);
    // A file shorter than the record says (it went with a rerun the record
    // never heard of) is appended to at its end, leaving no hole.
    assert_eq!(store.append_log(7, 1, n + 100, b"!").expect("log"), n + 4);
    assert_eq!(
        store.read_log(7, 1, n - 2, n + 5, 100).expect("log"),
        b"kknext!"
    );
    store.delete_logs(7).expect("delete");
    assert!(!file.exists());
}

#[test]
fn a_small_log_stays_in_the_tree_until_it_outgrows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("logs/8/0.log");
    {
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.append_log(8, 0, 0, b"checked out\n").expect("log"), 0);
        // Written, never acknowledged, then replaced by the next append.
        store.append_log(8, 0, 12, b"lost").expect("log");
        assert_eq!(store.append_log(8, 0, 12, b"ok\n").expect("log"), 12);
        // Past the held length: appended at its end, leaving no hole.
        assert_eq!(store.append_log(8, 0, 99, b"!").expect("log"), 15);
        assert!(!file.exists(), "a quiet step's log has no file");
        store.flush().expect("flush");
    }
    let store = reopen(dir.path());
    assert_eq!(
        store.read_log(8, 0, 0, 16, 100).expect("log"),
        b"checked out\nok\n!"
    );
    assert_eq!(store.read_log(8, 0, 8, 16, 3).expect("log"), b"out");
    // Outgrown: the file holds all of it, the tree none.
    let more = vec![b'm'; INLINE_LOG];
    assert_eq!(store.append_log(8, 0, 16, &more).expect("log"), 16);
    assert!(file.exists());
    assert_eq!(store.logs.scan_prefix(log_prefix(8, 0)).count(), 0);
    assert_eq!(
        store.read_log(8, 0, 10, 20, 100).expect("log"),
        b"t\nok\n!mmmm"
    );
    assert_eq!(
        std::fs::metadata(&file).expect("file").len(),
        16 + INLINE_LOG as u64
    );
    store.append_log(9, 0, 0, b"x").expect("log");
    store.delete_logs(9).expect("delete");
    assert!(store.read_log(9, 0, 0, 1, 10).expect("log").is_empty());
}

#[test]
fn logs_of_a_store_from_before_the_files_are_read_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .logs
        .insert(log_key(3, 0, 0), b"old ".as_slice())
        .expect("chunk");
    store
        .logs
        .insert(log_key(3, 0, 1), b"chunks".as_slice())
        .expect("chunk");
    assert_eq!(
        store.read_log(3, 0, 0, 10, 100).expect("log"),
        b"old chunks"
    );
    assert_eq!(store.read_log(3, 0, 2, 10, 5).expect("log"), b"d chu");
    store.delete_logs(3).expect("delete");
    assert!(store.read_log(3, 0, 0, 10, 100).expect("log").is_empty());
}

#[test]
fn repos_and_graph_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let graph = Graph {
        repo: "r".into(),
        builders: BTreeMap::from([("r-a".to_string(), builder("r-a"))]),
        schedulers: BTreeMap::new(),
        workers: BTreeMap::new(),
        secrets: BTreeMap::new(),
        config_hash: "h".into(),
        cybertron_hash: "c".into(),
    };
    let record = GraphRecord {
        version: 0,
        repo: "r".into(),
        commit: "abc".into(),
        cybertron_hash: "c".into(),
        config_hash: "h".into(),
        graph,
        created: now_ms(),
    };
    let v1 = store.add_graph(record.clone()).expect("v1");
    let v2 = store.add_graph(record).expect("v2");
    assert!(v2 > v1);
    assert_eq!(
        store.graph("r", v1).expect("graph").expect("some").version,
        v1
    );
    store
        .put_repo(&RepoRecord {
            name: "r".into(),
            url: "file:///r".into(),
            branch: None,
            commit: Some("abc".into()),
            graph_version: Some(v2),
            error: None,
            warnings: Vec::new(),
            updated: now_ms(),
        })
        .expect("repo");
    assert_eq!(store.repos().expect("repos").len(), 1);
    assert_eq!(
        store.repo("r").expect("repo").expect("some").graph_version,
        Some(v2)
    );
    assert_eq!(store.repo("nope").expect("repo"), None);
}

#[test]
fn retention_by_age_keeps_the_newest_and_the_last_success() {
    use crate::protocol::BuildResult;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let day = 86_400_000;
    // Five builds finished 10, 9, 8, 2 and 1 days ago; only the oldest passed.
    let mut ids = Vec::new();
    for (age, result) in [
        (10, BuildResult::Success),
        (9, BuildResult::Failure),
        (8, BuildResult::Failure),
        (2, BuildResult::Failure),
        (1, BuildResult::Failure),
    ] {
        let mut build = store.create_build(queued("r-a")).expect("build");
        build.state = BuildState::Finished;
        build.result = Some(result);
        build.finished = Some(100 * day - age * day);
        store.put_build(&build).expect("finish");
        ids.push(build.id);
    }
    let removed = store
        .apply_retention(
            "r-a",
            Retention {
                builds: 100,
                finished_before: Some(100 * day - 7 * day),
                keep_last_success: true,
            },
            false,
        )
        .expect("retention");
    // Older than a week goes, but the last success stays.
    assert_eq!(removed, [ids[1], ids[2]]);
    let left: Vec<u64> = store
        .builder_builds("r-a", 10)
        .expect("history")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, [ids[4], ids[3], ids[0]]);
    // Without keep_last_success it goes too.
    let removed = store
        .apply_retention(
            "r-a",
            Retention {
                builds: 100,
                finished_before: Some(100 * day - 7 * day),
                keep_last_success: false,
            },
            true,
        )
        .expect("retention");
    assert_eq!(removed, [ids[0]]);
}

#[test]
fn a_builds_end_looks_only_at_the_oldest_the_periodic_pass_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let day = 86_400_000u64;
    let mut ids = Vec::new();
    // The older build finished after the newer one (it ran long).
    for age in [1, 10] {
        let mut build = store.create_build(queued("r-a")).expect("build");
        build.state = BuildState::Finished;
        build.result = Some(crate::protocol::BuildResult::Success);
        build.finished = Some(100 * day - age * day);
        store.put_build(&build).expect("finish");
        ids.push(build.id);
    }
    let retention = Retention {
        builds: 100,
        finished_before: Some(100 * day - 7 * day),
        keep_last_success: false,
    };
    let quick = store
        .apply_retention("r-a", retention, false)
        .expect("retention");
    assert!(quick.is_empty(), "stops at the first build that stays");
    let thorough = store
        .apply_retention("r-a", retention, true)
        .expect("retention");
    assert_eq!(thorough, [ids[1]]);
}
