//! The fan-out registry: who is subscribed to which document, the rules
//! that make live delivery gap-free and in order, and presence.
//!
//! # The problem
//!
//! A subscriber asks for "everything after `since`, then live". The
//! catch-up is read from storage while other clients keep pushing. Two
//! races must not lose or reorder a delta:
//!
//! 1. a delta committed *while the catch-up is being read* must arrive after
//!    the catch-up, exactly once;
//! 2. two pushes to the same document committed as seq 5 then 6 must be
//!    fanned out as 5 then 6, even though they come from different tasks.
//!
//! # The rules
//!
//! * **Publish from the commit, in commit order.** [`Hub::publish_group`]
//!   is called by the store's commit path (the appends' `on_commit`
//!   callbacks of [`Store::append`](crate::store::Store::append) fill a
//!   [`CommitGroup`](crate::store::CommitGroup), published once per group
//!   commit), after the commit and in commit order per document — for
//!   SQLite, by its one writer thread. So the hub sees each document's
//!   deltas in sequence order, and a delta is in storage before anyone
//!   hears of it. Every push of one group commit to one document reaches a
//!   subscriber as one run of `Deltas` frames (one frame unless the frame
//!   limits split it), minus the deltas that subscriber pushed itself:
//!   those are never echoed.
//! * **Subscribe first, then read.** [`Hub::subscribe`] registers the
//!   connection as *catching up* before the first storage read. From then
//!   on, every published delta of the document is kept in the
//!   subscription's pending list. Every delta is therefore either committed
//!   before the registration (so the catch-up read finds it) or published
//!   after it (so it is pending or, later, live) — possibly both: a delta
//!   committed just before the read but published just after it is seen
//!   twice. The connection skips pending deltas at or below the last
//!   sequence it sent, and tells the hub that sequence when it goes live, so
//!   the hub skips them too.
//! * **Drain, then go live atomically.** After the last catch-up page, the
//!   connection repeatedly takes the pending list with
//!   [`Hub::take_pending`] and sends what it has not sent yet. When the
//!   list is empty, the same locked call switches the subscription to
//!   *live*: later deltas go straight into the connection's [`Outbox`].
//!   Nothing can slip between the last pending delta and the first live one.
//!
//! Publishing never waits: a slow subscriber must not stall the document
//! (or the store's writer) for everyone. A live subscriber whose queue is
//! full, or a catching-up one whose pending list passes its bound, is
//! [kicked](Outbox::kick) and dropped from the document.
//!
//! # Presence
//!
//! Presence is ephemeral: the hub keeps each subscription's **latest**
//! presence in memory only, as long as the subscription lives. An update is
//! fanned out to the document's live subscribers; a subscriber going live
//! gets everyone's current presence, in the same locked step (so it never
//! sees an older presence after a newer one). When a subscription ends
//! (unsubscribe, disconnect), the others get an empty presence from it:
//! "gone". Presence is not worth a disconnect: to a full queue it is
//! dropped (and counted), not forced.
//!
//! The hub is process-local. Several relays serving one document would feed
//! it from a shared bus (a later issue); the rules above stay the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use syncline_protocol::{DocId, RelayFrame, SequencedDelta, encode_relay};

use crate::metrics::Metrics;
use crate::outbox::{ConnId, Outbox, TrySendError};
use crate::store::{Fanout, PageLimits, Publish};

/// Bounds the hub enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// How fanned-out deltas are split into `Deltas` frames.
    pub frame: PageLimits,
    /// Most deltas kept for one subscription while it catches up; past it
    /// the subscriber is kicked (it reconnects and resumes from its cursor).
    pub max_pending: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            frame: PageLimits::default(),
            max_pending: 64 * 1024,
        }
    }
}

/// The per-process registry of subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    docs: Mutex<HashMap<DocId, HashMap<ConnId, Subscription>>>,
    limits: HubLimits,
    metrics: Arc<Metrics>,
}

struct Subscription {
    outbox: Outbox,
    /// The subscribing connection's replica id (the `from` of presence).
    replica: [u8; 16],
    state: State,
    /// The latest presence, as an encoded `Presence` frame.
    presence: Option<Bytes>,
}

enum State {
    /// Reading the catch-up; published deltas wait here, in order.
    CatchingUp {
        pending: Vec<Arc<[SequencedDelta]>>,
        pending_items: usize,
    },
    /// Caught up: published deltas go straight to the outbox, except those
    /// at or below `sent_through`, which the catch-up already delivered.
    Live { sent_through: u64 },
}

/// What [`Hub::take_pending`] found.
#[derive(Debug)]
pub enum Pending {
    /// Deltas published since the last call, in sequence order.
    Deltas(Vec<Arc<[SequencedDelta]>>),
    /// Nothing was pending: the subscription is now live.
    Live,
    /// The subscription is gone (the subscriber was kicked).
    Gone,
}

/// [`Hub::set_presence`] on a document the connection does not subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not subscribed to the document")]
pub struct NotSubscribed;

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                docs: Mutex::new(HashMap::new()),
                limits,
                metrics,
            }),
        }
    }

    /// How fanned-out deltas are split into frames.
    pub fn frame_limits(&self) -> PageLimits {
        self.inner.limits.frame
    }

    fn docs(&self) -> MutexGuard<'_, HashMap<DocId, HashMap<ConnId, Subscription>>> {
        // The map stays consistent even if a holder panicked: every change
        // to it is a single insert, remove or field update.
        self.inner
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands newly committed deltas of `doc` to every subscriber but `from`
    /// (the pusher is not echoed). Never waits. Call it after the commit,
    /// in commit order per document. One push's worth of
    /// [`publish_group`](Hub::publish_group).
    pub fn publish(&self, doc: DocId, from: ConnId, items: &Arc<[SequencedDelta]>) {
        self.publish_group(&[Fanout {
            doc,
            origin: from,
            deltas: Arc::clone(items),
        }]);
    }

    /// Hands what one group commit stored to the subscribers: per
    /// document, **one** run of `Deltas` frames holding every fan-out of
    /// the group in order, except that a subscriber never gets the deltas
    /// it pushed itself (those fan-outs are left out of its copy). Never
    /// waits. Call it after the commit, in commit order (the store's
    /// [`CommitGroup`](crate::store::CommitGroup) does).
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
                if subscribers.is_empty() {
                    docs.remove(&doc);
                }
            }
        }
    }

    /// Publishes `parts` (fan-outs of `doc`, in sequence order) to its
    /// subscribers.
    fn publish_doc(
        &self,
        doc: DocId,
        subscribers: &mut HashMap<ConnId, Subscription>,
        parts: &[&Fanout],
    ) {
        let limits = self.inner.limits;
        let metrics = &self.inner.metrics;
        let first_seq = parts[0].deltas[0].seq;
        let total: usize = parts.iter().map(|p| p.deltas.len()).sum();
        // Encoded once, for every live subscriber that pushed none of them.
        let mut shared_frames: Option<Vec<Bytes>> = None;
        // Kicked subscribers whose presence must be reported gone.
        let mut gone = Vec::new();
        let mut kick = |conn: ConnId, sub: &Subscription, why: &str| {
            tracing::warn!(conn, %doc, "subscriber too slow: {why}, disconnecting");
            sub.outbox.kick();
            if sub.presence.is_some() {
                gone.push((conn, sub.replica));
            }
        };
        subscribers.retain(|&conn, sub| {
            let pushed_some = parts.iter().any(|p| p.origin == conn);
            match &mut sub.state {
                State::Live { sent_through } => {
                    let own_frames;
                    let (frames, count) = if !pushed_some && first_seq > *sent_through {
                        let frames = shared_frames.get_or_insert_with(|| {
                            let all: Vec<SequencedDelta> = parts
                                .iter()
                                .flat_map(|p| p.deltas.iter())
                                .cloned()
                                .collect();
                            delta_frames(doc, &all, limits.frame, true)
                        });
                        (&*frames, total)
                    } else {
                        // Its own deltas left out, and (rarely) those the
                        // catch-up read already sent.
                        let fresh: Vec<SequencedDelta> = parts
                            .iter()
                            .filter(|p| p.origin != conn)
                            .flat_map(|p| p.deltas.iter())
                            .filter(|d| d.seq > *sent_through)
                            .cloned()
                            .collect();
                        own_frames = delta_frames(doc, &fresh, limits.frame, true);
                        (&own_frames, fresh.len())
                    };
                    for frame in frames {
                        match sub.outbox.try_send(frame.clone()) {
                            Ok(()) => {}
                            Err(TrySendError::Full) => {
                                kick(conn, sub, "queue full");
                                return false;
                            }
                            Err(TrySendError::Closed) => return false,
                        }
                    }
                    metrics.deltas_out.add(count as u64);
                    true
                }
                State::CatchingUp {
                    pending,
                    pending_items,
                } => {
                    let others = parts.iter().filter(|p| p.origin != conn);
                    let count: usize = others.clone().map(|p| p.deltas.len()).sum();
                    if *pending_items + count > limits.max_pending {
                        kick(conn, sub, "catch-up fell behind");
                        return false;
                    }
                    *pending_items += count;
                    pending.extend(others.map(|p| Arc::clone(&p.deltas)));
                    true
                }
            }
        });
        for (conn, replica) in gone {
            self.fan_out_presence(subscribers, conn, &gone_frame(doc, replica));
        }
    }

    /// Registers `outbox` as catching up on `doc` (replacing an earlier
    /// subscription of the same connection, whose presence it keeps). Call
    /// before reading the catch-up from storage.
    pub fn subscribe(&self, doc: DocId, outbox: Outbox, replica: [u8; 16]) {
        let mut docs = self.docs();
        let subscribers = docs.entry(doc).or_default();
        let presence = subscribers
            .remove(&outbox.id())
            .and_then(|old| old.presence);
        subscribers.insert(
            outbox.id(),
            Subscription {
                outbox,
                replica,
                state: State::CatchingUp {
                    pending: Vec::new(),
                    pending_items: 0,
                },
                presence,
            },
        );
    }

    /// Takes what was published to `conn`'s subscription on `doc` since the
    /// last call; when nothing was, switches the subscription to live and
    /// queues the others' current presence to it. `sent_through` is the
    /// highest sequence the connection has sent for `doc` so far (or its
    /// `since`): live delivery starts above it.
    pub fn take_pending(&self, doc: DocId, conn: ConnId, sent_through: u64) -> Pending {
        let mut docs = self.docs();
        let Some(subscribers) = docs.get_mut(&doc) else {
            return Pending::Gone;
        };
        let Some(sub) = subscribers.get_mut(&conn) else {
            return Pending::Gone;
        };
        match &mut sub.state {
            State::Live { .. } => Pending::Live,
            State::CatchingUp {
                pending,
                pending_items,
            } if !pending.is_empty() => {
                *pending_items = 0;
                Pending::Deltas(std::mem::take(pending))
            }
            State::CatchingUp { .. } => {
                sub.state = State::Live { sent_through };
                let outbox = sub.outbox.clone();
                for (_, other) in subscribers.iter().filter(|(id, _)| **id != conn) {
                    if let Some(frame) = &other.presence {
                        self.offer_presence(&outbox, frame.clone());
                    }
                }
                Pending::Live
            }
        }
    }

    /// Records `conn`'s presence on `doc` (empty `bytes`: none) and fans it
    /// out to the document's other live subscribers, as sent by `replica`.
    pub fn set_presence(
        &self,
        doc: DocId,
        conn: ConnId,
        bytes: Vec<u8>,
    ) -> Result<(), NotSubscribed> {
        let mut docs = self.docs();
        let subscribers = docs.get_mut(&doc).ok_or(NotSubscribed)?;
        let sub = subscribers.get_mut(&conn).ok_or(NotSubscribed)?;
        let clear = bytes.is_empty();
        let frame = Bytes::from(encode_relay(&RelayFrame::Presence {
            doc,
            from: sub.replica,
            bytes,
        }));
        sub.presence = (!clear).then(|| frame.clone());
        self.fan_out_presence(subscribers, conn, &frame);
        Ok(())
    }

    fn fan_out_presence(
        &self,
        subscribers: &HashMap<ConnId, Subscription>,
        from: ConnId,
        frame: &Bytes,
    ) {
        for (_, other) in subscribers.iter().filter(|(id, _)| **id != from) {
            if matches!(other.state, State::Live { .. }) {
                self.offer_presence(&other.outbox, frame.clone());
            }
        }
    }

    fn offer_presence(&self, outbox: &Outbox, frame: Bytes) {
        match outbox.try_send(frame) {
            Ok(()) => self.inner.metrics.presence_out.inc(),
            Err(TrySendError::Full) => self.inner.metrics.presence_dropped.inc(),
            Err(TrySendError::Closed) => {}
        }
    }

    /// Removes `conn`'s subscription to `doc`, if any; if it had presence,
    /// the others get an empty presence from it ("gone").
    pub fn unsubscribe(&self, doc: DocId, conn: ConnId) {
        let mut docs = self.docs();
        let Some(subscribers) = docs.get_mut(&doc) else {
            return;
        };
        if let Some(sub) = subscribers.remove(&conn)
            && sub.presence.is_some()
        {
            self.fan_out_presence(subscribers, conn, &gone_frame(doc, sub.replica));
        }
        if subscribers.is_empty() {
            docs.remove(&doc);
        }
    }

    /// How many documents have subscribers.
    pub fn active_docs(&self) -> usize {
        self.docs().len()
    }
}

impl Publish for Hub {
    fn publish(&self, fanouts: &[Fanout]) {
        self.publish_group(fanouts);
    }
}

/// The empty presence that says `replica`'s presence on `doc` is gone.
fn gone_frame(doc: DocId, replica: [u8; 16]) -> Bytes {
    Bytes::from(encode_relay(&RelayFrame::Presence {
        doc,
        from: replica,
        bytes: Vec::new(),
    }))
}

/// Splits `items` into encoded `Deltas` frames within `limits` (each frame
/// holds at least one delta).
pub fn delta_frames(
    doc: DocId,
    items: &[SequencedDelta],
    limits: PageLimits,
    caught_up: bool,
) -> Vec<Bytes> {
    let max_items = limits.max_items.max(1);
    let mut frames = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < items.len() && end - start < max_items {
            let len = items[end].bytes.len();
            if end > start && bytes + len > limits.max_bytes {
                break;
            }
            bytes += len;
            end += 1;
        }
        let frame = RelayFrame::Deltas {
            doc,
            items: items[start..end].to_vec(),
            caught_up,
        };
        frames.push(Bytes::from(encode_relay(&frame)));
        start = end;
    }
    frames
}

#[cfg(test)]
mod tests;
