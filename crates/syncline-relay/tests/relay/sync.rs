//! Catch-up, live fan-out, deduplication and ordering.

use syncline_protocol::{ClientFrame, RelayFrame};

use crate::common::{Client, RelayProcess, TIMEOUT, delta, doc, push_backlog_then_more, seqs};

#[tokio::test]
async fn a_newcomer_catches_up_then_gets_live_deltas_and_the_pusher_is_not_echoed() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut alice, _) = Client::greeted(&relay.url()).await;
    alice.push(doc(1), vec![delta(1), delta(2)]).await;

    // Bob joins late, on the explicit /sync path, and catches up.
    let (mut bob, _) = Client::greeted(&format!("{}/sync", relay.url())).await;
    let (caught, pages) = bob.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&caught), vec![1, 2]);
    assert_eq!(pages, 1);
    assert_eq!(caught[1].bytes, delta(2).bytes);

    // Alice subscribes from her cursor: an empty, final page.
    let (nothing, pages) = alice.subscribe(doc(1), 2).await;
    assert!(nothing.is_empty());
    assert_eq!(pages, 1, "always at least one frame");

    // Alice pushes: Bob gets it live; Alice gets only her Ack.
    assert_eq!(alice.push(doc(1), vec![delta(3)]).await, 3);
    let live = bob.recv_live(doc(1)).await;
    assert_eq!(seqs(&live), vec![3]);
    assert_eq!(live[0].id, delta(3).id);
    alice.ping(1).await;

    // And the other way round.
    assert_eq!(bob.push(doc(1), vec![delta(4), delta(5)]).await, 5);
    assert_eq!(seqs(&alice.recv_live(doc(1)).await), vec![4, 5]);
    bob.ping(2).await;

    // A third client, not subscribed to doc 1, hears nothing of it.
    let (mut carol, _) = Client::greeted(&relay.url()).await;
    carol.subscribe(doc(9), 0).await;
    alice.push(doc(1), vec![delta(6)]).await;
    assert_eq!(seqs(&bob.recv_live(doc(1)).await), vec![6]);
    carol.ping(3).await;
}

#[tokio::test]
async fn a_duplicate_push_is_acked_both_times_and_stored_once() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut alice, _) = Client::greeted(&relay.url()).await;
    let (mut bob, _) = Client::greeted(&relay.url()).await;
    bob.subscribe(doc(1), 0).await;

    assert_eq!(alice.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(seqs(&bob.recv_live(doc(1)).await), vec![1]);

    // The ack was "lost": Alice pushes the same delta again, with a new one.
    assert_eq!(alice.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(alice.push(doc(1), vec![delta(1), delta(2)]).await, 2);
    // Bob hears of delta 2 only, once.
    assert_eq!(seqs(&bob.recv_live(doc(1)).await), vec![2]);
    bob.ping(1).await;

    let (mut carol, _) = Client::greeted(&relay.url()).await;
    let (log, _) = carol.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&log), vec![1, 2]);
}

#[tokio::test]
async fn pushes_during_a_paged_catch_up_arrive_after_it_without_gaps() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--page-max-items", "7"]).await;
    let url = relay.url();
    // A backlog that takes several pages, and more pushes while the
    // subscriber catches up.
    const BACKLOG: u32 = 60;
    const TOTAL: u32 = 300;
    let pushing = push_backlog_then_more(&url, doc(1), BACKLOG, TOTAL).await;

    let (mut reader, _) = Client::greeted(&url).await;
    reader
        .send(&ClientFrame::Subscribe {
            doc: doc(1),
            since: 0,
        })
        .await;
    let mut got = Vec::new();
    let mut pages_before_caught_up = 0;
    let mut caught_up_seen = false;
    while got.len() < TOTAL as usize {
        match reader.recv().await {
            RelayFrame::Deltas {
                items, caught_up, ..
            } => {
                assert!(
                    caught_up || !caught_up_seen,
                    "no catch-up page after the catch-up ended"
                );
                assert!(items.len() <= 7, "pages are bounded");
                if !caught_up {
                    pages_before_caught_up += 1;
                }
                caught_up_seen |= caught_up;
                got.extend(items);
            }
            other => panic!("expected Deltas, got {other:?}"),
        }
    }
    tokio::time::timeout(TIMEOUT, pushing)
        .await
        .expect("the pusher finishes")
        .expect("the pusher succeeded");
    assert_eq!(seqs(&got), (1..=TOTAL as u64).collect::<Vec<_>>());
    for (delta_got, n) in got.iter().zip(1..) {
        assert_eq!(delta_got.id, delta(n).id, "seq {n} is the {n}th push");
    }
    assert!(pages_before_caught_up >= (BACKLOG / 7) as usize);
    reader.ping(9).await;
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_disconnected() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--queue-capacity", "2"]).await;
    let (mut pusher, _) = Client::greeted(&relay.url()).await;
    let (mut idle, _) = Client::greeted(&relay.url()).await;
    idle.subscribe(doc(1), 0).await;

    // ~40 MiB: more than the socket buffers hold, so the relay's two-frame
    // queue for the idle client fills up and the relay drops that client.
    const PUSHES: u32 = 160;
    let big = vec![0x5a; 256 * 1024];
    for n in 0..PUSHES {
        let mut d = delta(n);
        d.bytes = big.clone();
        pusher.push(doc(1), vec![d]).await;
    }
    // The idle client now reads: what was buffered, then the end (were it
    // not dropped, it would read all 160 frames and then time out).
    let frames = idle.drain_until_closed().await;
    assert!(
        frames < PUSHES as usize,
        "the relay stopped sending to it after {frames} frames"
    );
    // Everyone else is unaffected.
    pusher.ping(1).await;
}
