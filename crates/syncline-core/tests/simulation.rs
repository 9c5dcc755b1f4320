//! Deterministic simulation: several replicas and a model relay, random
//! edits, lossy links (drops, duplicates, reorders), disconnects, crashes
//! that lose whatever was not yet durable, relay restarts, and now and then a
//! relay replaced by an empty one. After healing, every replica must agree
//! with every other and with the relay.
//!
//! A run is a [`Case`]: a [`Setup`] and a literal list of [`Action`]s. A seed
//! only *generates* a case ([`generate`]); [`run`] plays any case, so a
//! failure can be cut down and kept as it is. When a seeded run fails, the
//! test shrinks its case (drops actions while it still fails) and prints
//! the smallest one as Rust source, ready to paste into
//! `simulation/regressions.rs`, where every saved case is replayed on every
//! run.
//!
//! The durability oracle (`simulation/oracle.rs`) runs before every action
//! and after healing, not only at the end: a change the relay once held
//! committed (what its `Ack` stands for) is still on the relay (in its log or
//! its snapshot), and a change once in a replica's store (an entry or a
//! snapshot) is still in that store — crashes, compaction and acks
//! included. A relay *replaced* by an empty one lost its disk by
//! construction: from then on nothing is expected of it but what it stores
//! anew.
//!
//! Seeds come from `SIM_SEEDS`: a count (`1000`: seeds 0..1000) or a range
//! (`5000..6000`). A failure prints its seed; `SIM_SEEDS=N..N+1` replays it.

#[path = "simulation/oracle.rs"]
mod oracle;
#[path = "simulation/regressions.rs"]
mod regressions;
#[path = "support/world.rs"]
mod world;

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use syncline_core::{CompactionPolicy, DocUrl, EngineError, Op};
use world::{Faults, World};

/// Catch-ups that started with a relay snapshot, over all seeds.
static SNAPSHOTS_SERVED: AtomicUsize = AtomicUsize::new(0);
/// Requests the relay refused for want of a valid token, over all seeds.
static REFUSALS: AtomicUsize = AtomicUsize::new(0);
/// Local changes refused because storage had not taken the backlog limit.
static BACKLOG_REFUSALS: AtomicUsize = AtomicUsize::new(0);

/// How a run starts.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Replicas (2 to 4); replica 0 creates the documents.
    pub replicas: u8,
    /// Documents (1 or 2).
    pub docs: u8,
    /// Per replica, `Some(n)`: compact after `n` changes (often, so crashes
    /// land between compactions too); `None`: the default policy.
    pub compact_every: Vec<Option<usize>>,
    /// `Some(ttl)`: the relay wants a token per document, from an endpoint
    /// that hands out tokens living `ttl` ms and is sometimes down.
    pub token_ttl_ms: Option<u64>,
    /// Which replicas connect before the first action.
    pub online: Vec<bool>,
    /// `Some(bytes)`: every replica's backlog limit (small, so unwritten
    /// batches reach it and changes are refused, deltas deferred).
    pub backlog_limit: Option<usize>,
}

/// One step of a run. Numbers that depend on the state when the action runs
/// (a list index) are taken modulo what is there then, so any subsequence
/// of a case is still a valid case.
#[derive(Debug, Clone)]
pub enum Action {
    /// Replica `replica` edits document `doc` (opening it again first, as
    /// an app does after a crash): `kind` 0–5 inserts at `pos`, 6–7 deletes
    /// at `pos`, 8 overwrites at `pos` (those three in the `items` list),
    /// 9 puts root key `k{key}`.
    Edit {
        replica: usize,
        doc: usize,
        kind: u8,
        pos: u32,
        key: u8,
    },
    /// The next frame on a replica's link, to the relay or from it: first
    /// swapped with the one behind it (`reorder`), then lost (`drop`) or
    /// delivered twice (`duplicate`).
    Deliver {
        replica: usize,
        to_relay: bool,
        reorder: bool,
        drop: bool,
        duplicate: bool,
    },
    /// The relay's group commit.
    CommitRelay,
    /// A replica's storage writes what it was given.
    Write(usize),
    /// A replica crashes (losing what was not written) and restarts.
    Crash(usize),
    /// A replica goes offline, or back online.
    ToggleOnline(usize),
    /// The relay restarts (keeps its log, loses uncommitted pushes).
    RestartRelay,
    /// The relay is replaced by an empty one with a new epoch.
    ReplaceRelay { epoch: u64 },
    /// The token endpoint starts or stops failing for a replica.
    ToggleTokenFailing(usize),
    /// Time passes; a replica runs its timers.
    Advance { replica: usize, ms: u64 },
}

/// A whole run, replayable without a seed.
#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    pub actions: Vec<Action>,
}

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
        let case = generate(seed);
        if catch_unwind(|| run(&case)).is_err() {
            eprintln!("\nsimulation failed at seed {seed}; shrinking its case...");
            let small = shrink(case.clone());
            eprintln!(
                "smallest failing case ({} of {} actions), for simulation/regressions.rs:\n{}",
                small.actions.len(),
                case.actions.len(),
                as_source(&small)
            );
            eprintln!("replay the seed with SIM_SEEDS={seed}..{}", seed + 1);
            run(&small); // fails again, with its message
        }
    }
    eprintln!(
        "{count} seeds converged; {} catch-ups were served a snapshot, {} requests were refused for their token (counted on each run's last relay), {} changes were refused for a full backlog",
        SNAPSHOTS_SERVED.load(Ordering::Relaxed),
        REFUSALS.load(Ordering::Relaxed),
        BACKLOG_REFUSALS.load(Ordering::Relaxed)
    );
}

#[test]
fn saved_cases_still_converge() {
    for (name, case) in regressions::cases() {
        if let Err(panic) = catch_unwind(|| run(&case)) {
            eprintln!("\nsaved case {name} failed");
            std::panic::resume_unwind(panic);
        }
    }
}

/// The case a seed stands for.
pub fn generate(seed: u64) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.random_range(2..=4u8);
    let docs = rng.random_range(1..=2u8);
    let faults = Faults {
        drop: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        reorder: rng.random_range(0.0..0.1),
    };
    let compact_often = rng.random_bool(0.5);
    let compact_every = (0..n)
        .map(|_| compact_often.then(|| rng.random_range(1..12)))
        .collect();
    let token_ttl_ms = rng
        .random_bool(0.5)
        .then(|| rng.random_range(5_000..120_000));
    let online = (0..n).map(|_| rng.random_bool(0.7)).collect();
    let backlog_limit = rng.random_bool(0.25).then(|| rng.random_range(512..8192));
    let setup = Setup {
        replicas: n,
        docs,
        compact_every,
        token_ttl_ms,
        online,
        backlog_limit,
    };
    let steps = rng.random_range(50..250);
    let actions = (0..steps)
        .map(|_| {
            let replica = rng.random_range(0..n as usize);
            let deliver = |rng: &mut StdRng, to_relay| Action::Deliver {
                replica,
                to_relay,
                reorder: rng.random_bool(faults.reorder),
                drop: rng.random_bool(faults.drop),
                duplicate: rng.random_bool(faults.duplicate),
            };
            match rng.random_range(0..1000) {
                0..=249 => Action::Edit {
                    replica,
                    doc: rng.random_range(0..docs as usize),
                    kind: rng.random_range(0..10),
                    pos: rng.random(),
                    key: rng.random_range(0..4),
                },
                250..=499 => deliver(&mut rng, true),
                500..=549 => Action::CommitRelay,
                550..=849 => deliver(&mut rng, false),
                850..=909 => Action::Write(replica),
                910..=929 => Action::Crash(replica),
                930..=959 => Action::ToggleOnline(replica),
                960..=969 => Action::RestartRelay,
                970..=972 => Action::ReplaceRelay {
                    epoch: rng.random(),
                },
                973..=979 if token_ttl_ms.is_some() => Action::ToggleTokenFailing(replica),
                _ => Action::Advance {
                    replica,
                    ms: rng.random_range(100..15_000),
                },
            }
        })
        .collect();
    Case { setup, actions }
}

/// Plays a case; panics (with what went wrong) when an invariant breaks.
pub fn run(case: &Case) {
    let Setup {
        replicas: n,
        docs,
        ref compact_every,
        token_ttl_ms,
        ref online,
        backlog_limit,
    } = case.setup;
    let mut world = World::new(n);
    // Live deltas go out tentatively; the relay commits when the run says.
    world.relay.hold_commits = true;
    for (r, every) in world.replicas.iter_mut().zip(compact_every) {
        if let Some(max_changes) = *every {
            r.set_compaction(CompactionPolicy {
                max_changes,
                max_bytes: 1 << 20,
                ..CompactionPolicy::default()
            });
        }
    }
    if let Some(bytes) = backlog_limit {
        for r in &mut world.replicas {
            r.set_backlog_limit(bytes);
        }
    }
    if let Some(ttl_ms) = token_ttl_ms {
        let service = world.require_tokens();
        service.everyone_writes = true;
        service.ttl_ms = ttl_ms;
    }
    let docs: Vec<DocUrl> = (0..docs)
        .map(|_| {
            world.replicas[0]
                .engine
                .create_doc(&json!({"items": []}), world.now)
                .unwrap()
        })
        .collect();
    world.collect(0);
    for (i, &online) in online.iter().enumerate() {
        if online {
            world.connect(i);
        }
        for url in &docs {
            world.replicas[i].engine.open_doc(url, world.now).unwrap();
        }
        world.collect(i);
    }

    let mut oracle = oracle::Durability::default();
    oracle.check(&world, &docs, "set-up");
    for (step, action) in case.actions.iter().enumerate() {
        oracle.check(&world, &docs, &format!("action {step}"));
        play(&mut world, &docs, step, action);
        if let Action::ReplaceRelay { .. } = action {
            oracle.relay_replaced();
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
    oracle.check(&world, &docs, "the end of the actions");
    world.heal();
    oracle.check(&world, &docs, "healing");
    SNAPSHOTS_SERVED.fetch_add(world.relay.snapshots_served, Ordering::Relaxed);
    REFUSALS.fetch_add(world.relay.refusals.values().sum(), Ordering::Relaxed);
    oracle::check_invariants(&world, &docs);
}

fn play(world: &mut World, docs: &[DocUrl], step: usize, action: &Action) {
    match *action {
        Action::Edit {
            replica: i,
            doc,
            kind,
            pos,
            key,
        } => {
            let url = docs[doc % docs.len()];
            world.replicas[i].engine.open_doc(&url, world.now).unwrap();
            let value = world.replicas[i].engine.value_json(&url.doc).unwrap();
            // A replica that has not received the document yet can't edit it.
            let Some(len) = value["items"].as_array().map(Vec::len) else {
                return;
            };
            let edit = edit(len, kind, pos as usize, key, format!("r{i}a{step}"));
            match world.replicas[i]
                .engine
                .change(url.doc, &edit, None, world.now)
            {
                Ok(()) => world.collect(i),
                Err(EngineError::BacklogFull { .. }) => {
                    BACKLOG_REFUSALS.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("replica {i}: a valid edit failed: {e}"),
            }
        }
        Action::Deliver {
            replica: i,
            to_relay,
            reorder,
            drop,
            duplicate,
        } => {
            let link = if to_relay {
                &mut world.to_relay[i]
            } else {
                &mut world.to_replica[i]
            };
            if reorder && link.len() >= 2 {
                link.swap(0, 1);
            }
            if drop {
                link.pop_front();
                return;
            }
            if duplicate && let Some(frame) = link.front().cloned() {
                link.push_front(frame);
            }
            if to_relay {
                world.deliver_to_relay(i);
            } else {
                world.deliver_to_replica(i);
            }
        }
        Action::CommitRelay => world.commit_relay(),
        Action::Write(i) => world.write(i),
        Action::Crash(i) => world.crash(i),
        Action::ToggleOnline(i) => {
            if world.replicas[i].online {
                world.disconnect(i)
            } else {
                world.connect(i)
            }
        }
        Action::RestartRelay => world.restart_relay(),
        Action::ReplaceRelay { epoch } => {
            let half = epoch.to_le_bytes();
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&half);
            bytes[8..].copy_from_slice(&half);
            world.replace_relay(bytes);
        }
        Action::ToggleTokenFailing(i) => {
            if let Some(service) = world.tokens.as_mut()
                && !service.failing.remove(&i)
            {
                service.failing.insert(i);
            }
        }
        Action::Advance { replica: i, ms } => {
            world.now += ms;
            world.tick(i);
        }
    }
}

/// An edit of the `items` list (or a root key) that is valid for a list
/// of `len` items.
fn edit(len: usize, kind: u8, pos: usize, key: u8, label: String) -> Vec<Op> {
    let op = match kind {
        0..=5 => {
            json!({"op": "insert", "obj": ["items"], "index": pos % (len + 1), "values": [label]})
        }
        6 | 7 if len > 0 => json!({"op": "delete", "obj": ["items"], "key": pos % len}),
        8 if len > 0 => json!({"op": "put", "obj": ["items"], "key": pos % len, "value": label}),
        _ => json!({"op": "put", "obj": [], "key": format!("k{key}"), "value": label}),
    };
    serde_json::from_value(json!([op])).unwrap()
}

/// Whether playing `case` panics (quietly: shrinking plays many cases).
fn fails(case: &Case) -> bool {
    catch_unwind(AssertUnwindSafe(|| run(case))).is_err()
}

/// Cuts a failing case down: removes chunks of actions, halving the chunk
/// size down to single actions, keeping each cut that still fails.
fn shrink(mut case: Case) -> Case {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut chunk = case.actions.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < case.actions.len() {
            let mut candidate = case.clone();
            let end = (start + chunk).min(candidate.actions.len());
            candidate.actions.drain(start..end);
            if fails(&candidate) {
                case = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    std::panic::set_hook(hook);
    case
}

/// A case as Rust source for `simulation/regressions.rs`.
fn as_source(case: &Case) -> String {
    let actions: Vec<String> = case
        .actions
        .iter()
        .map(|a| format!("            {a:?},"))
        .collect();
    let s = &case.setup;
    format!(
        "Case {{\n        setup: Setup {{ replicas: {}, docs: {}, compact_every: vec!{:?}, token_ttl_ms: {:?}, online: vec!{:?}, backlog_limit: {:?} }},\n        actions: vec![\n{}\n        ],\n    }}",
        s.replicas,
        s.docs,
        s.compact_every,
        s.token_ttl_ms,
        s.online,
        s.backlog_limit,
        actions.join("\n")
    )
}
