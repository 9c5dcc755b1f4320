//! Drives the relay's frame handling with arbitrary input, without sockets:
//! the body of the `cargo fuzz` target (`fuzz/fuzz_targets/session.rs`) and
//! of the in-crate property test. Built with the `fuzzing` feature (and in
//! the crate's own tests).
//!
//! Input layout (so the fuzzer can reach deep states): byte 0 picks the
//! configuration (bit 0: tokens required, secret [`SECRET`]; bit 1: tiny
//! limits), then messages follow, each as `selector, length, bytes`:
//!
//! * `selector & 3` — which of three connections receives it (a connection
//!   that ended is replaced by a fresh one, like a reconnect);
//! * `(selector >> 2) & 3` — binary (0), text (1), ping (2), close (3);
//! * `selector & 0x10` — drain the other connections' queues afterwards
//!   (otherwise they fill, and slow-consumer paths run);
//! * `selector & 0x80` — the length is two bytes (little endian), else one.
//!
//! Besides "no panic", every frame the relay sends is checked: it decodes;
//! the deltas a subscription receives are in strictly increasing sequence
//! order, and gap-free (except where a snapshot stands in for deltas) on
//! documents the connection never pushed to (its own pushes are not echoed
//! back); an `Ack` names exactly the ids of the write it answers, and
//! every write (`Push`, `Snapshot`) is answered — by its `Ack` or by a
//! `DocError` for its document — before the next frame, unless the
//! connection ended (a relay that drops a push silently fails). Version 2
//! connections: a `Committed` range continues the sequences the connection
//! has (`after` is its cursor), and every id it confirms was sent to it
//! before (as `Tentative` or `Deltas`); on documents it never pushed to,
//! the range holds nothing but those ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::FutureExt;
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, RelayFrame, SequencedDelta, decode_client, decode_relay,
};

use crate::auth::{Keys, Secret};
use crate::config::Config;
use crate::connection::{Incoming, Session};
use crate::frame_queue::{FrameQueue, FrameReceiver, Outbound};
use crate::limits::ConnLimits;
use crate::server::RelayState;
use crate::store::PageLimits;
use crate::store::memory::MemoryStore;

/// The secret of the "tokens required" configuration.
pub const SECRET: &str = "syncline fuzzing secret, never use it elsewhere";

/// A live connection in the harness.
struct Conn {
    session: Session,
    kick: FrameQueue,
    rx: FrameReceiver,
    oracle: Oracle,
}

/// What a connection's answers must match.
#[derive(Default)]
struct Oracle {
    /// Highest sequence received per subscribed document.
    seen: HashMap<DocId, u64>,
    /// A `Subscribe` awaiting its first answer: (doc, since).
    subscribing: Option<(DocId, u64)>,
    /// What the next `Ack` must say, if the last request was a write, and
    /// whether that write is a snapshot.
    expect_ack: Option<(DocId, Vec<DeltaId>, bool)>,
    /// Documents this connection pushed to.
    pushed: HashSet<DocId>,
    /// Deltas sent to it, as `Deltas` or `Tentative`.
    have: HashSet<(DocId, DeltaId)>,
}

/// The harness: one relay, three connection slots.
struct Harness {
    shared: Arc<RelayState>,
    conns: [Option<Conn>; 3],
    /// Ids of snapshots the relay acked: where a sequence may jump.
    snapshots: Vec<DeltaId>,
}

impl Harness {
    fn new(config_byte: u8) -> Harness {
        let mut config = Config::new("unused");
        if config_byte & 1 != 0 {
            let secret = Secret::new(SECRET).unwrap_or_else(|_| unreachable!());
            config.auth = Some(Keys {
                secrets: vec![secret],
                max_ttl: std::time::Duration::MAX,
            });
        }
        if config_byte & 2 != 0 {
            config.queue_capacity = 8;
            config.max_pending = 16;
            config.page = PageLimits {
                max_items: 3,
                max_bytes: 64,
            };
            config.limits = ConnLimits {
                max_frame_bytes: 1024,
                max_subscriptions: 4,
                max_presence_bytes: 64,
                max_message_bytes: 64,
                messages_per_sec: 5,
                frames_per_sec: 20,
                bytes_per_sec: 4096,
            };
            // Small enough that pushes reach it.
            config.guard.doc_quota = 512;
            config.guard.total_quota = 2048;
        } else {
            config.queue_capacity = 4096;
        }
        let shared = RelayState::new(config.normalized(), Arc::new(MemoryStore::new()));
        Harness {
            shared: Arc::new(shared),
            conns: [None, None, None],
            snapshots: Vec::new(),
        }
    }

    fn conn(&mut self, slot: usize) -> &mut Conn {
        self.conns[slot].get_or_insert_with(|| {
            let (queue, rx) =
                FrameQueue::new(self.shared.next_conn(), self.shared.config.queue_capacity);
            Conn {
                session: Session::new(Arc::clone(&self.shared), queue.clone()),
                kick: queue,
                rx,
                oracle: Oracle::default(),
            }
        })
    }

    async fn message(&mut self, slot: usize, incoming: Incoming, drain_others: bool) {
        // What the relay's answers must match.
        let request = match &incoming {
            Incoming::Binary(bytes) => decode_client(bytes).ok(),
            _ => None,
        };
        let mut snapshots = std::mem::take(&mut self.snapshots);
        let conn = self.conn(slot);
        drain(conn, &mut snapshots);
        let oracle = &mut conn.oracle;
        match &request {
            Some(ClientFrame::Subscribe { doc, since }) => {
                oracle.subscribing = Some((*doc, *since))
            }
            // Only signed writes can be acked (unsigned ones are refused).
            Some(ClientFrame::SignedPush { doc, deltas, .. }) => {
                oracle.pushed.insert(*doc);
                oracle.expect_ack = Some((*doc, deltas.iter().map(|d| d.id).collect(), false));
            }
            Some(ClientFrame::SignedSnapshot { doc, id, .. }) => {
                oracle.expect_ack = Some((*doc, vec![*id], true));
            }
            _ => oracle.expect_ack = None,
        }
        let ended = {
            let (session, rx, oracle) = (&mut conn.session, &mut conn.rx, &mut conn.oracle);
            // A push is only submitted by `handle`; the connection acks it
            // once committed. Here every request is answered before the
            // next, so each `Ack` follows its write.
            let handle = async move {
                session.handle(incoming).await?;
                session.finish_pushes().await
            };
            tokio::pin!(handle);
            loop {
                tokio::select! {
                    biased;
                    handled = &mut handle => break handled.is_err(),
                    Some(out) = rx.recv() => check(oracle, out, &mut snapshots),
                }
            }
        };
        drain(conn, &mut snapshots);
        let kicked = conn.kick.kicked().now_or_never().is_some();
        if let (false, false, Some((doc, ids, _))) = (ended, kicked, &conn.oracle.expect_ack) {
            panic!("a write to {doc} of {ids:?} got no answer: neither Ack nor DocError");
        }
        if ended || kicked {
            self.conns[slot] = None;
        }
        if drain_others {
            for (other, conn) in self.conns.iter_mut().enumerate() {
                if let (true, Some(conn)) = (other != slot, conn) {
                    drain(conn, &mut snapshots);
                }
            }
        }
        self.snapshots = snapshots;
    }
}

fn drain(conn: &mut Conn, snapshots: &mut Vec<DeltaId>) {
    while let Ok(out) = conn.rx.try_recv() {
        check(&mut conn.oracle, out, snapshots);
    }
}

/// Checks one frame the relay queued for a connection.
fn check(conn: &mut Oracle, out: Outbound, snapshots: &mut Vec<DeltaId>) {
    let Outbound::Frame(bytes) = out else {
        return;
    };
    let frame =
        decode_relay(&bytes).unwrap_or_else(|e| panic!("the relay sent an undecodable frame: {e}"));
    match frame {
        RelayFrame::Deltas { doc, items, .. } => {
            if let Some((subscribing, since)) = conn.subscribing
                && subscribing == doc
            {
                conn.seen.insert(doc, since);
                conn.subscribing = None;
            }
            let dense = !conn.pushed.contains(&doc);
            let seen = conn.seen.entry(doc).or_insert(0);
            for SequencedDelta { seq, id, .. } in items {
                assert!(seq > *seen, "{doc}: got seq {seq} after {seen}");
                assert!(
                    !dense || seq == *seen + 1 || snapshots.contains(&id),
                    "{doc}: a gap from {seen} to {seq}"
                );
                *seen = seq;
                conn.have.insert((doc, id));
            }
        }
        RelayFrame::Tentative { doc, deltas } => {
            conn.have.extend(deltas.iter().map(|d| (doc, d.id)));
        }
        RelayFrame::Committed {
            doc,
            after,
            seq,
            ids,
        } => {
            let seen = conn.seen.entry(doc).or_insert(0);
            assert_eq!(
                after, *seen,
                "{doc}: a committed range continues the cursor"
            );
            *seen = seq;
            for id in &ids {
                assert!(
                    conn.have.contains(&(doc, *id)),
                    "{doc}: {id} confirmed unsent"
                );
            }
            assert!(
                conn.pushed.contains(&doc) || ids.len() as u64 == seq - after,
                "{doc}: ({after}, {seq}] holds deltas of its own or unsent"
            );
        }
        RelayFrame::DocError { doc, .. } => {
            if conn.subscribing.is_some_and(|(d, _)| d == doc) {
                conn.subscribing = None;
            }
            // A typed refusal answers the write.
            if conn.expect_ack.as_ref().is_some_and(|(d, ..)| *d == doc) {
                conn.expect_ack = None;
            }
        }
        RelayFrame::Ack { doc, ids, seq } => {
            let expected = conn.expect_ack.take();
            let Some((expected_doc, expected_ids, snapshot)) = expected else {
                panic!("an Ack without a write");
            };
            assert_eq!(
                (expected_doc, &expected_ids),
                (doc, &ids),
                "an Ack answers the last write"
            );
            assert!(seq >= 1);
            if snapshot {
                snapshots.push(ids[0]);
            }
        }
        _ => {}
    }
}

fn split(data: &[u8]) -> Vec<(usize, Incoming, bool)> {
    let mut messages = Vec::new();
    let mut rest = data;
    while let [selector, tail @ ..] = rest {
        let (len, tail) = match (*selector & 0x80 != 0, tail) {
            (true, [lo, hi, tail @ ..]) => (usize::from(u16::from_le_bytes([*lo, *hi])), tail),
            (false, [len, tail @ ..]) => (usize::from(*len), tail),
            _ => break,
        };
        let len = len.min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let incoming = match (selector >> 2) & 3 {
            0 => Incoming::Binary(axum::body::Bytes::copy_from_slice(body)),
            1 => Incoming::Text(body.len()),
            2 => Incoming::Control(body.len()),
            _ => Incoming::Close,
        };
        messages.push((
            usize::from(selector & 3) % 3,
            incoming,
            selector & 0x10 != 0,
        ));
    }
    messages
}

/// Runs one fuzz input. Panics on a crash or a broken invariant.
pub fn run(data: &[u8]) {
    let Some((&config, messages)) = data.split_first() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    runtime.block_on(async {
        let mut harness = Harness::new(config);
        for (slot, incoming, drain_others) in split(messages) {
            harness.message(slot, incoming, drain_others).await;
        }
    });
}

/// Encodes messages in the input layout: `(slot, frame)` pairs sent as
/// binary messages, draining the others after each. For seed corpora.
pub fn encode_input(config: u8, frames: &[(u8, ClientFrame)]) -> Vec<u8> {
    let mut out = vec![config];
    for (slot, frame) in frames {
        let bytes = syncline_protocol::encode_client(frame);
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        out.push(0x80 | 0x10 | (slot & 3));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&bytes[..usize::from(len)]);
    }
    out
}

/// A token the fuzzing secret signs, valid until 2100.
pub fn token(doc: DocId, write: bool) -> String {
    let secret = Secret::new(SECRET).unwrap_or_else(|_| unreachable!());
    let rights = if write {
        crate::auth::Rights::Write
    } else {
        crate::auth::Rights::Read
    };
    crate::auth::mint(
        &secret,
        crate::auth::Claims {
            doc,
            rights,
            expires_at: 4_102_444_800,
        },
    )
}

#[cfg(test)]
mod tests {
    //! The fuzz target's body under proptest: runs in `cargo test` on the
    //! stable toolchain, with random bytes and with random sequences of
    //! well-formed frames (which reach deeper states than bytes do).

    use super::*;
    use proptest::prelude::*;
    use syncline_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, PushDelta};

    fn doc(n: u8) -> DocId {
        crate::test_docs::doc(n)
    }

    /// A frame; most writes signed (for one of the replica ids `Hello`
    /// uses), so sessions reach the store, and some not, or for another
    /// replica, so refusals are exercised too.
    fn frame() -> impl Strategy<Value = ClientFrame> {
        (unsigned_frame(), 0u8..4).prop_map(|(frame, replica)| match replica {
            3 => frame,
            r => crate::test_docs::sign(frame, &[r; 16]),
        })
    }

    fn unsigned_frame() -> impl Strategy<Value = ClientFrame> {
        let docs = (0u8..3).prop_map(doc);
        let id = (0u8..8).prop_map(|n| DeltaId([n; 32]));
        let bytes = proptest::collection::vec(any::<u8>(), 0..80);
        prop_oneof![
            (
                0u8..3,
                any::<bool>(),
                any::<bool>(),
                MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION
            )
                .prop_map(|(d, write, with_token, version)| {
                    ClientFrame::Hello {
                        version,
                        replica: [d; 16],
                        token: with_token.then(|| token(doc(d), write)),
                    }
                }),
            (docs.clone(), 0u64..12).prop_map(|(doc, since)| ClientFrame::Subscribe { doc, since }),
            docs.clone()
                .prop_map(|doc| ClientFrame::Unsubscribe { doc }),
            (
                docs.clone(),
                proptest::collection::vec((id.clone(), bytes.clone()), 1..5)
            )
                .prop_map(|(doc, deltas)| ClientFrame::Push {
                    doc,
                    deltas: deltas
                        .into_iter()
                        .map(|(id, bytes)| PushDelta { id, bytes })
                        .collect(),
                }),
            (0u8..3, 0u8..3, any::<bool>()).prop_map(|(d, t, write)| ClientFrame::Authorize {
                doc: doc(d),
                token: token(doc(t), write),
            }),
            (docs.clone(), bytes.clone())
                .prop_map(|(doc, bytes)| ClientFrame::Presence { doc, bytes }),
            (docs, 0u64..12, id, bytes).prop_map(|(doc, covers_seq, id, bytes)| {
                ClientFrame::Snapshot {
                    doc,
                    covers_seq,
                    id,
                    bytes,
                }
            }),
            any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
            (
                0u8..3,
                0u8..3,
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..80)
            )
                .prop_map(|(d, r, addressed, bytes)| {
                    let to = addressed.then_some([r; 16]);
                    crate::test_docs::message(d, &[r; 16], to, &bytes)
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_break_the_relay(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            run(&data);
        }

        #[test]
        fn random_frame_sequences_keep_every_invariant(
            config in 0u8..4,
            frames in proptest::collection::vec((0u8..3, frame()), 0..60),
        ) {
            run(&encode_input(config, &frames));
        }
    }

    /// The committed, minimised `cargo fuzz` corpus is a regression suite:
    /// every input in it still runs clean.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/session");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
        assert!(replayed > 0, "no inputs in {}", dir.display());
    }

    #[test]
    fn a_scripted_session_passes_the_oracle() {
        let hello = |d: u8| ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica: [d; 16],
            token: Some(token(doc(0), true)),
        };
        let push = |n: u8| ClientFrame::Push {
            doc: doc(0),
            deltas: vec![PushDelta {
                id: DeltaId([n; 32]),
                bytes: vec![n; 4],
            }],
        };
        let frames = [
            (0, hello(0)),
            (1, hello(1)),
            (
                1,
                ClientFrame::Subscribe {
                    doc: doc(0),
                    since: 0,
                },
            ),
            (0, push(1)),
            (0, push(2)),
            (
                0,
                ClientFrame::Snapshot {
                    doc: doc(0),
                    covers_seq: 2,
                    id: DeltaId([9; 32]),
                    bytes: vec![9],
                },
            ),
            (2, hello(2)),
            (
                2,
                ClientFrame::Subscribe {
                    doc: doc(0),
                    since: 0,
                },
            ),
            (0, push(3)),
            (
                1,
                ClientFrame::Presence {
                    doc: doc(0),
                    bytes: vec![1],
                },
            ),
        ];
        for config in 0..4 {
            run(&encode_input(config, &frames));
        }
    }
}
