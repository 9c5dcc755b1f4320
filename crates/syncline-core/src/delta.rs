//! Deltas: what one push carries for one document.
//!
//! A delta's plaintext is a format byte followed by a postcard list of
//! Automerge change chunks. Each chunk is parsed (and its checksum checked)
//! before anything is applied, so a damaged delta is rejected whole with a
//! typed error instead of being half-applied or silently ignored. Its id is
//! an HMAC-SHA256 of the plaintext under the document key
//! ([`crate::DocKey::delta_id`], see [`crate::seal`]), so the same delta
//! pushed twice is one delta, and the relay, which lacks the key, can't
//! test guesses of a plaintext against the id.
//!
//! A second format carries a whole document instead: format byte `2`, then
//! the bytes of `Automerge::save`. The engine sends one to the relay as a
//! `Snapshot` after compacting; it stands for every delta up to the
//! relay sequence it covers, and a replica catching up recognises it (after
//! opening it) by that byte.
//!
//! # Many deltas, one Automerge call
//!
//! An Automerge `apply_changes` call walks the objects its changes touch,
//! so its cost grows with the document, not only with the changes: ten
//! thousand keystroke deltas applied one call each took about a minute
//! natively, in one call a few tens of milliseconds
//! (`docs/benchmarks/divergence.md`). A frame from the relay carries up to
//! thousands of deltas, so the engine applies them through [`Pending`]:
//! each delta is decoded on its own (a damaged one fails alone, under its
//! id), then the changes of all of them go to Automerge in one call. If
//! that call fails, none of its changes were applied: Automerge 0.12 checks
//! the whole batch (a second change for an actor's sequence number, a
//! second author) before it applies any of it. The one thing the check may
//! touch is Automerge's queue of changes waiting for their dependencies: a
//! change reusing a sequence number the document holds drops the queued
//! changes of its actor after it, as the call for that delta alone does.
//! The deltas are then applied again one call each, so the failure is
//! pinned on the delta that causes it, as if they had been applied one by
//! one from the start. A snapshot among them is loaded in its place in the
//! order, after the deltas before it.

use automerge::{AutoCommit, AutomergeError, Change, LoadChangeError};
use serde::{Deserialize, Serialize};

const DELTA_FORMAT: u8 = 1;
const SNAPSHOT_FORMAT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Body(Vec<Chunk>);

#[derive(Serialize, Deserialize)]
struct Chunk(#[serde(with = "serde_bytes")] Vec<u8>);

/// Encodes change chunks as a delta. Writes postcard's encoding of
/// [`Body`] directly (a varint count, then each chunk as a varint length and
/// its bytes), copying each chunk once: this is on every local change.
pub fn encode<'a>(changes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let changes: Vec<&[u8]> = changes.into_iter().collect();
    let size = changes.iter().map(|c| c.len() + 10).sum::<usize>();
    let mut out = Vec::with_capacity(1 + 10 + size);
    out.push(DELTA_FORMAT);
    varint(&mut out, changes.len());
    for change in changes {
        varint(&mut out, change.len());
        out.extend_from_slice(change);
    }
    out
}

/// Postcard's unsigned varint (LEB128).
fn varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Encodes a whole document (`Automerge::save`) as a snapshot delta.
pub fn encode_snapshot(saved: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + saved.len());
    out.push(SNAPSHOT_FORMAT);
    out.extend_from_slice(saved);
    out
}

/// How many changes a delta's plaintext holds, read from its header (no
/// parsing of the changes): 1 for a snapshot or anything unreadable.
pub fn change_count(bytes: &[u8]) -> usize {
    let Some((&DELTA_FORMAT, rest)) = bytes.split_first() else {
        return 1;
    };
    let (mut count, mut shift) = (0usize, 0u32);
    for &byte in rest.iter().take(5) {
        count |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return count.max(1);
        }
        shift += 7;
    }
    1
}

/// Whether a delta's plaintext is a snapshot (a whole document).
pub fn is_snapshot(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SNAPSHOT_FORMAT)
}

/// Why a delta (from the relay or another tab) is unusable. The message
/// names the failure; its cause, when there is one, is its
/// [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("cannot open it: {0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("its content does not match its id")]
    IdMismatch,
    #[error("empty delta")]
    Empty,
    #[error("unknown delta format {0}")]
    UnknownFormat(u8),
    #[error("not a delta: {0}")]
    NotADelta(#[source] Box<postcard::Error>),
    #[error("bad change: {0}")]
    BadChange(#[source] Box<LoadChangeError>),
    #[error("bad snapshot: {0}")]
    BadSnapshot(#[source] Box<AutomergeError>),
    #[error("cannot apply it: {0}")]
    Apply(#[source] Box<AutomergeError>),
}

/// Parses a delta (either format) into Automerge changes, all or nothing.
pub fn decode(bytes: &[u8]) -> Result<Vec<Change>, DeltaError> {
    let body = match bytes.split_first() {
        Some((&DELTA_FORMAT, rest)) => {
            postcard::from_bytes::<Body>(rest).map_err(|e| DeltaError::NotADelta(Box::new(e)))?
        }
        Some((&SNAPSHOT_FORMAT, saved)) => {
            let mut doc =
                AutoCommit::load(saved).map_err(|e| DeltaError::BadSnapshot(Box::new(e)))?;
            return Ok(doc.get_changes(&[]));
        }
        Some((other, _)) => return Err(DeltaError::UnknownFormat(*other)),
        None => return Err(DeltaError::Empty),
    };
    body.0
        .into_iter()
        .map(|Chunk(c)| Change::from_bytes(c).map_err(|e| DeltaError::BadChange(Box::new(e))))
        .collect()
}

/// Decodes and applies a delta. Changes already present are ignored and
/// changes whose dependencies are missing wait inside Automerge.
pub fn apply(doc: &mut AutoCommit, bytes: &[u8]) -> Result<(), DeltaError> {
    if let Some((&SNAPSHOT_FORMAT, saved)) = bytes.split_first() {
        return load_snapshot(doc, saved);
    }
    apply_changes(doc, decode(bytes)?)
}

/// Deltas waiting to be applied together (see the module docs): each is
/// decoded when pushed, and [`Pending::apply`] applies them in the order
/// pushed with one Automerge call for each run of deltas between
/// snapshots. `T` tags each delta (its id, its sequence) so that its
/// outcome comes back with it.
pub struct Pending<T> {
    items: Vec<(T, Result<Opened, DeltaError>)>,
}

/// A delta's plaintext and what it holds.
struct Opened {
    plain: Vec<u8>,
    /// Its changes; `None` for a snapshot (applied by `load_incremental`).
    changes: Option<Vec<Change>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T> Pending<T> {
    /// Adds a delta: its plaintext, or why it could not be opened.
    pub fn push(&mut self, tag: T, opened: Result<Vec<u8>, DeltaError>) {
        let opened = opened.and_then(|plain| {
            let changes = match is_snapshot(&plain) {
                true => None,
                false => Some(decode(&plain)?),
            };
            Ok(Opened { plain, changes })
        });
        self.items.push((tag, opened));
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Applies every delta pushed, in order, and returns each one's
    /// outcome in that order: its plaintext, or why it is unusable. Those
    /// that failed changed nothing; the others are applied (or wait inside
    /// Automerge for changes they depend on), exactly as one call per delta
    /// would have left them.
    pub fn apply(&mut self, doc: &mut AutoCommit) -> Vec<(T, Result<Vec<u8>, DeltaError>)> {
        let mut outcomes = Vec::with_capacity(self.items.len());
        let mut run = Vec::new();
        for (tag, opened) in std::mem::take(&mut self.items) {
            match opened {
                Ok(Opened {
                    plain,
                    changes: None,
                }) => {
                    // A snapshot: after the deltas before it.
                    apply_run(doc, std::mem::take(&mut run), &mut outcomes);
                    let loaded = load_snapshot(doc, &plain[1..]);
                    outcomes.push((tag, loaded.map(|_| plain)));
                }
                opened => run.push((tag, opened)),
            }
        }
        apply_run(doc, run, &mut outcomes);
        outcomes
    }
}

type Outcome<T> = (T, Result<Vec<u8>, DeltaError>);

/// Applies the changes of a run of deltas with one Automerge call; should
/// it fail, with one call per delta, to pin the failure on its delta.
fn apply_run<T>(
    doc: &mut AutoCommit,
    run: Vec<(T, Result<Opened, DeltaError>)>,
    outcomes: &mut Vec<Outcome<T>>,
) {
    let decoded = run.iter().filter(|(_, o)| o.is_ok()).count();
    let all = run
        .iter()
        .filter_map(|(_, o)| o.as_ref().ok())
        .flat_map(|o| o.changes.iter().flatten().cloned());
    // Automerge 0.12 checks the whole batch (no change whose actor and
    // sequence number it holds already, or twice; no second author for an
    // actor) before it applies any of it, so a failed call applied nothing:
    // the calls one per delta below meet the document as it was.
    let together = decoded > 1 && apply_changes(doc, all).is_ok();
    for (tag, opened) in run {
        let outcome = opened.and_then(|o| {
            if !together {
                apply_changes(doc, o.changes.unwrap_or_default())?;
            }
            Ok(o.plain)
        });
        outcomes.push((tag, outcome));
    }
}

fn apply_changes(
    doc: &mut AutoCommit,
    changes: impl IntoIterator<Item = Change> + Clone,
) -> Result<(), DeltaError> {
    count_call();
    doc.apply_changes(changes)
        .map_err(|e| DeltaError::Apply(Box::new(e)))
}

fn load_snapshot(doc: &mut AutoCommit, saved: &[u8]) -> Result<(), DeltaError> {
    count_call();
    doc.load_incremental(saved)
        .map(|_| ())
        .map_err(|e| DeltaError::BadSnapshot(Box::new(e)))
}

#[cfg(feature = "call-counts")]
thread_local! {
    static AUTOMERGE_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(feature = "call-counts")]
fn count_call() {
    AUTOMERGE_CALLS.set(AUTOMERGE_CALLS.get() + 1);
}

#[cfg(not(feature = "call-counts"))]
fn count_call() {}

/// How many Automerge calls (`apply_changes`, `load_incremental`) this
/// module has made on this thread: for tests that check a frame's deltas
/// are applied in one call, not one each. Only with the `call-counts`
/// feature (this crate's own tests); never in a shipped build.
#[cfg(feature = "call-counts")]
#[doc(hidden)]
pub fn automerge_calls() -> u64 {
    AUTOMERGE_CALLS.get()
}

/// Serializes `Vec<u8>` as one length-prefixed byte string.
pub(crate) mod serde_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        <&[u8]>::deserialize(d).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn deltas_round_trip_and_damage_is_rejected() {
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, "k", 1).unwrap();
        doc.commit();
        let change = doc.get_last_local_change().unwrap();
        let delta = encode([change.raw_bytes()]);
        let mut other = AutoCommit::new();
        apply(&mut other, &delta).unwrap();
        assert_eq!(other.get_heads(), doc.get_heads());

        // The hand-written encoding is postcard's.
        let chunks = [vec![7u8; 3], vec![9u8; 300], Vec::new()];
        let body = Body(chunks.iter().cloned().map(Chunk).collect());
        let mut expected = vec![DELTA_FORMAT];
        expected.extend(postcard::to_allocvec(&body).unwrap());
        assert_eq!(encode(chunks.iter().map(Vec::as_slice)), expected);

        assert!(decode(&[]).is_err());
        assert!(decode(&[1, 2, 3]).is_err());
        assert!(decode(&[9]).is_err());
        let mut flipped = delta.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(
            decode(&flipped).is_err(),
            "a flipped byte breaks the checksum"
        );
    }

    #[test]
    fn the_change_count_is_read_from_the_header() {
        let chunk = [1u8, 2, 3];
        for n in [1, 2, 127, 128, 300] {
            assert_eq!(change_count(&encode(std::iter::repeat_n(&chunk[..], n))), n);
        }
        assert_eq!(change_count(&encode_snapshot(b"saved")), 1);
        for unreadable in [&[][..], &[1], &[1, 0x80], &[7, 3]] {
            assert_eq!(change_count(unreadable), 1);
        }
    }
}
