//! A connection's bounded outgoing queue.
//!
//! Each WebSocket connection has one [`Outbox`]: a bounded queue of
//! already-encoded frames, drained by the connection's writer task through
//! its [`Queue`]. It allocates its slots only when something is queued
//! (and gives them back after a burst), so an idle connection pays for none. Two kinds
//! of producers put frames in it:
//!
//! * the connection itself (`Welcome`, `Ack`, catch-up pages, `Pong`), which
//!   may **wait** for room with [`Outbox::send`] — backpressure from a slow
//!   reader only slows down that reader's own requests;
//! * other connections' pushes, fanned out by the [`Hub`](crate::hub::Hub),
//!   which must **never wait** on someone else's socket. They use
//!   [`Outbox::try_send`]; when the queue is full the subscriber is too slow,
//!   and it is [kicked](Outbox::kick) — disconnected — rather than buffered
//!   without bound. It reconnects and catches up from its cursor.
//!
//! Frames are [`Bytes`], so one fanned-out frame is encoded once and shared
//! by every subscriber.
//!
//! # Coalescing live frames
//!
//! Version 2 fans each push out as its own `Tentative` frame, so a
//! subscriber of a busy document is offered one frame per push (256
//! typists: ~1,500 a second), where version 1 sent one `Deltas` frame per
//! group commit. Each frame costs an encode, a WebSocket message, its
//! share of a syscall, and a decode in the client. So the hub offers live
//! frames with [`Outbox::try_send_live`], saying what they are
//! ([`Live`]), and the outbox merges a frame into one **still queued** —
//! not yet taken by the writer — instead of queueing another:
//!
//! * a `Tentative` for document D joins the newest queued `Tentative` for
//!   D if nothing but `Committed` frames for D were queued after it (the
//!   deltas are appended, in order);
//! * a `Committed{D, after, seq, ids}` joins the newest queued frame if
//!   that is a `Committed` for D whose `seq` is this `after` (the result
//!   is `after` of the first, `seq` of the last, the ids concatenated);
//!
//! each within the frame limits the hub passes (deltas or ids per frame,
//! encoded bytes). Nothing waits for anything: an idle connection's writer
//! takes each frame as soon as it is queued, so it goes out alone and at
//! once; frames merge only while the writer lags (a slow socket, a busy
//! core), exactly when fewer, larger frames help. The merged frame is
//! built when the writer takes it (the `Tentative` parts, each encoded
//! once and shared by every subscriber, are spliced without decoding).
//!
//! Why this keeps every promise of the [hub](crate::hub): merging two
//! adjacent frames of one kind sends the same deltas/ids in the same order;
//! a `Tentative` moved ahead of `Committed` frames of its document arrives
//! *earlier*, so it is still sent before any `Committed` covering it, and a
//! `Committed` does not depend on which other tentative deltas came before
//! it; two chained ranges make the one range they cover. A `Tentative`
//! never moves past anything else (catch-up `Deltas`, an `Ack`, presence,
//! another document's frame, a close).
//!
//! The bound is unchanged: every offer takes a slot, merged or not, and
//! the slots come back when the writer takes the frame. So a subscriber is
//! kicked after exactly as many unsent offers as before, and the memory
//! queued per connection is bounded as before.
//!
//! The alternative — a per-document batcher flushing on the next scheduler
//! turn — would encode once per batch for every subscriber, but adds a hop
//! to every push even when idle, and needs its own ordering against the
//! commit's `Committed` frames. Merging in the queue needs neither.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use syncline_protocol::{
    DocId, MAX_DELTAS_PER_FRAME, PushDelta, RelayFrame, decode_relay, encode_relay,
};
use tokio::sync::{Notify, Semaphore, TryAcquireError};

use crate::store::PageLimits;

/// Identifies one connection for the lifetime of the process.
pub type ConnId = u64;

/// What the writer task sends on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// One encoded [`RelayFrame`], sent as one binary message.
    Frame(Bytes),
    /// A WebSocket close with this code and reason; nothing follows it.
    Close { code: u16, reason: &'static str },
}

/// The queue is closed: the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

/// Why a non-waiting send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The queue is full: the consumer is slow.
    #[error("the outgoing queue is full")]
    Full,
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

/// [`Queue::try_recv`] found nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nothing is queued")]
pub struct Empty;

/// Above this many slots, an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

/// What a live frame offered with [`Outbox::try_send_live`] is, so that
/// the outbox can merge it with a queued one (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// `Tentative{doc, deltas}` with this many deltas.
    Tentative { doc: DocId, deltas: usize },
    /// `Committed{doc, after, seq, ids}` with this many ids.
    Committed {
        doc: DocId,
        after: u64,
        seq: u64,
        ids: usize,
    },
}

/// A queued item. Live frames keep every offered part, each holding one
/// slot, until the writer takes them as one frame.
enum Item {
    Frame(Bytes),
    Close {
        code: u16,
        reason: &'static str,
    },
    Tentative {
        doc: DocId,
        parts: Vec<Bytes>,
        deltas: usize,
        bytes: usize,
    },
    Committed {
        doc: DocId,
        after: u64,
        seq: u64,
        parts: Vec<Bytes>,
        ids: usize,
    },
}

impl Item {
    /// How many slots it holds.
    fn slots(&self) -> usize {
        match self {
            Item::Frame(_) | Item::Close { .. } => 1,
            Item::Tentative { parts, .. } | Item::Committed { parts, .. } => parts.len(),
        }
    }

    /// Tries to merge the live frame `frame` into this item; gives it
    /// back if it does not fit.
    fn merge(&mut self, frame: Bytes, live: Live, limits: PageLimits) -> Result<(), Bytes> {
        match (self, live) {
            (
                Item::Tentative {
                    doc,
                    parts,
                    deltas,
                    bytes,
                },
                Live::Tentative {
                    doc: new_doc,
                    deltas: new_deltas,
                },
            ) if *doc == new_doc
                && *deltas + new_deltas <= limits.max_items.clamp(1, MAX_DELTAS_PER_FRAME)
                && *bytes + frame.len() <= limits.max_bytes =>
            {
                *deltas += new_deltas;
                *bytes += frame.len();
                parts.push(frame);
                Ok(())
            }
            (
                Item::Committed {
                    doc,
                    seq,
                    parts,
                    ids,
                    ..
                },
                Live::Committed {
                    doc: new_doc,
                    after: new_after,
                    seq: new_seq,
                    ids: new_ids,
                },
            ) if *doc == new_doc && *seq == new_after && *ids + new_ids <= MAX_DELTAS_PER_FRAME => {
                *seq = new_seq;
                *ids += new_ids;
                parts.push(frame);
                Ok(())
            }
            _ => Err(frame),
        }
    }

    /// What the writer sends for it.
    fn into_outgoing(self) -> Outgoing {
        match self {
            Item::Frame(bytes) => Outgoing::Frame(bytes),
            Item::Close { code, reason } => Outgoing::Close { code, reason },
            Item::Tentative { mut parts, .. } if parts.len() == 1 => {
                Outgoing::Frame(parts.pop().unwrap_or_default())
            }
            Item::Tentative { doc, parts, .. } => Outgoing::Frame(merge_tentative(doc, &parts)),
            Item::Committed { mut parts, .. } if parts.len() == 1 => {
                Outgoing::Frame(parts.pop().unwrap_or_default())
            }
            Item::Committed {
                doc,
                after,
                seq,
                parts,
                ..
            } => Outgoing::Frame(merge_committed(doc, after, seq, &parts)),
        }
    }
}

/// One `Tentative{doc, deltas}` frame holding the deltas of the encoded
/// `Tentative` frames `parts` of `doc`, in order.
///
/// The encoding (postcard) of `Tentative{doc, deltas}` is a prefix that
/// depends on `doc` only, the number of deltas as a varint, then each
/// delta; so the merged frame is the prefix, the total as a varint, and
/// every part's deltas copied as they are. Should a part not look like
/// that, the parts are decoded and the frame encoded anew. (A unit test
/// checks the splice against [`encode_relay`] byte for byte.)
pub(crate) fn merge_tentative(doc: DocId, parts: &[Bytes]) -> Bytes {
    splice_tentative(doc, parts).unwrap_or_else(|| {
        let mut deltas = Vec::new();
        for part in parts {
            if let Ok(RelayFrame::Tentative { deltas: more, .. }) = decode_relay(part) {
                deltas.extend(more);
            }
        }
        Bytes::from(encode_relay(&RelayFrame::Tentative { doc, deltas }))
    })
}

fn splice_tentative(doc: DocId, parts: &[Bytes]) -> Option<Bytes> {
    let empty = encode_relay(&RelayFrame::Tentative {
        doc,
        deltas: Vec::<PushDelta>::new(),
    });
    // The prefix, then a count of 0 (one byte).
    let (&0, prefix) = empty.split_last()? else {
        return None;
    };
    let mut total = 0u64;
    let mut bodies = Vec::with_capacity(parts.len());
    for part in parts {
        let rest = part.strip_prefix(prefix)?;
        let (count, used) = read_varint(rest)?;
        total = total.checked_add(count)?;
        bodies.push(&rest[used..]);
    }
    let len = prefix.len() + 10 + bodies.iter().map(|b| b.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(prefix);
    write_varint(&mut out, total);
    for body in bodies {
        out.extend_from_slice(body);
    }
    Some(Bytes::from(out))
}

/// A LEB128 varint (postcard's encoding of lengths) at the start of
/// `bytes`, and how many bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One `Committed{doc, after, seq, ids}` frame holding the ids of the
/// encoded, chained `Committed` frames `parts` of `doc`, in order. Ids are
/// small and fixed-size: decoded and encoded anew.
fn merge_committed(doc: DocId, after: u64, seq: u64, parts: &[Bytes]) -> Bytes {
    let mut ids = Vec::new();
    for part in parts {
        if let Ok(RelayFrame::Committed { ids: more, .. }) = decode_relay(part) {
            ids.extend(more);
        }
    }
    Bytes::from(encode_relay(&RelayFrame::Committed {
        doc,
        after,
        seq,
        ids,
    }))
}

/// The state both ends share. A plain `VecDeque` rather than a tokio
/// `mpsc` channel: the channel allocates a block of 32 slots (~1 KiB) when
/// it is created, which every idle connection would carry; a `VecDeque`
/// allocates on the first frame.
struct Shared {
    items: Mutex<VecDeque<Item>>,
    /// One permit per free slot (a merged live frame holds one per part).
    room: Semaphore,
    /// Wakes the receiver: a frame was queued or the last sender left.
    ready: Notify,
    senders: AtomicUsize,
    kicked: Notify,
}

impl Shared {
    fn items(&self) -> MutexGuard<'_, VecDeque<Item>> {
        // Every change under the lock is a single push, pop or merge.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` in a slot already taken from `room`.
    fn push(&self, item: Item) {
        self.items().push_back(item);
        self.ready.notify_one();
    }

    /// Merges the live `frame` into a queued frame if it may (see the
    /// module docs), else queues it; either way in a slot already taken
    /// from `room`.
    fn push_live(&self, frame: Bytes, live: Live, limits: PageLimits) {
        let mut items = self.items();
        let into = match live {
            // The newest `Tentative` of the document, behind nothing but
            // `Committed` frames of it.
            Live::Tentative { doc, .. } => items
                .iter()
                .rposition(|item| !matches!(item, Item::Committed { doc: d, .. } if *d == doc))
                .filter(|&i| matches!(&items[i], Item::Tentative { doc: d, .. } if *d == doc)),
            // The newest frame.
            Live::Committed { .. } => items.len().checked_sub(1),
        };
        let frame = match into {
            Some(i) => match items[i].merge(frame, live, limits) {
                // Already queued, so the writer was woken for it.
                Ok(()) => return,
                Err(frame) => frame,
            },
            None => frame,
        };
        items.push_back(match live {
            Live::Tentative { doc, deltas } => Item::Tentative {
                doc,
                deltas,
                bytes: frame.len(),
                parts: vec![frame],
            },
            Live::Committed {
                doc,
                after,
                seq,
                ids,
            } => Item::Committed {
                doc,
                after,
                seq,
                ids,
                parts: vec![frame],
            },
        });
        drop(items);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Outgoing> {
        let mut items = self.items();
        let next = items.pop_front()?;
        if items.is_empty() && items.capacity() > KEEP_SLOTS {
            items.shrink_to(KEEP_SLOTS);
        }
        drop(items);
        self.room.add_permits(next.slots());
        Some(next.into_outgoing())
    }
}

/// The sending side of a connection's queue; cheap to clone.
pub struct Outbox {
    id: ConnId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("id", &self.id).finish()
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            id: self.id,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver sees the end once the queue is drained.
            self.shared.ready.notify_one();
        }
    }
}

/// The receiving side: the connection's writer task drains it.
pub struct Queue {
    shared: Arc<Shared>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Senders waiting for room, and every later send, see `Closed`.
        self.shared.room.close();
    }
}

impl Queue {
    /// The next queued item, waiting for one; `None` once every
    /// [`Outbox`] is dropped and the queue is drained. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(next) = self.shared.pop() {
                return Some(next);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A last send may have landed just before the last drop.
                return self.shared.pop();
            }
            // A notification sent since the check above is kept (only this
            // task waits here), so none is lost.
            self.shared.ready.notified().await;
        }
    }

    /// The next queued item, if there is one right now.
    pub fn try_recv(&mut self) -> Result<Outgoing, Empty> {
        self.shared.pop().ok_or(Empty)
    }
}

impl Outbox {
    /// A queue holding at most `capacity` frames, and its receiving end.
    /// Allocates no slots until something is queued.
    pub fn new(id: ConnId, capacity: usize) -> (Outbox, Queue) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            items: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity),
            ready: Notify::new(),
            senders: AtomicUsize::new(1),
            kicked: Notify::new(),
        });
        let queue = Queue {
            shared: Arc::clone(&shared),
        };
        (Outbox { id, shared }, queue)
    }

    /// The connection this queue belongs to.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Encodes `frame` and queues it, waiting for room.
    pub async fn send(&self, frame: &RelayFrame) -> Result<(), Closed> {
        self.send_bytes(Bytes::from(encode_relay(frame))).await
    }

    /// Queues an encoded frame, waiting for room.
    pub async fn send_bytes(&self, frame: Bytes) -> Result<(), Closed> {
        self.send_waiting(Item::Frame(frame)).await
    }

    /// Queues a close, waiting for room. Nothing should be sent after it.
    pub async fn close(&self, code: u16, reason: &'static str) -> Result<(), Closed> {
        self.send_waiting(Item::Close { code, reason }).await
    }

    async fn send_waiting(&self, item: Item) -> Result<(), Closed> {
        // Fair: senders get room in the order they asked.
        let slot = self.shared.room.acquire().await.map_err(|_| Closed)?;
        slot.forget();
        self.shared.push(item);
        Ok(())
    }

    /// Takes a slot if there is one right now.
    fn try_slot(&self) -> Result<(), TrySendError> {
        match self.shared.room.try_acquire() {
            Ok(slot) => {
                slot.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed),
        }
    }

    /// Queues an encoded frame if there is room right now.
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        self.try_slot()?;
        self.shared.push(Item::Frame(frame));
        Ok(())
    }

    /// Queues the encoded live frame `frame`, described by `live`, if there
    /// is room right now, merging it into a queued frame where the module
    /// docs allow (a merged `Tentative` stays within `limits`). It takes a
    /// slot either way.
    pub fn try_send_live(
        &self,
        frame: Bytes,
        live: Live,
        limits: PageLimits,
    ) -> Result<(), TrySendError> {
        self.try_slot()?;
        self.shared.push_live(frame, live, limits);
        Ok(())
    }

    /// Asks the connection to disconnect (its consumer is too slow).
    pub fn kick(&self) {
        // `notify_one` stores a permit if nobody is waiting yet, so a kick is
        // never lost between two polls of `kicked()`.
        self.shared.kicked.notify_one();
    }

    /// Resolves once [`kick`](Outbox::kick) was called. Cancel-safe.
    pub async fn kicked(&self) {
        self.shared.kicked.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting_and_a_kick_is_remembered() {
        let (outbox, mut rx) = Outbox::new(7, 1);
        assert_eq!(outbox.try_send(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(
            outbox.try_send(Bytes::from_static(b"b")),
            Err(TrySendError::Full)
        );
        outbox.kick();
        // The permit was stored: waiting afterwards completes at once.
        tokio::time::timeout(Duration::from_secs(5), outbox.kicked())
            .await
            .expect("the kick was remembered");
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"a")))
        );
        drop(rx);
        assert_eq!(
            outbox.try_send(Bytes::from_static(b"c")),
            Err(TrySendError::Closed)
        );
        assert_eq!(
            outbox.send_bytes(Bytes::from_static(b"d")).await,
            Err(Closed)
        );
    }

    #[tokio::test]
    async fn a_waiting_send_gets_room_when_the_receiver_drains_and_the_end_follows_the_last_frame()
    {
        let (outbox, mut rx) = Outbox::new(3, 1);
        outbox.send_bytes(Bytes::from_static(b"a")).await.unwrap();
        let sender = outbox.clone();
        let waiting =
            tokio::spawn(async move { sender.send_bytes(Bytes::from_static(b"b")).await });
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"a")))
        );
        waiting.await.unwrap().unwrap();
        drop(outbox);
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"b")))
        );
        assert_eq!(rx.recv().await, None, "every sender is gone");
        assert_eq!(rx.try_recv(), Err(Empty));
    }

    #[test]
    fn an_idle_queue_holds_no_slots_and_an_emptied_one_gives_them_back() {
        let (outbox, mut rx) = Outbox::new(1, 4096);
        assert_eq!(outbox.shared.items().capacity(), 0, "nothing allocated");
        for _ in 0..1000 {
            outbox.try_send(Bytes::from_static(b"x")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(outbox.shared.items().capacity() <= KEEP_SLOTS);
        assert_eq!(outbox.shared.room.available_permits(), 4096);
    }

    const DOC: DocId = DocId([4; 16]);
    const OTHER: DocId = DocId([5; 16]);
    const LIMITS: PageLimits = PageLimits {
        max_items: 1000,
        max_bytes: 1 << 20,
    };

    fn delta(n: u32, len: usize) -> PushDelta {
        let mut id = [0xab; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        PushDelta {
            id: syncline_protocol::DeltaId(id),
            bytes: vec![n as u8; len],
        }
    }

    /// An encoded `Tentative` of `doc` with deltas `ns`, and what it is.
    fn tentative(doc: DocId, ns: impl IntoIterator<Item = u32>) -> (Bytes, Live) {
        let deltas: Vec<PushDelta> = ns.into_iter().map(|n| delta(n, 5)).collect();
        let live = Live::Tentative {
            doc,
            deltas: deltas.len(),
        };
        let frame = RelayFrame::Tentative { doc, deltas };
        (Bytes::from(encode_relay(&frame)), live)
    }

    fn committed(after: u64, seq: u64, ns: impl IntoIterator<Item = u32>) -> (Bytes, Live) {
        let ids: Vec<_> = ns.into_iter().map(|n| delta(n, 0).id).collect();
        let live = Live::Committed {
            doc: DOC,
            after,
            seq,
            ids: ids.len(),
        };
        let frame = RelayFrame::Committed {
            doc: DOC,
            after,
            seq,
            ids,
        };
        (Bytes::from(encode_relay(&frame)), live)
    }

    fn offer(outbox: &Outbox, (frame, live): (Bytes, Live)) -> Result<(), TrySendError> {
        outbox.try_send_live(frame, live, LIMITS)
    }

    fn drain(rx: &mut Queue) -> Vec<RelayFrame> {
        let mut frames = Vec::new();
        while let Ok(Outgoing::Frame(bytes)) = rx.try_recv() {
            frames.push(decode_relay(&bytes).expect("a valid frame"));
        }
        frames
    }

    fn decoded((frame, _): (Bytes, Live)) -> RelayFrame {
        decode_relay(&frame).unwrap()
    }

    #[test]
    fn tentatives_queued_while_the_writer_lags_go_out_as_one_frame_in_order() {
        let (outbox, mut rx) = Outbox::new(1, 1024);
        for n in 0..300 {
            offer(&outbox, tentative(DOC, [n])).unwrap();
        }
        assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, 0..300))]);
        // Every part's slot is back.
        assert_eq!(outbox.shared.room.available_permits(), 1024);
    }

    #[tokio::test]
    async fn an_idle_writer_gets_each_tentative_at_once_as_it_was_encoded() {
        let (outbox, mut rx) = Outbox::new(1, 1024);
        for n in 0..5 {
            let (frame, live) = tentative(DOC, [n]);
            let ptr = frame.as_ptr();
            outbox.try_send_live(frame.clone(), live, LIMITS).unwrap();
            // The writer, waiting for the next frame, gets this one alone
            // and as it was encoded (not re-encoded).
            let Some(Outgoing::Frame(got)) = rx.recv().await else {
                panic!("a frame");
            };
            assert_eq!((got.as_ptr(), &got), (ptr, &frame));
            assert_eq!(rx.try_recv(), Err(Empty));
        }
    }

    #[test]
    fn the_splice_is_byte_for_byte_the_encoding_of_the_merged_frame() {
        // Counts crossing the one- and two-byte varint boundaries, empty
        // and large deltas.
        for (sizes, lens) in [
            (vec![1, 1], vec![0, 70_000]),
            (vec![127, 1], vec![3, 3]),
            (vec![100, 28, 1], vec![1, 200]),
            (vec![16_383, 1], vec![2, 0]),
        ] {
            let mut n = 0u32;
            let mut all = Vec::new();
            let mut parts = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let deltas: Vec<PushDelta> = (0..*size)
                    .map(|_| {
                        n += 1;
                        delta(n, lens[i % lens.len()])
                    })
                    .collect();
                all.extend(deltas.clone());
                parts.push(Bytes::from(encode_relay(&RelayFrame::Tentative {
                    doc: DOC,
                    deltas,
                })));
            }
            let expected = encode_relay(&RelayFrame::Tentative {
                doc: DOC,
                deltas: all,
            });
            assert_eq!(
                splice_tentative(DOC, &parts).as_deref(),
                Some(&expected[..])
            );
            assert_eq!(&merge_tentative(DOC, &parts)[..], &expected[..]);
        }
    }

    #[test]
    fn merged_tentatives_stay_within_the_frame_limits() {
        let (outbox, mut rx) = Outbox::new(1, 1024);
        let limits = PageLimits {
            max_items: 3,
            max_bytes: usize::MAX,
        };
        for n in 0..7 {
            let (frame, live) = tentative(DOC, [n]);
            outbox.try_send_live(frame, live, limits).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            vec![
                decoded(tentative(DOC, 0..3)),
                decoded(tentative(DOC, 3..6)),
                decoded(tentative(DOC, 6..7)),
            ]
        );
        // By bytes: two parts fit, a third would not.
        let (one, _) = tentative(DOC, [0]);
        let limits = PageLimits {
            max_items: 1000,
            max_bytes: 2 * one.len(),
        };
        for n in 0..5 {
            let (frame, live) = tentative(DOC, [n]);
            outbox.try_send_live(frame, live, limits).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            vec![
                decoded(tentative(DOC, 0..2)),
                decoded(tentative(DOC, 2..4)),
                decoded(tentative(DOC, 4..5)),
            ]
        );
    }

    #[test]
    fn a_tentative_joins_its_document_s_across_committed_frames_only() {
        let (outbox, mut rx) = Outbox::new(1, 1024);
        offer(&outbox, tentative(DOC, [1])).unwrap();
        offer(&outbox, committed(0, 1, [1])).unwrap();
        // Ahead of the `Committed`: still before any range covering it.
        offer(&outbox, tentative(DOC, [2])).unwrap();
        // Chained: one range.
        offer(&outbox, committed(1, 2, [2])).unwrap();
        assert_eq!(
            drain(&mut rx),
            vec![
                decoded(tentative(DOC, [1, 2])),
                decoded(committed(0, 2, [1, 2]))
            ]
        );

        // Not past another document's frame, a plain frame, or into a
        // frame the writer already took.
        offer(&outbox, tentative(DOC, [1])).unwrap();
        offer(&outbox, tentative(OTHER, [2])).unwrap();
        offer(&outbox, tentative(DOC, [3])).unwrap();
        outbox
            .try_send(Bytes::from(encode_relay(&RelayFrame::Pong { nonce: 9 })))
            .unwrap();
        offer(&outbox, tentative(DOC, [4])).unwrap();
        assert_eq!(
            drain(&mut rx),
            vec![
                decoded(tentative(DOC, [1])),
                decoded(tentative(OTHER, [2])),
                decoded(tentative(DOC, [3])),
                RelayFrame::Pong { nonce: 9 },
                decoded(tentative(DOC, [4])),
            ]
        );
        offer(&outbox, tentative(DOC, [5])).unwrap();
        assert_eq!(rx.try_recv().map(|_| ()), Ok(()));
        offer(&outbox, tentative(DOC, [6])).unwrap();
        assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, [6]))]);
    }

    #[test]
    fn only_chained_committed_ranges_of_one_document_merge_within_the_id_bound() {
        let (outbox, mut rx) = Outbox::new(1, 1024);
        offer(&outbox, committed(0, 2, [1, 2])).unwrap();
        // Not chained (a resubscription starts a new run): kept apart.
        offer(&outbox, committed(5, 6, [6])).unwrap();
        offer(&outbox, committed(6, 9, [])).unwrap();
        offer(&outbox, tentative(DOC, [10])).unwrap();
        // Not into a frame behind the `Tentative`.
        offer(&outbox, committed(9, 10, [10])).unwrap();
        assert_eq!(
            drain(&mut rx),
            vec![
                decoded(committed(0, 2, [1, 2])),
                decoded(committed(5, 9, [6])),
                decoded(tentative(DOC, [10])),
                decoded(committed(9, 10, [10])),
            ]
        );
        let max = MAX_DELTAS_PER_FRAME as u32;
        offer(&outbox, committed(0, u64::from(max), 0..max)).unwrap();
        offer(
            &outbox,
            committed(u64::from(max), u64::from(max) + 1, [max]),
        )
        .unwrap();
        assert_eq!(drain(&mut rx).len(), 2, "no frame past the id bound");
    }

    #[tokio::test]
    async fn merged_offers_still_take_a_slot_each_so_a_lagging_subscriber_is_refused() {
        let (outbox, mut rx) = Outbox::new(1, 3);
        for n in 0..3 {
            offer(&outbox, tentative(DOC, [n])).unwrap();
        }
        assert_eq!(
            offer(&outbox, tentative(DOC, [3])),
            Err(TrySendError::Full),
            "three offers fill three slots, merged or not"
        );
        assert_eq!(drain(&mut rx), vec![decoded(tentative(DOC, 0..3))]);
        offer(&outbox, tentative(DOC, [3])).unwrap();
    }
}
