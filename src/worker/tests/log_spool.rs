//! A step's log while the megatron is away: spooled to disk up to its
//! bound, then the step waits, and nothing is lost or sent twice.

use super::*;

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
