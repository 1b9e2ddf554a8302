//! The log queue, its batches and the spool, and the client's back-off.

use super::*;

#[test]
fn backoff_doubles_up_to_the_maximum() {
    let mut backoff = Backoff::new(Duration::from_millis(500));
    let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 500, 500]);
}

#[test]
fn a_call_to_nowhere_gives_up_when_asked() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let client = Client::new(
        &format!("http://127.0.0.1:{port}"),
        "w",
        "t",
        Duration::from_millis(50),
    );
    let begun = Instant::now();
    let result = client.post_json("/x", &serde_json::json!({}), &|| {
        begun.elapsed() > Duration::from_millis(300)
    });
    assert!(matches!(result, Err(CallError::GaveUp)), "{result:?}");
    assert!(begun.elapsed() < Duration::from_secs(2));
}
