//! A deterministic world for testing the engine: replicas with durable and
//! not-yet-durable storage, a model relay with the real relay's semantics,
//! and links that can drop, duplicate and reorder frames. Time is a number
//! the world advances; every choice comes from the caller's seeded RNG.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use syncline_core::ChangeHash;
use syncline_core::{
    Batch, CompactionPolicy, DocUrl, Effect, Engine, MemoryStore, Op, Output, delta,
};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, ErrorCode, Limits, PROTOCOL_VERSION, PushDelta, RelayFrame,
    SequencedDelta, decode_client, encode_relay, proof,
};

/// The relay's semantics: dense per-doc sequence, dedup by id, ack after
/// commit, catch-up then live fan-out (protocol v2: `Tentative` to the
/// other subscribers when a push arrives, `Committed` after the commit);
/// client snapshots served in place of the deltas they cover; presence
/// fanned out, replayed to newcomers, and reported gone when a
/// subscription ends. Pushes wait in `uncommitted` until [`ModelRelay::commit`]
/// (at once unless `hold_commits`); a relay restart loses them.
#[derive(Default)]
pub struct ModelRelay {
    /// Pushes wait for an explicit [`ModelRelay::commit`].
    pub hold_commits: bool,
    /// Pushes received and not committed yet, in arrival order.
    pub uncommitted: Vec<Uncommitted>,
    /// Per doc and live subscriber, the highest sequence it was sent or
    /// confirmed.
    pub sent_through: BTreeMap<(DocId, usize), u64>,
    pub epoch: [u8; 16],
    pub logs: BTreeMap<DocId, Vec<SequencedDelta>>,
    /// Per doc, the snapshot with the highest `covers_seq` (as its seq).
    pub snapshots: BTreeMap<DocId, SequencedDelta>,
    pub subscribers: BTreeMap<DocId, BTreeSet<usize>>,
    pub greeted: BTreeSet<usize>,
    /// Each connection's replica id, from its `Hello`.
    pub replicas: BTreeMap<usize, [u8; 16]>,
    /// Latest presence per doc and connection.
    pub presence: BTreeMap<DocId, BTreeMap<usize, Vec<u8>>>,
    /// `Subscribe` frames received, per connection.
    pub subscribes: BTreeMap<usize, usize>,
    /// `Push` frames received, per connection.
    pub pushes: BTreeMap<usize, usize>,
    /// Per replica link, how many connections it has opened: a push, and
    /// what counts as "its own", belongs to one connection, not to the
    /// replica (a restarted replica may have lost what it pushed before).
    pub generations: BTreeMap<usize, u64>,
    /// Catch-ups that started with a snapshot.
    pub snapshots_served: usize,
    /// Require a token per document, as a relay with a secret does
    /// (tokens from [`TokenService`]; `Unauthorized`, `ReadOnly` and
    /// `TokenExpired` refusals as the real relay sends them).
    pub auth: bool,
    /// Valid tokens presented, per connection and document.
    pub grants: BTreeMap<(usize, DocId), Grant>,
    /// The relay's clock (the world keeps it at its own time).
    pub now: u64,
    /// Requests refused, by code.
    pub refusals: BTreeMap<String, usize>,
}

/// What a token presented to the model relay allows, until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub write: bool,
    pub expires_at: u64,
}

/// The app's token endpoint, as the world plays it: a token per replica
/// and document, with the rights in `rights` (none: a token for another
/// document), valid for `ttl_ms`. Tokens are `doc.read|write.expiry`
/// strings the model relay reads (it checks no signature: forging is the
/// real relay's test).
#[derive(Default)]
pub struct TokenService {
    /// Rights per (replica index, document): `true` for write.
    pub rights: BTreeMap<(usize, DocId), bool>,
    /// Everyone gets a write token for every document (overrides `rights`).
    pub everyone_writes: bool,
    pub ttl_ms: u64,
    /// Replicas whose token provider fails (throws) for now.
    pub failing: BTreeSet<usize>,
    /// Tokens asked for, per replica and document.
    pub asked: BTreeMap<(usize, DocId), usize>,
}

impl TokenService {
    /// The token replica `i` gets for `doc` at `now`, or why not.
    pub fn token(&mut self, i: usize, doc: DocId, now: u64) -> Result<String, String> {
        *self.asked.entry((i, doc)).or_default() += 1;
        if self.failing.contains(&i) {
            return Err("the token endpoint is down".into());
        }
        let expiry = now + self.ttl_ms;
        let write = if self.everyone_writes {
            Some(true)
        } else {
            self.rights.get(&(i, doc)).copied()
        };
        Ok(match write {
            Some(write) => model_token(doc, write, expiry),
            // No rights: the app hands out the wrong document's token.
            None => model_token(DocId([0xee; 16]), true, expiry),
        })
    }
}

/// A token the model relay accepts.
pub fn model_token(doc: DocId, write: bool, expires_at: u64) -> String {
    let rights = if write { "write" } else { "read" };
    format!("{doc}.{rights}.{expires_at}")
}

/// A push the relay has fanned out tentatively but not committed.
pub struct Uncommitted {
    pub conn: usize,
    pub generation: u64,
    pub doc: DocId,
    pub deltas: Vec<PushDelta>,
    /// The subscribers (connection, generation) it went to as `Tentative`.
    pub sent_to: BTreeSet<(usize, u64)>,
}

impl ModelRelay {
    /// Handles one frame from connection `conn`; returns frames per connection.
    pub fn handle(&mut self, conn: usize, bytes: &[u8]) -> Vec<(usize, RelayFrame)> {
        let frame = decode_client(bytes).expect("the engine sent a malformed frame");
        let mut out = Vec::new();
        if !self.greeted.contains(&conn) && !matches!(frame, ClientFrame::Hello { .. }) {
            return out; // the real relay would close; the engine times out
        }
        // As the real relay: a write is acted on only with a valid proof.
        let frame = match self.proven(conn, frame) {
            Ok(frame) => frame,
            Err(doc) => {
                self.deny(conn, doc, ErrorCode::Unproven, &mut out);
                return out;
            }
        };
        match frame {
            ClientFrame::Hello {
                version, replica, ..
            } => {
                assert_eq!(version, PROTOCOL_VERSION);
                *self.generations.entry(conn).or_default() += 1;
                self.greeted.insert(conn);
                self.replicas.insert(conn, replica);
                out.push((
                    conn,
                    RelayFrame::Welcome {
                        version,
                        epoch: self.epoch,
                        limits: Limits::default(),
                    },
                ));
            }
            ClientFrame::Subscribe { doc, .. } | ClientFrame::Presence { doc, .. }
                if self.refuse(conn, doc, false, &mut out) =>
            {
                return out;
            }
            ClientFrame::Push { doc, .. } | ClientFrame::Snapshot { doc, .. }
                if self.refuse(conn, doc, true, &mut out) =>
            {
                return out;
            }
            ClientFrame::Subscribe { doc, since } => {
                *self.subscribes.entry(conn).or_default() += 1;
                // A snapshot above `since` replaces every delta it covers.
                let snapshot = self.snapshots.get(&doc).filter(|s| s.seq > since);
                let from = snapshot.map_or(since, |s| s.seq);
                self.snapshots_served += usize::from(snapshot.is_some());
                let items: Vec<_> = snapshot
                    .into_iter()
                    .chain(self.log(doc).iter().filter(|d| d.seq > from))
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
                let head = self.log(doc).len() as u64;
                self.sent_through.insert((doc, conn), head);
                for (&other, bytes) in self.presence.get(&doc).into_iter().flatten() {
                    if other != conn {
                        out.push((conn, self.presence_frame(doc, other, bytes.clone())));
                    }
                }
            }
            ClientFrame::Push { doc, deltas } => {
                *self.pushes.entry(conn).or_default() += 1;
                let mut sent_to = BTreeSet::new();
                for &other in self.subscribers.get(&doc).into_iter().flatten() {
                    if other != conn {
                        sent_to.insert((other, self.generations[&other]));
                        let deltas = deltas.clone();
                        out.push((other, RelayFrame::Tentative { doc, deltas }));
                    }
                }
                self.uncommitted.push(Uncommitted {
                    conn,
                    generation: self.generations[&conn],
                    doc,
                    deltas,
                    sent_to,
                });
                if !self.hold_commits {
                    out.extend(self.commit());
                }
            }
            ClientFrame::Ping { nonce } => out.push((conn, RelayFrame::Pong { nonce })),
            ClientFrame::Unsubscribe { doc } => {
                self.subscribers.entry(doc).or_default().remove(&conn);
                self.sent_through.remove(&(doc, conn));
                self.presence_gone(doc, conn, &mut out);
            }
            ClientFrame::Presence { doc, bytes } => {
                if !self
                    .subscribers
                    .get(&doc)
                    .is_some_and(|s| s.contains(&conn))
                {
                    let message = "subscribe before sending presence".into();
                    let code = ErrorCode::UnexpectedFrame;
                    out.push((conn, RelayFrame::DocError { doc, code, message }));
                    return out;
                }
                let frame = self.presence_frame(doc, conn, bytes.clone());
                for &other in &self.subscribers[&doc] {
                    if other != conn {
                        out.push((other, frame.clone()));
                    }
                }
                let all = self.presence.entry(doc).or_default();
                match bytes.is_empty() {
                    true => all.remove(&conn),
                    false => all.insert(conn, bytes),
                };
            }
            ClientFrame::Snapshot {
                doc,
                covers_seq,
                id,
                bytes,
            } => {
                let head = self.log(doc).len() as u64;
                assert!(covers_seq > 0, "a snapshot covering nothing");
                assert!(covers_seq <= head, "a snapshot beyond the log's head");
                let newer = self.snapshots.get(&doc).is_none_or(|s| s.seq < covers_seq);
                if newer {
                    let item = SequencedDelta {
                        seq: covers_seq,
                        id,
                        bytes,
                    };
                    self.snapshots.insert(doc, item);
                    // As the real relay (store/sqlite/log.rs): the covered
                    // deltas' bytes go, only the snapshot stands for them.
                    for covered in self.logs.entry(doc).or_default() {
                        if covered.seq <= covers_seq {
                            covered.bytes.clear();
                        }
                    }
                }
                let ack = RelayFrame::Ack {
                    doc,
                    ids: vec![id],
                    seq: covers_seq,
                };
                out.push((conn, ack));
            }
            ClientFrame::Authorize { doc, token } => self.authorize(conn, doc, &token, &mut out),
            // The model relays no ephemeral messages (the real relay's
            // tests and the browser tests cover them).
            ClientFrame::SignedMessage { .. } => {}
            ClientFrame::SignedPush { .. }
            | ClientFrame::SignedSnapshot { .. }
            | ClientFrame::SignedPresence { .. } => {
                unreachable!("`proven` turned signed writes into plain ones")
            }
        }
        out
    }

    /// A signed write as the unsigned frame it proves; any other frame as
    /// it is. `Err(doc)`: an unsigned write, or one whose proof fails.
    fn proven(&self, conn: usize, frame: ClientFrame) -> Result<ClientFrame, DocId> {
        let replica = self.replicas.get(&conn).copied().unwrap_or_default();
        let (frame, doc, digest, proof) = match frame {
            ClientFrame::SignedPush { doc, deltas, proof } => {
                let digest = proof::push_digest(&doc, &deltas);
                (ClientFrame::Push { doc, deltas }, doc, digest, proof)
            }
            ClientFrame::SignedSnapshot {
                doc,
                covers_seq,
                id,
                bytes,
                proof,
            } => {
                let digest = proof::snapshot_digest(&doc, covers_seq, &id, &bytes);
                let frame = ClientFrame::Snapshot {
                    doc,
                    covers_seq,
                    id,
                    bytes,
                };
                (frame, doc, digest, proof)
            }
            ClientFrame::SignedPresence { doc, bytes, proof } => {
                let digest = proof::presence_digest(&doc, &replica, &bytes);
                (ClientFrame::Presence { doc, bytes }, doc, digest, proof)
            }
            ClientFrame::Push { doc, .. }
            | ClientFrame::Snapshot { doc, .. }
            | ClientFrame::Presence { doc, .. } => return Err(doc),
            other => return Ok(other),
        };
        match proof::verify(&doc, &digest, &proof) {
            Ok(()) => Ok(frame),
            Err(_) => Err(doc),
        }
    }

    /// The real relay's `Authorize`: a valid token for `doc` replaces the
    /// last one; anything else is refused (and the last one kept).
    fn authorize(
        &mut self,
        conn: usize,
        doc: DocId,
        token: &str,
        out: &mut Vec<(usize, RelayFrame)>,
    ) {
        if !self.auth {
            return;
        }
        let parsed = (|| {
            let mut fields = token.split('.');
            let for_doc: DocId = fields.next()?.parse().ok()?;
            let write = fields.next()? == "write";
            let expires_at: u64 = fields.next()?.parse().ok()?;
            Some((for_doc, Grant { write, expires_at }))
        })();
        let code = match parsed {
            Some((for_doc, grant)) if for_doc == doc && grant.expires_at > self.now => {
                self.grants.insert((conn, doc), grant);
                return;
            }
            Some((for_doc, _)) if for_doc == doc => ErrorCode::TokenExpired,
            _ => ErrorCode::Unauthorized,
        };
        self.deny(conn, doc, code, out);
    }

    /// Whether `conn` may not read (or with `write`, write) `doc`; if so,
    /// the refusal is queued.
    fn refuse(
        &mut self,
        conn: usize,
        doc: DocId,
        write: bool,
        out: &mut Vec<(usize, RelayFrame)>,
    ) -> bool {
        if !self.auth {
            return false;
        }
        let code = match self.grants.get(&(conn, doc)) {
            None => ErrorCode::Unauthorized,
            Some(grant) if grant.expires_at <= self.now => ErrorCode::TokenExpired,
            Some(grant) if write && !grant.write => ErrorCode::ReadOnly,
            Some(_) => return false,
        };
        self.deny(conn, doc, code, out);
        true
    }

    fn deny(
        &mut self,
        conn: usize,
        doc: DocId,
        code: ErrorCode,
        out: &mut Vec<(usize, RelayFrame)>,
    ) {
        *self.refusals.entry(format!("{code:?}")).or_default() += 1;
        let message = format!("document {doc}: {code:?}");
        out.push((conn, RelayFrame::DocError { doc, code, message }));
    }

    /// Commits every push received so far, in order: confirms each
    /// document's new range to its live subscribers (first sending any
    /// delta of it they missed as `Tentative`), then acks each pusher.
    pub fn commit(&mut self) -> Vec<(usize, RelayFrame)> {
        let mut out = Vec::new();
        // As the real relay: a commit's `Committed` frames go out before
        // its acks (tests/model_vs_relay.rs in syncline-cli compares them).
        let mut acks = Vec::new();
        // Per doc, the fresh items and who pushed them, in sequence order.
        type From = (usize, u64);
        let mut fresh: BTreeMap<DocId, Vec<(SequencedDelta, From, BTreeSet<From>)>> =
            BTreeMap::new();
        for push in std::mem::take(&mut self.uncommitted) {
            let Uncommitted {
                conn,
                generation,
                doc,
                deltas,
                sent_to,
            } = push;
            let live = self.greeted.contains(&conn) && self.generations[&conn] == generation;
            let ids: Vec<DeltaId> = deltas.iter().map(|d| d.id).collect();
            let log = self.logs.entry(doc).or_default();
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
                        let tentative = sent_to.clone();
                        let from = (conn, generation);
                        fresh.entry(doc).or_default().push((item, from, tentative));
                    }
                }
            }
            if live {
                acks.push((conn, RelayFrame::Ack { doc, ids, seq }));
            }
        }
        for (doc, items) in fresh {
            let (first, last) = (items[0].0.seq, items[items.len() - 1].0.seq);
            for &sub in self.subscribers.get(&doc).into_iter().flatten() {
                let Some(sent) = self.sent_through.get_mut(&(doc, sub)) else {
                    continue;
                };
                if last <= *sent {
                    continue;
                }
                let after = (*sent).max(first - 1);
                let this_connection = (sub, self.generations[&sub]);
                let theirs = items
                    .iter()
                    .filter(|(item, from, _)| item.seq > after && *from != this_connection);
                let missed: Vec<PushDelta> = theirs
                    .clone()
                    .filter(|(_, _, sent_to)| !sent_to.contains(&this_connection))
                    .map(|(item, _, _)| PushDelta {
                        id: item.id,
                        bytes: item.bytes.clone(),
                    })
                    .collect();
                if !missed.is_empty() {
                    out.push((
                        sub,
                        RelayFrame::Tentative {
                            doc,
                            deltas: missed,
                        },
                    ));
                }
                let ids = theirs.map(|(item, _, _)| item.id).collect();
                out.push((
                    sub,
                    RelayFrame::Committed {
                        doc,
                        after,
                        seq: last,
                        ids,
                    },
                ));
                *sent = last;
            }
        }
        out.extend(acks);
        out
    }

    /// The relay process dies: what it had not committed is lost.
    pub fn crash(&mut self) {
        self.uncommitted.clear();
    }

    /// The connection closed: its subscriptions end, and peers hear that
    /// its presence is gone.
    pub fn disconnect(&mut self, conn: usize) -> Vec<(usize, RelayFrame)> {
        self.greeted.remove(&conn);
        self.grants.retain(|(c, _), _| *c != conn);
        self.sent_through.retain(|(_, sub), _| *sub != conn);
        let mut out = Vec::new();
        let docs: Vec<DocId> = self.subscribers.keys().copied().collect();
        for doc in docs {
            if let Some(subs) = self.subscribers.get_mut(&doc) {
                subs.remove(&conn);
            }
            self.presence_gone(doc, conn, &mut out);
        }
        out
    }

    fn presence_frame(&self, doc: DocId, conn: usize, bytes: Vec<u8>) -> RelayFrame {
        let from = self.replicas.get(&conn).copied().unwrap_or_default();
        RelayFrame::Presence { doc, from, bytes }
    }

    fn presence_gone(&mut self, doc: DocId, conn: usize, out: &mut Vec<(usize, RelayFrame)>) {
        let had = self
            .presence
            .get_mut(&doc)
            .and_then(|all| all.remove(&conn))
            .is_some();
        if had {
            let frame = self.presence_frame(doc, conn, Vec::new());
            for &other in self.subscribers.get(&doc).into_iter().flatten() {
                out.push((other, frame.clone()));
            }
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
    /// Messages for the other tabs, oldest first.
    pub broadcasts: Vec<Vec<u8>>,
    /// Peers' presence as this replica last heard it.
    pub presence: BTreeMap<(DocId, [u8; 16]), Vec<u8>>,
    /// Documents the engine wants a token for, not answered yet.
    pub token_requests: Vec<DocId>,
    pub online: bool,
    /// The engine asked to drop its connection.
    pub wants_disconnect: bool,
    /// Applied to the engine at start and after every restart.
    pub compaction: CompactionPolicy,
    /// Applied to the engine at start and after every restart.
    pub tokens_required: bool,
    /// Applied to the engine after every restart (see `set_backlog_limit`).
    pub backlog_limit: Option<usize>,
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
            broadcasts: Vec::new(),
            presence: BTreeMap::new(),
            token_requests: Vec::new(),
            online: false,
            wants_disconnect: false,
            compaction: CompactionPolicy::default(),
            tokens_required: false,
            backlog_limit: None,
            restarts: 0,
            id,
        }
    }

    /// Sets the engine's backlog limit, now and after every restart.
    pub fn set_backlog_limit(&mut self, bytes: usize) {
        self.backlog_limit = Some(bytes);
        self.engine.set_backlog_limit(bytes);
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
        self.token_requests.clear();
        self.online = false;
        self.restarts += 1;
        let (engine, problems) = Engine::load(seed(self.id, self.restarts), self.store.records());
        assert!(problems.is_empty(), "{problems:?}");
        let tokens_required = self.tokens_required;
        self.engine = engine;
        self.engine.set_compaction(self.compaction);
        self.engine.set_tokens_required(tokens_required);
        if let Some(bytes) = self.backlog_limit {
            self.engine.set_backlog_limit(bytes);
        }
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
    /// With `Some`, the relay wants tokens and replicas get them here.
    pub tokens: Option<TokenService>,
    pub replicas: Vec<Replica>,
    pub to_relay: Vec<VecDeque<Vec<u8>>>,
    pub to_replica: Vec<VecDeque<Vec<u8>>>,
    pub now: u64,
}

impl World {
    pub fn new(n: u8) -> World {
        World {
            relay: ModelRelay::default(),
            tokens: None,
            replicas: (0..n).map(|i| Replica::new(i + 1)).collect(),
            to_relay: (0..n).map(|_| VecDeque::new()).collect(),
            to_replica: (0..n).map(|_| VecDeque::new()).collect(),
            now: 1_000,
        }
    }

    /// The relay wants a token per document, which every replica gets
    /// from the returned service.
    pub fn require_tokens(&mut self) -> &mut TokenService {
        self.relay.auth = true;
        for r in &mut self.replicas {
            r.tokens_required = true;
            r.engine.set_tokens_required(true);
        }
        self.tokens.get_or_insert_with(|| TokenService {
            ttl_ms: 3_600_000,
            ..TokenService::default()
        })
    }

    /// Answers replica `i`'s token requests from the token service.
    /// Returns whether there were any.
    pub fn answer_tokens(&mut self, i: usize) -> bool {
        let requests = std::mem::take(&mut self.replicas[i].token_requests);
        if requests.is_empty() {
            return false;
        }
        let service = self
            .tokens
            .as_mut()
            .expect("tokens asked for without a service");
        for doc in requests {
            match service.token(i, doc, self.now) {
                Ok(token) => self.replicas[i].engine.token_ready(doc, token, self.now),
                Err(why) => self.replicas[i].engine.token_failed(doc, why, self.now),
            }
        }
        self.collect(i);
        true
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
        let out = self.relay.disconnect(i);
        self.route(out);
        self.to_relay[i].clear();
        self.to_replica[i].clear();
        self.collect(i);
    }

    pub fn crash(&mut self, i: usize) {
        self.disconnect(i);
        self.replicas[i].crash_and_restart();
    }

    /// The relay process restarts: connections drop, the log is kept,
    /// pushes not yet committed are lost.
    pub fn restart_relay(&mut self) {
        self.relay.crash();
        for i in 0..self.replicas.len() {
            self.disconnect(i);
        }
    }

    /// The relay's group commit: everything pushed so far is stored.
    pub fn commit_relay(&mut self) {
        let out = self.relay.commit();
        self.route(out);
    }

    fn route(&mut self, frames: Vec<(usize, RelayFrame)>) {
        for (to, frame) in frames {
            if self.replicas[to].online {
                self.to_replica[to].push_back(encode_relay(&frame));
            }
        }
    }

    /// The relay is replaced by an empty one with a new epoch.
    pub fn replace_relay(&mut self, epoch: [u8; 16]) {
        self.restart_relay();
        self.relay = ModelRelay {
            epoch,
            hold_commits: self.relay.hold_commits,
            auth: self.relay.auth,
            ..Default::default()
        };
    }

    /// Moves replica `i`'s effects into its storage queue and link.
    pub fn collect(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        for output in r.engine.take_outputs() {
            let effect = match output {
                Output::Effect(effect) => effect,
                Output::Broadcast(bytes) => {
                    r.broadcasts.push(bytes);
                    continue;
                }
                Output::Presence { doc, peer, state } => {
                    r.presence.insert((doc, peer), state);
                    continue;
                }
                Output::PresenceGone { doc, peer } => {
                    r.presence.remove(&(doc, peer));
                    continue;
                }
                Output::TokenWanted { doc } => {
                    r.token_requests.push(doc);
                    continue;
                }
                Output::Message { .. } | Output::Request { .. } | Output::Reply { .. } => continue,
            };
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
        self.relay.now = self.now;
        let out = self.relay.handle(i, &frame);
        self.route(out);
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
        // A tick leaves no deadline behind it (hosts would tick in a loop).
        let deadline = self.replicas[i].engine.next_deadline();
        assert!(
            deadline.is_none_or(|d| d > self.now),
            "replica {i}: deadline {deadline:?} after tick({})",
            self.now
        );
        self.collect(i);
    }

    /// Delivers everything, writes every batch, and lets timers fire, until
    /// nothing moves. Panics if it never settles.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.replicas.len() {
                self.write(i);
                moved |= self.answer_tokens(i);
                while self.deliver_to_relay(i) {
                    moved = true;
                }
                if !self.relay.uncommitted.is_empty() {
                    self.commit_relay();
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
    /// Quiescence includes the engine's anti-entropy: at least
    /// [`syncline_core::RESYNC_IDLE_MS`] pass with every link reliable.
    pub fn heal(&mut self) {
        let resync_rounds = syncline_core::RESYNC_IDLE_MS / syncline_core::RESEND_AFTER_MS + 1;
        for round in 0..20 + resync_rounds {
            for i in 0..self.replicas.len() {
                self.connect(i);
            }
            self.settle();
            let quiet = self.replicas.iter().all(|r| {
                let status = r.engine.status();
                status.unsaved + status.pending == 0 && r.online
            });
            if quiet && round > resync_rounds {
                return;
            }
            self.now += syncline_core::RESEND_AFTER_MS;
            for i in 0..self.replicas.len() {
                self.tick(i);
            }
        }
    }

    /// Every change hash in the relay's log and snapshot for `doc`, opened
    /// with its key.
    pub fn relay_change_hashes(&self, url: &DocUrl) -> BTreeSet<ChangeHash> {
        let mut hashes = BTreeSet::new();
        let logged = self.relay.logs.get(&url.doc).into_iter().flatten();
        // Covered deltas are emptied: their changes are in the snapshot.
        let held = logged.filter(|item| !item.bytes.is_empty());
        for item in held.chain(self.relay.snapshots.get(&url.doc)) {
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

/// The cursor in replica `i`'s durable document record.
pub fn durable_cursor(world: &World, i: usize, url: &DocUrl) -> u64 {
    world.replicas[i]
        .store
        .records()
        .iter()
        .find_map(
            |(_, _, bytes)| match syncline_core::store::Record::decode(bytes) {
                Ok(syncline_core::store::Record::Doc(d)) if d.doc == url.doc => Some(d.cursor),
                _ => None,
            },
        )
        .expect("the document record is stored")
}

/// One local change: inserts `item` at the head of the `items` list.
pub fn push(item: &str) -> Vec<Op> {
    serde_json::from_value(
        serde_json::json!([{ "op": "insert", "obj": ["items"], "index": 0, "values": [item] }]),
    )
    .unwrap()
}

/// Replica `i`'s `items`, sorted.
pub fn items(world: &World, i: usize, url: &DocUrl) -> Vec<String> {
    let v = world.replicas[i].engine.value_json(&url.doc).unwrap();
    let mut items: Vec<String> = serde_json::from_value(v["items"].clone()).unwrap_or_default();
    items.sort();
    items
}

/// Replica 0 creates `{items: []}`, the others open it; all connected.
pub fn shared_doc(n: u8) -> (World, DocUrl) {
    let mut world = World::new(n);
    for i in 0..n as usize {
        world.connect(i);
    }
    let url = world.replicas[0]
        .engine
        .create_doc(&serde_json::json!({"items": []}), world.now)
        .unwrap();
    world.collect(0);
    for i in 1..n as usize {
        world.replicas[i].engine.open_doc(&url, world.now).unwrap();
        world.collect(i);
    }
    world.settle();
    (world, url)
}
