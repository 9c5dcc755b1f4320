//! Scenario 2 (and Syncline's half of 4): typists on one document.
//!
//! N clients subscribe to one document; each pushes one small delta 6 times
//! a second (random phase). Every delta carries its typist, sequence and
//! send time; each other subscriber records push-sent → delta-received, at
//! the delta's first arrival (protocol 2: its `Tentative`, before the
//! relay's commit; protocol 1: its `Deltas`, after it), and push-sent →
//! committed (protocol 2: the `Committed` that confirms its id; protocol
//! 1: the same as received).
//!
//! Two payloads:
//! * `opaque`: random bytes of a sealed one-character change's size, with
//!   the stamp in the clear (the relay never decrypts);
//! * `automerge`: a real Automerge change (one character spliced into a
//!   shared text) encoded and sealed like syncline-core does (AES-256-GCM,
//!   HMAC id); receivers open, decode and apply it to their own replica,
//!   and read the stamp from the change's message.
//!
//! A delta that reaches one subscriber twice (in `Deltas` or `Tentative`
//! frames: the protocol promises no duplicate between the catch-up and the
//! live stream) counts once for latency and is reported as a duplicate
//! delivery ([`Result::duplicates`]); a run with any says so.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjType, ReadDoc};
use futures_util::{SinkExt, StreamExt};
use syncline_core::DocKey;
use syncline_core::delta;
use syncline_protocol::{DeltaId, DocId, PushDelta, RelayFrame, decode_relay};
use tokio::sync::{Barrier, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::relay;
use crate::ws::{self, Rng, now_us};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Opaque,
    Automerge,
}

/// What one typist run measured.
pub struct Result {
    /// Sorted latencies, µs.
    pub latencies: Vec<u64>,
    /// Sorted push-sent → confirmed-committed latencies at the receivers,
    /// µs (protocol 1: the same as `latencies`).
    pub committed: Vec<u64>,
    /// Sorted push → own `Ack` latencies of pushes sent in the window, µs
    /// (the commit path as a client sees it).
    pub acks: Vec<u64>,
    /// Deliveries expected in the window: pushes × (N − 1).
    pub expected: u64,
    /// Pushes sent in the window.
    pub pushes: u64,
    /// Deltas delivered a second (or later) time to the same subscriber,
    /// over the whole run.
    pub duplicates: u64,
    /// CPU used in the window by the server process (if its pid was
    /// given) and by this process, in % of one core (200 % = 2 cores).
    pub server_cpu: Option<f64>,
    pub own_cpu: f64,
}

impl Result {
    pub fn delivered(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// A line saying the run had duplicate deliveries, if it had any.
    pub fn duplicates_warning(&self) -> Option<String> {
        (self.duplicates > 0).then(|| {
            format!(
                "# WARNING: {} duplicate deliveries (a delta delivered twice to one subscriber)",
                self.duplicates
            )
        })
    }
}

/// The deltas one subscriber received: the first arrival of an id counts,
/// later ones are duplicates.
#[derive(Default)]
pub struct Deliveries {
    seen: HashSet<DeltaId>,
    pub duplicates: u64,
}

impl Deliveries {
    /// Whether this is `id`'s first arrival (otherwise counted a duplicate).
    pub fn first(&mut self, id: DeltaId) -> bool {
        let first = self.seen.insert(id);
        if !first {
            self.duplicates += 1;
        }
        first
    }
}

pub struct Params {
    pub n: usize,
    pub rate: f64,
    pub delta_bytes: usize,
    pub warmup: f64,
    pub seconds: f64,
    pub payload: Payload,
    /// The server's process id, to measure its CPU in the window.
    pub server_pid: Option<u32>,
    /// The protocol version the typists speak.
    pub version: u32,
}

const STAMP: usize = 16;

pub async fn run(addr: SocketAddr, p: &Params) -> Result {
    run_on(&[addr], p).await
}

/// [`run`] with the typists spread over several relays of one cluster,
/// round robin (typist `i` on `addrs[i % len]`).
pub async fn run_on(addrs: &[SocketAddr], p: &Params) -> Result {
    let doc = Rng::new(now_us() ^ 0xd0c).doc();
    let key = DocKey([7u8; 32]);
    // The shared document: a text object every typist splices into.
    let base = {
        let mut d = AutoCommit::new();
        d.put_object(automerge::ROOT, "text", ObjType::Text)
            .expect("text");
        d.save()
    };
    let barrier = Arc::new(Barrier::new(p.n + 1));
    let window = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let pushes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..p.n {
        let addr = addrs[i % addrs.len()];
        let (barrier, window, pushes, stop, base) = (
            barrier.clone(),
            window.clone(),
            pushes.clone(),
            stop.clone(),
            base.clone(),
        );
        let (rate, size, payload, version) = (p.rate, p.delta_bytes, p.payload, p.version);
        tasks.push(tokio::spawn(async move {
            typist(
                i, addr, version, doc, key, base, rate, size, payload, barrier, window, pushes,
                stop,
            )
            .await
        }));
    }
    barrier.wait().await;
    tokio::time::sleep(Duration::from_secs_f64(p.warmup)).await;
    let cpu = || {
        (
            p.server_pid.map(relay::pid_cpu_seconds),
            relay::own_cpu_seconds(),
        )
    };
    let (server_cpu0, own_cpu0) = cpu();
    let start = now_us();
    window.0.store(start, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs_f64(p.seconds)).await;
    let end = now_us();
    window.1.store(end, Ordering::SeqCst);
    let (server_cpu1, own_cpu1) = cpu();
    let wall = (end - start) as f64 / 1e6;
    let server_cpu = server_cpu0
        .zip(server_cpu1)
        .map(|(a, b)| (b - a) / wall * 100.0);
    let own_cpu = (own_cpu1 - own_cpu0) / wall * 100.0;
    // Let the last deltas of the window arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut latencies = Vec::new();
    let mut committed = Vec::new();
    let mut acks = Vec::new();
    let mut duplicates = 0;
    for task in tasks {
        let measured = task.await.expect("typist");
        duplicates += measured.duplicates;
        latencies.extend(measured.delivered);
        committed.extend(measured.committed);
        acks.extend(measured.acked);
    }
    latencies.sort_unstable();
    committed.sort_unstable();
    acks.sort_unstable();
    let pushes = pushes.load(Ordering::SeqCst);
    Result {
        latencies,
        committed,
        acks,
        expected: pushes * (p.n as u64 - 1),
        pushes,
        duplicates,
        server_cpu,
        own_cpu,
    }
}

/// What one typist measured, µs: others' deltas at first arrival and once
/// confirmed committed, and its own pushes' acks.
struct Measured {
    delivered: Vec<u64>,
    duplicates: u64,
    committed: Vec<u64>,
    acked: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn typist(
    i: usize,
    addr: SocketAddr,
    version: u32,
    doc: DocId,
    key: DocKey,
    base: Vec<u8>,
    rate: f64,
    size: usize,
    payload: Payload,
    barrier: Arc<Barrier>,
    window: Arc<(AtomicU64, AtomicU64)>,
    pushes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Measured {
    let mut rng = Rng::new(0x7e57 + i as u64);
    let mut replica = [0u8; 16];
    rng.fill(&mut replica);
    let mut ws = ws::connect(addr, None, replica, version).await;
    ws::subscribe(&mut ws, doc).await;
    let (mut sink, mut stream) = ws.split();
    let replica_doc = Arc::new(std::sync::Mutex::new({
        let mut d = AutoCommit::load(&base).expect("load the base");
        d.set_actor(ActorId::from(replica.to_vec()));
        d
    }));
    barrier.wait().await;

    // Send times of the pushes not acked yet (acks come in push order).
    let unacked = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    // Writer: one delta every 1/rate s, random phase.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let writer = {
        let (window, pushes, stop, replica_doc, unacked) = (
            window.clone(),
            pushes.clone(),
            stop.clone(),
            replica_doc.clone(),
            unacked.clone(),
        );
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / rate);
            let phase = period.mul_f64((rng.next() % 1000) as f64 / 1000.0);
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let text = {
                let d = replica_doc.lock().unwrap();
                d.get(automerge::ROOT, "text").unwrap().expect("text").1
            };
            let mut seq: u32 = 0;
            let mut body = vec![0u8; size.max(STAMP)];
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                seq += 1;
                let sent = now_us();
                let push = match payload {
                    Payload::Opaque => {
                        rng.fill(&mut body);
                        body[..4].copy_from_slice(&(i as u32).to_le_bytes());
                        body[4..8].copy_from_slice(&seq.to_le_bytes());
                        body[8..16].copy_from_slice(&sent.to_le_bytes());
                        PushDelta {
                            id: rng.id(),
                            bytes: body.clone(),
                        }
                    }
                    Payload::Automerge => {
                        let plaintext = {
                            let mut d = replica_doc.lock().unwrap();
                            let len = d.length(&text);
                            let pos = if len == 0 {
                                0
                            } else {
                                (rng.next() as usize) % (len + 1)
                            };
                            d.splice_text(&text, pos, 0, "x").expect("splice");
                            d.commit_with(CommitOptions::default().with_message(format!("{sent}")));
                            let change = d.get_last_local_change().expect("a change");
                            delta::encode([change.raw_bytes()])
                        };
                        let mut nonce = [0u8; 12];
                        rng.fill(&mut nonce);
                        PushDelta {
                            id: key.delta_id(&plaintext),
                            bytes: key.seal(&doc, nonce, &plaintext),
                        }
                    }
                };
                let start = window.0.load(Ordering::Relaxed);
                let end = window.1.load(Ordering::Relaxed);
                if start != 0 && sent >= start && (end == 0 || sent <= end) {
                    pushes.fetch_add(1, Ordering::Relaxed);
                }
                unacked.lock().unwrap().push_back(sent);
                if sink.send(ws::push(doc, vec![push])).await.is_err() {
                    break;
                }
            }
            drop(tx);
            let _ = sink.close().await;
        })
    };

    // Reader: latencies of others' deltas sent inside the window, and of
    // its own pushes' acks.
    let mut latencies = Vec::new();
    let mut committed = Vec::new();
    let mut acks = Vec::new();
    // Deltas seen (only the first arrival counts), and the send times of
    // those received tentatively, until a `Committed` confirms them.
    let mut seen = Deliveries::default();
    let mut tentative: HashMap<DeltaId, u64> = HashMap::new();
    loop {
        let message = tokio::select! {
            m = stream.next() => m,
            _ = rx.recv() => break,
        };
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(_)) => continue,
            _ => break,
        };
        let now = now_us();
        let start = window.0.load(Ordering::Relaxed);
        let end = window.1.load(Ordering::Relaxed);
        let in_window = |sent: u64| start != 0 && sent >= start && (end == 0 || sent <= end);
        let (items, stored): (Vec<(DeltaId, Vec<u8>)>, bool) = match decode_relay(&bytes) {
            Ok(RelayFrame::Deltas { items, .. }) => {
                (items.into_iter().map(|d| (d.id, d.bytes)).collect(), true)
            }
            Ok(RelayFrame::Tentative { deltas, .. }) => {
                (deltas.into_iter().map(|d| (d.id, d.bytes)).collect(), false)
            }
            Ok(RelayFrame::Committed { ids, .. }) => {
                for id in ids {
                    if let Some(sent) = tentative.remove(&id)
                        && in_window(sent)
                    {
                        committed.push(now.saturating_sub(sent));
                    }
                }
                continue;
            }
            Ok(RelayFrame::Ack { .. }) => {
                if let Some(sent) = unacked.lock().unwrap().pop_front()
                    && in_window(sent)
                {
                    acks.push(now.saturating_sub(sent));
                }
                continue;
            }
            _ => continue,
        };
        for (id, bytes) in items {
            if !seen.first(id) {
                continue;
            }
            let (sent, at) = match payload {
                Payload::Opaque => {
                    if bytes.len() < STAMP {
                        continue;
                    }
                    (u64::from_le_bytes(bytes[8..16].try_into().unwrap()), now)
                }
                Payload::Automerge => {
                    let plaintext = key.open(&doc, &bytes).expect("open");
                    let changes = delta::decode(&plaintext).expect("decode");
                    let sent = changes
                        .first()
                        .and_then(|c| c.message())
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(0);
                    replica_doc
                        .lock()
                        .unwrap()
                        .apply_changes(changes)
                        .expect("apply");
                    // Received means applied, as for automerge-repo's clients.
                    (sent, now_us())
                }
            };
            if !stored {
                tentative.insert(id, sent);
            } else if in_window(sent) {
                committed.push(at.saturating_sub(sent));
            }
            if in_window(sent) {
                latencies.push(at.saturating_sub(sent));
            }
        }
    }
    let _ = writer.await;
    Measured {
        delivered: latencies,
        duplicates: seen.duplicates,
        committed,
        acked: acks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_delivered_twice_is_a_duplicate_and_the_run_says_so() {
        let mut seen = Deliveries::default();
        let (a, b) = (DeltaId([1; 32]), DeltaId([2; 32]));
        assert!(seen.first(a));
        assert!(seen.first(b));
        assert!(
            !seen.first(a),
            "the second arrival is not counted as delivered"
        );
        assert!(!seen.first(a));
        assert_eq!(seen.duplicates, 2);

        let mut run = Result {
            latencies: vec![1, 2],
            committed: Vec::new(),
            acks: Vec::new(),
            expected: 2,
            pushes: 2,
            duplicates: 0,
            server_cpu: None,
            own_cpu: 0.0,
        };
        assert_eq!(run.duplicates_warning(), None, "a clean run says nothing");
        run.duplicates = seen.duplicates;
        let warning = run
            .duplicates_warning()
            .expect("a run with duplicates says so");
        assert!(warning.contains("2 duplicate deliveries"), "{warning}");
    }
}
