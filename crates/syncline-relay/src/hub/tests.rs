//! Tests of the hub's ordering, slow-subscriber and presence rules (with
//! version 1 delivery; version 2's in `tests/tentative.rs`).

mod tentative;

use super::*;
use crate::frame_queue::{FrameReceiver, Outbound};
use crate::store::Fanout;
use syncline_protocol::{DeltaId, decode_relay};

const DOC: DocId = DocId([9; 16]);

fn hub() -> Hub {
    hub_with(HubLimits::default())
}

fn hub_with(limits: HubLimits) -> Hub {
    Hub::new(limits, Arc::new(Metrics::default()))
}

fn delta(seq: u64) -> SequencedDelta {
    let mut id = [0xd1; 32];
    id[..8].copy_from_slice(&seq.to_le_bytes());
    SequencedDelta {
        seq,
        id: DeltaId(id),
        bytes: vec![seq as u8; 10],
    }
}

fn batch(seqs: &[u64]) -> Arc<[SequencedDelta]> {
    seqs.iter().copied().map(delta).collect()
}

fn frames(rx: &mut FrameReceiver) -> Vec<RelayFrame> {
    let mut frames = Vec::new();
    while let Ok(Outbound::Frame(bytes)) = rx.try_recv() {
        frames.push(decode_relay(&bytes).unwrap());
    }
    frames
}

fn received_seqs(rx: &mut FrameReceiver) -> Vec<u64> {
    let mut seqs = Vec::new();
    for frame in frames(rx) {
        match frame {
            RelayFrame::Deltas { items, .. } => seqs.extend(items.iter().map(|d| d.seq)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    seqs
}

fn live(hub: &Hub, queue: FrameQueue, replica: u8) {
    let id = queue.id();
    hub.subscribe(DOC, queue, [replica; 16], Delivery::Deltas);
    assert!(matches!(hub.take_pending(DOC, id, 0), Pending::Live));
}

#[test]
fn deltas_published_during_catch_up_wait_then_the_subscription_goes_live() {
    let hub = hub();
    let (sub, mut rx) = FrameQueue::new(1, 16);
    hub.subscribe(DOC, sub, [1; 16], Delivery::Deltas);
    hub.publish(DOC, 2, &batch(&[1, 2]));
    assert!(rx.try_recv().is_err(), "nothing is sent while catching up");
    let Pending::Deltas(batches) = hub.take_pending(DOC, 1, 0) else {
        panic!("expected pending deltas");
    };
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 2);
    assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Live));
    hub.publish(DOC, 2, &batch(&[3]));
    assert_eq!(received_seqs(&mut rx), vec![3]);
}

#[test]
fn deltas_the_catch_up_already_sent_are_not_sent_again_live() {
    let hub = hub();
    let (sub, mut rx) = FrameQueue::new(1, 16);
    hub.subscribe(DOC, sub, [1; 16], Delivery::Deltas);
    // The catch-up read saw seqs up to 5, committed but not yet published.
    assert!(matches!(hub.take_pending(DOC, 1, 5), Pending::Live));
    hub.publish(DOC, 2, &batch(&[4, 5]));
    hub.publish(DOC, 2, &batch(&[5, 6]));
    hub.publish(DOC, 2, &batch(&[7]));
    assert_eq!(received_seqs(&mut rx), vec![6, 7]);
}

#[test]
fn the_pusher_is_not_echoed() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 16);
    live(&hub, a, 1);
    live(&hub, b, 2);
    hub.publish(DOC, 1, &batch(&[1]));
    assert_eq!(received_seqs(&mut rx_a), Vec::<u64>::new());
    assert_eq!(received_seqs(&mut rx_b), vec![1]);
}

fn fanout(doc: DocId, origin: ConnId, seqs: &[u64]) -> Fanout {
    Fanout {
        doc,
        origin,
        tentative: 0,
        deltas: batch(seqs),
    }
}

#[test]
fn a_group_commit_reaches_each_subscriber_as_one_frame_per_document_without_its_own_deltas() {
    const OTHER: DocId = DocId([8; 16]);
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 16);
    let (c, mut rx_c) = FrameQueue::new(3, 16);
    live(&hub, a, 1);
    live(&hub, b, 2);
    live(&hub, c.clone(), 3);
    hub.subscribe(OTHER, c, [3; 16], Delivery::Deltas);
    assert!(matches!(hub.take_pending(OTHER, 3, 0), Pending::Live));
    // One group commit: A pushed 1–2, B pushed 3, another doc in between,
    // then A pushed 4.
    hub.publish_group(&[
        fanout(DOC, 1, &[1, 2]),
        fanout(DOC, 2, &[3]),
        fanout(OTHER, 1, &[1]),
        fanout(DOC, 1, &[4]),
    ]);
    let seqs_per_frame = |rx: &mut FrameReceiver| -> Vec<(DocId, Vec<u64>)> {
        frames(rx)
            .into_iter()
            .map(|frame| match frame {
                RelayFrame::Deltas { doc, items, .. } => {
                    (doc, items.iter().map(|d| d.seq).collect())
                }
                other => panic!("unexpected frame {other:?}"),
            })
            .collect()
    };
    assert_eq!(seqs_per_frame(&mut rx_a), vec![(DOC, vec![3])]);
    assert_eq!(seqs_per_frame(&mut rx_b), vec![(DOC, vec![1, 2, 4])]);
    let mut c_frames = seqs_per_frame(&mut rx_c);
    c_frames.sort_by_key(|(doc, _)| doc.0);
    assert_eq!(c_frames, vec![(OTHER, vec![1]), (DOC, vec![1, 2, 3, 4])]);
}

#[test]
fn a_group_commit_waits_for_a_catching_up_subscriber_without_its_own_deltas() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    hub.subscribe(DOC, a, [1; 16], Delivery::Deltas);
    hub.publish_group(&[fanout(DOC, 1, &[1]), fanout(DOC, 2, &[2, 3])]);
    assert!(
        rx_a.try_recv().is_err(),
        "nothing is sent while catching up"
    );
    let Pending::Deltas(batches) = hub.take_pending(DOC, 1, 0) else {
        panic!("expected pending deltas");
    };
    let seqs: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.iter().map(|d| d.seq))
        .collect();
    assert_eq!(seqs, vec![2, 3]);
}

#[tokio::test]
async fn a_slow_live_subscriber_is_kicked_and_dropped() {
    let hub = hub();
    let (slow, _rx) = FrameQueue::new(1, 1);
    live(&hub, slow.clone(), 1);
    hub.publish(DOC, 2, &batch(&[1]));
    hub.publish(DOC, 2, &batch(&[2]));
    tokio::time::timeout(std::time::Duration::from_secs(5), slow.kicked())
        .await
        .expect("the slow subscriber was kicked");
    assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Gone));
    assert_eq!(hub.active_docs(), 0, "the empty document is forgotten");
}

#[tokio::test]
async fn a_subscriber_falling_behind_during_catch_up_is_kicked() {
    let hub = hub_with(HubLimits {
        max_pending: 3,
        ..HubLimits::default()
    });
    let (sub, _rx) = FrameQueue::new(1, 16);
    hub.subscribe(DOC, sub.clone(), [1; 16], Delivery::Deltas);
    hub.publish(DOC, 2, &batch(&[1, 2]));
    hub.publish(DOC, 2, &batch(&[3, 4]));
    tokio::time::timeout(std::time::Duration::from_secs(5), sub.kicked())
        .await
        .expect("kicked");
    assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Gone));
}

#[test]
fn unsubscribed_documents_are_forgotten() {
    let hub = hub();
    let (sub, _rx) = FrameQueue::new(1, 16);
    hub.subscribe(DOC, sub, [1; 16], Delivery::Deltas);
    assert_eq!(hub.active_docs(), 1);
    hub.unsubscribe(DOC, 1);
    assert_eq!(hub.active_docs(), 0);
    hub.unsubscribe(DOC, 1);
    hub.publish(DOC, 2, &batch(&[1]));
    assert_eq!(hub.active_docs(), 0);
}

#[test]
fn presence_reaches_live_peers_newcomers_and_says_gone() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 16);
    live(&hub, a, 0xa);
    live(&hub, b, 0xb);
    assert_eq!(
        hub.set_presence(DocId([1; 16]), 1, vec![1]),
        Err(NotSubscribed)
    );
    hub.set_presence(DOC, 1, b"cursor 1".to_vec()).unwrap();
    hub.set_presence(DOC, 1, b"cursor 2".to_vec()).unwrap();
    assert!(frames(&mut rx_a).is_empty(), "not echoed");
    let expect = |bytes: &[u8]| RelayFrame::Presence {
        doc: DOC,
        from: [0xa; 16],
        bytes: bytes.to_vec(),
    };
    assert_eq!(
        frames(&mut rx_b),
        vec![expect(b"cursor 1"), expect(b"cursor 2")]
    );

    // A newcomer catching up hears nothing until it goes live, then gets
    // the latest presence only.
    let (c, mut rx_c) = FrameQueue::new(3, 16);
    hub.subscribe(DOC, c, [0xc; 16], Delivery::Deltas);
    hub.set_presence(DOC, 1, b"cursor 3".to_vec()).unwrap();
    assert!(frames(&mut rx_c).is_empty());
    assert!(matches!(hub.take_pending(DOC, 3, 0), Pending::Live));
    assert_eq!(frames(&mut rx_c), vec![expect(b"cursor 3")]);

    // A owner leaving: the others hear "gone" (empty bytes); B had none.
    hub.unsubscribe(DOC, 1);
    assert_eq!(frames(&mut rx_b), vec![expect(b"cursor 3"), expect(b"")]);
    assert_eq!(frames(&mut rx_c), vec![expect(b"")]);
    hub.unsubscribe(DOC, 2);
    assert!(frames(&mut rx_c).is_empty(), "B never had presence");
}

#[test]
fn presence_to_a_full_queue_is_dropped_not_kicked() {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(HubLimits::default(), Arc::clone(&metrics));
    let (a, _rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 1);
    live(&hub, a, 1);
    live(&hub, b, 2);
    hub.set_presence(DOC, 1, vec![1]).unwrap();
    hub.set_presence(DOC, 1, vec![2]).unwrap();
    assert_eq!(metrics.presence_out.get(), 1);
    assert_eq!(metrics.presence_dropped.get(), 1);
    assert_eq!(frames(&mut rx_b).len(), 1);
    // Still subscribed: deltas reach it.
    hub.publish(DOC, 1, &batch(&[1]));
    assert_eq!(received_seqs(&mut rx_b), vec![1]);
}

#[test]
fn frames_respect_item_and_byte_limits() {
    let items: Vec<_> = (1..=5).map(delta).collect();
    let by_items = PageLimits {
        max_items: 2,
        max_bytes: usize::MAX,
    };
    assert_eq!(delta_frames(DOC, &items, by_items, true).len(), 3);
    let by_bytes = PageLimits {
        max_items: 100,
        max_bytes: 25,
    };
    assert_eq!(delta_frames(DOC, &items, by_bytes, true).len(), 3);
    let tiny = PageLimits {
        max_items: 100,
        max_bytes: 1,
    };
    assert_eq!(delta_frames(DOC, &items, tiny, true).len(), 5);
    assert!(delta_frames(DOC, &[], tiny, true).is_empty());
}

#[tokio::test]
async fn a_kicked_subscriber_s_presence_is_reported_gone() {
    let hub = hub();
    let (slow, _rx_slow) = FrameQueue::new(1, 1);
    let (peer, mut rx_peer) = FrameQueue::new(2, 16);
    live(&hub, slow.clone(), 1);
    live(&hub, peer, 2);
    hub.set_presence(DOC, 1, b"here".to_vec()).unwrap();
    assert_eq!(frames(&mut rx_peer).len(), 1);
    // The slow one's queue (1 frame) fills with the first delta.
    hub.publish(DOC, 3, &batch(&[1]));
    hub.publish(DOC, 3, &batch(&[2]));
    tokio::time::timeout(std::time::Duration::from_secs(5), slow.kicked())
        .await
        .expect("kicked");
    let got = frames(&mut rx_peer);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[2],
        RelayFrame::Presence {
            doc: DOC,
            from: [1; 16],
            bytes: vec![]
        }
    );
}
