//! The event log as the engine sees it: typed records in a few key-value
//! stores, written in atomic [`Batch`]es.
//!
//! The engine never writes storage itself. It emits a [`Batch`] as an effect;
//! the host (IndexedDB in the browser, a file in the native client, a
//! [`MemoryStore`] in tests) applies the whole batch in one transaction and
//! later hands every record back to [`crate::Engine::load`]. Keys are derived
//! from content (doc id, delta id), so two tabs writing the same log never
//! overwrite each other's entries.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use syncline_protocol::{DeltaId, DocId};

use crate::DocUrl;
use crate::seal::DocKey;

/// The stores of a replica's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    /// One [`LogEntry`] per delta, keyed `"<doc>/<delta id>"`.
    Entries,
    /// One [`DocRecord`] per document, keyed by the doc id.
    Docs,
    /// Replica-wide records ([`RelayRecord`] under `"relay"`).
    Meta,
    /// One [`SnapshotRecord`] per compacted document, keyed by the doc id.
    Snapshots,
    /// One [`ValueRecord`] per compacted document (its snapshot's value),
    /// keyed by the doc id.
    Values,
}

impl Store {
    /// Every store, for hosts that create them up front.
    pub const ALL: [Store; 5] = [
        Store::Entries,
        Store::Docs,
        Store::Meta,
        Store::Snapshots,
        Store::Values,
    ];

    /// The store's name, as used for IndexedDB object stores and files.
    pub fn name(self) -> &'static str {
        match self {
            Store::Entries => "entries",
            Store::Docs => "docs",
            Store::Meta => "meta",
            Store::Snapshots => "snapshots",
            Store::Values => "values",
        }
    }

    pub fn from_name(name: &str) -> Option<Store> {
        Store::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where a delta came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Made on this replica; in the outbox until the relay acks it.
    Local,
    /// Received from the relay.
    Relay,
    /// Received from the relay live, before the relay had stored it (a
    /// `Tentative` frame). Held like an outbox entry — it may exist nowhere
    /// else durably yet — until a `Committed` frame or a catch-up shows the
    /// relay stored it; pushed by this replica if that takes too long.
    Tentative,
}

/// One delta in the log: Automerge change chunks, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub doc: DocId,
    pub id: DeltaId,
    pub bytes: Vec<u8>,
    /// Wall time when the entry was made or received, in ms since the epoch.
    pub time_ms: u64,
    /// The first app message among its changes, e.g. `"todo.added"`: a
    /// label for the entry. Every change keeps its own message inside
    /// `bytes` (history lists those).
    pub message: Option<String>,
    pub origin: Origin,
    /// The relay's sequence once the relay holds it durably; `None` for a
    /// local or tentative entry means it is still in the outbox.
    pub relay_seq: Option<u64>,
}

/// Per-document state that is not a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    pub doc: DocId,
    /// The document key (the wasm host encrypts every record at rest).
    pub key: [u8; 32],
    /// Every relay delta up to this sequence is applied and durable here.
    pub cursor: u64,
}

/// What the replica knows about the relay's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRecord {
    /// The relay epoch the cursors belong to.
    pub epoch: [u8; 16],
}

/// A document's whole state (`Automerge::save`). It replaces the log
/// entries the relay holds; the entries it does not replace (the outbox)
/// are listed in `covers`, so that opening the document loads the snapshot
/// and skips their changes instead of applying them a second time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub doc: DocId,
    pub bytes: Vec<u8>,
    /// Entries kept beside the snapshot whose changes it already holds.
    pub covers: Vec<DeltaId>,
}

/// The lowest relay sequence of a document whose delta this replica could
/// not use (another key, tampered, a newer format) and skipped: its
/// snapshots offered to the relay never cover it, so the relay keeps that
/// delta for replicas that can use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusableRecord {
    pub doc: DocId,
    pub from_seq: u64,
}

/// The snapshot record of earlier versions, without `covers`: still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecordV1 {
    pub doc: DocId,
    pub bytes: Vec<u8>,
}

impl From<SnapshotRecordV1> for SnapshotRecord {
    fn from(old: SnapshotRecordV1) -> SnapshotRecord {
        SnapshotRecord {
            doc: old.doc,
            bytes: old.bytes,
            covers: Vec::new(),
        }
    }
}

/// The document's value (what the page shows) at its snapshot, written by
/// compaction in the same batch as the snapshot, so that a page can show a
/// document whose log has nothing newer than the snapshot before its CRDT
/// is loaded ([`fast_values`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueRecord {
    pub doc: DocId,
    /// [`snapshot_digest`] of the snapshot's bytes: the value is that
    /// snapshot's, and no other's (a snapshot written without a value, e.g.
    /// by an older version, leaves a stale value that this tells apart).
    pub snapshot: [u8; 32],
    /// The value as JSON text, exactly as [`crate::Engine::value`]
    /// serializes it (texts as strings, counters as numbers).
    pub json: String,
}

/// Ties a [`ValueRecord`] to the snapshot it was made from.
pub fn snapshot_digest(snapshot: &[u8]) -> [u8; 32] {
    Sha256::digest(snapshot).into()
}

/// A record as written: postcard, behind a version tag. Postcard numbers
/// the variants, so new ones are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Entry(LogEntry),
    Doc(DocRecord),
    Relay(RelayRecord),
    /// Read, never written (it covers no entries).
    SnapshotV1(SnapshotRecordV1),
    Snapshot(SnapshotRecord),
    Value(ValueRecord),
    Unusable(UnusableRecord),
}

impl Record {
    /// Store and key this record lives under.
    pub fn address(&self) -> (Store, String) {
        match self {
            Record::Entry(e) => (Store::Entries, entry_key(&e.doc, &e.id)),
            Record::Doc(d) => (Store::Docs, d.doc.to_string()),
            Record::Relay(_) => (Store::Meta, "relay".to_string()),
            Record::Snapshot(SnapshotRecord { doc, .. })
            | Record::SnapshotV1(SnapshotRecordV1 { doc, .. }) => {
                (Store::Snapshots, doc.to_string())
            }
            Record::Value(v) => (Store::Values, v.doc.to_string()),
            Record::Unusable(u) => (Store::Meta, unusable_key(&u.doc)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain types into a Vec cannot fail.
        postcard::to_extend(self, vec![RECORD_FORMAT]).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        match bytes.split_first() {
            Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
            Some((other, _)) => Err(format!("unknown record format {other}")),
            None => Err("empty record".to_string()),
        }
    }
}

const RECORD_FORMAT: u8 = 1;

/// Where a document's [`UnusableRecord`] lives (in [`Store::Meta`]).
pub fn unusable_key(doc: &DocId) -> String {
    format!("unusable/{doc}")
}

pub fn entry_key(doc: &DocId, id: &DeltaId) -> String {
    format!("{doc}/{id}")
}

/// A document that can be shown before its CRDT is loaded: its URL (the
/// key from its document record) and its value as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastValue {
    pub url: DocUrl,
    pub json: String,
}

/// The documents whose value can be shown straight from the log
/// ("fast open"): those with a document record, a snapshot, and a
/// [`ValueRecord`] made from that very snapshot, and **no entry newer than
/// the snapshot** — every entry key of the document in `entry_keys` names
/// an entry the snapshot covers. Then the value is exactly what loading the
/// snapshot would show.
///
/// `records`: the decrypted records of the `Docs`, `Snapshots` and `Values`
/// stores (others are ignored); `entry_keys`: every key of the `Entries` store
/// (the entries themselves need not be decrypted). Anything unreadable,
/// misplaced or mismatched just leaves its document out: it then loads the
/// normal way, which reports what is wrong.
pub fn fast_values<'a>(
    records: &[(Store, String, Vec<u8>)],
    entry_keys: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<DocId, FastValue> {
    #[derive(Default)]
    struct Found {
        key: Option<DocKey>,
        snapshot: Option<([u8; 32], HashSet<String>)>,
        value: Option<ValueRecord>,
    }
    let mut docs: BTreeMap<DocId, Found> = BTreeMap::new();
    for (store, key, bytes) in records {
        if !matches!(store, Store::Docs | Store::Snapshots | Store::Values) {
            continue;
        }
        let Ok(record) = Record::decode(bytes) else {
            continue;
        };
        if record.address() != (*store, key.clone()) {
            continue;
        }
        match record {
            Record::Doc(d) => docs.entry(d.doc).or_default().key = Some(DocKey(d.key)),
            Record::Snapshot(s) => {
                let covers = s.covers.iter().map(|id| entry_key(&s.doc, id)).collect();
                docs.entry(s.doc).or_default().snapshot = Some((snapshot_digest(&s.bytes), covers));
            }
            Record::Value(v) => {
                let doc = v.doc;
                docs.entry(doc).or_default().value = Some(v)
            }
            _ => {}
        }
    }
    // A document with any entry its snapshot does not cover has a tail.
    for key in entry_keys {
        let Some(doc) = key
            .split_once('/')
            .and_then(|(d, _)| d.parse::<DocId>().ok())
        else {
            continue;
        };
        if let Some(found) = docs.get_mut(&doc) {
            let covered = found
                .snapshot
                .as_ref()
                .is_some_and(|(_, covers)| covers.contains(key));
            if !covered {
                found.snapshot = None;
            }
        }
    }
    docs.into_iter()
        .filter_map(|(doc, found)| {
            let (digest, _) = found.snapshot?;
            let value = found.value.filter(|v| v.snapshot == digest)?;
            Some((
                doc,
                FastValue {
                    url: DocUrl {
                        doc,
                        key: found.key?,
                    },
                    json: value.json,
                },
            ))
        })
        .collect()
}

/// Writes the host must apply atomically, all or nothing. Batches are
/// numbered in the order the engine emits them; the host writes them in
/// that order and reports progress with [`crate::Engine::persisted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub id: u64,
    pub puts: Vec<(Store, String, Vec<u8>)>,
    pub deletes: Vec<(Store, String)>,
}

impl Batch {
    pub fn put(&mut self, record: &Record) {
        let (store, key) = record.address();
        self.puts.push((store, key, record.encode()));
    }

    pub fn delete(&mut self, store: Store, key: String) {
        self.deletes.push((store, key));
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// The bytes this batch writes: keys and values (what a host holds in
    /// memory until the batch is durable).
    pub fn bytes(&self) -> usize {
        let puts: usize = self.puts.iter().map(|(_, k, v)| k.len() + v.len()).sum();
        puts + self.deletes.iter().map(|(_, k)| k.len()).sum::<usize>()
    }

    /// Adds `other`'s writes to this batch (its puts after ours).
    pub fn append(&mut self, other: Batch) {
        self.puts.extend(other.puts);
        self.deletes.extend(other.deletes);
    }
}

/// An in-memory store: the reference host for tests and simulations.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub data: BTreeMap<(Store, String), Vec<u8>>,
}

impl MemoryStore {
    pub fn apply(&mut self, batch: &Batch) {
        for (store, key, value) in &batch.puts {
            self.data.insert((*store, key.clone()), value.clone());
        }
        for (store, key) in &batch.deletes {
            self.data.remove(&(*store, key.clone()));
        }
    }

    /// Every record, as a host hands them to [`crate::Engine::load`].
    pub fn records(&self) -> Vec<(Store, String, Vec<u8>)> {
        self.data
            .iter()
            .map(|((s, k), v)| (*s, k.clone(), v.clone()))
            .collect()
    }
}
