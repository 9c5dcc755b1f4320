//! Live delivery: tentative fan-out when a push arrives, and publishing
//! what each group commit stored (see the [hub's module docs](super) for
//! the rules and what each protocol version is promised).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use syncline_protocol::{DocId, PushDelta, SequencedDelta};

use super::frames::{LiveFrame, committed_frames, delta_frames, tentative_frames};
use super::{Delivery, Hub, State, Subscription, gone_frame};
use crate::frame_queue::{ConnId, Live, TrySendError};
use crate::store::{Fanout, PageLimits, Publish};

/// Subscribers kicked while delivering, whose presence must be reported
/// gone: (connection, replica).
type Gone = Vec<(ConnId, [u8; 16])>;

/// Queues `frames` to a live subscriber: live frames of version 2 (`Some`)
/// to be merged with queued ones where the queue may (within `limits`),
/// version 1 `Deltas` (`None`) as they are. `false` when it must be
/// dropped: its connection is closed, or its queue was full (then it is
/// kicked).
fn deliver<'a>(
    doc: DocId,
    conn: ConnId,
    sub: &Subscription,
    frames: impl IntoIterator<Item = (&'a Bytes, Option<Live>)>,
    limits: PageLimits,
    gone: &mut Gone,
) -> bool {
    for (frame, live) in frames {
        let sent = match live {
            Some(live) => sub.queue.try_send_live(frame.clone(), live, limits),
            None => sub.queue.try_send(frame.clone()),
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full) => {
                kick(doc, conn, sub, "queue full", gone);
                return false;
            }
            Err(TrySendError::Closed) => return false,
        }
    }
    true
}

fn as_live(frames: &[LiveFrame]) -> impl Iterator<Item = (&Bytes, Option<Live>)> {
    frames.iter().map(|(frame, live)| (frame, Some(*live)))
}

fn kick(doc: DocId, conn: ConnId, sub: &Subscription, why: &str, gone: &mut Gone) {
    tracing::warn!(conn, %doc, "subscriber too slow: {why}, disconnecting");
    sub.queue.kick();
    if sub.presence.is_some() {
        gone.push((conn, sub.replica));
    }
}

impl Hub {
    /// Fans a push that passed validation out to `doc`'s live version 2
    /// subscribers other than `from`, as `Tentative` frames, **before** it
    /// is committed; returns the push's tentative stamp, to be carried in
    /// its [`Fanout`]. Call it right before submitting the push to the
    /// store. Never waits. `deltas` is unchanged when it returns (it is
    /// borrowed to encode the frames without copying the bytes).
    pub fn tentative(&self, doc: DocId, from: ConnId, deltas: &mut Vec<PushDelta>) -> u64 {
        // The other relays first: their subscribers are a bus hop further.
        self.to_tentative_sink(doc, deltas);
        let (stamp, _) = self.fan_out_tentative(doc, from, deltas);
        stamp
    }

    /// [`tentative`](Hub::tentative) without passing the push on to the
    /// bus: its stamp and how many deltas were queued (summed over the
    /// subscribers).
    pub(super) fn fan_out_tentative(
        &self,
        doc: DocId,
        from: ConnId,
        deltas: &mut Vec<PushDelta>,
    ) -> (u64, u64) {
        let mut docs = self.docs();
        // Under the lock, like every `live_since`: a subscription live now
        // has `live_since < stamp`, one going live later `>= stamp`.
        let stamp = self.inner.stamps.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(subscribers) = docs.get_mut(&doc) else {
            return (stamp, 0);
        };
        let limits = self.inner.limits;
        let mut frames: Option<Vec<LiveFrame>> = None;
        let mut gone = Gone::new();
        let mut sent = 0u64;
        subscribers.retain(|&conn, sub| {
            let to_it = conn != from
                && sub.delivery == Delivery::Tentative
                && matches!(sub.state, State::Live { .. });
            if !to_it {
                return true;
            }
            let frames = frames.get_or_insert_with(|| tentative_frames(doc, deltas, limits.frame));
            sent += deltas.len() as u64;
            deliver(doc, conn, sub, as_live(frames), limits.frame, &mut gone)
        });
        self.inner.metrics.deltas_out.add(sent);
        self.report_gone(doc, subscribers, gone);
        self.forget_if_empty(&mut docs, doc);
        (stamp, sent)
    }

    /// Hands newly committed deltas of `doc` to every subscriber but `from`
    /// (the pusher is not echoed), as never fanned out tentatively. Never
    /// waits. Call it after the commit, in commit order per document. One
    /// push's worth of [`publish_group`](Hub::publish_group).
    pub fn publish(&self, doc: DocId, from: ConnId, items: &Arc<[SequencedDelta]>) {
        self.publish_group(&[Fanout {
            doc,
            origin: from,
            tentative: 0,
            deltas: Arc::clone(items),
        }]);
    }

    /// Hands what one group commit stored to the subscribers, per
    /// document: to a version 1 subscriber **one** run of `Deltas` frames
    /// holding every fan-out of the group in order, except the deltas it
    /// pushed itself; to a version 2 subscriber the deltas it was not sent
    /// tentatively (as `Tentative`), then the `Committed` frames for the
    /// group's range. Never waits. Call it after the commit is durable, in
    /// commit order (the store's [`CommitGroup`](crate::store::CommitGroup)
    /// does).
    pub fn publish_group(&self, fanouts: &[Fanout]) {
        let mut docs = self.docs();
        let mut done = vec![false; fanouts.len()];
        for first in 0..fanouts.len() {
            if done[first] {
                continue;
            }
            let doc = fanouts[first].doc;
            let parts: Vec<&Fanout> = fanouts[first..]
                .iter()
                .zip(&mut done[first..])
                .filter(|(f, _)| f.doc == doc)
                .map(|(f, done)| {
                    *done = true;
                    f
                })
                .filter(|f| !f.deltas.is_empty())
                .collect();
            if parts.is_empty() {
                continue;
            }
            if let Some(subscribers) = docs.get_mut(&doc) {
                self.publish_doc(doc, subscribers, &parts);
                self.forget_if_empty(&mut docs, doc);
            }
        }
    }

    /// Publishes `parts` (fan-outs of `doc`, in sequence order, their
    /// sequences one dense run) to its subscribers.
    fn publish_doc(
        &self,
        doc: DocId,
        subscribers: &mut std::collections::HashMap<ConnId, Subscription>,
        parts: &[&Fanout],
    ) {
        let limits = self.inner.limits;
        let metrics = &self.inner.metrics;
        let first_seq = parts[0].deltas[0].seq;
        let last_seq = parts[parts.len() - 1].deltas.last().map_or(0, |d| d.seq);
        let total: usize = parts.iter().map(|p| p.deltas.len()).sum();
        // Encoded once, for every live subscriber that pushed none of them
        // and has delivered none of them yet (and, in version 2, got all
        // of them tentatively).
        let mut shared_deltas: Option<Vec<Bytes>> = None;
        let mut shared_committed: Option<Vec<LiveFrame>> = None;
        let mut gone = Gone::new();
        subscribers.retain(|&conn, sub| {
            let pushed_some = parts.iter().any(|p| p.origin == conn);
            let (sent_through, live_since) = match &mut sub.state {
                State::Live {
                    sent_through,
                    live_since,
                } => (sent_through, *live_since),
                State::CatchingUp {
                    pending,
                    pending_items,
                } => {
                    let others = parts.iter().filter(|p| p.origin != conn);
                    let count: usize = others.clone().map(|p| p.deltas.len()).sum();
                    if *pending_items + count > limits.max_pending {
                        kick(doc, conn, sub, "catch-up fell behind", &mut gone);
                        return false;
                    }
                    *pending_items += count;
                    pending.extend(others.map(|p| Arc::clone(&p.deltas)));
                    return true;
                }
            };
            if last_seq <= *sent_through {
                return true;
            }
            let plain = !pushed_some && first_seq > *sent_through;
            let t = *sent_through;
            *sent_through = last_seq;
            // The group's deltas it has not been sent or confirmed yet.
            let fresh = || {
                parts
                    .iter()
                    .flat_map(|p| p.deltas.iter().map(move |d| (*p, d)))
                    .filter(move |(_, d)| d.seq > t)
            };
            match sub.delivery {
                Delivery::Deltas => {
                    let own_frames;
                    let (frames, count) = if plain {
                        let frames = shared_deltas.get_or_insert_with(|| {
                            let all: Vec<SequencedDelta> =
                                fresh().map(|(_, d)| d.clone()).collect();
                            delta_frames(doc, &all, limits.frame, true)
                        });
                        (&*frames, total)
                    } else {
                        // Its own deltas left out, and (rarely) those the
                        // catch-up read already sent.
                        let others: Vec<SequencedDelta> = fresh()
                            .filter(|(p, _)| p.origin != conn)
                            .map(|(_, d)| d.clone())
                            .collect();
                        own_frames = delta_frames(doc, &others, limits.frame, true);
                        (&own_frames, others.len())
                    };
                    metrics.deltas_out.add(count as u64);
                    let frames = frames.iter().map(|f| (f, None));
                    deliver(doc, conn, sub, frames, limits.frame, &mut gone)
                }
                Delivery::Tentative => {
                    // Pushed while it was not live (or never fanned out):
                    // it has not seen them; they go first, as `Tentative`.
                    let missed = |p: &Fanout| p.origin != conn && p.tentative <= live_since;
                    if plain && !parts.iter().any(|p| missed(p)) {
                        let frames = shared_committed.get_or_insert_with(|| {
                            committed_frames(
                                doc,
                                t.max(first_seq.saturating_sub(1)),
                                fresh().map(|(_, d)| (d.seq, Some(d.id))),
                            )
                        });
                        return deliver(doc, conn, sub, as_live(frames), limits.frame, &mut gone);
                    }
                    let mut late: Vec<PushDelta> = fresh()
                        .filter(|(p, _)| missed(p))
                        .map(|(_, d)| PushDelta {
                            id: d.id,
                            bytes: d.bytes.clone(),
                        })
                        .collect();
                    metrics.deltas_out.add(late.len() as u64);
                    let mut frames = tentative_frames(doc, &mut late, limits.frame);
                    frames.extend(committed_frames(
                        doc,
                        t.max(first_seq.saturating_sub(1)),
                        fresh().map(|(p, d)| (d.seq, (p.origin != conn).then_some(d.id))),
                    ));
                    deliver(doc, conn, sub, as_live(&frames), limits.frame, &mut gone)
                }
            }
        });
        self.report_gone(doc, subscribers, gone);
    }

    /// Tells the remaining subscribers that the kicked ones' presence is
    /// gone.
    fn report_gone(
        &self,
        doc: DocId,
        subscribers: &std::collections::HashMap<ConnId, Subscription>,
        gone: Gone,
    ) {
        for (conn, replica) in gone {
            self.fan_out_presence(subscribers, conn, &gone_frame(doc, replica));
        }
    }
}

impl Publish for Hub {
    fn publish(&self, fanouts: &[Fanout]) {
        self.publish_group(fanouts);
    }
}
