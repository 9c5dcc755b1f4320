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
//!   deltas in sequence order, and no sequence reaches anyone before it
//!   is in storage. For version 1 subscribers, every push of one group
//!   commit to one document arrives as one run of `Deltas` frames (one
//!   frame unless the frame limits split it), minus the deltas that
//!   subscriber pushed itself: those are never echoed. Version 2: below.
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
//!   *live*: later deltas go straight into the connection's [`FrameQueue`].
//!   Nothing can slip between the last pending delta and the first live one.
//!
//! Publishing never waits: a slow subscriber must not stall the document
//! (or the store's writer) for everyone. A live subscriber whose queue is
//! full, or a catching-up one whose pending list passes its bound, is
//! [kicked](FrameQueue::kick) and dropped from the document.
//!
//! # Live delivery, version 2: tentative, then committed
//!
//! Waiting for the commit puts the relay's fsync on the edit → visible
//! path. A version 2 subscription ([`Delivery::Tentative`]) hears of a
//! push before it is stored, with no sequence, and of its place in the log
//! once it is:
//!
//! * **Tentative, when the push arrives.** Once a push passed validation
//!   (authorization, size limits), the session calls [`Hub::tentative`]
//!   right before submitting it to the store: the pushed deltas, as they
//!   came, go out as `Tentative` frames to every **live** version 2
//!   subscriber of the document but the pusher (catching-up and version 1
//!   subscribers get none). Same rules as any live frame: never waits, a
//!   full queue is a kick. Deltas the store will find already stored are
//!   sent all the same; clients tolerate duplicates.
//! * **Committed, after the commit.** In [`Hub::publish_group`], for each
//!   live version 2 subscriber S whose `sent_through` is `t` (the highest
//!   sequence delivered to or confirmed for S), per document and group:
//!   nothing if the group's last sequence is `<= t`; otherwise first the
//!   group's deltas above `t` that S neither pushed nor was sent
//!   tentatively, as `Tentative` frames; then `Committed{after, seq, ids}`
//!   with `after = max(t, first_seq - 1)`, `seq` the group's last
//!   sequence and `ids` the ids of its deltas in `after + 1 ..= seq` that
//!   S did not push (past [`MAX_DELTAS_PER_FRAME`](syncline_protocol::MAX_DELTAS_PER_FRAME)
//!   ids, several frames over consecutive sub-ranges, each `after` the
//!   previous `seq`); then `t = seq`.
//!
//! **The promise.** When S receives `Committed{doc, after, seq, ids}`,
//! every delta of `doc` with a sequence in `after + 1 ..= seq` is durable
//! in the relay's log, and S was sent each of them earlier on this
//! connection (as `Tentative`, or by the catch-up's `Deltas`), except the
//! ones S pushed itself; `ids` are exactly the others. So a client whose
//! cursor is `>= after` moves it to `seq`, and its own pushes land inside
//! ranges it is told about (version 1 never told the pusher, which forced
//! a re-fetch). A client whose cursor is below `after` missed something
//! (only possible if it was not subscribed throughout) and subscribes
//! again from its cursor. Ranges of one subscription never overlap and
//! increase: a group's sequences are one dense run following the last
//! group's, in the order the store committed them.
//!
//! **Frames merge in the queue.** The frames above are what the hub
//! *offers*; a subscriber's [`FrameQueue`] merges a `Tentative` into the newest
//! still-queued `Tentative` of the same document (past nothing but that
//! document's `Committed` frames), and a `Committed` into a still-queued
//! `Committed` whose `seq` is its `after` (see [`crate::frame_queue`]). So while a
//! subscriber's writer lags, the pushes of many group commits reach it as one
//! `Tentative` and one `Committed` per document; when it keeps up, each goes
//! out alone, at once. Every rule here holds for the merged frames: a
//! `Tentative` only ever moves earlier, and chained ranges merge into the
//! range they cover.
//!
//! **Who got what tentatively: stamps.** Each [`Hub::tentative`] call
//! takes the next value of one process-wide counter (its *stamp*, never
//! reused: not per document, whose entry the hub forgets when its last
//! subscriber leaves), carried through the store in the push's
//! [`Fanout`](crate::store::Fanout). A subscription going live records the
//! counter's current value (`live_since`). Both happen with the registry
//! locked, so a subscription was live (and sent the `Tentative`) exactly
//! when `live_since < stamp`; one that went live later has
//! `live_since >= stamp` and gets the deltas at publish time instead.
//! Subscribing again starts a new subscription with a new `live_since`.
//! Stamp 0 means "never fanned out": everyone gets those deltas at publish
//! time. Since the `Tentative` is queued before the push is submitted, it
//! is ahead of any `Committed` covering it in the same queue.
//!
//! **A failed commit** stores nothing and calls no `on_commit`, so nothing
//! of it is published: no `Committed` covers a sequence that was not
//! durably stored, and `sent_through` does not move. The sequences such a
//! commit would have taken are given to the next deltas stored; no client
//! ever saw them (`Tentative` frames carry none), so no client sees one
//! sequence stand for two deltas. The tentative copies it sent stay
//! unconfirmed: clients keep them until a `Committed` lists their ids, and
//! their author re-pushes on its missing `Ack`.
//!
//! # Messages
//!
//! Ephemeral messages (protocol version 4, `hub/messages.rs`) are never
//! kept: each is queued at once to the document's other subscriptions that
//! take them (all of them, or the addressee's), here and, through the
//! bus, on the other relays; to a full queue it is dropped, like presence.
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
//! The hub is process-local. In a cluster (`--bus`), the bus feeds it the
//! other relays' commits through [`crate::bus`]'s sequencer, which keeps
//! each document's publications in sequence order and gap-free (repairing
//! from the shared store what the bus lost), so the rules above stay the
//! same. The other relays' uncommitted pushes arrive through
//! [`Hub::remote_tentative`], stamped like local ones; the bus remembers
//! their stamps and puts them in the [`Fanout`](crate::store::Fanout)s of
//! their commits, so the
//! rules on who got what tentatively hold across relays too. See
//! [`cluster`] for what the bus reads from and writes to the hub.

mod cluster;
mod frames;
mod live;

pub use cluster::{Peers, REMOTE_ORIGIN};

pub use frames::delta_frames;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use syncline_protocol::{DocId, RelayFrame, SequencedDelta, encode_relay};

use crate::frame_queue::{ConnId, FrameQueue, TrySendError};
use crate::metrics::Metrics;
use crate::store::PageLimits;

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
    /// The last tentative stamp handed out (see the module docs). Only
    /// changed and read with `docs` locked, so the lock orders it.
    stamps: AtomicU64,
    limits: HubLimits,
    metrics: Arc<Metrics>,
    /// Where local presence changes, pushes and changes of interest also
    /// go (the bus), if anywhere.
    peers: std::sync::OnceLock<Arc<dyn Peers>>,
}

/// How a subscription hears of live deltas: by its connection's protocol
/// version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Version 1: committed deltas as `Deltas`, its own pushes left out.
    Deltas,
    /// Version 2: `Tentative` when a push arrives, `Committed` once stored.
    Tentative,
}

impl Delivery {
    /// The delivery of a connection speaking protocol `version`.
    pub fn for_version(version: u32) -> Delivery {
        if version >= 2 {
            Delivery::Tentative
        } else {
            Delivery::Deltas
        }
    }
}

struct Subscription {
    queue: FrameQueue,
    /// The subscribing connection's replica id (the `from` of presence).
    replica: [u8; 16],
    delivery: Delivery,
    state: State,
    /// The latest presence, as an encoded `Presence` frame.
    presence: Option<Bytes>,
    /// Whether its connection takes ephemeral messages (protocol ≥ 4).
    messages: bool,
}

enum State {
    /// Reading the catch-up; published deltas wait here, in order.
    CatchingUp {
        pending: Vec<Arc<[SequencedDelta]>>,
        pending_items: usize,
    },
    /// Caught up: published deltas go straight to the queue, except those
    /// at or below `sent_through`, which were already delivered (version 2:
    /// or confirmed by `Committed`). `live_since` is the tentative stamp
    /// current when it went live: pushes stamped above it were sent to it
    /// as `Tentative` (version 2).
    Live { sent_through: u64, live_since: u64 },
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
                stamps: AtomicU64::new(0),
                limits,
                metrics,
                peers: std::sync::OnceLock::new(),
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

    /// Registers `queue` as catching up on `doc` (replacing an earlier
    /// subscription of the same connection, whose presence it keeps), to be
    /// delivered live deltas by `delivery` once live. Call before reading
    /// the catch-up from storage.
    pub fn subscribe(&self, doc: DocId, queue: FrameQueue, replica: [u8; 16], delivery: Delivery) {
        let mut docs = self.docs();
        if !docs.contains_key(&doc) {
            self.interest_changed(doc);
        }
        let subscribers = docs.entry(doc).or_default();
        let presence = subscribers.remove(&queue.id()).and_then(|old| old.presence);
        subscribers.insert(
            queue.id(),
            Subscription {
                queue,
                replica,
                delivery,
                state: State::CatchingUp {
                    pending: Vec::new(),
                    pending_items: 0,
                },
                presence,
                messages: false,
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
                // Under the lock: every push stamped from now on is fanned
                // out to it tentatively.
                let live_since = self.inner.stamps.load(Ordering::Relaxed);
                sub.state = State::Live {
                    sent_through,
                    live_since,
                };
                let queue = sub.queue.clone();
                for (_, other) in subscribers.iter().filter(|(id, _)| **id != conn) {
                    if let Some(frame) = &other.presence {
                        self.offer_presence(&queue, frame.clone());
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
        self.to_sink(doc, &frame);
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
                self.offer_presence(&other.queue, frame.clone());
            }
        }
    }

    fn offer_presence(&self, queue: &FrameQueue, frame: Bytes) {
        match queue.try_send(frame) {
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
            let gone = gone_frame(doc, sub.replica);
            self.fan_out_presence(subscribers, conn, &gone);
            self.to_sink(doc, &gone);
        }
        self.forget_if_empty(&mut docs, doc);
    }

    /// How many documents have subscribers.
    pub fn active_docs(&self) -> usize {
        self.docs().len()
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

mod messages;
#[cfg(test)]
mod tests;
