//! A connection's bounded outgoing queue.
//!
//! Each WebSocket connection has one [`FrameQueue`]: a bounded queue of
//! already-encoded frames, drained by the connection's writer task through
//! its [`FrameReceiver`]. It allocates its slots only when something is queued
//! (and gives them back after a burst), so an idle connection pays for none. Two kinds
//! of producers put frames in it:
//!
//! * the connection itself (`Welcome`, `Ack`, catch-up pages, `Pong`), which
//!   may **wait** for room with [`FrameQueue::send`] — backpressure from a slow
//!   reader only slows down that reader's own requests;
//! * other connections' pushes, fanned out by the [`Hub`](crate::hub::Hub),
//!   which must **never wait** on someone else's socket. They use
//!   [`FrameQueue::try_send`]; when the queue is full the subscriber is too slow,
//!   and it is [kicked](FrameQueue::kick) — disconnected — rather than buffered
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
//! frames with [`FrameQueue::try_send_live`], saying what they are
//! ([`Live`]), and the queue merges a frame into one **still queued** —
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
//! # Bounded in bytes too
//!
//! Besides slots, a queue holds at most a budget of encoded bytes
//! ([`FrameQueue::with_bytes`], `--queue-bytes`): each frame (each part of a
//! merged one) takes its length from the budget, a frame larger than the
//! whole budget takes all of it, and the writer gives it back when it
//! takes the frame. A fan-out that finds no room — slots or bytes — kicks
//! the subscriber; the connection's own sends wait, and the writer drops a
//! socket that takes no bytes for the idle timeout. So 1,024 queued frames
//! of a few MiB each cannot pile up for a client that stopped reading.
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
pub enum Outbound {
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

/// [`FrameReceiver::try_recv`] found nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nothing is queued")]
pub struct Empty;

/// The part of a byte budget of `max` a frame of `len` bytes takes: its
/// length, or all of it for a larger frame.
fn charge(len: usize, max: u32) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX).min(max)
}

/// Above this many slots, an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

/// What a live frame offered with [`FrameQueue::try_send_live`] is, so that
/// the queue can merge it with a queued one (see the module docs).
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

    /// How much of the byte budget `max` it holds.
    fn charge(&self, max: u32) -> u32 {
        match self {
            Item::Frame(bytes) => charge(bytes.len(), max),
            Item::Close { .. } => 0,
            Item::Tentative { parts, .. } | Item::Committed { parts, .. } => {
                parts.iter().map(|p| charge(p.len(), max)).sum()
            }
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
    fn into_outgoing(self) -> Outbound {
        match self {
            Item::Frame(bytes) => Outbound::Frame(bytes),
            Item::Close { code, reason } => Outbound::Close { code, reason },
            Item::Tentative { mut parts, .. } if parts.len() == 1 => {
                Outbound::Frame(parts.pop().unwrap_or_default())
            }
            Item::Tentative { doc, parts, .. } => Outbound::Frame(merge_tentative(doc, &parts)),
            Item::Committed { mut parts, .. } if parts.len() == 1 => {
                Outbound::Frame(parts.pop().unwrap_or_default())
            }
            Item::Committed {
                doc,
                after,
                seq,
                parts,
                ..
            } => Outbound::Frame(merge_committed(doc, after, seq, &parts)),
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
struct QueueState {
    items: Mutex<VecDeque<Item>>,
    /// One permit per free slot (a merged live frame holds one per part).
    room: Semaphore,
    /// One permit per free byte of the budget.
    bytes: Semaphore,
    /// The budget.
    max_bytes: u32,
    /// Wakes the receiver: a frame was queued or the last sender left.
    ready: Notify,
    senders: AtomicUsize,
    kicked: Notify,
}

impl QueueState {
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

    fn pop(&self) -> Option<Outbound> {
        let mut items = self.items();
        let next = items.pop_front()?;
        if items.is_empty() && items.capacity() > KEEP_SLOTS {
            items.shrink_to(KEEP_SLOTS);
        }
        drop(items);
        self.room.add_permits(next.slots());
        self.bytes.add_permits(next.charge(self.max_bytes) as usize);
        Some(next.into_outgoing())
    }
}

/// The sending side of a connection's queue; cheap to clone.
pub struct FrameQueue {
    id: ConnId,
    state: Arc<QueueState>,
}

impl std::fmt::Debug for FrameQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameQueue").field("id", &self.id).finish()
    }
}

impl Clone for FrameQueue {
    fn clone(&self) -> FrameQueue {
        self.state.senders.fetch_add(1, Ordering::Relaxed);
        FrameQueue {
            id: self.id,
            state: Arc::clone(&self.state),
        }
    }
}

impl Drop for FrameQueue {
    fn drop(&mut self) {
        if self.state.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver sees the end once the queue is drained.
            self.state.ready.notify_one();
        }
    }
}

/// The receiving side: the connection's writer task drains it.
pub struct FrameReceiver {
    state: Arc<QueueState>,
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        // Senders waiting for room, and every later send, see `Closed`.
        self.state.room.close();
        self.state.bytes.close();
    }
}

impl FrameReceiver {
    /// The next queued item, waiting for one; `None` once every
    /// [`FrameQueue`] is dropped and the queue is drained. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(next) = self.state.pop() {
                return Some(next);
            }
            if self.state.senders.load(Ordering::Acquire) == 0 {
                // A last send may have landed just before the last drop.
                return self.state.pop();
            }
            // A notification sent since the check above is kept (only this
            // task waits here), so none is lost.
            self.state.ready.notified().await;
        }
    }

    /// The next queued item, if there is one right now.
    pub fn try_recv(&mut self) -> Result<Outbound, Empty> {
        self.state.pop().ok_or(Empty)
    }

    /// Disconnects the connection from the writer's side (its socket took
    /// nothing for too long).
    pub fn kick(&self) {
        self.state.kicked.notify_one();
    }
}

impl FrameQueue {
    /// A queue holding at most `capacity` frames, and its receiving end.
    /// Allocates no slots until something is queued.
    pub fn new(id: ConnId, capacity: usize) -> (FrameQueue, FrameReceiver) {
        FrameQueue::with_bytes(id, capacity, usize::MAX)
    }

    /// A queue holding at most `capacity` frames and `max_bytes` of them
    /// (at most 4 GiB), and its receiving end.
    pub fn with_bytes(
        id: ConnId,
        capacity: usize,
        max_bytes: usize,
    ) -> (FrameQueue, FrameReceiver) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let max_bytes = u32::try_from(max_bytes.max(1)).unwrap_or(u32::MAX);
        let state = Arc::new(QueueState {
            items: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity),
            bytes: Semaphore::new(max_bytes as usize),
            max_bytes,
            ready: Notify::new(),
            senders: AtomicUsize::new(1),
            kicked: Notify::new(),
        });
        let receiver = FrameReceiver {
            state: Arc::clone(&state),
        };
        (FrameQueue { id, state }, receiver)
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
        let slot = self.state.room.acquire().await.map_err(|_| Closed)?;
        let charge = item.charge(self.state.max_bytes);
        let bytes = self.state.bytes.acquire_many(charge).await;
        slot.forget();
        bytes.map_err(|_| Closed)?.forget();
        self.state.push(item);
        Ok(())
    }

    /// Takes a slot and `len` bytes of the budget if there are right now.
    fn try_slot(&self, len: usize) -> Result<(), TrySendError> {
        let closed = |e| match e {
            TryAcquireError::NoPermits => TrySendError::Full,
            TryAcquireError::Closed => TrySendError::Closed,
        };
        let slot = self.state.room.try_acquire().map_err(closed)?;
        let charge = charge(len, self.state.max_bytes);
        let bytes = self.state.bytes.try_acquire_many(charge).map_err(closed)?;
        slot.forget();
        bytes.forget();
        Ok(())
    }

    /// Queues an encoded frame if there is room right now.
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        self.try_slot(frame.len())?;
        self.state.push(Item::Frame(frame));
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
        self.try_slot(frame.len())?;
        self.state.push_live(frame, live, limits);
        Ok(())
    }

    /// Asks the connection to disconnect (its consumer is too slow).
    pub fn kick(&self) {
        // `notify_one` stores a permit if nobody is waiting yet, so a kick is
        // never lost between two polls of `kicked()`.
        self.state.kicked.notify_one();
    }

    /// Resolves once [`kick`](FrameQueue::kick) was called. Cancel-safe.
    pub async fn kicked(&self) {
        self.state.kicked.notified().await;
    }
}

#[cfg(test)]
mod tests;
