//! A deterministic world for testing the engine: replicas with durable and
//! not-yet-durable storage, a model relay with the real relay's semantics,
//! and links that can drop, duplicate and reorder frames. Time is a number
//! the world advances; every choice comes from the caller's seeded RNG.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::ChangeHash;
use syncline_core::{Batch, CompactionPolicy, DocUrl, Effect, Engine, MemoryStore, delta};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, Limits, PROTOCOL_VERSION, RelayFrame, SequencedDelta,
    decode_client, encode_relay,
};

/// The relay's semantics: dense per-doc sequence, dedup by id, ack after
/// commit, catch-up then live fan-out to other subscribers.
#[derive(Default)]
pub struct ModelRelay {
    pub epoch: [u8; 16],
    pub logs: BTreeMap<DocId, Vec<SequencedDelta>>,
    pub subscribers: BTreeMap<DocId, BTreeSet<usize>>,
    pub greeted: BTreeSet<usize>,
}

impl ModelRelay {
    /// Handles one frame from connection `conn`; returns frames per connection.
    pub fn handle(&mut self, conn: usize, bytes: &[u8]) -> Vec<(usize, RelayFrame)> {
        let frame = decode_client(bytes).expect("the engine sent a malformed frame");
        let mut out = Vec::new();
        if !self.greeted.contains(&conn) && !matches!(frame, ClientFrame::Hello { .. }) {
            return out; // the real relay would close; the engine times out
        }
        match frame {
            ClientFrame::Hello { version, .. } => {
                assert_eq!(version, PROTOCOL_VERSION);
                self.greeted.insert(conn);
                out.push((
                    conn,
                    RelayFrame::Welcome {
                        version,
                        epoch: self.epoch,
                        limits: Limits::default(),
                    },
                ));
            }
            ClientFrame::Subscribe { doc, since } => {
                let items: Vec<_> = self
                    .log(doc)
                    .iter()
                    .filter(|d| d.seq > since)
                    .cloned()
                    .collect();
                out.push((
                    conn,
                    RelayFrame::Deltas {
                        doc,
                        items,
                        caught_up: true,
                    },
                ));
                self.subscribers.entry(doc).or_default().insert(conn);
            }
            ClientFrame::Push { doc, deltas } => {
                let ids: Vec<DeltaId> = deltas.iter().map(|d| d.id).collect();
                let log = self.logs.entry(doc).or_default();
                let mut fresh = Vec::new();
                let mut seq = 0;
                for d in deltas {
                    match log.iter().find(|x| x.id == d.id) {
                        Some(existing) => seq = seq.max(existing.seq),
                        None => {
                            let item = SequencedDelta {
                                seq: log.len() as u64 + 1,
                                id: d.id,
                                bytes: d.bytes,
                            };
                            seq = item.seq;
                            log.push(item.clone());
                            fresh.push(item);
                        }
                    }
                }
                out.push((conn, RelayFrame::Ack { doc, ids, seq }));
                for &other in self.subscribers.get(&doc).into_iter().flatten() {
                    if other != conn && !fresh.is_empty() {
                        out.push((
                            other,
                            RelayFrame::Deltas {
                                doc,
                                items: fresh.clone(),
                                caught_up: true,
                            },
                        ));
                    }
                }
            }
            ClientFrame::Ping { nonce } => out.push((conn, RelayFrame::Pong { nonce })),
            ClientFrame::Unsubscribe { doc } => {
                self.subscribers.entry(doc).or_default().remove(&conn);
            }
            ClientFrame::Authorize { .. }
            | ClientFrame::Presence { .. }
            | ClientFrame::Snapshot { .. } => {}
        }
        out
    }

    pub fn disconnect(&mut self, conn: usize) {
        self.greeted.remove(&conn);
        for subs in self.subscribers.values_mut() {
            subs.remove(&conn);
        }
    }

    fn log(&self, doc: DocId) -> &[SequencedDelta] {
        self.logs.get(&doc).map_or(&[], |l| l.as_slice())
    }
}

/// A replica and its storage: `store` is durable, `unwritten` is what a
/// crash loses.
pub struct Replica {
    pub engine: Engine,
    pub store: MemoryStore,
    pub unwritten: Vec<Batch>,
    pub errors: Vec<String>,
    pub changed: Vec<DocId>,
    pub online: bool,
    /// The engine asked to drop its connection.
    pub wants_disconnect: bool,
    /// Applied to the engine at start and after every restart.
    pub compaction: CompactionPolicy,
    restarts: u32,
    id: u8,
}

impl Replica {
    pub fn new(id: u8) -> Replica {
        Replica {
            engine: Engine::new(seed(id, 0)),
            store: MemoryStore::default(),
            unwritten: Vec::new(),
            errors: Vec::new(),
            changed: Vec::new(),
            online: false,
            wants_disconnect: false,
            compaction: CompactionPolicy::default(),
            restarts: 0,
            id,
        }
    }

    pub fn set_compaction(&mut self, policy: CompactionPolicy) {
        self.compaction = policy;
        self.engine.set_compaction(policy);
    }

    /// The storage transaction commits. Returns the last batch written;
    /// the world reports it to the engine.
    fn write_batches(&mut self) -> Option<u64> {
        let mut last = None;
        for batch in self.unwritten.drain(..) {
            self.store.apply(&batch);
            last = Some(batch.id);
        }
        last
    }

    /// Loses everything not written, and restarts from the store.
    pub fn crash_and_restart(&mut self) {
        self.unwritten.clear();
        self.online = false;
        self.restarts += 1;
        let (engine, problems) = Engine::load(seed(self.id, self.restarts), self.store.records());
        assert!(problems.is_empty(), "{problems:?}");
        self.engine = engine;
        self.engine.set_compaction(self.compaction);
    }

    /// Change hashes of a document, as Automerge has them.
    pub fn change_hashes(&self, doc: &DocId) -> BTreeSet<ChangeHash> {
        self.engine
            .automerge(doc)
            .map(|d| {
                d.clone()
                    .get_changes(&[])
                    .iter()
                    .map(|c| c.hash())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn seed(id: u8, restarts: u32) -> [u8; 32] {
    let mut seed = [id; 32];
    seed[..4].copy_from_slice(&restarts.to_le_bytes());
    seed
}

/// How hostile the links are, as probabilities per delivered frame.
#[derive(Clone, Copy, Default, Debug)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

/// Replicas, a relay, and a link per replica.
pub struct World {
    pub relay: ModelRelay,
    pub replicas: Vec<Replica>,
    pub to_relay: Vec<VecDeque<Vec<u8>>>,
    pub to_replica: Vec<VecDeque<Vec<u8>>>,
    pub now: u64,
}

impl World {
    pub fn new(n: u8) -> World {
        World {
            relay: ModelRelay::default(),
            replicas: (0..n).map(|i| Replica::new(i + 1)).collect(),
            to_relay: (0..n).map(|_| VecDeque::new()).collect(),
            to_replica: (0..n).map(|_| VecDeque::new()).collect(),
            now: 1_000,
        }
    }

    pub fn connect(&mut self, i: usize) {
        if self.replicas[i].online {
            return;
        }
        let r = &mut self.replicas[i];
        r.online = true;
        r.wants_disconnect = false;
        r.engine.connected([r.id; 16], None, self.now);
        self.collect(i);
    }

    /// Drops the connection: frames in flight on it are lost.
    pub fn disconnect(&mut self, i: usize) {
        if self.replicas[i].online {
            self.replicas[i].online = false;
            self.replicas[i].engine.disconnected();
        }
        self.relay.disconnect(i);
        self.to_relay[i].clear();
        self.to_replica[i].clear();
        self.collect(i);
    }

    pub fn crash(&mut self, i: usize) {
        self.disconnect(i);
        self.replicas[i].crash_and_restart();
    }

    /// The relay process restarts: connections drop, the log is kept.
    pub fn restart_relay(&mut self) {
        for i in 0..self.replicas.len() {
            self.disconnect(i);
        }
    }

    /// The relay is replaced by an empty one with a new epoch.
    pub fn replace_relay(&mut self, epoch: [u8; 16]) {
        self.restart_relay();
        self.relay = ModelRelay {
            epoch,
            ..Default::default()
        };
    }

    /// Moves replica `i`'s effects into its storage queue and link.
    pub fn collect(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        for effect in r.engine.take_effects() {
            match effect {
                Effect::Persist(b) => r.unwritten.push(b),
                Effect::Send(f) => {
                    if r.online {
                        self.to_relay[i].push_back(f)
                    }
                }
                Effect::Error(e) => r.errors.push(e.code().to_string()),
                Effect::DocChanged(d) => r.changed.push(d),
                Effect::Disconnect => r.wants_disconnect = true,
                Effect::CaughtUp(_) | Effect::StatusChanged => {}
            }
        }
        if r.wants_disconnect && r.online {
            self.disconnect(i);
        }
    }

    /// Replica `i`'s storage transaction commits.
    pub fn write(&mut self, i: usize) {
        if let Some(last) = self.replicas[i].write_batches() {
            self.replicas[i].engine.persisted(last, self.now);
            self.collect(i);
        }
    }

    /// Delivers the next frame replica `i` sent to the relay.
    pub fn deliver_to_relay(&mut self, i: usize) -> bool {
        let Some(frame) = self.to_relay[i].pop_front() else {
            return false;
        };
        for (to, reply) in self.relay.handle(i, &frame) {
            if self.replicas[to].online {
                self.to_replica[to].push_back(encode_relay(&reply));
            }
        }
        true
    }

    /// Delivers the next frame the relay sent to replica `i`.
    pub fn deliver_to_replica(&mut self, i: usize) -> bool {
        let Some(frame) = self.to_replica[i].pop_front() else {
            return false;
        };
        self.replicas[i].engine.received(&frame, self.now);
        self.collect(i);
        true
    }

    pub fn tick(&mut self, i: usize) {
        self.replicas[i].engine.tick(self.now);
        self.collect(i);
    }

    /// Delivers everything, writes every batch, and lets timers fire, until
    /// nothing moves. Panics if it never settles.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.replicas.len() {
                self.write(i);
                while self.deliver_to_relay(i) {
                    moved = true;
                }
                while self.deliver_to_replica(i) {
                    moved = true;
                }
            }
            let unwritten = self.replicas.iter().any(|r| !r.unwritten.is_empty());
            if !moved && !unwritten {
                return;
            }
        }
        panic!("the world did not settle");
    }

    /// Heals everything (all connected, timers fired) and settles.
    pub fn heal(&mut self) {
        for round in 0..20 {
            for i in 0..self.replicas.len() {
                self.connect(i);
            }
            self.settle();
            let quiet = self
                .replicas
                .iter()
                .all(|r| r.engine.status().pending == 0 && r.online);
            if quiet && round > 0 {
                return;
            }
            self.now += syncline_core::RESEND_AFTER_MS;
            for i in 0..self.replicas.len() {
                self.tick(i);
            }
        }
    }

    /// Every change hash in the relay's log for `doc`, opened with its key.
    pub fn relay_change_hashes(&self, url: &DocUrl) -> BTreeSet<ChangeHash> {
        let mut hashes = BTreeSet::new();
        for item in self.relay.logs.get(&url.doc).into_iter().flatten() {
            let plain = url
                .key
                .open(&url.doc, &item.bytes)
                .expect("relay holds a delta we can't open");
            for change in delta::decode(&plain).expect("relay holds a malformed delta") {
                hashes.insert(change.hash());
            }
        }
        hashes
    }
}
