//! Real editing histories replayed through engines and a model relay: a
//! convergence check that takes minutes, so it runs outside CI (CI only
//! compiles it):
//!
//! ```sh
//! cargo run --release -p syncline-core --example replay_traces [TRACE...]
//! ```
//!
//! with TRACE among `friendsforever`, `clownschool`, `automerge-paper`
//! (default: all three). It exits non-zero on the first divergence.
//!
//! The traces are the public `josephg/editing-traces` (CC BY 4.0), not
//! committed: put them in `bench/traces/` (the README says how to fetch
//! them), or wherever `SYNCLINE_TRACES` points. A missing folder fails
//! the run: it never passes by replaying nothing.
//!
//! **Concurrent traces** (friendsforever, clownschool): one engine per
//! author. Every transaction names its parents, and its positions are
//! relative to the document at exactly that version, so before an author's
//! replica makes a transaction it must hold exactly the transaction's
//! ancestors — no fewer (its positions would point elsewhere) and no more
//! (a concurrent edit would shift them). Two facts about these traces make
//! that possible through the engine's real sync path, and the replay
//! asserts both rather than assuming them:
//!
//! - each author's transactions form a chain (every one has the author's
//!   previous one among its ancestors), so a replica only ever needs to
//!   *gain* changes, never to lose them;
//! - the others' transactions an author has seen are always a prefix of the
//!   trace order. Changes are pushed in trace order, so "deliver to this
//!   replica everything up to relay sequence `need`" gives exactly the
//!   ancestors (the author's own pushes in that range are changes it has).
//!
//! A run of one author's keystrokes that no one else saw halfway (each the
//! only child of the one before) is one change: the same operations, each
//! keystroke still made at exactly its parents' version, and 4-7 times
//! fewer deltas to apply (each costs time in proportion to the document).
//!
//! So the relay's frames to each replica wait on a slow link; before a
//! transaction its replica is caught up to `need` — from the live fan-out
//! when that continues its cursor, otherwise by reconnecting, when the
//! engine subscribes from its cursor and the relay's catch-up is delivered
//! up to `need` (a catch-up straddling `need` is split into two pages, as a
//! paging relay would send it; the rest waits). The relay's ack to a push
//! overtakes deltas still in flight. Before every transaction the replica's
//! Automerge document must hold the transaction's parents and exactly as
//! many changes as it has ancestors; after every push the relay must hold
//! exactly one more delta. At the end everyone reconnects and syncs, and
//! every replica must hold the trace's `endContent`, the same heads, the
//! same changes as the relay, and the same text again after a restart from
//! its own storage.
//!
//! **Sequential trace** (automerge-paper): one replica types it, a second
//! follows live from the relay, a third opens the document afterwards and
//! catches up from the relay's log; all three must end with `endContent`.
//!
//! Positions in the traces count code points, the engine's count UTF-16
//! units: they agree for text without astral characters, which is checked.
//!
//! They take minutes because catching up applies deltas one by one, each in
//! time proportional to the document.

#[path = "replay_traces/gunzip.rs"]
mod gunzip;
#[path = "../tests/support/world.rs"]
mod world; // shared with the tests (it allows its own dead code)

use std::path::PathBuf;
use std::time::Instant;

use automerge::{ChangeHash, ReadDoc};
use serde::Deserialize;
use serde_json::json;
use syncline_core::ops::Key;
use syncline_core::{CompactionPolicy, DocUrl, Op, delta};
use syncline_protocol::{MAX_DELTAS_PER_FRAME, RelayFrame, decode_relay, encode_relay};
use world::World;

// ---------------------------------------------------------------- traces

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    #[serde(default)]
    start_content: String,
    end_content: String,
    #[serde(default)]
    num_agents: usize,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    /// `(position, deleted, inserted)`, in code points, applied in order.
    patches: Vec<(usize, usize, String)>,
    #[serde(default)]
    parents: Vec<usize>,
    #[serde(default)]
    agent: usize,
    /// How many later transactions name this one as a parent.
    #[serde(default, rename = "numChildren")]
    num_children: usize,
}

fn traces_dir() -> PathBuf {
    std::env::var_os("SYNCLINE_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/traces"))
}

fn load(name: &str) -> Trace {
    let path = traces_dir().join(format!("{name}.json.gz"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "\ncannot read the editing trace {}: {e}\n\
             The traces are not in this repository. Get them from \
             https://github.com/josephg/editing-traces (CC BY 4.0): \
             concurrent_traces/{{friendsforever,clownschool}}.json.gz and the \
             ASCII-only automerge-paper.json.gz from sequential_traces/, and put \
             them in bench/traces/ of the repository, or set \
             SYNCLINE_TRACES to the folder that holds them.\n",
            path.display()
        )
    });
    let json = gunzip::gunzip(&bytes)
        .unwrap_or_else(|e| panic!("{}: not a readable gzip file: {e}", path.display()));
    let trace: Trace = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{}: not an editing trace: {e}", path.display()));
    let astral = |s: &str| s.chars().any(|c| c.len_utf16() > 1);
    assert!(
        !astral(&trace.start_content)
            && !astral(&trace.end_content)
            && !trace
                .txns
                .iter()
                .flat_map(|t| &t.patches)
                .any(|p| astral(&p.2)),
        "{name}: has characters outside the BMP; its code-point positions would \
         need converting to the engine's UTF-16 indices"
    );
    trace
}

const TEXT: &str = "text";

/// A transaction's patches as one batch of engine ops.
fn edits(txn: &Txn) -> impl Iterator<Item = Op> + '_ {
    txn.patches.iter().map(|(pos, del, ins)| Op::SpliceText {
        obj: vec![Key::Name(TEXT.into())],
        index: *pos as u64,
        delete: *del as u64,
        insert: ins.clone(),
    })
}

/// Replica 0 creates `{text: <start>}`, everyone else opens it; all online
/// and settled. Returns the document and the relay's log length after it.
fn genesis(world: &mut World, start: &str, readers: std::ops::Range<usize>) -> (DocUrl, u64) {
    world.connect(0);
    let engine = &mut world.replicas[0].engine;
    let url = engine.create_doc(&json!({}), world.now).unwrap();
    let put = Op::PutText {
        obj: vec![],
        key: Key::Name(TEXT.into()),
        value: start.into(),
    };
    engine.change(url.doc, &[put], None, world.now).unwrap();
    world.collect(0);
    for i in readers {
        world.connect(i);
        world.replicas[i].engine.open_doc(&url, world.now).unwrap();
        world.collect(i);
    }
    settle(world);
    (url, relay_len(world, &url))
}

// ------------------------------------------------------- the link and relay

/// The model relay handles the next frame replica `i` sent. Catch-ups
/// longer than a frame may carry are paged, as the real relay pages them.
fn to_relay(world: &mut World, i: usize) -> bool {
    let Some(frame) = world.to_relay[i].pop_front() else {
        return false;
    };
    for (to, reply) in world.relay.handle(i, &frame) {
        if !world.replicas[to].online {
            continue;
        }
        let pages = match reply {
            RelayFrame::Deltas {
                doc,
                items,
                caught_up,
            } if items.len() > MAX_DELTAS_PER_FRAME => {
                let last = (items.len() - 1) / MAX_DELTAS_PER_FRAME;
                items
                    .chunks(MAX_DELTAS_PER_FRAME)
                    .enumerate()
                    .map(|(k, page)| RelayFrame::Deltas {
                        doc,
                        items: page.to_vec(),
                        caught_up: caught_up && k == last,
                    })
                    .collect()
            }
            other => vec![other],
        };
        for page in pages {
            world.to_replica[to].push_back(encode_relay(&page));
        }
    }
    true
}

/// Hands `frame` to replica `i`, mirroring the cursor the engine keeps:
/// it advances over consecutive sequences and stops at a gap.
fn hand(world: &mut World, i: usize, frame: &RelayFrame, cursor: &mut u64) {
    if let RelayFrame::Deltas { items, .. } = frame {
        for item in items {
            if item.seq == *cursor + 1 {
                *cursor = item.seq;
            } else if item.seq > *cursor {
                break;
            }
        }
    }
    world.replicas[i]
        .engine
        .received(&encode_relay(frame), world.now);
    world.collect(i);
}

/// Delivers the frame at the front of replica `i`'s link if it holds
/// nothing past relay sequence `limit`; a catch-up straddling `limit` is
/// split and its first page delivered. Then the relay hears whatever the
/// replica said. Returns whether anything was delivered.
fn deliver_one(world: &mut World, i: usize, limit: u64, cursor: &mut u64) -> bool {
    let Some(bytes) = world.to_replica[i].front() else {
        return false;
    };
    let frame = decode_relay(bytes).expect("the relay sent a malformed frame");
    match frame {
        RelayFrame::Deltas {
            doc,
            mut items,
            caught_up,
        } => {
            let now = items.partition_point(|d| d.seq <= limit);
            if now == 0 {
                return false;
            }
            let later = items.split_off(now);
            let page = RelayFrame::Deltas {
                doc,
                items,
                caught_up: caught_up && later.is_empty(),
            };
            if later.is_empty() {
                world.to_replica[i].pop_front();
            } else {
                world.to_replica[i][0] = encode_relay(&RelayFrame::Deltas {
                    doc,
                    items: later,
                    caught_up,
                });
            }
            hand(world, i, &page, cursor);
        }
        other => {
            world.to_replica[i].pop_front();
            hand(world, i, &other, cursor);
        }
    }
    while to_relay(world, i) {}
    true
}

/// Delivers everything everywhere, writing every batch, until quiet.
fn settle(world: &mut World) {
    let mut cursors = vec![0; world.replicas.len()]; // not needed here
    loop {
        let mut moved = false;
        for (i, cursor) in cursors.iter_mut().enumerate() {
            world.write(i);
            while to_relay(world, i) {
                moved = true;
            }
            while deliver_one(world, i, u64::MAX, cursor) {
                moved = true;
            }
        }
        if !moved && world.replicas.iter().all(|r| r.unwritten.is_empty()) {
            return;
        }
    }
}

fn relay_len(world: &World, url: &DocUrl) -> u64 {
    world.relay.logs.get(&url.doc).map_or(0, |l| l.len() as u64)
}

/// Replica `i` commits its transaction's change and pushes it; the relay's
/// ack comes straight back. Returns the change's hash, read from the relay.
fn make_and_push(world: &mut World, url: &DocUrl, i: usize, ops: &[Op], label: &str) -> ChangeHash {
    let before = relay_len(world, url);
    world.replicas[i]
        .engine
        .change(url.doc, ops, None, world.now)
        .unwrap_or_else(|e| panic!("{label}: the engine refused the edit: {e}"));
    world.collect(i);
    world.write(i); // durable, so pushed
    while to_relay(world, i) {}
    let log = &world.relay.logs[&url.doc];
    assert_eq!(
        log.len() as u64,
        before + 1,
        "{label}: one change must add exactly one delta to the relay's log"
    );
    let plain = url.key.open(&url.doc, &log[log.len() - 1].bytes).unwrap();
    let changes = delta::decode(&plain).unwrap();
    assert_eq!(
        changes.len(),
        1,
        "{label}: the pushed delta must hold the one change"
    );
    let hash = changes[0].hash();
    // The ack overtakes any deltas still in flight to this replica.
    let ack = world.to_replica[i]
        .pop_back()
        .unwrap_or_else(|| panic!("{label}: the relay did not answer the push"));
    let ack = decode_relay(&ack).unwrap();
    assert!(
        matches!(ack, RelayFrame::Ack { .. }),
        "{label}: expected an ack, got {ack:?}"
    );
    let mut unused = 0;
    hand(world, i, &ack, &mut unused);
    hash
}

/// Everyone reconnects (what was in flight is dropped) and syncs to the end.
/// Then every replica must be quiet and agree with the relay.
fn sync_everyone(world: &mut World, url: &DocUrl, end: &str, name: &str) {
    for i in 0..world.replicas.len() {
        world.disconnect(i);
    }
    for i in 0..world.replicas.len() {
        world.connect(i);
    }
    settle(world);
    let on_relay = world.relay_change_hashes(url);
    let heads = |i: usize| {
        world.replicas[i]
            .engine
            .automerge(&url.doc)
            .unwrap()
            .clone()
            .get_heads()
    };
    let first_heads = heads(0);
    for (i, r) in world.replicas.iter().enumerate() {
        assert!(
            r.errors.is_empty(),
            "{name}: replica {i} reported {:?}",
            r.errors
        );
        assert_eq!(
            r.engine.status().pending,
            0,
            "{name}: replica {i} still has an outbox"
        );
        let text = r.engine.value_json(&url.doc).unwrap()[TEXT].clone();
        assert!(
            text == end,
            "{name}: replica {i} does not end with endContent"
        );
        assert_eq!(heads(i), first_heads, "{name}: replica {i} has other heads");
        assert!(
            r.change_hashes(&url.doc) == on_relay,
            "{name}: replica {i} differs from the relay"
        );
    }
    // Everything survived in each replica's own storage.
    for i in 0..world.replicas.len() {
        world.crash(i);
        let text = world.replicas[i].engine.value_json(&url.doc).unwrap()[TEXT].clone();
        assert!(
            text == end,
            "{name}: replica {i} restarted from its log without endContent"
        );
    }
}

// ------------------------------------------------------- concurrent traces

#[derive(Default, Debug)]
struct Stats {
    /// Catch-ups served by the live fan-out already in flight.
    live: usize,
    /// Catch-ups that needed a reconnect and a subscription from the cursor.
    reconnects: usize,
}

fn replay_concurrent(name: &str) {
    let started = Instant::now();
    let trace = load(name);
    let (txns, agents) = (&trace.txns, trace.num_agents);
    assert!(agents >= 2, "{name}: not a concurrent trace");

    // Per transaction, how many of each author's transactions it has seen
    // (itself included), and per author the trace index of each of theirs.
    let mut seen: Vec<Vec<u32>> = Vec::with_capacity(txns.len());
    let mut by_agent: Vec<Vec<usize>> = vec![Vec::new(); agents];
    for (j, txn) in txns.iter().enumerate() {
        let mut v = parents_seen(&seen, txn, agents);
        let own = by_agent[txn.agent].len() as u32;
        assert_eq!(
            v[txn.agent], own,
            "{name}: transaction {j} does not follow its author's previous one; \
             this replay needs each author's transactions to form a chain"
        );
        v[txn.agent] = own + 1;
        seen.push(v);
        by_agent[txn.agent].push(j);
    }

    // Runs of keystrokes nobody else saw halfway become one change each.
    let runs = runs(txns);
    let mut run_of = vec![0; txns.len()];
    // Per author, the count of their transactions at the end of each run.
    let mut run_ends: Vec<Vec<u32>> = vec![Vec::new(); agents];
    for (r, run) in runs.iter().enumerate() {
        run_of[run.clone()].fill(r);
        let last = run.end - 1;
        run_ends[txns[last].agent].push(seen[last][txns[last].agent]);
    }

    let mut world = World::new(agents as u8);
    // No compaction while replaying: a compaction snapshot carries the
    // compacting replica's whole document, so a replica catching up through
    // one could not be stopped at a transaction's version. It resumes for
    // the final sync.
    for r in &mut world.replicas {
        r.set_compaction(CompactionPolicy {
            max_changes: usize::MAX,
            max_bytes: usize::MAX,
            min_ops: u64::MAX,
            ops_divisor: 1,
            idle_ms: None,
        });
    }
    let (url, base) = genesis(&mut world, &trace.start_content, 1..agents);
    let genesis_heads = world.replicas[0]
        .engine
        .automerge(&url.doc)
        .unwrap()
        .clone()
        .get_heads();
    let genesis_changes = world.replicas[0]
        .engine
        .automerge(&url.doc)
        .unwrap()
        .stats()
        .num_changes;
    // Replica 0 made the genesis and never received it back; the others
    // caught up to it.
    let mut cursors: Vec<u64> = (0..agents).map(|i| if i == 0 { 0 } else { base }).collect();
    let mut hashes: Vec<ChangeHash> = Vec::with_capacity(runs.len());
    let mut stats = Stats::default();

    for (r, run) in runs.iter().enumerate() {
        let first = &txns[run.start];
        let a = first.agent;
        let label = format!("{name}: transactions {run:?} (author {a})");
        let visible = parents_seen(&seen, first, agents);
        // The latest of the others' transactions it has seen; every earlier
        // one of theirs must be among its ancestors too.
        let latest = (0..agents)
            .filter(|&b| b != a && visible[b] > 0)
            .map(|b| run_of[by_agent[b][visible[b] as usize - 1]])
            .max();
        let foreign: u32 = (0..agents).filter(|&b| b != a).map(|b| visible[b]).sum();
        let before_latest = latest.map_or(0, |m| {
            let end = runs[m].end;
            (0..agents)
                .filter(|&b| b != a)
                .map(|b| by_agent[b].partition_point(|&k| k < end) as u32)
                .sum()
        });
        assert_eq!(
            foreign, before_latest,
            "{label}: the others' edits it has seen are not a prefix of the trace order"
        );
        let need = latest.map_or(base, |m| base + m as u64 + 1);

        catch_up(&mut world, a, need, &mut cursors[a], &mut stats, &label);

        let doc = world.replicas[a].engine.automerge(&url.doc).unwrap();
        let parents: Vec<ChangeHash> = match first.parents.as_slice() {
            [] => genesis_heads.clone(),
            ps => ps.iter().map(|&p| hashes[run_of[p]]).collect(),
        };
        let missing = doc.get_missing_deps(&parents);
        assert!(
            missing.is_empty(),
            "{label}: its replica lacks parents {missing:?}"
        );
        // Its ancestors are whole runs: count them.
        let ancestors: usize = (0..agents)
            .map(|b| {
                let ends = &run_ends[b];
                let n = ends.partition_point(|&e| e <= visible[b]);
                assert!(
                    visible[b] == 0 || ends[n - 1] == visible[b],
                    "{label}: has seen part of a run"
                );
                n
            })
            .sum();
        assert_eq!(
            doc.stats().num_changes,
            genesis_changes + ancestors as u64,
            "{label}: its replica holds other changes than the transactions' ancestors"
        );

        world.now += 1;
        let ops: Vec<Op> = txns[run.clone()].iter().flat_map(edits).collect();
        hashes.push(make_and_push(&mut world, &url, a, &ops, &label));
        assert_eq!(relay_len(&world, &url), base + r as u64 + 1, "{label}");
    }

    for r in &mut world.replicas {
        r.set_compaction(CompactionPolicy::default());
    }
    sync_everyone(&mut world, &url, &trace.end_content, name);
    assert_eq!(
        relay_len(&world, &url),
        base + runs.len() as u64,
        "{name}: relay log"
    );
    eprintln!(
        "{name}: {} transactions in {} changes by {agents} authors on {agents} engines, {:?} \
         ({} catch-ups from the live fan-out, {} by reconnecting)",
        txns.len(),
        runs.len(),
        started.elapsed(),
        stats.live,
        stats.reconnects
    );
}

/// Splits the trace into runs of one author's consecutive transactions,
/// each the only child of the one before (so no one else ever saw the run
/// halfway). Replayed as one change, a run gives the same operations, and
/// every transaction in it is still made at exactly its parents' version.
fn runs(txns: &[Txn]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (j, txn) in txns.iter().enumerate() {
        match runs.last_mut() {
            Some(run)
                if j > 0
                    && txn.agent == txns[j - 1].agent
                    && txn.parents == [j - 1]
                    && txns[j - 1].num_children == 1 =>
            {
                run.end = j + 1
            }
            _ => runs.push(j..j + 1),
        }
    }
    runs
}

/// How many of each author's transactions the parents of `txn` have seen.
fn parents_seen(seen: &[Vec<u32>], txn: &Txn, agents: usize) -> Vec<u32> {
    let mut v = vec![0; agents];
    for &p in &txn.parents {
        for (x, &y) in v.iter_mut().zip(&seen[p]) {
            *x = (*x).max(y);
        }
    }
    v
}

/// Brings replica `i` to relay sequence `need`, and not one delta further.
fn catch_up(
    world: &mut World,
    i: usize,
    need: u64,
    cursor: &mut u64,
    stats: &mut Stats,
    label: &str,
) {
    if *cursor >= need {
        return;
    }
    // The live fan-out in flight serves when it continues the cursor; if
    // the replica pushed since (its own deltas don't come back live), the
    // next one would be a gap, and the replica reconnects instead.
    while *cursor < need {
        let continues = world.to_replica[i].front().is_some_and(|bytes| {
            matches!(decode_relay(bytes), Ok(RelayFrame::Deltas { items, .. })
                if items.first().is_some_and(|d| d.seq == *cursor + 1))
        });
        if !continues || !deliver_one(world, i, need, cursor) {
            break;
        }
    }
    if *cursor >= need {
        stats.live += 1;
    } else {
        stats.reconnects += 1;
        world.disconnect(i);
        world.connect(i);
        while to_relay(world, i) {}
        while *cursor < need && deliver_one(world, i, need, cursor) {}
    }
    world.write(i);
    assert_eq!(
        *cursor, need,
        "{label}: its replica did not reach relay sequence {need}"
    );
}

// ------------------------------------------------------- sequential trace

/// Keystrokes per change. Applying one delta costs time in proportion to
/// the whole document (Automerge 0.12's apply), and the model relay scans
/// its whole log to deduplicate each push: one change per keystroke would
/// make this run quadratic in the trace's 259,778 edits.
const KEYSTROKES_PER_CHANGE: usize = 1024;

fn automerge_paper_reaches_a_live_and_a_late_replica() {
    let started = Instant::now();
    let name = "automerge-paper";
    let trace = load(name);
    let mut world = World::new(3);
    // Replica 1 follows live; replica 2 opens the document at the end.
    let (url, base) = genesis(&mut world, &trace.start_content, 1..2);
    let mut follower_cursor = base;
    for (k, group) in trace.txns.chunks(KEYSTROKES_PER_CHANGE).enumerate() {
        world.now += 1;
        let ops: Vec<Op> = group.iter().flat_map(edits).collect();
        let label = format!("{name}: change {k}");
        make_and_push(&mut world, &url, 0, &ops, &label);
        while deliver_one(&mut world, 1, u64::MAX, &mut follower_cursor) {}
        if k % 64 == 0 {
            world.write(1);
        }
    }
    let changes = trace.txns.len().div_ceil(KEYSTROKES_PER_CHANGE) as u64;
    assert_eq!(
        follower_cursor,
        base + changes,
        "{name}: the live follower missed deltas"
    );
    world.replicas[2].engine.open_doc(&url, world.now).unwrap();
    world.collect(2);
    sync_everyone(&mut world, &url, &trace.end_content, name);
    assert_eq!(relay_len(&world, &url), base + changes, "{name}: relay log");
    eprintln!(
        "{name}: {} edits in {changes} changes, one writer, a live and a late reader, {:?}",
        trace.txns.len(),
        started.elapsed()
    );
}

// ------------------------------------------------------------------ main

fn main() {
    let all = ["friendsforever", "clownschool", "automerge-paper"];
    let args: Vec<String> = std::env::args().collect();
    let chosen: Vec<&str> = match &args[..] {
        [] | [_] => all.to_vec(),
        [_program, names @ ..] => names.iter().map(String::as_str).collect(),
    };
    for name in chosen {
        match name {
            // Two and three authors, each on its own engine.
            "friendsforever" | "clownschool" => replay_concurrent(name),
            "automerge-paper" => automerge_paper_reaches_a_live_and_a_late_replica(),
            other => {
                eprintln!("unknown trace {other:?}: pick among {all:?}");
                std::process::exit(2);
            }
        }
        eprintln!("{name}: converged");
    }
}
