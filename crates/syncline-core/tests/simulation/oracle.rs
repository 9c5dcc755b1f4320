//! What must hold in a simulated run: the per-step durability oracle
//! ([`Durability`]) and, after healing, convergence ([`check_invariants`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use automerge::ChangeHash;
use syncline_core::{DocUrl, delta, store::Record, store::Store};
use syncline_protocol::DocId;

use crate::world::World;

pub fn check_invariants(world: &World, docs: &[DocUrl]) {
    for url in docs {
        let on_relay = world.relay_change_hashes(url);
        let first = &world.replicas[0];
        for (i, r) in world.replicas.iter().enumerate() {
            assert!(r.online, "replica {i} did not reconnect");
            let status = r.engine.status();
            assert_eq!(
                status.unsaved + status.pending,
                0,
                "replica {i} still has an outbox"
            );
            // With tokens, a failing endpoint and tokens that expired on
            // the way are reported (and retried); nothing else may be.
            let unexpected: Vec<&String> = r
                .errors
                .iter()
                .filter(|code| !matches!(code.as_str(), "TokenProvider" | "TokenExpired"))
                .collect();
            assert!(unexpected.is_empty(), "replica {i} reported {:?}", r.errors);
            let status = r.engine.doc_status(&url.doc).unwrap();
            assert_eq!(status.last_error, None, "replica {i} is still refused");
            // Same changes as the relay holds: everything acked is
            // everywhere, and nothing is missing or extra.
            assert_eq!(
                r.change_hashes(&url.doc),
                on_relay,
                "replica {i} differs from the relay"
            );
            assert_eq!(
                r.engine.automerge(&url.doc).unwrap().clone().get_heads(),
                first
                    .engine
                    .automerge(&url.doc)
                    .unwrap()
                    .clone()
                    .get_heads(),
                "replica {i} has other heads"
            );
            assert_eq!(
                r.engine.value_json(&url.doc).unwrap(),
                first.engine.value_json(&url.doc).unwrap()
            );
            // Whatever was ever durable on a replica survived.
            let durable = durable_change_hashes(world, i, url);
            assert!(
                durable.is_subset(&on_relay),
                "replica {i} lost durable changes"
            );
        }
    }
}

/// Every change durable in replica `i`'s store: in log entries and snapshots.
fn durable_change_hashes(world: &World, i: usize, url: &DocUrl) -> BTreeSet<automerge::ChangeHash> {
    let mut hashes = BTreeSet::new();
    for (_, _, bytes) in world.replicas[i].store.records() {
        match Record::decode(&bytes) {
            Ok(Record::Entry(e)) if e.doc == url.doc => {
                hashes.extend(delta::decode(&e.bytes).unwrap().iter().map(|c| c.hash()))
            }
            Ok(Record::Snapshot(s)) if s.doc == url.doc => {
                let mut doc = automerge::AutoCommit::load(&s.bytes).unwrap();
                hashes.extend(doc.get_changes(&[]).iter().map(|c| c.hash()))
            }
            _ => {}
        }
    }
    hashes
}

/// The per-step durability oracle (see the module docs): per document, every
/// change the relay ever held committed and every change each replica ever
/// held in its store; decoded records are cached by identity (a delta's
/// changes never change under its id; snapshots by a hash of their bytes).
#[derive(Default)]
pub struct Durability {
    relay: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    replicas: BTreeMap<(usize, DocId), BTreeSet<ChangeHash>>,
    decoded: HashMap<(u8, String, u64), Vec<ChangeHash>>,
}

fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The changes in a delta or snapshot as the relay stores it (sealed).
fn sealed_changes(url: &DocUrl, sealed: &[u8]) -> Vec<ChangeHash> {
    let plain = url
        .key
        .open(&url.doc, sealed)
        .expect("the relay holds bytes we can't open");
    delta::decode(&plain)
        .expect("the relay holds a malformed delta")
        .iter()
        .map(|c| c.hash())
        .collect()
}

/// The changes in a replica's log entry or snapshot record.
fn record_changes(bytes: &[u8]) -> Vec<ChangeHash> {
    match Record::decode(bytes) {
        Ok(Record::Entry(e)) => delta::decode(&e.bytes)
            .unwrap()
            .iter()
            .map(|c| c.hash())
            .collect(),
        Ok(Record::Snapshot(s)) => automerge::AutoCommit::load(&s.bytes)
            .unwrap()
            .get_changes(&[])
            .iter()
            .map(|c| c.hash())
            .collect(),
        _ => Vec::new(),
    }
}

impl Durability {
    fn cached(
        decoded: &mut HashMap<(u8, String, u64), Vec<ChangeHash>>,
        key: (u8, String, u64),
        decode: impl FnOnce() -> Vec<ChangeHash>,
    ) -> &[ChangeHash] {
        decoded.entry(key).or_insert_with(decode)
    }

    /// Changes of `url` on the relay now: those of its committed deltas
    /// (each stands for an `Ack`), and those its snapshot holds besides.
    /// Deltas a snapshot covers are emptied (as on the real relay): their
    /// changes must be in the snapshot. A snapshot may also hold changes no
    /// committed delta carried (its maker's unacknowledged ones): those are
    /// no promise of the relay's, and a later snapshot may lack them.
    fn on_relay(
        &mut self,
        world: &World,
        url: &DocUrl,
    ) -> (BTreeSet<ChangeHash>, BTreeSet<ChangeHash>) {
        let mut committed = BTreeSet::new();
        let logged = world.relay.logs.get(&url.doc).into_iter().flatten();
        for item in logged.filter(|item| !item.bytes.is_empty()) {
            let key = (0, item.id.to_string(), 0);
            committed.extend(
                Self::cached(&mut self.decoded, key, || sealed_changes(url, &item.bytes))
                    .iter()
                    .copied(),
            );
        }
        let mut snapshot = BTreeSet::new();
        if let Some(item) = world.relay.snapshots.get(&url.doc) {
            let key = (1, String::new(), bytes_hash(&item.bytes));
            snapshot.extend(
                Self::cached(&mut self.decoded, key, || sealed_changes(url, &item.bytes))
                    .iter()
                    .copied(),
            );
        }
        (committed, snapshot)
    }

    /// Changes of `url` in replica `i`'s store now (entries and snapshot).
    fn on_replica(&mut self, world: &World, i: usize, url: &DocUrl) -> BTreeSet<ChangeHash> {
        let mut hashes = BTreeSet::new();
        let doc = url.doc.to_string();
        for ((store, key), bytes) in &world.replicas[i].store.data {
            let cache_key = match store {
                Store::Entries if key.starts_with(&doc) => (2, key.clone(), 0),
                Store::Snapshots if *key == doc => (3, key.clone(), bytes_hash(bytes)),
                _ => continue,
            };
            hashes.extend(
                Self::cached(&mut self.decoded, cache_key, || record_changes(bytes))
                    .iter()
                    .copied(),
            );
        }
        hashes
    }

    /// What the relay once committed (in a delta) is still on the relay
    /// (in a delta or its snapshot), and what a
    /// replica once stored is still in its store; then records what is
    /// there now.
    pub fn check(&mut self, world: &World, docs: &[DocUrl], when: &str) {
        for url in docs {
            let (committed, snapshot) = self.on_relay(world, url);
            let ever = self.relay.entry(url.doc).or_default();
            let lost = ever
                .iter()
                .filter(|h| !committed.contains(h) && !snapshot.contains(h))
                .count();
            assert_eq!(
                lost, 0,
                "at {when}: the relay lost {lost} committed change(s) of {}",
                url.doc
            );
            ever.extend(committed);
            for i in 0..world.replicas.len() {
                let stored = self.on_replica(world, i, url);
                let ever = self.replicas.entry((i, url.doc)).or_default();
                let lost = ever.difference(&stored).count();
                assert_eq!(
                    lost, 0,
                    "at {when}: replica {i} lost {lost} durable change(s) of {}",
                    url.doc
                );
                ever.extend(stored);
            }
        }
    }

    /// The relay was replaced by an empty one: it lost its disk by
    /// construction, so nothing is expected of it any more.
    pub fn relay_replaced(&mut self) {
        self.relay.clear();
    }
}
