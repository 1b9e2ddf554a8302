//! The log queue's batches, the spool behind it and the loss marker.

use super::*;

#[test]
fn batches_are_bounded_and_marked_when_output_was_dropped() {
    let mut queue = LogQueue::default();
    queue.pending.push_back(vec![b'a'; LOG_CHUNK - 10]);
    queue.pending.push_back(vec![b'b'; 30]);
    queue.pending_bytes = LOG_CHUNK + 20;
    let batch = take_batch(&mut queue);
    assert_eq!(batch.len(), LOG_CHUNK);
    assert_eq!(&batch[LOG_CHUNK - 11..], b"abbbbbbbbbb");
    assert_eq!(queue.pending_bytes, 20);

    queue.dropped = 5;
    let batch = take_batch(&mut queue);
    assert!(batch.starts_with(b"\n[constructicon: 5 bytes of output dropped"));
    assert!(batch.ends_with(&[b'b'; 20]));
    assert_eq!(queue.pending_bytes, 0);
    assert!(queue.oldest.is_none());
}

#[test]
fn the_spool_follows_the_queue_and_a_spool_lost_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1-1");
    let mut queue = LogQueue {
        spool: Spool::new(path.clone(), 1024),
        ..LogQueue::default()
    };
    queue.pending.push_back(b"one\n".to_vec());
    queue.pending_bytes = 4;
    queue.spool.append(b"two\n").unwrap();
    assert_eq!(take_batch(&mut queue), b"one\ntwo\n");
    assert!(queue.oldest.is_none());
    assert!(!path.exists());

    queue.pending.push_back(b"three\n".to_vec());
    queue.pending_bytes = 6;
    queue.spool.append(b"four\nfive\n").unwrap();
    // The file is cut under the worker: what it held cannot be sent.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let batch = String::from_utf8(take_batch(&mut queue)).unwrap();
    assert!(
        batch.starts_with("three\n\n[constructicon: 10 bytes of output lost: the worker could not read them back from its spool"),
        "{batch}"
    );
    assert_eq!(queue.waiting(), 0);
}
