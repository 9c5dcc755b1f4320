//! What a cluster's bus needs from the hub: which documents have
//! subscribers here and how far each is delivered (to order and repair
//! the other relays' commits), the other relays' uncommitted pushes, and
//! presence in both directions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use syncline_protocol::{DocId, PushDelta};

use super::{Hub, State, Subscription};
use crate::frame_queue::ConnId;

/// The `origin` of deltas committed by another relay: no local connection
/// has this id (they start at 1), so every subscriber gets them.
pub const REMOTE_ORIGIN: ConnId = 0;

/// Where the hub tells the other relays of a cluster (the bus) what
/// happened here. Every method is called with the hub locked or on a
/// push's path: none may block.
pub trait Peers: Send + Sync + 'static {
    /// A local presence change (an encoded `Presence` frame, empty bytes
    /// for "gone").
    fn presence(&self, doc: DocId, frame: &Bytes);
    /// A local ephemeral message (an encoded `Message` frame).
    fn message(&self, doc: DocId, frame: &Bytes);
    /// A local push that passed validation and is about to be committed
    /// (`deltas` is unchanged when it returns: it is borrowed to encode a
    /// frame without copying the bytes).
    fn tentative(&self, doc: DocId, deltas: &mut Vec<PushDelta>);
    /// `doc` gained its first subscriber here or lost its last (look at
    /// [`Hub::has_subscribers`] for which, later: calls may be stale).
    fn interest(&self, doc: DocId);
}

impl Hub {
    /// Tells `peers` of every later local presence change, push and change
    /// of interest. Only the first `peers` set counts.
    pub fn set_peers(&self, peers: Arc<dyn Peers>) {
        let _ = self.inner.peers.set(peers);
    }

    pub(super) fn to_sink(&self, doc: DocId, frame: &Bytes) {
        if let Some(peers) = self.inner.peers.get() {
            peers.presence(doc, frame);
        }
    }

    pub(super) fn to_tentative_sink(&self, doc: DocId, deltas: &mut Vec<PushDelta>) {
        if let Some(peers) = self.inner.peers.get() {
            peers.tentative(doc, deltas);
        }
    }

    pub(super) fn interest_changed(&self, doc: DocId) {
        if let Some(peers) = self.inner.peers.get() {
            peers.interest(doc);
        }
    }

    /// Drops `doc`'s entry if nobody subscribes to it any more (and says
    /// so to the peers).
    pub(super) fn forget_if_empty(
        &self,
        docs: &mut HashMap<DocId, HashMap<ConnId, Subscription>>,
        doc: DocId,
    ) {
        if docs.get(&doc).is_some_and(HashMap::is_empty) {
            docs.remove(&doc);
            self.interest_changed(doc);
        }
    }

    /// Fans another relay's push, not committed yet, out to `doc`'s live
    /// version 2 subscribers here as `Tentative` frames, like a local push
    /// ([`Hub::tentative`]). Returns its stamp if anyone was sent it: the
    /// stamp to carry in the [`Fanout`](crate::store::Fanout) of its
    /// commit, so they are not sent it again. `deltas` is unchanged when it
    /// returns.
    pub fn remote_tentative(&self, doc: DocId, deltas: &mut Vec<PushDelta>) -> Option<u64> {
        let (stamp, sent) = self.fan_out_tentative(doc, REMOTE_ORIGIN, deltas);
        (sent > 0).then_some(stamp)
    }

    /// Queues a presence frame that came from another relay to every live
    /// subscriber of `doc` here.
    pub fn remote_presence(&self, doc: DocId, frame: &Bytes) {
        let docs = self.docs();
        if let Some(subscribers) = docs.get(&doc) {
            self.fan_out_presence(subscribers, REMOTE_ORIGIN, frame);
        }
    }

    /// Whether `doc` has a subscriber here.
    pub fn has_subscribers(&self, doc: DocId) -> bool {
        self.docs().contains_key(&doc)
    }

    /// The documents with a subscriber here.
    pub fn subscribed_docs(&self) -> Vec<DocId> {
        self.docs().keys().copied().collect()
    }

    /// The lowest sequence delivered through, among `doc`'s live
    /// subscribers (`None` when none is live): everything above it must
    /// still be published to the hub, in order.
    pub fn floor(&self, doc: DocId) -> Option<u64> {
        let docs = self.docs();
        docs.get(&doc)?
            .values()
            .filter_map(|sub| match sub.state {
                State::Live { sent_through, .. } => Some(sent_through),
                State::CatchingUp { .. } => None,
            })
            .min()
    }
}
