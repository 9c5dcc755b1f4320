//! What a cluster's bus needs from the hub: which documents have
//! subscribers here and how far each is delivered (to order and repair
//! the other relays' commits), and presence in both directions.

use std::sync::Arc;

use axum::body::Bytes;
use syncline_protocol::DocId;

use super::{Hub, State};
use crate::frame_queue::ConnId;

/// The `origin` of deltas committed by another relay: no local connection
/// has this id (they start at 1), so every subscriber gets them.
pub const REMOTE_ORIGIN: ConnId = 0;

/// Receives each local presence change (an encoded `Presence` frame, empty
/// bytes for "gone"), to pass on to the other relays. Must not block.
pub type PresenceSink = Arc<dyn Fn(DocId, &Bytes) + Send + Sync>;

impl Hub {
    /// Sends every later local presence change to `sink` too. Only the
    /// first sink set counts.
    pub fn set_presence_sink(&self, sink: PresenceSink) {
        let _ = self.inner.presence_sink.set(sink);
    }

    pub(super) fn to_sink(&self, doc: DocId, frame: &Bytes) {
        if let Some(sink) = self.inner.presence_sink.get() {
            sink(doc, frame);
        }
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
