//! Tests of the connection queue: bounds, kicks, and merging of live frames.

use super::*;
use std::time::Duration;

#[tokio::test]
async fn a_full_queue_refuses_without_waiting_and_a_kick_is_remembered() {
    let (queue, mut rx) = FrameQueue::new(7, 1);
    assert_eq!(queue.try_send(Bytes::from_static(b"a")), Ok(()));
    assert_eq!(
        queue.try_send(Bytes::from_static(b"b")),
        Err(TrySendError::Full)
    );
    queue.kick();
    // The permit was stored: waiting afterwards completes at once.
    tokio::time::timeout(Duration::from_secs(5), queue.kicked())
        .await
        .expect("the kick was remembered");
    assert_eq!(
        rx.recv().await,
        Some(Outbound::Frame(Bytes::from_static(b"a")))
    );
    drop(rx);
    assert_eq!(
        queue.try_send(Bytes::from_static(b"c")),
        Err(TrySendError::Closed)
    );
    assert_eq!(
        queue.send_bytes(Bytes::from_static(b"d")).await,
        Err(Closed)
    );
}

#[tokio::test]
async fn a_waiting_send_gets_room_when_the_receiver_drains_and_the_end_follows_the_last_frame() {
    let (queue, mut rx) = FrameQueue::new(3, 1);
    queue.send_bytes(Bytes::from_static(b"a")).await.unwrap();
    let sender = queue.clone();
    let waiting = tokio::spawn(async move { sender.send_bytes(Bytes::from_static(b"b")).await });
    assert_eq!(
        rx.recv().await,
        Some(Outbound::Frame(Bytes::from_static(b"a")))
    );
    waiting.await.unwrap().unwrap();
    drop(queue);
    assert_eq!(
        rx.recv().await,
        Some(Outbound::Frame(Bytes::from_static(b"b")))
    );
    assert_eq!(rx.recv().await, None, "every sender is gone");
    assert_eq!(rx.try_recv(), Err(Empty));
}

#[test]
fn an_idle_queue_holds_no_slots_and_an_emptied_one_gives_them_back() {
    let (queue, mut rx) = FrameQueue::new(1, 4096);
    assert_eq!(queue.state.items().capacity(), 0, "nothing allocated");
    for _ in 0..1000 {
        queue.try_send(Bytes::from_static(b"x")).unwrap();
    }
    while rx.try_recv().is_ok() {}
    assert!(queue.state.items().capacity() <= KEEP_SLOTS);
    assert_eq!(queue.state.room.available_permits(), 4096);
}

const DOC: DocId = DocId([4; 16]);
const OTHER: DocId = DocId([5; 16]);
const LIMITS: PageLimits = PageLimits {
    max_items: 1000,
    max_bytes: 1 << 20,
};

fn delta(n: u32, len: usize) -> PushDelta {
    let mut id = [0xab; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    PushDelta {
        id: syncline_protocol::DeltaId(id),
        bytes: vec![n as u8; len],
    }
}

/// An encoded `Tentative` of `doc` with deltas `ns`, and what it is.
fn tentative(doc: DocId, ns: impl IntoIterator<Item = u32>) -> (Bytes, Live) {
    let deltas: Vec<PushDelta> = ns.into_iter().map(|n| delta(n, 5)).collect();
    let live = Live::Tentative {
        doc,
        deltas: deltas.len(),
    };
    let frame = RelayFrame::Tentative { doc, deltas };
    (Bytes::from(encode_relay(&frame)), live)
}

fn committed(after: u64, seq: u64, ns: impl IntoIterator<Item = u32>) -> (Bytes, Live) {
    let ids: Vec<_> = ns.into_iter().map(|n| delta(n, 0).id).collect();
    let live = Live::Committed {
        doc: DOC,
        after,
        seq,
        ids: ids.len(),
    };
    let frame = RelayFrame::Committed {
        doc: DOC,
        after,
        seq,
        ids,
    };
    (Bytes::from(encode_relay(&frame)), live)
}

fn offer(queue: &FrameQueue, (frame, live): (Bytes, Live)) -> Result<(), TrySendError> {
    queue.try_send_live(frame, live, LIMITS)
}

fn drain(rx: &mut FrameReceiver) -> Vec<RelayFrame> {
    let mut frames = Vec::new();
    while let Ok(Outbound::Frame(bytes)) = rx.try_recv() {
        frames.push(decode_relay(&bytes).expect("a valid frame"));
    }
    frames
}

fn decoded((frame, _): (Bytes, Live)) -> RelayFrame {
    decode_relay(&frame).unwrap()
}

#[test]
fn tentatives_queued_while_the_writer_lags_go_out_as_one_frame_in_order() {
    let (queue, mut rx) = FrameQueue::new(1, 1024);
    for n in 0..300 {
        offer(&queue, tentative(DOC, [n])).unwrap();
    }
    assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, 0..300))]);
    // Every part's slot is back.
    assert_eq!(queue.state.room.available_permits(), 1024);
}

#[tokio::test]
async fn an_idle_writer_gets_each_tentative_at_once_as_it_was_encoded() {
    let (queue, mut rx) = FrameQueue::new(1, 1024);
    for n in 0..5 {
        let (frame, live) = tentative(DOC, [n]);
        let ptr = frame.as_ptr();
        queue.try_send_live(frame.clone(), live, LIMITS).unwrap();
        // The writer, waiting for the next frame, gets this one alone
        // and as it was encoded (not re-encoded).
        let Some(Outbound::Frame(got)) = rx.recv().await else {
            panic!("a frame");
        };
        assert_eq!((got.as_ptr(), &got), (ptr, &frame));
        assert_eq!(rx.try_recv(), Err(Empty));
    }
}

#[test]
fn the_splice_is_byte_for_byte_the_encoding_of_the_merged_frame() {
    // Counts crossing the one- and two-byte varint boundaries, empty
    // and large deltas.
    for (sizes, lens) in [
        (vec![1, 1], vec![0, 70_000]),
        (vec![127, 1], vec![3, 3]),
        (vec![100, 28, 1], vec![1, 200]),
        (vec![16_383, 1], vec![2, 0]),
    ] {
        let mut n = 0u32;
        let mut all = Vec::new();
        let mut parts = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let deltas: Vec<PushDelta> = (0..*size)
                .map(|_| {
                    n += 1;
                    delta(n, lens[i % lens.len()])
                })
                .collect();
            all.extend(deltas.clone());
            parts.push(Bytes::from(encode_relay(&RelayFrame::Tentative {
                doc: DOC,
                deltas,
            })));
        }
        let expected = encode_relay(&RelayFrame::Tentative {
            doc: DOC,
            deltas: all,
        });
        assert_eq!(
            splice_tentative(DOC, &parts).as_deref(),
            Some(&expected[..])
        );
        assert_eq!(&merge_tentative(DOC, &parts)[..], &expected[..]);
    }
}

#[test]
fn merged_tentatives_stay_within_the_frame_limits() {
    let (queue, mut rx) = FrameQueue::new(1, 1024);
    let limits = PageLimits {
        max_items: 3,
        max_bytes: usize::MAX,
    };
    for n in 0..7 {
        let (frame, live) = tentative(DOC, [n]);
        queue.try_send_live(frame, live, limits).unwrap();
    }
    assert_eq!(
        drain(&mut rx),
        vec![
            decoded(tentative(DOC, 0..3)),
            decoded(tentative(DOC, 3..6)),
            decoded(tentative(DOC, 6..7)),
        ]
    );
    // By bytes: two parts fit, a third would not.
    let (one, _) = tentative(DOC, [0]);
    let limits = PageLimits {
        max_items: 1000,
        max_bytes: 2 * one.len(),
    };
    for n in 0..5 {
        let (frame, live) = tentative(DOC, [n]);
        queue.try_send_live(frame, live, limits).unwrap();
    }
    assert_eq!(
        drain(&mut rx),
        vec![
            decoded(tentative(DOC, 0..2)),
            decoded(tentative(DOC, 2..4)),
            decoded(tentative(DOC, 4..5)),
        ]
    );
}

#[test]
fn a_tentative_joins_its_document_s_across_committed_frames_only() {
    let (queue, mut rx) = FrameQueue::new(1, 1024);
    offer(&queue, tentative(DOC, [1])).unwrap();
    offer(&queue, committed(0, 1, [1])).unwrap();
    // Ahead of the `Committed`: still before any range covering it.
    offer(&queue, tentative(DOC, [2])).unwrap();
    // Chained: one range.
    offer(&queue, committed(1, 2, [2])).unwrap();
    assert_eq!(
        drain(&mut rx),
        vec![
            decoded(tentative(DOC, [1, 2])),
            decoded(committed(0, 2, [1, 2]))
        ]
    );

    // Not past another document's frame, a plain frame, or into a
    // frame the writer already took.
    offer(&queue, tentative(DOC, [1])).unwrap();
    offer(&queue, tentative(OTHER, [2])).unwrap();
    offer(&queue, tentative(DOC, [3])).unwrap();
    queue
        .try_send(Bytes::from(encode_relay(&RelayFrame::Pong { nonce: 9 })))
        .unwrap();
    offer(&queue, tentative(DOC, [4])).unwrap();
    assert_eq!(
        drain(&mut rx),
        vec![
            decoded(tentative(DOC, [1])),
            decoded(tentative(OTHER, [2])),
            decoded(tentative(DOC, [3])),
            RelayFrame::Pong { nonce: 9 },
            decoded(tentative(DOC, [4])),
        ]
    );
    offer(&queue, tentative(DOC, [5])).unwrap();
    assert_eq!(rx.try_recv().map(|_| ()), Ok(()));
    offer(&queue, tentative(DOC, [6])).unwrap();
    assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, [6]))]);
}

#[test]
fn only_chained_committed_ranges_of_one_document_merge_within_the_id_bound() {
    let (queue, mut rx) = FrameQueue::new(1, 1024);
    offer(&queue, committed(0, 2, [1, 2])).unwrap();
    // Not chained (a resubscription starts a new run): kept apart.
    offer(&queue, committed(5, 6, [6])).unwrap();
    offer(&queue, committed(6, 9, [])).unwrap();
    offer(&queue, tentative(DOC, [10])).unwrap();
    // Not into a frame behind the `Tentative`.
    offer(&queue, committed(9, 10, [10])).unwrap();
    assert_eq!(
        drain(&mut rx),
        vec![
            decoded(committed(0, 2, [1, 2])),
            decoded(committed(5, 9, [6])),
            decoded(tentative(DOC, [10])),
            decoded(committed(9, 10, [10])),
        ]
    );
    let max = MAX_DELTAS_PER_FRAME as u32;
    offer(&queue, committed(0, u64::from(max), 0..max)).unwrap();
    offer(&queue, committed(u64::from(max), u64::from(max) + 1, [max])).unwrap();
    assert_eq!(drain(&mut rx).len(), 2, "no frame past the id bound");
}

#[tokio::test]
async fn merged_offers_still_take_a_slot_each_so_a_lagging_subscriber_is_refused() {
    let (queue, mut rx) = FrameQueue::new(1, 3);
    for n in 0..3 {
        offer(&queue, tentative(DOC, [n])).unwrap();
    }
    assert_eq!(
        offer(&queue, tentative(DOC, [3])),
        Err(TrySendError::Full),
        "three offers fill three slots, merged or not"
    );
    assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, 0..3))]);
    offer(&queue, tentative(DOC, [3])).unwrap();
}

#[tokio::test]
async fn the_queue_is_bounded_in_bytes_as_well_as_frames() {
    let (queue, mut rx) = FrameQueue::with_bytes(1, 1024, 1000);
    queue.try_send(Bytes::from(vec![1; 600])).unwrap();
    assert_eq!(
        queue.try_send(Bytes::from(vec![2; 600])),
        Err(TrySendError::Full),
        "1,022 free slots, but 400 free bytes"
    );
    queue.try_send(Bytes::from(vec![3; 400])).unwrap();
    assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(f)) if f.len() == 600));
    // A frame larger than the whole budget takes all of it, once free.
    let waiting = tokio::spawn(async move {
        queue.send_bytes(Bytes::from(vec![4; 5000])).await.unwrap();
        queue
    });
    assert!(matches!(rx.recv().await, Some(Outbound::Frame(f)) if f.len() == 400));
    let queue = waiting.await.unwrap();
    assert!(matches!(rx.recv().await, Some(Outbound::Frame(f)) if f.len() == 5000));
    queue.try_send(Bytes::from(vec![5; 1000])).unwrap();
}
