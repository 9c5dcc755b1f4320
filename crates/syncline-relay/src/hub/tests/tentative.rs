//! Tests of version 2 live delivery: `Tentative` when a push arrives,
//! `Committed` once its group commit is published.

use super::*;
use syncline_protocol::{MAX_DELTAS_PER_FRAME, PushDelta};

/// What a push of the deltas that will be stored as `seqs` carries.
fn pushed(seqs: impl IntoIterator<Item = u64>) -> Vec<PushDelta> {
    seqs.into_iter()
        .map(delta)
        .map(|d| PushDelta {
            id: d.id,
            bytes: d.bytes,
        })
        .collect()
}

fn ids(seqs: impl IntoIterator<Item = u64>) -> Vec<DeltaId> {
    seqs.into_iter().map(|seq| delta(seq).id).collect()
}

fn live_v2(hub: &Hub, queue: FrameQueue, sent_through: u64) {
    let id = queue.id();
    hub.subscribe(DOC, queue, [id as u8; 16], Delivery::Tentative);
    assert!(matches!(
        hub.take_pending(DOC, id, sent_through),
        Pending::Live
    ));
}

/// Fans a push from `from` of the deltas to be stored as `seqs` out
/// tentatively; returns its fan-out for the commit.
fn push(hub: &Hub, from: ConnId, seqs: std::ops::RangeInclusive<u64>) -> Fanout {
    let mut deltas = pushed(seqs.clone());
    let before = deltas.clone();
    let tentative = hub.tentative(DOC, from, &mut deltas);
    assert_eq!(deltas, before, "the push is left as it was");
    Fanout {
        doc: DOC,
        origin: from,
        tentative,
        deltas: batch(&seqs.collect::<Vec<_>>()),
    }
}

fn tentative(seqs: impl IntoIterator<Item = u64>) -> RelayFrame {
    RelayFrame::Tentative {
        doc: DOC,
        deltas: pushed(seqs),
    }
}

fn committed(after: u64, seq: u64, ids: Vec<DeltaId>) -> RelayFrame {
    RelayFrame::Committed {
        doc: DOC,
        after,
        seq,
        ids,
    }
}

#[test]
fn a_push_is_sent_tentatively_before_its_commit_and_committed_after_it() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 16);
    live_v2(&hub, a, 0);
    live_v2(&hub, b, 0);

    // B pushes: A hears of it at once, before any commit; B does not.
    let first = push(&hub, 2, 1..=2);
    assert_eq!(frames(&mut rx_a), vec![tentative(1..=2)]);
    assert!(frames(&mut rx_b).is_empty(), "the pusher is not echoed");

    // The commit: both learn the range is durable; B's own deltas are in
    // its range but not in its ids.
    hub.publish_group(&[first]);
    assert_eq!(frames(&mut rx_a), vec![committed(0, 2, ids(1..=2))]);
    assert_eq!(frames(&mut rx_b), vec![committed(0, 2, vec![])]);

    // And the other way round, continuing from the last watermark.
    let second = push(&hub, 1, 3..=3);
    assert!(frames(&mut rx_a).is_empty());
    assert_eq!(frames(&mut rx_b), vec![tentative(3..=3)]);
    hub.publish_group(&[second]);
    assert_eq!(frames(&mut rx_a), vec![committed(2, 3, vec![])]);
    assert_eq!(frames(&mut rx_b), vec![committed(2, 3, ids(3..=3))]);
}

#[test]
fn a_group_of_several_pushes_is_one_committed_range_without_the_receiver_s_own() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (b, mut rx_b) = FrameQueue::new(2, 16);
    live_v2(&hub, a, 0);
    live_v2(&hub, b, 0);
    let group = [
        push(&hub, 1, 1..=2),
        push(&hub, 2, 3..=3),
        push(&hub, 1, 4..=4),
    ];
    assert_eq!(frames(&mut rx_a), vec![tentative(3..=3)]);
    // B's writer took nothing in between: its two tentative frames merged.
    assert_eq!(frames(&mut rx_b), vec![tentative([1, 2, 4])]);
    hub.publish_group(&group);
    assert_eq!(frames(&mut rx_a), vec![committed(0, 4, ids([3]))]);
    assert_eq!(frames(&mut rx_b), vec![committed(0, 4, ids([1, 2, 4]))]);
}

#[test]
fn a_subscriber_that_went_live_after_a_push_gets_it_tentatively_before_the_committed() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    let (c, mut rx_c) = FrameQueue::new(3, 16);
    live_v2(&hub, a, 0);
    hub.subscribe(DOC, c, [3; 16], Delivery::Tentative);

    // Pushed while C catches up: C is not sent it.
    let early = push(&hub, 2, 1..=1);
    assert_eq!(frames(&mut rx_a), vec![tentative(1..=1)]);
    assert!(frames(&mut rx_c).is_empty(), "nothing while catching up");
    // C goes live (its catch-up found nothing), then B pushes again.
    assert!(matches!(hub.take_pending(DOC, 3, 0), Pending::Live));
    let late = push(&hub, 2, 2..=2);
    assert_eq!(frames(&mut rx_a), vec![tentative(2..=2)]);
    assert_eq!(frames(&mut rx_c), vec![tentative(2..=2)]);

    // Both commit in one group: C gets the one it missed, then the range.
    hub.publish_group(&[early, late]);
    assert_eq!(frames(&mut rx_a), vec![committed(0, 2, ids(1..=2))]);
    assert_eq!(
        frames(&mut rx_c),
        vec![tentative(1..=1), committed(0, 2, ids(1..=2))]
    );
}

#[test]
fn a_resubscription_forgets_the_tentative_deltas_the_old_one_was_sent() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    live_v2(&hub, a.clone(), 0);
    let fanout = push(&hub, 2, 1..=1);
    assert_eq!(frames(&mut rx_a), vec![tentative(1..=1)]);
    // A subscribes again (from 0) and goes live before the commit.
    live_v2(&hub, a, 0);
    hub.publish_group(&[fanout]);
    assert_eq!(
        frames(&mut rx_a),
        vec![tentative(1..=1), committed(0, 1, ids([1]))]
    );
}

#[test]
fn version_1_subscribers_get_no_tentative_and_committed_deltas_as_before() {
    let hub = hub();
    let (v1, mut rx_v1) = FrameQueue::new(1, 16);
    let (v1_pusher, mut rx_pusher) = FrameQueue::new(2, 16);
    let (v2, mut rx_v2) = FrameQueue::new(3, 16);
    live(&hub, v1, 1);
    live(&hub, v1_pusher, 2);
    live_v2(&hub, v2, 0);
    let fanout = push(&hub, 2, 1..=2);
    assert!(frames(&mut rx_v1).is_empty(), "no Tentative for version 1");
    assert_eq!(frames(&mut rx_v2), vec![tentative(1..=2)]);
    hub.publish_group(&[fanout]);
    assert_eq!(received_seqs(&mut rx_v1), vec![1, 2]);
    assert!(
        frames(&mut rx_pusher).is_empty(),
        "a v1 pusher is not echoed"
    );
    assert_eq!(frames(&mut rx_v2), vec![committed(0, 2, ids(1..=2))]);
}

#[test]
fn what_a_subscriber_already_has_is_neither_resent_nor_committed_again() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    // Its catch-up read seqs up to 5, committed but not published yet.
    live_v2(&hub, a, 5);
    hub.publish_group(&[fanout(DOC, 2, &[4, 5])]);
    assert!(frames(&mut rx_a).is_empty(), "a group all at or below 5");
    // Partly known: only 6 is new (it never saw it: sent now).
    hub.publish_group(&[fanout(DOC, 2, &[5, 6])]);
    assert_eq!(
        frames(&mut rx_a),
        vec![tentative(6..=6), committed(5, 6, ids([6]))]
    );
    hub.publish_group(&[fanout(DOC, 2, &[6])]);
    assert!(frames(&mut rx_a).is_empty());
}

#[test]
fn committed_past_the_frame_limit_is_split_into_chained_ranges() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 64);
    live_v2(&hub, a, 0);
    const LAST: u64 = 2 * MAX_DELTAS_PER_FRAME as u64 + 100;
    let own = 5001..=5010;
    // Fanned out before the commit: A has the others' deltas already.
    let group = [
        push(&hub, 2, 1..=*own.start() - 1),
        push(&hub, 1, own.clone()),
        push(&hub, 2, *own.end() + 1..=LAST),
    ];
    frames(&mut rx_a);
    hub.publish_group(&group);
    let got = frames(&mut rx_a);
    let mut after_expected = 0;
    let mut all_ids = Vec::new();
    for frame in &got {
        let RelayFrame::Committed {
            doc,
            after,
            seq,
            ids,
        } = frame
        else {
            panic!("expected Committed, got {frame:?}");
        };
        assert_eq!((*doc, *after), (DOC, after_expected), "chained ranges");
        assert!(seq > after && ids.len() <= MAX_DELTAS_PER_FRAME);
        all_ids.extend(ids.iter().copied());
        after_expected = *seq;
    }
    assert_eq!(got.len(), 3);
    assert_eq!(after_expected, LAST);
    let expected: Vec<DeltaId> = ids((1..=LAST).filter(|seq| !own.contains(seq)));
    assert_eq!(all_ids, expected);
    // Only the last frame may hold fewer than the most ids.
    let full = |f: &RelayFrame| matches!(f, RelayFrame::Committed { ids, .. } if ids.len() == MAX_DELTAS_PER_FRAME);
    assert!(full(&got[0]) && full(&got[1]));
}

#[test]
fn the_tentative_and_re_sent_deltas_respect_the_frame_limits() {
    let hub = hub_with(HubLimits {
        frame: PageLimits {
            max_items: 2,
            max_bytes: usize::MAX,
        },
        ..HubLimits::default()
    });
    let (a, mut rx_a) = FrameQueue::new(1, 16);
    live_v2(&hub, a, 0);
    let fanout = push(&hub, 2, 1..=5);
    assert_eq!(
        frames(&mut rx_a),
        vec![tentative(1..=2), tentative(3..=4), tentative(5..=5)]
    );
    hub.publish_group(&[fanout, fanout_stamped(6..=8, 0)]);
    assert_eq!(
        frames(&mut rx_a),
        vec![
            tentative(6..=7),
            tentative(8..=8),
            committed(0, 8, ids(1..=8))
        ]
    );
}

fn fanout_stamped(seqs: std::ops::RangeInclusive<u64>, tentative: u64) -> Fanout {
    Fanout {
        tentative,
        ..fanout(DOC, 2, &seqs.collect::<Vec<_>>())
    }
}

#[tokio::test]
async fn a_full_queue_on_a_tentative_fan_out_kicks_the_subscriber() {
    let hub = hub();
    let (slow, _rx) = FrameQueue::new(1, 1);
    live_v2(&hub, slow.clone(), 0);
    push(&hub, 2, 1..=1);
    push(&hub, 2, 2..=2);
    tokio::time::timeout(std::time::Duration::from_secs(5), slow.kicked())
        .await
        .expect("the slow subscriber was kicked");
    assert_eq!(hub.active_docs(), 0, "and dropped");
}

#[test]
fn while_the_writer_lags_pushes_merge_into_one_tentative_and_commits_into_one_committed() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 64);
    live_v2(&hub, a, 0);
    // Nobody takes A's frames: pushes and commits interleave in its queue.
    let g1 = [push(&hub, 2, 1..=1), push(&hub, 3, 2..=2)];
    hub.publish_group(&g1);
    let g2 = [push(&hub, 2, 3..=4), push(&hub, 3, 5..=5)];
    hub.publish_group(&g2);
    let g3 = [push(&hub, 1, 6..=6), push(&hub, 2, 7..=7)];
    hub.publish_group(&g3);
    // Each delta's tentative copy still comes before the range covering
    // it; the ranges chain into one; A's own push is in it, not its ids.
    let ids_of_others = ids([1, 2, 3, 4, 5, 7]);
    assert_eq!(
        frames(&mut rx_a),
        vec![
            tentative([1, 2, 3, 4, 5, 7]),
            committed(0, 7, ids_of_others)
        ]
    );
}

#[test]
fn an_idle_writer_gets_each_push_and_commit_at_once_as_its_own_frame() {
    let hub = hub();
    let (a, mut rx_a) = FrameQueue::new(1, 64);
    live_v2(&hub, a, 0);
    for seq in 1..=3 {
        let fanout = push(&hub, 2, seq..=seq);
        assert_eq!(frames(&mut rx_a), vec![tentative(seq..=seq)]);
        hub.publish_group(&[fanout]);
        assert_eq!(frames(&mut rx_a), vec![committed(seq - 1, seq, ids([seq]))]);
    }
}

#[test]
fn a_tentative_never_merges_past_another_kind_of_frame_or_another_document() {
    let hub = hub();
    let other = DocId([7; 16]);
    let (a, mut rx_a) = FrameQueue::new(1, 64);
    let (b, _rx_b) = FrameQueue::new(2, 64);
    live_v2(&hub, a.clone(), 0);
    live_v2(&hub, b, 0);
    hub.subscribe(other, a, [1; 16], Delivery::Tentative);
    assert!(matches!(hub.take_pending(other, 1, 0), Pending::Live));

    push(&hub, 3, 1..=1);
    hub.set_presence(DOC, 2, vec![5]).unwrap();
    push(&hub, 3, 2..=2);
    hub.tentative(other, 3, &mut pushed(9..=9));
    push(&hub, 3, 3..=3);
    assert_eq!(
        frames(&mut rx_a),
        vec![
            tentative(1..=1),
            RelayFrame::Presence {
                doc: DOC,
                from: [2; 16],
                bytes: vec![5]
            },
            tentative(2..=2),
            RelayFrame::Tentative {
                doc: other,
                deltas: pushed(9..=9)
            },
            tentative(3..=3),
        ]
    );
}
