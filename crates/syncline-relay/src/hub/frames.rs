//! Encoding fanned-out deltas into frames within the frame limits:
//! `Deltas` (catch-up pages, version 1 live delivery), `Tentative` and
//! `Committed` (version 2 live delivery).

use std::ops::Range;

use axum::body::Bytes;
use syncline_protocol::{
    DeltaId, DocId, MAX_DELTAS_PER_FRAME, PushDelta, RelayFrame, SequencedDelta, encode_relay,
};

use crate::frame_queue::Live;
use crate::store::PageLimits;

/// Splits items of the given byte lengths into consecutive runs within
/// `limits` (and [`MAX_DELTAS_PER_FRAME`]); each run holds at least one
/// item, even one larger than `limits.max_bytes` alone.
fn runs(lens: impl ExactSizeIterator<Item = usize>, limits: PageLimits) -> Vec<Range<usize>> {
    let max_items = limits.max_items.clamp(1, MAX_DELTAS_PER_FRAME);
    let total = lens.len();
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, len) in lens.enumerate() {
        let full = i - start == max_items || (i > start && bytes + len > limits.max_bytes);
        if full {
            runs.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < total {
        runs.push(start..total);
    }
    runs
}

/// Splits `items` into encoded `Deltas` frames within `limits` (each frame
/// holds at least one delta).
pub fn delta_frames(
    doc: DocId,
    items: &[SequencedDelta],
    limits: PageLimits,
    caught_up: bool,
) -> Vec<Bytes> {
    runs(items.iter().map(|d| d.bytes.len()), limits)
        .into_iter()
        .map(|run| {
            let frame = RelayFrame::Deltas {
                doc,
                items: items[run].to_vec(),
                caught_up,
            };
            Bytes::from(encode_relay(&frame))
        })
        .collect()
}

/// An encoded live frame and what it is, for [`FrameQueue::try_send_live`](crate::frame_queue::FrameQueue::try_send_live).
pub(super) type LiveFrame = (Bytes, Live);

/// Splits `deltas` into encoded `Tentative` frames within `limits`. The
/// deltas are moved into each frame to encode it and moved back after, so
/// no delta bytes are copied; `deltas` is unchanged when this returns.
pub(super) fn tentative_frames(
    doc: DocId,
    deltas: &mut Vec<PushDelta>,
    limits: PageLimits,
) -> Vec<LiveFrame> {
    let runs = runs(deltas.iter().map(|d| d.bytes.len()), limits);
    let mut frames = Vec::with_capacity(runs.len());
    // Back to front, so each run is the tail of what is left.
    let mut tails = Vec::with_capacity(runs.len());
    for run in runs.into_iter().rev() {
        let frame = RelayFrame::Tentative {
            doc,
            deltas: deltas.split_off(run.start),
        };
        let live = Live::Tentative {
            doc,
            deltas: run.len(),
        };
        frames.push((Bytes::from(encode_relay(&frame)), live));
        if let RelayFrame::Tentative { deltas: tail, .. } = frame {
            tails.push(tail);
        }
    }
    for mut tail in tails.into_iter().rev() {
        deltas.append(&mut tail);
    }
    frames.reverse();
    frames
}

/// Encodes the `Committed` frames for the sequences `after + 1 ..= last`,
/// given as `(seq, id)` in sequence order with `id` `None` for the
/// receiver's own deltas: one frame, or — past [`MAX_DELTAS_PER_FRAME`]
/// ids — several, each one's `after` the previous one's `seq`. Nothing when
/// `items` is empty.
pub(super) fn committed_frames(
    doc: DocId,
    mut after: u64,
    items: impl IntoIterator<Item = (u64, Option<DeltaId>)>,
) -> Vec<LiveFrame> {
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    let mut last = after;
    let mut frame = |after: u64, seq: u64, ids: Vec<DeltaId>| {
        let live = Live::Committed {
            doc,
            after,
            seq,
            ids: ids.len(),
        };
        let frame = RelayFrame::Committed {
            doc,
            after,
            seq,
            ids,
        };
        frames.push((Bytes::from(encode_relay(&frame)), live));
    };
    for (seq, id) in items {
        debug_assert!(seq > last, "committed sequences increase");
        last = seq;
        if let Some(id) = id {
            ids.push(id);
            if ids.len() == MAX_DELTAS_PER_FRAME {
                frame(after, seq, std::mem::take(&mut ids));
                after = seq;
            }
        }
    }
    if last > after {
        frame(after, last, ids);
    }
    frames
}
