//! The bounded in-memory buffer between the engine and the WebSocket.
//!
//! The engine may emit megabytes of `Push` frames at once (a long offline
//! session coming back). Handing them all to `WebSocket.send` would park
//! them in the browser's own unbounded buffer (`bufferedAmount`), so a
//! relay that reads slowly, or not at all, would grow the page's memory
//! without limit. Instead frames wait here and go to the socket only while
//! its `bufferedAmount` is under a high-water mark.
//!
//! The queue is bounded in bytes. When it is full, a frame that only
//! repeats durable or ephemeral state (a `Push` of outbox entries, a
//! `Presence`, a `Snapshot`) is dropped: the engine re-pushes unacked
//! entries later, so nothing is lost; presence is re-sent on its own. An
//! app's ephemeral message (`SignedMessage`) is dropped too: messages are
//! never queued for later (a dropped request ends with `NoServer` at its
//! timeout).
//! Control frames (hello, subscribe, ping) are tiny and always queued.

use std::collections::VecDeque;

use syncline_protocol::{ClientFrame, decode_client};

/// Default bound on the bytes waiting in the queue.
pub const DEFAULT_CAPACITY: usize = 8 << 20;

/// Frames go to the socket only while its `bufferedAmount` is below this.
pub const HIGH_WATER: usize = 1 << 20;

#[derive(Debug)]
pub struct SendQueue {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    capacity: usize,
    dropped: u64,
}

impl SendQueue {
    pub fn new(capacity: usize) -> SendQueue {
        SendQueue {
            frames: VecDeque::new(),
            bytes: 0,
            capacity,
            dropped: 0,
        }
    }

    /// Queues `frame`, or drops it if the queue is full and the frame can
    /// be dropped safely (see the module docs). A frame larger than the
    /// whole capacity still goes through when the queue is empty.
    pub fn push(&mut self, frame: Vec<u8>) {
        let over = self.bytes + frame.len() > self.capacity;
        if over && !self.frames.is_empty() && sheddable(&frame) {
            self.dropped += 1;
            return;
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Hands frames to `send` in order while `socket_backlog()` (the
    /// socket's `bufferedAmount`) stays below [`HIGH_WATER`]. Returns
    /// whether frames are still waiting.
    pub fn pump(
        &mut self,
        mut socket_backlog: impl FnMut() -> usize,
        mut send: impl FnMut(&[u8]),
    ) -> bool {
        while !self.frames.is_empty() && socket_backlog() < HIGH_WATER {
            if let Some(frame) = self.frames.pop_front() {
                self.bytes -= frame.len();
                send(&frame);
            }
        }
        !self.frames.is_empty()
    }

    /// Forgets every frame: they belonged to a session that ended, and the
    /// next session starts with its own handshake.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Bytes waiting here (not counting the socket's own buffer).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames dropped because the queue was full, since the repo opened.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Whether losing `frame` loses nothing: its content is durable elsewhere
/// (the outbox) or ephemeral (presence), and will be sent again.
fn sheddable(frame: &[u8]) -> bool {
    matches!(
        decode_client(frame),
        Ok(ClientFrame::Push { .. }
            | ClientFrame::Presence { .. }
            | ClientFrame::Snapshot { .. }
            | ClientFrame::SignedPush { .. }
            | ClientFrame::SignedPresence { .. }
            | ClientFrame::SignedSnapshot { .. }
            | ClientFrame::SignedMessage { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::{DeltaId, DocId, PushDelta, encode_client};

    /// A push as the engine sends it: signed.
    fn push_frame(size: usize) -> Vec<u8> {
        let signer = syncline_protocol::Signer::from_seed(&[1; 32]);
        let push = ClientFrame::Push {
            doc: signer.doc_id(),
            deltas: vec![PushDelta {
                id: DeltaId([2; 32]),
                bytes: vec![0; size],
            }],
        };
        encode_client(&push.signed(&signer, &[0; 16]))
    }

    fn subscribe_frame() -> Vec<u8> {
        encode_client(&ClientFrame::Subscribe {
            doc: DocId([1; 16]),
            since: 0,
        })
    }

    #[test]
    fn a_full_queue_drops_pushes_but_keeps_control_frames() {
        let mut queue = SendQueue::new(10_000);
        for _ in 0..5 {
            queue.push(push_frame(3_000));
        }
        assert!(queue.bytes() <= 10_000, "bounded: {} bytes", queue.bytes());
        assert_eq!(queue.dropped(), 2);
        queue.push(subscribe_frame());
        assert_eq!(queue.dropped(), 2, "a subscribe is never dropped");
        assert_eq!(queue.frames.len(), 4);
        queue.push(message_frame(3_000));
        assert_eq!(queue.dropped(), 3, "nor queued: an app's message");
    }

    /// An app's ephemeral message as the engine sends it.
    fn message_frame(size: usize) -> Vec<u8> {
        let signer = syncline_protocol::Signer::from_seed(&[1; 32]);
        let doc = signer.doc_id();
        let bytes = vec![0; size];
        let digest = syncline_protocol::proof::message_digest(&doc, &[0; 16], None, &bytes);
        encode_client(&ClientFrame::SignedMessage {
            doc,
            to: None,
            bytes,
            proof: signer.prove(&digest),
        })
    }

    #[test]
    fn one_oversized_frame_still_goes_through_an_empty_queue() {
        let mut queue = SendQueue::new(100);
        queue.push(push_frame(1_000));
        assert_eq!(queue.dropped(), 0);
        assert_eq!(queue.frames.len(), 1);
    }

    #[test]
    fn pump_stops_at_the_high_water_mark_and_resumes_in_order() {
        let mut queue = SendQueue::new(DEFAULT_CAPACITY);
        for size in [600_000, 600_000, 600_000] {
            queue.push(push_frame(size));
        }
        let socket = std::cell::Cell::new(0usize);
        let mut sent = Vec::new();
        let waiting = queue.pump(
            || socket.get(),
            |f| {
                socket.set(socket.get() + f.len());
                sent.push(f.len());
            },
        );
        assert!(waiting, "the third frame waits for the socket to drain");
        assert_eq!(sent.len(), 2);
        socket.set(0);
        let waiting = queue.pump(|| socket.get(), |f| sent.push(f.len()));
        assert!(!waiting);
        assert_eq!(sent.len(), 3);
        assert_eq!(queue.bytes(), 0);
    }
}
