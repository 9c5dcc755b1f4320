//! A model relay and replica harness for tests: the relay's semantics
//! (dense per-doc sequence, dedup by id, ack after "commit", fan-out to other
//! subscribers) in a few lines, with no sockets.

use std::collections::{BTreeMap, BTreeSet};

use syncline_core::{Effect, Engine, MemoryStore};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, Limits, PROTOCOL_VERSION, RelayFrame, SequencedDelta,
    decode_client, encode_relay,
};

#[derive(Default)]
pub struct ModelRelay {
    pub epoch: [u8; 16],
    pub logs: BTreeMap<DocId, Vec<SequencedDelta>>,
    pub subscribers: BTreeMap<DocId, BTreeSet<usize>>,
}

impl ModelRelay {
    /// Handles one frame from connection `conn`; returns frames per connection.
    pub fn handle(&mut self, conn: usize, bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let frame = decode_client(bytes).expect("engine sent a malformed frame");
        let mut out = Vec::new();
        match frame {
            ClientFrame::Hello { .. } => out.push((
                conn,
                RelayFrame::Welcome {
                    version: PROTOCOL_VERSION,
                    epoch: self.epoch,
                    limits: Limits::default(),
                },
            )),
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
                let mut fresh = Vec::new();
                let ids: Vec<DeltaId> = deltas.iter().map(|d| d.id).collect();
                for d in deltas {
                    let log = self.logs.entry(doc).or_default();
                    if !log.iter().any(|x| x.id == d.id) {
                        let item = SequencedDelta {
                            seq: log.len() as u64 + 1,
                            id: d.id,
                            bytes: d.bytes,
                        };
                        log.push(item.clone());
                        fresh.push(item);
                    }
                }
                let seq = self.log(doc).len() as u64;
                out.push((conn, RelayFrame::Ack { doc, ids, seq }));
                if !fresh.is_empty() {
                    for &other in self.subscribers.get(&doc).into_iter().flatten() {
                        if other != conn {
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
            }
            ClientFrame::Ping { nonce } => out.push((conn, RelayFrame::Pong { nonce })),
            ClientFrame::Unsubscribe { doc } => {
                self.subscribers.entry(doc).or_default().remove(&conn);
            }
            ClientFrame::Authorize { .. }
            | ClientFrame::Presence { .. }
            | ClientFrame::Snapshot { .. } => {
                panic!("the engine does not send these yet")
            }
        }
        out.into_iter()
            .map(|(c, f)| (c, encode_relay(&f)))
            .collect()
    }

    pub fn disconnect(&mut self, conn: usize) {
        for subs in self.subscribers.values_mut() {
            subs.remove(&conn);
        }
    }

    fn log(&self, doc: DocId) -> &[SequencedDelta] {
        self.logs.get(&doc).map_or(&[], |l| l.as_slice())
    }
}

/// A replica with its durable store; effects not yet "written" are lost on
/// a crash.
pub struct Replica {
    pub engine: Engine,
    pub store: MemoryStore,
    pub unwritten: Vec<syncline_core::Batch>,
    pub outgoing: Vec<Vec<u8>>,
    pub errors: Vec<String>,
    pub changed: Vec<DocId>,
    pub online: bool,
    actor_counter: u8,
    id: u8,
}

impl Replica {
    pub fn new(id: u8) -> Replica {
        Replica {
            engine: Engine::new([id; 16]),
            store: MemoryStore::default(),
            unwritten: Vec::new(),
            outgoing: Vec::new(),
            errors: Vec::new(),
            changed: Vec::new(),
            online: false,
            actor_counter: 0,
            id,
        }
    }

    /// Moves the engine's effects into the replica's queues.
    pub fn collect(&mut self) {
        for effect in self.engine.take_effects() {
            match effect {
                Effect::Persist(b) => self.unwritten.push(b),
                Effect::Send(f) => {
                    if self.online {
                        self.outgoing.push(f)
                    }
                }
                Effect::Error(e) => self.errors.push(e.code().to_string()),
                Effect::DocChanged(d) => self.changed.push(d),
                Effect::CaughtUp(_) | Effect::StatusChanged => {}
            }
        }
    }

    /// The storage transaction commits.
    pub fn write(&mut self) {
        self.collect();
        for batch in self.unwritten.drain(..) {
            self.store.apply(&batch);
        }
    }

    /// Loses everything not written, and restarts from the store.
    pub fn crash_and_restart(&mut self) {
        self.collect();
        self.unwritten.clear();
        self.outgoing.clear();
        self.online = false;
        self.actor_counter += 1;
        let mut actor = [self.id; 16];
        actor[15] = self.actor_counter;
        let (engine, problems) = Engine::load(actor, self.store.records());
        assert!(problems.is_empty(), "{problems:?}");
        self.engine = engine;
    }
}

/// A relay connection per replica; frames flow until nothing moves.
pub struct Net {
    pub relay: ModelRelay,
    pub replicas: Vec<Replica>,
}

impl Net {
    pub fn new(n: u8) -> Net {
        Net {
            relay: ModelRelay::default(),
            replicas: (0..n).map(|i| Replica::new(i + 1)).collect(),
        }
    }

    pub fn connect(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        r.online = true;
        r.engine.connected([r.id; 16], None);
    }

    pub fn disconnect(&mut self, i: usize) {
        self.replicas[i].online = false;
        self.replicas[i].engine.disconnected();
        self.relay.disconnect(i);
    }

    /// Delivers frames both ways and writes every batch until quiet.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.replicas.len() {
                self.replicas[i].write();
                let frames: Vec<_> = self.replicas[i].outgoing.drain(..).collect();
                for frame in frames {
                    moved = true;
                    for (to, reply) in self.relay.handle(i, &frame) {
                        if self.replicas[to].online {
                            self.replicas[to].engine.received(&reply, 1_000);
                        }
                    }
                }
            }
            if !moved {
                for r in &mut self.replicas {
                    r.write();
                }
                return;
            }
        }
        panic!("network did not settle");
    }
}
