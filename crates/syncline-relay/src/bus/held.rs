//! Which of the other relays' uncommitted pushes this relay fanned out
//! tentatively, so their commit does not send them again.
//!
//! A push arriving on relay A goes out on the bus before A commits it
//! (see [`super`]). Relay B fans it out to its own live version 2
//! subscribers as `Tentative`, with a stamp of B's hub
//! ([`Hub::remote_tentative`]), and remembers `(doc, id) → stamp` here.
//! When the commit reaches B — over the bus, or read back from the store
//! by a gap repair — [`Held::stamp`] splits the committed run by those
//! stamps, so the hub treats each part like a local push that was fanned
//! out tentatively: subscribers that got it are sent only the `Committed`;
//! the others (subscribed later, or not live then) get it as `Tentative`
//! first, as always.
//!
//! A forgotten entry costs a duplicate `Tentative` at commit time, which
//! clients skip (a delta already in their log is ignored); a wrong entry is
//! impossible (stamps only come from real fan-outs and are never reused).
//! So memory is bounded by forgetting: at most [`MAX_PER_RELAY`] deltas per
//! remote relay (its oldest go first) and [`MAX_RELAYS`] relays (the one
//! heard from least recently goes first). A relay that dies between its
//! `Tentative` and its commit leaves entries that age out this way; its
//! clients' deltas stay unconfirmed on every subscriber, exactly as when a
//! single relay's commit fails (see [`crate::hub`]): each subscriber holds
//! them and pushes them itself if nothing confirms them in time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use syncline_protocol::{DeltaId, DocId, PushDelta};

use crate::hub::{Hub, REMOTE_ORIGIN};
use crate::store::Fanout;

/// Most deltas remembered per remote relay.
pub const MAX_PER_RELAY: usize = 4096;
/// Most remote relays remembered.
pub const MAX_RELAYS: usize = 64;

/// The remembered stamps; shared by the bus's receiver and the sequencer.
#[derive(Default)]
pub struct Held {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stamps: HashMap<(DocId, DeltaId), u64>,
    relays: HashMap<[u8; 16], Relay>,
    /// Counts calls, to find the relay heard from least recently.
    clock: u64,
}

struct Relay {
    /// What this relay's pushes put in `stamps`, oldest first.
    order: VecDeque<((DocId, DeltaId), u64)>,
    heard: u64,
}

impl Inner {
    /// Forgets `key` if it still has `stamp` (a later fan-out of the same
    /// delta, from another relay, keeps its own).
    fn forget(&mut self, key: (DocId, DeltaId), stamp: u64) {
        if let Entry::Occupied(entry) = self.stamps.entry(key)
            && *entry.get() == stamp
        {
            entry.remove();
        }
    }

    fn record(&mut self, relay: [u8; 16], doc: DocId, deltas: &[PushDelta], stamp: u64) {
        self.clock += 1;
        if !self.relays.contains_key(&relay) && self.relays.len() >= MAX_RELAYS {
            let oldest = self
                .relays
                .iter()
                .min_by_key(|(_, r)| r.heard)
                .map(|(id, _)| *id);
            if let Some(old) = oldest.and_then(|id| self.relays.remove(&id)) {
                for (key, stamp) in old.order {
                    self.forget(key, stamp);
                }
            }
        }
        let clock = self.clock;
        let entry = self.relays.entry(relay).or_insert_with(|| Relay {
            order: VecDeque::new(),
            heard: clock,
        });
        entry.heard = clock;
        let mut dropped = Vec::new();
        for delta in deltas {
            let key = (doc, delta.id);
            entry.order.push_back((key, stamp));
            if entry.order.len() > MAX_PER_RELAY
                && let Some(old) = entry.order.pop_front()
            {
                dropped.push(old);
            }
        }
        for delta in deltas {
            self.stamps.insert((doc, delta.id), stamp);
        }
        // After inserting: a push larger than the bound drops its own
        // first deltas.
        for (key, stamp) in dropped {
            self.forget(key, stamp);
        }
        debug_assert!(
            self.relays.values().all(|r| r.order.len() <= MAX_PER_RELAY),
            "each relay's memory is bounded"
        );
    }
}

impl Held {
    /// Nothing remembered.
    pub fn new() -> Arc<Held> {
        Arc::new(Held::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fans relay `relay`'s uncommitted push out tentatively on `hub` and
    /// remembers its stamp if anyone got it. Locked throughout, so a commit
    /// stamped by [`Held::stamp`] either finds the entry or was published
    /// before the fan-out (then subscribers get a harmless duplicate).
    pub fn fan_out(&self, hub: &Hub, relay: [u8; 16], doc: DocId, mut deltas: Vec<PushDelta>) {
        let mut inner = self.lock();
        if let Some(stamp) = hub.remote_tentative(doc, &mut deltas) {
            inner.record(relay, doc, &deltas, stamp);
        }
    }

    /// Gives the other relays' committed runs in `fanouts` the stamps of
    /// their tentative fan-outs here (splitting a run where the stamp
    /// changes), and forgets every delta committed.
    pub fn stamp(&self, fanouts: Vec<Fanout>) -> Vec<Fanout> {
        let mut inner = self.lock();
        if inner.stamps.is_empty() {
            return fanouts;
        }
        let mut out = Vec::with_capacity(fanouts.len());
        for fanout in fanouts {
            let doc = fanout.doc;
            let stamps: Vec<u64> = fanout
                .deltas
                .iter()
                .map(|d| inner.stamps.remove(&(doc, d.id)).unwrap_or(0))
                .collect();
            let remote = fanout.origin == REMOTE_ORIGIN && fanout.tentative == 0;
            if !remote || stamps.iter().all(|&s| s == 0) {
                out.push(fanout);
                continue;
            }
            let mut start = 0;
            for end in 1..=stamps.len() {
                if end == stamps.len() || stamps[end] != stamps[start] {
                    out.push(Fanout {
                        doc,
                        origin: REMOTE_ORIGIN,
                        tentative: stamps[start],
                        deltas: Arc::from(&fanout.deltas[start..end]),
                    });
                    start = end;
                }
            }
        }
        out
    }

    /// How many deltas are remembered.
    pub fn len(&self) -> usize {
        self.lock().stamps.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::SequencedDelta;

    fn push(tags: std::ops::Range<u8>) -> Vec<PushDelta> {
        tags.map(|t| PushDelta {
            id: DeltaId([t; 32]),
            bytes: vec![t],
        })
        .collect()
    }

    fn committed(doc: DocId, tags: std::ops::Range<u8>) -> Fanout {
        let deltas: Vec<SequencedDelta> = tags
            .map(|t| SequencedDelta {
                seq: u64::from(t),
                id: DeltaId([t; 32]),
                bytes: vec![t],
            })
            .collect();
        Fanout {
            doc,
            origin: REMOTE_ORIGIN,
            tentative: 0,
            deltas: Arc::from(deltas),
        }
    }

    fn parts(out: &[Fanout]) -> Vec<(u64, usize)> {
        out.iter().map(|f| (f.tentative, f.deltas.len())).collect()
    }

    #[test]
    fn a_commit_is_split_by_the_stamps_of_its_tentative_fan_outs_and_forgotten() {
        let doc = DocId([1; 16]);
        let held = Held::default();
        {
            let mut inner = held.lock();
            inner.record([9; 16], doc, &push(1..3), 7);
            inner.record([9; 16], doc, &push(4..5), 8);
        }
        let out = held.stamp(vec![committed(doc, 1..6)]);
        // 1, 2 stamped 7; 3 never fanned out; 4 stamped 8; 5 never.
        assert_eq!(parts(&out), vec![(7, 2), (0, 1), (8, 1), (0, 1)]);
        let seqs: Vec<u64> = out
            .iter()
            .flat_map(|f| f.deltas.iter().map(|d| d.seq))
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5], "the run stays whole, in order");
        assert!(held.is_empty(), "committed deltas are forgotten");
        let again = held.stamp(vec![committed(doc, 1..3)]);
        assert_eq!(parts(&again), vec![(0, 2)], "a repeat is sent in full");
    }

    #[test]
    fn local_commits_keep_their_own_stamp_and_clear_remote_entries() {
        let doc = DocId([1; 16]);
        let held = Held::default();
        held.lock().record([9; 16], doc, &push(1..2), 7);
        let local = Fanout {
            origin: 5,
            tentative: 3,
            ..committed(doc, 1..2)
        };
        let out = held.stamp(vec![local]);
        assert_eq!(parts(&out), vec![(3, 1)]);
        assert!(held.is_empty());
    }

    #[test]
    fn memory_is_bounded_per_relay_and_in_relays() {
        let doc = DocId([1; 16]);
        let held = Held::default();
        let many: Vec<PushDelta> = (0..MAX_PER_RELAY as u32 + 10)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                PushDelta {
                    id: DeltaId(id),
                    bytes: Vec::new(),
                }
            })
            .collect();
        held.lock().record([1; 16], doc, &many, 1);
        assert_eq!(held.len(), MAX_PER_RELAY, "the oldest deltas went first");
        assert!(!held.lock().stamps.contains_key(&(doc, many[0].id)));
        for relay in 2..=MAX_RELAYS as u8 + 1 {
            held.lock()
                .record([relay; 16], doc, &push(relay..relay + 1), 2);
        }
        let inner = held.lock();
        assert_eq!(inner.relays.len(), MAX_RELAYS);
        assert!(
            !inner.relays.contains_key(&[1; 16]),
            "the relay heard from least recently was forgotten"
        );
        assert_eq!(inner.stamps.len(), MAX_RELAYS);
    }
}
