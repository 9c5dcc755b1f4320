//! Deterministic simulation: several replicas and a model relay, random
//! edits, lossy links (drops, duplicates, reorders), disconnects, crashes
//! that lose whatever was not yet durable, relay restarts, and now and then a
//! relay replaced by an empty one. After healing, every replica must agree
//! with every other and with the relay.
//!
//! The durability oracle runs before every step and after healing, not only
//! at the end: a change the relay once held committed (what its `Ack`
//! stands for) is still on the relay (in its log or its snapshot), and a
//! change once in a replica's store (an entry or a snapshot) is still in
//! that store — crashes, compaction and acks included. A relay *replaced*
//! by an empty one lost its disk by construction: from then on nothing is
//! expected of it but what it stores anew.
//!
//! Seeds come from `SIM_SEEDS`: a count (`1000`: seeds 0..1000) or a range
//! (`5000..6000`). A failure prints its seed; `SIM_SEEDS=N..N+1` replays it.

#[path = "support/world.rs"]
mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;

use automerge::ChangeHash;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use syncline_core::{CompactionPolicy, DocUrl, Op, delta, store::Record, store::Store};
use syncline_protocol::DocId;
use world::{Faults, World};

/// Catch-ups that started with a relay snapshot, over all seeds.
static SNAPSHOTS_SERVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Requests the relay refused for want of a valid token, over all seeds.
static REFUSALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn seeds() -> Range<u64> {
    let spec = std::env::var("SIM_SEEDS").unwrap_or_else(|_| "1000".into());
    match spec.split_once("..") {
        Some((a, b)) => a.trim().parse().unwrap()..b.trim().parse().unwrap(),
        None => 0..spec.trim().parse().unwrap(),
    }
}

#[test]
fn replicas_converge_under_faults_crashes_and_relay_loss() {
    let seeds = seeds();
    let count = seeds.end - seeds.start;
    for seed in seeds {
        let outcome = std::panic::catch_unwind(|| simulate(seed));
        if let Err(panic) = outcome {
            eprintln!(
                "\nsimulation failed at seed {seed}; replay with SIM_SEEDS={seed}..{}",
                seed + 1
            );
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!(
        "{count} seeds converged; {} catch-ups were served a snapshot and {} requests were refused for their token (counted on each run's last relay)",
        SNAPSHOTS_SERVED.load(std::sync::atomic::Ordering::Relaxed),
        REFUSALS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A random edit of the `items` list that is valid for the replica's view.
fn random_edit(rng: &mut StdRng, len: usize, label: String) -> Vec<Op> {
    let op = match rng.random_range(0..10) {
        0..=5 => {
            json!({"op": "insert", "obj": ["items"], "index": rng.random_range(0..=len), "values": [label]})
        }
        6 | 7 if len > 0 => {
            json!({"op": "delete", "obj": ["items"], "key": rng.random_range(0..len)})
        }
        8 if len > 0 => {
            json!({"op": "put", "obj": ["items"], "key": rng.random_range(0..len), "value": label})
        }
        _ => {
            json!({"op": "put", "obj": [], "key": format!("k{}", rng.random_range(0..4)), "value": label})
        }
    };
    serde_json::from_value(json!([op])).unwrap()
}

fn simulate(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.random_range(2..=4u8);
    let mut world = World::new(n);
    // Live deltas go out tentatively; the relay commits when the run says.
    world.relay.hold_commits = true;
    let faults = Faults {
        drop: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        reorder: rng.random_range(0.0..0.1),
    };
    // Its own RNG, so the rest of a seed's run doesn't depend on it.
    let mut policy_rng = StdRng::seed_from_u64(seed ^ 0xc0ffee);
    if policy_rng.random_bool(0.5) {
        // Compact often, so crashes land between compactions too.
        for r in &mut world.replicas {
            let max_changes = policy_rng.random_range(1..12);
            r.set_compaction(CompactionPolicy {
                max_changes,
                max_bytes: 1 << 20,
                ..CompactionPolicy::default()
            });
        }
    }
    // Half the runs against a relay that wants a token per document, from
    // an endpoint that hands out short-lived tokens and is sometimes down.
    let mut token_rng = StdRng::seed_from_u64(seed ^ 0x70c3);
    let tokens = token_rng.random_bool(0.5);
    if tokens {
        let service = world.require_tokens();
        service.everyone_writes = true;
        service.ttl_ms = token_rng.random_range(5_000..120_000);
    }
    let docs: Vec<DocUrl> = (0..rng.random_range(1..=2))
        .map(|_| {
            world.replicas[0]
                .engine
                .create_doc(&json!({"items": []}), world.now)
                .unwrap()
        })
        .collect();
    world.collect(0);
    for i in 0..n as usize {
        if rng.random_bool(0.7) {
            world.connect(i);
        }
        for url in &docs {
            world.replicas[i].engine.open_doc(url, world.now).unwrap();
        }
        world.collect(i);
    }

    let mut oracle = Durability::default();
    oracle.check(&world, &docs, "set-up");
    let steps = rng.random_range(50..250);
    for step in 0..steps {
        oracle.check(&world, &docs, &format!("step {step}"));
        let i = rng.random_range(0..n as usize);
        match rng.random_range(0..1000) {
            0..=249 => {
                let url = docs[rng.random_range(0..docs.len())];
                // After a crash that lost the open, the app opens it again.
                world.replicas[i].engine.open_doc(&url, world.now).unwrap();
                let value = world.replicas[i].engine.value_json(&url.doc).unwrap();
                // A replica that has not received the document yet can't edit it.
                let Some(len) = value["items"].as_array().map(Vec::len) else {
                    continue;
                };
                let edit = random_edit(&mut rng, len, format!("r{i}s{step}"));
                world.replicas[i]
                    .engine
                    .change(url.doc, &edit, None, world.now)
                    .unwrap();
                world.collect(i);
            }
            250..=499 => deliver(&mut world, &mut rng, faults, i, true),
            500..=549 => world.commit_relay(),
            550..=849 => deliver(&mut world, &mut rng, faults, i, false),
            850..=909 => world.write(i),
            910..=929 => world.crash(i),
            930..=959 => {
                if world.replicas[i].online {
                    world.disconnect(i)
                } else {
                    world.connect(i)
                }
            }
            960..=969 => world.restart_relay(),
            970..=972 => {
                world.replace_relay(rng.random());
                oracle.relay_replaced();
            }
            973..=979 if tokens => {
                let failing = &mut world.tokens.as_mut().unwrap().failing;
                if !failing.remove(&i) {
                    failing.insert(i);
                }
            }
            _ => {
                world.now += rng.random_range(100..15_000);
                world.tick(i);
            }
        }
    }

    for i in 0..n as usize {
        for url in &docs {
            world.replicas[i].engine.open_doc(url, world.now).unwrap();
        }
        world.collect(i);
    }
    if let Some(service) = &mut world.tokens {
        service.failing.clear(); // the endpoint comes back
    }
    oracle.check(&world, &docs, "the end of the steps");
    world.heal();
    oracle.check(&world, &docs, "healing");
    SNAPSHOTS_SERVED.fetch_add(
        world.relay.snapshots_served,
        std::sync::atomic::Ordering::Relaxed,
    );
    REFUSALS.fetch_add(
        world.relay.refusals.values().sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
    check_invariants(&world, &docs);
}

/// Delivers the next frame on replica `i`'s link, through the faults.
fn deliver(world: &mut World, rng: &mut StdRng, faults: Faults, i: usize, to_relay: bool) {
    let link = if to_relay {
        &mut world.to_relay[i]
    } else {
        &mut world.to_replica[i]
    };
    if link.len() >= 2 && rng.random_bool(faults.reorder) {
        link.swap(0, 1);
    }
    if rng.random_bool(faults.drop) {
        link.pop_front();
        return;
    }
    if rng.random_bool(faults.duplicate)
        && let Some(frame) = link.front().cloned()
    {
        link.push_front(frame);
    }
    if to_relay {
        world.deliver_to_relay(i);
    } else {
        world.deliver_to_replica(i);
    }
}

fn check_invariants(world: &World, docs: &[DocUrl]) {
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
struct Durability {
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

    /// Changes of `url` committed on the relay now (its log and snapshot).
    fn on_relay(&mut self, world: &World, url: &DocUrl) -> BTreeSet<ChangeHash> {
        let mut hashes = BTreeSet::new();
        // Deltas a snapshot covers are emptied (as on the real relay):
        // their changes are counted from the snapshot.
        let logged = world.relay.logs.get(&url.doc).into_iter().flatten();
        for item in logged.filter(|item| !item.bytes.is_empty()) {
            let key = (0, item.id.to_string(), 0);
            hashes.extend(
                Self::cached(&mut self.decoded, key, || sealed_changes(url, &item.bytes))
                    .iter()
                    .copied(),
            );
        }
        if let Some(snapshot) = world.relay.snapshots.get(&url.doc) {
            let key = (1, String::new(), bytes_hash(&snapshot.bytes));
            hashes.extend(
                Self::cached(&mut self.decoded, key, || {
                    sealed_changes(url, &snapshot.bytes)
                })
                .iter()
                .copied(),
            );
        }
        hashes
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

    /// What the relay once committed is still on the relay, and what a
    /// replica once stored is still in its store; then records what is
    /// there now.
    fn check(&mut self, world: &World, docs: &[DocUrl], when: &str) {
        for url in docs {
            let relay = self.on_relay(world, url);
            let ever = self.relay.entry(url.doc).or_default();
            let lost = ever.difference(&relay).count();
            assert_eq!(
                lost, 0,
                "at {when}: the relay lost {lost} committed change(s) of {}",
                url.doc
            );
            ever.extend(relay);
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
    fn relay_replaced(&mut self) {
        self.relay.clear();
    }
}
