//! The frames beyond push and subscribe: Unsubscribe, Presence, Snapshot.

use syncline_protocol::{ClientFrame, DeltaId, ErrorCode, RelayFrame};

use crate::common::{Client, RelayProcess, delta, doc, seqs};

#[tokio::test]
async fn unsubscribe_stops_live_deltas_until_the_next_subscribe() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut reader, _) = Client::greeted(&relay.url()).await;
    let (mut writer, _) = Client::greeted(&relay.url()).await;
    reader.subscribe(doc(1), 0).await;
    reader.subscribe(doc(2), 0).await;
    writer.push(doc(1), vec![delta(1)]).await;
    assert_eq!(seqs(&reader.recv_live(doc(1)).await), vec![1]);

    reader.send(&ClientFrame::Unsubscribe { doc: doc(1) }).await;
    // Unsubscribing twice, or from a document never subscribed, is a no-op.
    reader.send(&ClientFrame::Unsubscribe { doc: doc(1) }).await;
    reader.send(&ClientFrame::Unsubscribe { doc: doc(3) }).await;
    reader.ping(1).await;
    writer.push(doc(1), vec![delta(2)]).await;
    writer.push(doc(2), vec![delta(3)]).await;
    // Only doc 2 is still live: its delta is the next frame.
    assert_eq!(seqs(&reader.recv_live(doc(2)).await), vec![1]);
    reader.ping(2).await;

    let (missed, _) = reader.subscribe(doc(1), 1).await;
    assert_eq!(seqs(&missed), vec![2]);
    writer.push(doc(1), vec![delta(4)]).await;
    assert_eq!(seqs(&reader.recv_live(doc(1)).await), vec![3]);
}

fn presence(from: u8, bytes: &[u8]) -> RelayFrame {
    RelayFrame::Presence {
        doc: doc(1),
        from: [from; 16],
        bytes: bytes.to_vec(),
    }
}

#[tokio::test]
async fn presence_reaches_the_other_subscribers_and_is_gone_with_its_connection() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--max-presence-bytes", "100"]).await;
    let url = relay.url();
    let (mut alice, _) = Client::greeted_as(&url, [0xa; 16], None).await;
    let (mut bob, _) = Client::greeted_as(&url, [0xb; 16], None).await;
    let (mut outsider, _) = Client::greeted_as(&url, [0xc; 16], None).await;
    alice.subscribe(doc(1), 0).await;
    bob.subscribe(doc(1), 0).await;
    outsider.subscribe(doc(2), 0).await;

    let say = |bytes: &[u8]| ClientFrame::Presence {
        doc: doc(1),
        bytes: bytes.to_vec(),
    };
    alice.send(&say(b"alice at 3:14")).await;
    assert_eq!(bob.recv().await, presence(0xa, b"alice at 3:14"));
    alice.ping(1).await; // not echoed to the sender
    outsider.ping(1).await; // nor sent to another document's subscribers

    // A newcomer gets the current presence once caught up.
    let (mut carol, _) = Client::greeted_as(&url, [0xd; 16], None).await;
    carol.subscribe(doc(1), 0).await;
    assert_eq!(carol.recv().await, presence(0xa, b"alice at 3:14"));
    carol.send(&say(b"carol here")).await;
    assert_eq!(alice.recv().await, presence(0xd, b"carol here"));
    assert_eq!(bob.recv().await, presence(0xd, b"carol here"));

    // Refusals are per document and leave the connection open.
    bob.send(&say(&[0; 101])).await;
    bob.expect_doc_error(doc(1), ErrorCode::LimitExceeded).await;
    outsider.send(&say(b"hi")).await;
    outsider
        .expect_doc_error(doc(1), ErrorCode::UnexpectedFrame)
        .await;
    outsider.ping(2).await;

    // Alice leaves: the others hear an empty presence from her.
    drop(alice);
    assert_eq!(bob.recv().await, presence(0xa, b""));
    assert_eq!(carol.recv().await, presence(0xa, b""));
    // Carol unsubscribes: the same.
    carol.send(&ClientFrame::Unsubscribe { doc: doc(1) }).await;
    assert_eq!(bob.recv().await, presence(0xd, b""));
    bob.ping(3).await;
}

fn snapshot_id(n: u8) -> DeltaId {
    DeltaId([0xe0 | n; 32])
}

#[tokio::test]
async fn a_snapshot_is_acked_and_served_in_place_of_the_deltas_it_covers() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut alice, _) = Client::greeted(&relay.url()).await;
    for n in 1..=5 {
        alice.push(doc(1), vec![delta(n)]).await;
    }
    let snapshot = |covers_seq, n: u8| ClientFrame::Snapshot {
        doc: doc(1),
        covers_seq,
        id: snapshot_id(n),
        bytes: format!("state through {covers_seq}").into_bytes(),
    };

    // Beyond the head, or covering nothing: refused, nothing stored.
    alice.send(&snapshot(6, 1)).await;
    let message = alice
        .expect_doc_error(doc(1), ErrorCode::UnexpectedFrame)
        .await;
    assert!(message.contains("ends at 5"), "{message}");
    alice.send(&snapshot(0, 1)).await;
    alice.expect_doc_error(doc(1), ErrorCode::Malformed).await;

    alice.send(&snapshot(3, 1)).await;
    assert_eq!(
        alice.recv().await,
        RelayFrame::Ack {
            doc: doc(1),
            ids: vec![snapshot_id(1)],
            seq: 3
        }
    );
    // An older one is acked too, but the stored one stays.
    alice.send(&snapshot(2, 2)).await;
    assert!(matches!(alice.recv().await, RelayFrame::Ack { seq: 2, .. }));

    let (mut bob, _) = Client::greeted(&relay.url()).await;
    for since in [0, 2] {
        let (log, _) = bob.subscribe(doc(1), since).await;
        assert_eq!(seqs(&log), vec![3, 4, 5], "from {since}");
        assert_eq!(log[0].id, snapshot_id(1));
        assert_eq!(log[0].bytes, b"state through 3");
        assert_eq!(log[1].id, delta(4).id);
    }
    let (log, _) = bob.subscribe(doc(1), 3).await;
    assert_eq!(seqs(&log), vec![4, 5], "from the snapshot on: plain deltas");

    // The log goes on; a re-pushed covered delta keeps its sequence.
    assert_eq!(alice.push(doc(1), vec![delta(6)]).await, 6);
    assert_eq!(seqs(&bob.recv_live(doc(1)).await), vec![6]);
    assert_eq!(alice.push(doc(1), vec![delta(2)]).await, 2);
    bob.ping(1).await;

    // And the snapshot is durable.
    drop((alice, bob));
    relay.terminate().await;
    let relay = RelayProcess::start(data.path()).await;
    let (mut carol, _) = Client::greeted(&relay.url()).await;
    let (log, _) = carol.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&log), vec![3, 4, 5, 6]);
    assert_eq!(log[0].id, snapshot_id(1));
}
