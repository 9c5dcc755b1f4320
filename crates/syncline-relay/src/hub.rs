//! The fan-out registry: who is subscribed to which document, and the rules
//! that make live delivery gap-free and in order.
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
//! * **Commit and publish are one turn per document.** A pusher takes the
//!   document's [`Turn`] (an async mutex per document), commits, publishes
//!   to the hub, and only then releases the turn. So the hub sees each
//!   document's deltas in sequence order, and a delta is in storage before
//!   anyone hears of it. [`Hub::publish`] demands a `&Turn`, so the type
//!   system enforces this.
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
//!   [`Hub::take_pending`] and sends what it has not sent yet. When the list is empty, the same
//!   locked call switches the subscription to *live*: later deltas go
//!   straight into the connection's [`Outbox`]. Nothing can slip between
//!   the last pending delta and the first live one.
//!
//! Publishing never waits: it runs under the turn, and a slow subscriber
//! must not stall the document for everyone. A live subscriber whose queue
//! is full, or a catching-up one whose pending list passes its bound, is
//! [kicked](Outbox::kick) and dropped from the document.
//!
//! The hub is process-local. Several relays serving one document would feed
//! it from a shared bus (a later issue); the rules above stay the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use syncline_protocol::{DocId, RelayFrame, SequencedDelta, encode_relay};
use tokio::sync::OwnedMutexGuard;

use crate::outbox::{ConnId, Outbox, TrySendError};
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
    docs: Mutex<HashMap<DocId, DocState>>,
    limits: HubLimits,
}

#[derive(Default)]
struct DocState {
    /// Held across "commit + publish"; see [`Turn`].
    sequencer: Arc<tokio::sync::Mutex<()>>,
    subscribers: HashMap<ConnId, Slot>,
}

enum Slot {
    /// Reading the catch-up; published deltas wait here, in order.
    CatchingUp {
        outbox: Outbox,
        pending: Vec<Arc<[SequencedDelta]>>,
        pending_items: usize,
    },
    /// Caught up: published deltas go straight to the outbox, except those
    /// at or below `sent_through`, which the catch-up already delivered.
    Live { outbox: Outbox, sent_through: u64 },
}

/// The right to commit to one document and publish the result. While a
/// `Turn` is alive, no other turn for the same document exists.
pub struct Turn {
    hub: Hub,
    doc: DocId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turn {
    /// The document this turn is for.
    pub fn doc(&self) -> DocId {
        self.doc
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Release the lock first, so the idle check sees the true count.
        self.guard.take();
        self.hub.forget_if_idle(self.doc);
    }
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

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                docs: Mutex::new(HashMap::new()),
                limits,
            }),
        }
    }

    /// How fanned-out deltas are split into frames.
    pub fn frame_limits(&self) -> PageLimits {
        self.inner.limits.frame
    }

    fn docs(&self) -> MutexGuard<'_, HashMap<DocId, DocState>> {
        // The map stays consistent even if a holder panicked: every change
        // to it is a single insert or remove.
        self.inner
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `doc`'s turn. Hold it across the commit and the publish.
    ///
    /// Await it to completion (the relay does, in a task of its own): a
    /// cancelled wait leaves an empty entry behind until the document's
    /// next unsubscribe or turn.
    pub async fn turn(&self, doc: DocId) -> Turn {
        let sequencer = Arc::clone(&self.docs().entry(doc).or_default().sequencer);
        let guard = sequencer.lock_owned().await;
        Turn {
            hub: self.clone(),
            doc,
            guard: Some(guard),
        }
    }

    /// Hands newly committed deltas of `turn.doc()` to every subscriber but
    /// `from` (the pusher is not echoed). Never waits.
    pub fn publish(&self, turn: &Turn, from: ConnId, deltas: Vec<SequencedDelta>) {
        if deltas.is_empty() {
            return;
        }
        let doc = turn.doc;
        let limits = self.inner.limits;
        let items: Arc<[SequencedDelta]> = deltas.into();
        let mut frames: Option<Vec<Bytes>> = None;
        let mut docs = self.docs();
        let Some(state) = docs.get_mut(&doc) else {
            return;
        };
        state.subscribers.retain(|&conn, slot| {
            if conn == from {
                return true;
            }
            match slot {
                Slot::Live {
                    outbox,
                    sent_through,
                } => {
                    let own_frames;
                    let frames = if items[0].seq > *sent_through {
                        frames.get_or_insert_with(|| delta_frames(doc, &items, limits.frame, true))
                    } else {
                        // Rare: the catch-up read already saw some of these.
                        let fresh: Vec<_> = items
                            .iter()
                            .filter(|d| d.seq > *sent_through)
                            .cloned()
                            .collect();
                        own_frames = delta_frames(doc, &fresh, limits.frame, true);
                        &own_frames
                    };
                    for frame in frames.iter() {
                        match outbox.try_send(frame.clone()) {
                            Ok(()) => {}
                            Err(TrySendError::Full) => {
                                tracing::warn!(conn, %doc, "subscriber too slow: queue full, disconnecting");
                                outbox.kick();
                                return false;
                            }
                            Err(TrySendError::Closed) => return false,
                        }
                    }
                    true
                }
                Slot::CatchingUp {
                    outbox,
                    pending,
                    pending_items,
                } => {
                    if *pending_items + items.len() > limits.max_pending {
                        tracing::warn!(conn, %doc, "subscriber too slow: catch-up fell behind, disconnecting");
                        outbox.kick();
                        return false;
                    }
                    *pending_items += items.len();
                    pending.push(Arc::clone(&items));
                    true
                }
            }
        });
    }

    /// Registers `outbox` as catching up on `doc` (replacing an earlier
    /// subscription of the same connection). Call before reading the
    /// catch-up from storage.
    pub fn subscribe(&self, doc: DocId, outbox: Outbox) {
        let slot = Slot::CatchingUp {
            outbox: outbox.clone(),
            pending: Vec::new(),
            pending_items: 0,
        };
        self.docs()
            .entry(doc)
            .or_default()
            .subscribers
            .insert(outbox.id(), slot);
    }

    /// Takes what was published to `conn`'s subscription on `doc` since the
    /// last call; when nothing was, switches the subscription to live.
    /// `sent_through` is the highest sequence the connection has sent for
    /// `doc` so far (or its `since`): live delivery starts above it.
    pub fn take_pending(&self, doc: DocId, conn: ConnId, sent_through: u64) -> Pending {
        let mut docs = self.docs();
        let Some(slot) = docs
            .get_mut(&doc)
            .and_then(|state| state.subscribers.get_mut(&conn))
        else {
            return Pending::Gone;
        };
        match slot {
            Slot::Live { .. } => Pending::Live,
            Slot::CatchingUp {
                outbox,
                pending,
                pending_items,
            } => {
                if pending.is_empty() {
                    *slot = Slot::Live {
                        outbox: outbox.clone(),
                        sent_through,
                    };
                    Pending::Live
                } else {
                    *pending_items = 0;
                    Pending::Deltas(std::mem::take(pending))
                }
            }
        }
    }

    /// Removes `conn`'s subscription to `doc`, if any.
    pub fn unsubscribe(&self, doc: DocId, conn: ConnId) {
        let mut docs = self.docs();
        if let Some(state) = docs.get_mut(&doc) {
            state.subscribers.remove(&conn);
        }
        drop(docs);
        self.forget_if_idle(doc);
    }

    /// Drops `doc`'s entry when nobody subscribes and nobody holds or waits
    /// for its turn (each of those holds a clone of the sequencer).
    fn forget_if_idle(&self, doc: DocId) {
        let mut docs = self.docs();
        if let Some(state) = docs.get(&doc)
            && state.subscribers.is_empty()
            && Arc::strong_count(&state.sequencer) == 1
        {
            docs.remove(&doc);
        }
    }

    /// How many documents have an entry (subscribers or a pending turn).
    pub fn active_docs(&self) -> usize {
        self.docs().len()
    }
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
mod tests {
    use super::*;
    use crate::outbox::Outgoing;
    use syncline_protocol::{DeltaId, decode_relay};
    use tokio::sync::mpsc;

    const DOC: DocId = DocId([9; 16]);

    fn delta(seq: u64) -> SequencedDelta {
        SequencedDelta {
            seq,
            id: DeltaId([seq as u8; 32]),
            bytes: vec![seq as u8; 10],
        }
    }

    fn received_seqs(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(Outgoing::Frame(bytes)) = rx.try_recv() {
            match decode_relay(&bytes).unwrap() {
                RelayFrame::Deltas { items, .. } => seqs.extend(items.iter().map(|d| d.seq)),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        seqs
    }

    #[tokio::test]
    async fn deltas_published_during_catch_up_wait_then_the_subscription_goes_live() {
        let hub = Hub::new(HubLimits::default());
        let (sub, mut rx) = Outbox::new(1, 16);
        hub.subscribe(DOC, sub);
        {
            let turn = hub.turn(DOC).await;
            hub.publish(&turn, 2, vec![delta(1), delta(2)]);
        }
        assert!(rx.try_recv().is_err(), "nothing is sent while catching up");
        let Pending::Deltas(batches) = hub.take_pending(DOC, 1, 0) else {
            panic!("expected pending deltas");
        };
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 2);
        assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Live));
        {
            let turn = hub.turn(DOC).await;
            hub.publish(&turn, 2, vec![delta(3)]);
        }
        assert_eq!(received_seqs(&mut rx), vec![3]);
    }

    #[tokio::test]
    async fn deltas_the_catch_up_already_sent_are_not_sent_again_live() {
        let hub = Hub::new(HubLimits::default());
        let (sub, mut rx) = Outbox::new(1, 16);
        hub.subscribe(DOC, sub);
        // The catch-up read saw seqs up to 5, committed but not yet published.
        assert!(matches!(hub.take_pending(DOC, 1, 5), Pending::Live));
        let turn = hub.turn(DOC).await;
        hub.publish(&turn, 2, vec![delta(4), delta(5)]);
        hub.publish(&turn, 2, vec![delta(5), delta(6)]);
        hub.publish(&turn, 2, vec![delta(7)]);
        assert_eq!(received_seqs(&mut rx), vec![6, 7]);
    }

    #[tokio::test]
    async fn the_pusher_is_not_echoed() {
        let hub = Hub::new(HubLimits::default());
        let (a, mut rx_a) = Outbox::new(1, 16);
        let (b, mut rx_b) = Outbox::new(2, 16);
        for outbox in [a, b] {
            let id = outbox.id();
            hub.subscribe(DOC, outbox);
            assert!(matches!(hub.take_pending(DOC, id, 0), Pending::Live));
        }
        let turn = hub.turn(DOC).await;
        hub.publish(&turn, 1, vec![delta(1)]);
        assert_eq!(received_seqs(&mut rx_a), Vec::<u64>::new());
        assert_eq!(received_seqs(&mut rx_b), vec![1]);
    }

    #[tokio::test]
    async fn a_slow_live_subscriber_is_kicked_and_dropped() {
        let hub = Hub::new(HubLimits::default());
        let (slow, _rx) = Outbox::new(1, 1);
        hub.subscribe(DOC, slow.clone());
        assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Live));
        let turn = hub.turn(DOC).await;
        hub.publish(&turn, 2, vec![delta(1)]);
        hub.publish(&turn, 2, vec![delta(2)]);
        tokio::time::timeout(std::time::Duration::from_secs(5), slow.kicked())
            .await
            .expect("the slow subscriber was kicked");
        assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Gone));
    }

    #[tokio::test]
    async fn a_subscriber_falling_behind_during_catch_up_is_kicked() {
        let hub = Hub::new(HubLimits {
            max_pending: 3,
            ..HubLimits::default()
        });
        let (sub, _rx) = Outbox::new(1, 16);
        hub.subscribe(DOC, sub.clone());
        let turn = hub.turn(DOC).await;
        hub.publish(&turn, 2, vec![delta(1), delta(2)]);
        hub.publish(&turn, 2, vec![delta(3), delta(4)]);
        tokio::time::timeout(std::time::Duration::from_secs(5), sub.kicked())
            .await
            .expect("kicked");
        assert!(matches!(hub.take_pending(DOC, 1, 0), Pending::Gone));
    }

    #[tokio::test]
    async fn idle_documents_are_forgotten_but_not_while_a_turn_is_held() {
        let hub = Hub::new(HubLimits::default());
        let (sub, _rx) = Outbox::new(1, 16);
        hub.subscribe(DOC, sub);
        let turn = hub.turn(DOC).await;
        hub.unsubscribe(DOC, 1);
        assert_eq!(hub.active_docs(), 1, "the turn keeps the entry");
        drop(turn);
        assert_eq!(hub.active_docs(), 0);
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
}
