//! The session's ephemeral messages (protocol version 4): checked, then
//! handed to the hub, which relays them to the document's other
//! subscribers here and across the cluster; never stored.
//!
//! Who may send: a connection subscribed to the document, with read
//! access (a viewer may ask a server, or say something, as it may show
//! presence), whose message carries a proof of the document key (only
//! holders of the document's URL can sign, as for presence). Who
//! receives: the document's other subscribers of version 4 or later — by
//! subscribing they were allowed to read it — or, for a message with an
//! addressee, that replica's subscriptions only.
//!
//! Bounds: a message is at most `--max-message-bytes` (`DocError{doc,
//! LimitExceeded}` otherwise), and a connection sends at most
//! `--messages-per-sec` (bursts of twice that; each one over is dropped
//! and refused with `DocError{doc, RateLimited}`, the connection stays).
//! Each subscriber's frame queue is the only buffer, and a full one drops
//! the message.

use std::time::Instant;

use syncline_protocol::{DocId, ErrorCode, MESSAGES_VERSION};

use super::Session;
use crate::auth::Rights;
use crate::connection::End;
use crate::metrics::Limit;

impl Session {
    /// Relays a message whose proof verified.
    pub(super) async fn message(
        &mut self,
        doc: DocId,
        to: Option<[u8; 16]>,
        bytes: Vec<u8>,
    ) -> Result<(), End> {
        if self.version < MESSAGES_VERSION {
            let message = "messages need protocol version 4: say so in Hello";
            return self
                .doc_error(doc, ErrorCode::UnexpectedFrame, message)
                .await;
        }
        if let Err(denied) = self.access(doc, Rights::Read) {
            return self.deny(doc, denied).await;
        }
        if !self.subscriptions.contains(&doc) {
            return self.not_subscribed(doc).await;
        }
        let max = self.shared.config.limits.max_message_bytes;
        if bytes.len() > max {
            self.shared.metrics.limit_exceeded(Limit::MessageSize);
            let message = format!(
                "a message of {} bytes exceeds this relay's limit of {max} bytes; it was not relayed",
                bytes.len()
            );
            return self
                .doc_error(doc, ErrorCode::LimitExceeded, &message)
                .await;
        }
        if let Some(bucket) = &mut self.message_rate
            && !bucket.try_take(1.0, Instant::now())
        {
            self.shared.metrics.limit_exceeded(Limit::MessageRate);
            let per_sec = self.shared.config.limits.messages_per_sec;
            let message = format!(
                "messages sent faster than this relay allows ({per_sec} per second); this one was dropped: send less often"
            );
            return self.doc_error(doc, ErrorCode::RateLimited, &message).await;
        }
        self.shared.metrics.messages_in.inc();
        let conn = self.queue.id();
        if self.shared.hub.message(doc, conn, to, bytes).is_err() {
            return self.not_subscribed(doc).await;
        }
        Ok(())
    }

    async fn not_subscribed(&mut self, doc: DocId) -> Result<(), End> {
        let message = format!("subscribe to {doc} before sending messages for it");
        self.doc_error(doc, ErrorCode::UnexpectedFrame, &message)
            .await
    }
}
