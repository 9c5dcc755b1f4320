//! The [`Outbox`]: what this replica still owes the relay, and the persist
//! batches that make it durable here.
//!
//! A local change moves through these stages, in this order:
//!
//! 1. **committed, not logged**: in its Automerge document, part of its
//!    document's *burst* (the local changes since the outputs were last
//!    taken, logged together: see [`Engine::take_outputs`]);
//! 2. **logged**: a [`LogEntry`] in a persist batch handed to the host
//!    ([`Effect::Persist`]), and an entry of the outbox;
//! 3. **written**: the host reported that batch durable
//!    ([`Engine::persisted`]);
//! 4. **acknowledged**: the relay stored it (an `Ack`, a `Committed`
//!    naming it, or a catch-up serving it); it leaves the outbox.
//!
//! *Pushed* (sent on the current connection) is not a stage between 2 and
//! 4: an entry may be pushed before it is written (see `sync.rs` on why
//! that is safe), may be acknowledged without being pushed on this
//! connection (a catch-up shows the relay stored an earlier push), and is
//! unpushed again when the connection drops. A held *tentative* delta of
//! another replica (see [`crate::live`]) is an outbox entry too, whose
//! clock starts when its author pushed it.
//!
//! What holds at every moment (checked by debug assertions after each
//! mutation, and by [`Outbox::check`] after each O(n) one):
//!
//! - **batches**: batch ids are consecutive from 1 (0 stands for "read
//!   back from storage", durable by definition); `durable ≤ emitted`, and
//!   `durable` only grows;
//! - **logged before counted**: every entry's batch ≤ `emitted`, and the
//!   entries this engine logged sit in the order of their batches (an
//!   entry is appended when its batch is emitted; removals keep the order);
//! - **no duplicate**: one entry per `(document, delta id)`;
//! - **push before written, one at a time**: an entry pushed while its
//!   batch is not durable has no earlier entry of its document that is not
//!   durable (the rule of `sync.rs`: a change the relay stores never
//!   depends on one this replica could still lose);
//! - **bookkeeping agrees**: the id index, the count of local entries and
//!   the per-batch counts of unwritten entries match the entries; the
//!   *backlog* (the bytes of every batch emitted and not yet durable) is
//!   the sum of those batches' sizes.
//!
//! The backlog is what the host holds in memory while storage fails: the
//! engine refuses to grow it past a limit ([`crate::Engine::set_backlog_limit`]).
//!
//! [`Engine::take_outputs`]: crate::Engine::take_outputs
//! [`Engine::persisted`]: crate::Engine::persisted
//! [`Effect::Persist`]: crate::Effect::Persist

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use automerge::ChangeHash;
use syncline_protocol::{DeltaId, DocId};

use crate::RESEND_AFTER_MS;
use crate::store::{LogEntry, Origin};

/// One outbox entry: a log entry the relay has not acknowledged, when it
/// was last pushed, and the batch that logs it.
#[derive(Debug)]
pub(crate) struct OutboxEntry {
    entry: LogEntry,
    /// When it was last pushed on this connection; for a held tentative
    /// delta, when its author pushed it (until this replica pushes it).
    pushed_at: Option<u64>,
    /// The persist batch that logs it (0: read back from storage).
    batch: u64,
}

impl OutboxEntry {
    pub(crate) fn entry(&self) -> &LogEntry {
        &self.entry
    }

    fn is_local(&self) -> bool {
        self.entry.origin != Origin::Tentative
    }

    /// A tentative delta, held, whose author pushed it less than
    /// [`RESEND_AFTER_MS`] ago: not pushed by this replica (yet).
    pub(crate) fn held_until_overdue(&self, now_ms: u64) -> bool {
        self.entry.origin == Origin::Tentative
            && self
                .pushed_at
                .is_some_and(|t| now_ms.saturating_sub(t) < RESEND_AFTER_MS)
    }
}

/// A document's local changes committed since the outputs were last taken
/// (stage 1 above): logged together as one entry (or a few, if large).
#[derive(Debug)]
struct Burst {
    /// The document's heads before the first of them.
    since: Vec<ChangeHash>,
    time_ms: u64,
}

/// Entries of one not yet durable batch: all of them, and the local ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unwritten {
    all: usize,
    local: usize,
}

/// Local deltas the relay has not acknowledged (and held tentative deltas
/// of others), oldest first, with the persist batches that log them. See
/// the module docs for what it guarantees.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: Vec<OutboxEntry>,
    /// `(doc, id)` of every entry.
    ids: HashSet<(DocId, DeltaId)>,
    /// The last batch emitted, and the last one the host reported durable.
    emitted: u64,
    durable: u64,
    /// Per batch not yet durable, the entries it logs.
    unwritten: BTreeMap<u64, Unwritten>,
    /// Entries that are not tentative.
    local: usize,
    /// Documents with local changes not yet logged.
    bursts: BTreeMap<DocId, Burst>,
    /// Per batch not yet durable, the bytes it writes; and their sum.
    backlog: BTreeMap<u64, usize>,
    backlog_bytes: usize,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, i: usize) -> &OutboxEntry {
        &self.entries[i]
    }

    /// Whether an entry of `doc` with this id is in the outbox.
    pub(crate) fn contains(&self, doc: &DocId, id: &DeltaId) -> bool {
        self.ids.contains(&(*doc, *id))
    }

    // --- batches --------------------------------------------------------

    /// Numbers the next persist batch, which writes `bytes`.
    pub(crate) fn next_batch(&mut self, bytes: usize) -> u64 {
        self.emitted += 1;
        self.backlog.insert(self.emitted, bytes);
        self.backlog_bytes += bytes;
        self.emitted
    }

    /// The bytes of every batch emitted and not yet reported durable: what
    /// the host keeps in memory until storage takes it.
    pub(crate) fn backlog_bytes(&self) -> usize {
        self.backlog_bytes
    }

    /// The last batch emitted.
    pub(crate) fn emitted(&self) -> u64 {
        self.emitted
    }

    /// The last batch the host reported durable (every batch up to it is).
    pub(crate) fn durable(&self) -> u64 {
        self.durable
    }

    /// The host wrote every batch up to `batch` (capped at the last one
    /// emitted). Returns whether an outbox entry became durable.
    pub(crate) fn written(&mut self, batch: u64) -> bool {
        let batch = batch.min(self.emitted);
        if batch <= self.durable {
            return false;
        }
        self.durable = batch;
        let still = self.unwritten.split_off(&(batch + 1));
        let done = std::mem::replace(&mut self.unwritten, still);
        let still = self.backlog.split_off(&(batch + 1));
        let written = std::mem::replace(&mut self.backlog, still);
        self.backlog_bytes -= written.values().sum::<usize>();
        debug_assert!(self.durable <= self.emitted);
        debug_assert_eq!(self.backlog_bytes, self.backlog.values().sum::<usize>());
        !done.is_empty()
    }

    // --- entering -------------------------------------------------------

    /// Adds a local entry just logged in the last batch emitted. Returns
    /// `false`, adding nothing, for an entry already in the outbox (a bug:
    /// debug builds panic).
    pub(crate) fn log(&mut self, entry: LogEntry) -> bool {
        debug_assert!(entry.origin != Origin::Tentative, "use hold");
        debug_assert!(self.emitted > 0, "logged in a batch not emitted");
        let batch = self.emitted;
        self.add(entry, None, batch)
    }

    /// Holds a tentative delta of another replica, logged in the last batch
    /// emitted; its author pushed it at `now_ms`.
    pub(crate) fn hold(&mut self, entry: LogEntry, now_ms: u64) -> bool {
        debug_assert!(entry.origin == Origin::Tentative, "use log");
        let batch = self.emitted;
        self.add(entry, Some(now_ms), batch)
    }

    /// Adopts an unacknowledged entry read back from storage (durable, not
    /// pushed; a held tentative delta among them has lost its author's
    /// clock and is pushed at once). Returns `false` if the outbox has it
    /// already.
    pub(crate) fn adopt(&mut self, entry: LogEntry) -> bool {
        if self.contains(&entry.doc, &entry.id) {
            return false;
        }
        let pushed_at = None;
        self.add(entry, pushed_at, 0)
    }

    fn add(&mut self, entry: LogEntry, pushed_at: Option<u64>, batch: u64) -> bool {
        if !self.ids.insert((entry.doc, entry.id)) {
            debug_assert!(false, "outbox entry {} added twice", entry.id);
            return false;
        }
        debug_assert!(batch <= self.emitted, "an entry's batch is emitted first");
        debug_assert!(
            batch == 0
                || self
                    .entries
                    .iter()
                    .rev()
                    .find(|o| o.batch > 0)
                    .is_none_or(|o| o.batch <= batch),
            "entries are logged in batch order"
        );
        let outgoing = OutboxEntry {
            entry,
            pushed_at,
            batch,
        };
        if outgoing.is_local() {
            self.local += 1;
        }
        if batch > self.durable {
            let count = self.unwritten.entry(batch).or_default();
            count.all += 1;
            count.local += usize::from(outgoing.is_local());
        }
        self.entries.push(outgoing);
        true
    }

    // --- pushing --------------------------------------------------------

    /// Whether entry `i` may be pushed now (see [`Outbox::pushable`]).
    #[cfg(test)]
    pub(crate) fn may_push(&self, i: usize, now_ms: u64) -> bool {
        self.pushable(i..i + 1, now_ms).next().is_some()
    }

    /// The entries of `range` that may be pushed now, in order, found in
    /// one pass over the outbox: those that are not a held delta whose
    /// author may still get it stored, and need not wait for an earlier
    /// entry's write.
    pub(crate) fn pushable(
        &self,
        range: Range<usize>,
        now_ms: u64,
    ) -> impl Iterator<Item = usize> + '_ {
        self.waiting()
            .take(range.end)
            .enumerate()
            .skip(range.start)
            .filter(move |(i, waits)| !waits && !self.entries[*i].held_until_overdue(now_ms))
            .map(|(i, _)| i)
    }

    /// For each entry in order, whether it must wait for its log write: it
    /// may be pushed before that write only while no earlier entry of its
    /// document is unwritten (see `sync.rs`). One pass, remembering the
    /// documents that had an unwritten entry (not a scan per entry: with
    /// thousands of entries, one scan each cost seconds a call).
    fn waiting(&self) -> impl Iterator<Item = bool> + '_ {
        let mut unwritten_docs: HashSet<DocId> = HashSet::new();
        self.entries.iter().map(move |o| {
            let unwritten = o.batch > self.durable;
            unwritten && !unwritten_docs.insert(o.entry.doc)
        })
    }

    /// Whether entry `i` must wait for its log write (see
    /// [`Outbox::waiting`]).
    fn waits_for_an_earlier_write(&self, i: usize) -> bool {
        self.waiting().nth(i).unwrap_or(false)
    }

    /// Each entry pushed on this connection that may be pushed again, with
    /// when it was pushed (its resend falls due [`RESEND_AFTER_MS`] later).
    pub(crate) fn pushed(&self) -> impl Iterator<Item = (&DocId, u64)> + '_ {
        self.entries
            .iter()
            .zip(self.waiting())
            .filter(|(_, waits)| !waits)
            .filter_map(|(o, _)| Some((&o.entry.doc, o.pushed_at?)))
    }

    /// Records that entry `i` is pushed at `now_ms`, and returns it. The
    /// caller checked [`Outbox::pushable`].
    pub(crate) fn mark_pushed(&mut self, i: usize, now_ms: u64) -> &LogEntry {
        debug_assert!(
            !self.waits_for_an_earlier_write(i),
            "entry {i} pushed before its log write while an earlier entry of its document is unwritten"
        );
        let outgoing = &mut self.entries[i];
        outgoing.pushed_at = Some(now_ms);
        &outgoing.entry
    }

    /// The first entry never pushed on this connection, or pushed more than
    /// `resend_after_ms` ago (a held delta: whose author did).
    pub(crate) fn first_due(&self, now_ms: u64, resend_after_ms: u64) -> Option<usize> {
        self.entries.iter().position(|o| {
            o.pushed_at
                .is_none_or(|t| now_ms.saturating_sub(t) >= resend_after_ms)
        })
    }

    /// The first entry (of `doc`, if given) not pushed on this connection.
    pub(crate) fn first_unpushed(&self, doc: Option<&DocId>) -> Option<usize> {
        self.entries
            .iter()
            .position(|o| o.pushed_at.is_none() && doc.is_none_or(|d| *d == o.entry.doc))
    }

    /// The connection dropped: nothing is pushed on the next one yet. A
    /// held tentative delta keeps its clock: the catch-up of the next
    /// connection will most likely confirm it.
    pub(crate) fn disconnected(&mut self) {
        for outgoing in &mut self.entries {
            if outgoing.is_local() {
                outgoing.pushed_at = None;
            }
        }
        self.check();
    }

    // --- leaving --------------------------------------------------------

    /// Takes the entries `ids` of `doc` out: the relay stores them. Returns
    /// them, oldest first.
    pub(crate) fn retire(&mut self, doc: &DocId, ids: &[DeltaId]) -> Vec<LogEntry> {
        let wanted: HashSet<&DeltaId> = ids
            .iter()
            .filter(|id| self.ids.contains(&(*doc, **id)))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let removed = self.remove_where(|e| e.doc == *doc && wanted.contains(&e.id));
        self.check();
        removed
    }

    /// Forgets every entry (and the burst) of a deleted document. Returns
    /// the ids of the entries.
    pub(crate) fn remove_doc(&mut self, doc: &DocId) -> Vec<DeltaId> {
        self.bursts.remove(doc);
        let removed = self.remove_where(|e| e.doc == *doc);
        self.check();
        removed.into_iter().map(|e| e.id).collect()
    }

    fn remove_where(&mut self, mut leaves: impl FnMut(&LogEntry) -> bool) -> Vec<LogEntry> {
        let mut removed = Vec::new();
        let mut kept = Vec::with_capacity(self.entries.len());
        for outgoing in std::mem::take(&mut self.entries) {
            if !leaves(&outgoing.entry) {
                kept.push(outgoing);
                continue;
            }
            self.ids.remove(&(outgoing.entry.doc, outgoing.entry.id));
            if outgoing.is_local() {
                self.local -= 1;
            }
            if let Some(count) = self.unwritten.get_mut(&outgoing.batch) {
                count.all -= 1;
                count.local -= usize::from(outgoing.is_local());
                if count.all == 0 {
                    self.unwritten.remove(&outgoing.batch);
                }
            }
            removed.push(outgoing.entry);
        }
        self.entries = kept;
        removed
    }

    // --- bursts ---------------------------------------------------------

    /// Whether `doc` has local changes not logged yet.
    pub(crate) fn has_burst(&self, doc: &DocId) -> bool {
        self.bursts.contains_key(doc)
    }

    /// `doc` committed its first local change since the outputs were last
    /// taken; `since`: its heads before it.
    pub(crate) fn start_burst(&mut self, doc: DocId, since: Vec<ChangeHash>, time_ms: u64) {
        let earlier = self.bursts.insert(doc, Burst { since, time_ms });
        debug_assert!(earlier.is_none(), "one burst per document");
    }

    /// Takes every burst: `(doc, heads before it, time of its first change)`.
    pub(crate) fn take_bursts(&mut self) -> Vec<(DocId, Vec<ChangeHash>, u64)> {
        std::mem::take(&mut self.bursts)
            .into_iter()
            .map(|(doc, burst)| (doc, burst.since, burst.time_ms))
            .collect()
    }

    // --- status ---------------------------------------------------------

    /// Local changes of `doc` (or of every document) not yet durable here,
    /// and durable but not acknowledged. Held tentative deltas of others
    /// are neither; a document's unlogged burst counts as one unsaved
    /// entry (it becomes at least one).
    pub(crate) fn counts(&self, doc: Option<&DocId>) -> (usize, usize) {
        let Some(doc) = doc else {
            let unsaved: usize = self.unwritten.values().map(|c| c.local).sum();
            return (self.bursts.len() + unsaved, self.local - unsaved);
        };
        let mut unsaved = usize::from(self.bursts.contains_key(doc));
        let mut pending = 0;
        for o in self.entries.iter().filter(|o| o.entry.doc == *doc) {
            match (o.is_local(), o.batch > self.durable) {
                (false, _) => {}
                (true, true) => unsaved += 1,
                (true, false) => pending += 1,
            }
        }
        (unsaved, pending)
    }

    // --- invariants -----------------------------------------------------

    /// Checks every invariant of the module docs, in O(n); a no-op in
    /// release builds.
    pub(crate) fn check(&self) {
        #[cfg(debug_assertions)]
        self.check_all();
    }

    #[cfg(debug_assertions)]
    fn check_all(&self) {
        assert!(self.durable <= self.emitted, "durable batch past emitted");
        let mut unwritten: BTreeMap<u64, Unwritten> = BTreeMap::new();
        let mut ids = HashSet::new();
        let mut last_batch = 0;
        // Per document: whether an unwritten entry came before.
        let mut unwritten_docs: HashSet<DocId> = HashSet::new();
        for (i, o) in self.entries.iter().enumerate() {
            assert!(
                ids.insert((o.entry.doc, o.entry.id)),
                "entry {i} is a duplicate"
            );
            assert!(o.batch <= self.emitted, "entry {i}: batch not emitted");
            if o.batch > 0 {
                assert!(o.batch >= last_batch, "entry {i}: out of batch order");
                last_batch = o.batch;
            }
            let unwritten_here = o.batch > self.durable;
            if unwritten_here {
                let count = unwritten.entry(o.batch).or_default();
                count.all += 1;
                count.local += usize::from(o.is_local());
                // Only entries this replica pushed: a held delta's clock is
                // its author's until this replica pushes it.
                if o.is_local() && o.pushed_at.is_some() {
                    assert!(
                        !unwritten_docs.contains(&o.entry.doc),
                        "entry {i} was pushed before its write while an earlier entry of its document is unwritten"
                    );
                }
                unwritten_docs.insert(o.entry.doc);
            }
        }
        assert_eq!(ids, self.ids, "the id index disagrees");
        assert_eq!(unwritten, self.unwritten, "unwritten counts disagree");
        let local = self.entries.iter().filter(|o| o.is_local()).count();
        assert_eq!(local, self.local, "local count disagrees");
        let backlog: usize = self.backlog.values().sum();
        assert_eq!(backlog, self.backlog_bytes, "backlog bytes disagree");
        assert!(
            self.backlog
                .keys()
                .all(|b| *b > self.durable && *b <= self.emitted),
            "backlog of a batch not pending"
        );
    }
}

#[cfg(test)]
mod tests;
