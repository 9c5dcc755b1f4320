//! Ephemeral messages (protocol version 4): queued at once to the
//! document's other subscriptions that take them, never kept. A message
//! with an addressee (`to`) goes only to that replica's subscriptions. A
//! full queue drops the message (counted), never the subscriber: a message
//! is worth less than the connection that carries deltas.

use std::collections::HashMap;

use axum::body::Bytes;
use syncline_protocol::{DocId, RelayFrame, encode_relay};

use super::cluster::REMOTE_ORIGIN;
use super::{Hub, NotSubscribed, Subscription};
use crate::frame_queue::{ConnId, TrySendError};

impl Hub {
    /// From now on `conn`'s subscription to `doc` takes ephemeral messages
    /// (its connection speaks protocol version 4 or later).
    pub fn take_messages(&self, doc: DocId, conn: ConnId) {
        let mut docs = self.docs();
        if let Some(sub) = docs.get_mut(&doc).and_then(|s| s.get_mut(&conn)) {
            sub.messages = true;
        }
    }

    /// Relays `conn`'s message on `doc` (sealed `bytes`, for `to` or, with
    /// none, everyone) to the document's other subscribers here and to the
    /// other relays.
    pub fn message(
        &self,
        doc: DocId,
        conn: ConnId,
        to: Option<[u8; 16]>,
        bytes: Vec<u8>,
    ) -> Result<(), NotSubscribed> {
        let docs = self.docs();
        let subscribers = docs.get(&doc).ok_or(NotSubscribed)?;
        let sub = subscribers.get(&conn).ok_or(NotSubscribed)?;
        let frame = Bytes::from(encode_relay(&RelayFrame::Message {
            doc,
            from: sub.replica,
            to,
            bytes,
        }));
        self.fan_out_message(subscribers, conn, to, &frame);
        if let Some(peers) = self.inner.peers.get() {
            peers.message(doc, &frame);
        }
        Ok(())
    }

    /// Queues a message frame that came from another relay (for `to`, or
    /// everyone) to `doc`'s subscribers here.
    pub fn remote_message(&self, doc: DocId, to: Option<[u8; 16]>, frame: &Bytes) {
        let docs = self.docs();
        if let Some(subscribers) = docs.get(&doc) {
            self.fan_out_message(subscribers, REMOTE_ORIGIN, to, frame);
        }
    }

    fn fan_out_message(
        &self,
        subscribers: &HashMap<ConnId, Subscription>,
        from: ConnId,
        to: Option<[u8; 16]>,
        frame: &Bytes,
    ) {
        let metrics = &self.inner.metrics;
        let addressed = |sub: &Subscription| to.is_none_or(|to| sub.replica == to);
        for (_, other) in subscribers.iter().filter(|(id, _)| **id != from) {
            if !other.messages || !addressed(other) {
                continue;
            }
            match other.queue.try_send(frame.clone()) {
                Ok(()) => metrics.messages_out.inc(),
                Err(TrySendError::Full) => metrics.messages_dropped.inc(),
                Err(TrySendError::Closed) => {}
            }
        }
    }
}
