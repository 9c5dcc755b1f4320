//! Compaction while offline: the snapshot covers the outbox, so a replica
//! that made thousands of changes without a relay still opens from one
//! snapshot; the covered entries go once the relay acks them; snapshots of
//! the earlier record format still load.

#[path = "support/world.rs"]
mod world;

use syncline_core::store::{Record, SnapshotRecordV1};
use syncline_core::{CompactionPolicy, DocUrl, Engine, Store};
use world::{World, items, push, shared_doc};

const OFFLINE_CHANGES: usize = 10;

/// Replica 0 compacts every 4 entries and makes `OFFLINE_CHANGES` changes
/// while disconnected; all are written.
fn offline_world() -> (World, DocUrl) {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(CompactionPolicy {
        max_changes: 4,
        max_bytes: 1 << 20,
        ..CompactionPolicy::default()
    });
    world.disconnect(0);
    for n in 0..OFFLINE_CHANGES {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("offline{n}")), None, 2)
            .unwrap();
        world.collect(0);
    }
    world.write(0);
    (world, url)
}

fn decoded(world: &World, i: usize, store: Store) -> Vec<(String, Record)> {
    world.replicas[i]
        .store
        .records()
        .into_iter()
        .filter(|(s, _, _)| *s == store)
        .map(|(_, key, bytes)| (key, Record::decode(&bytes).unwrap()))
        .collect()
}

/// The items, newest first (`push` inserts at the front).
fn expected() -> Vec<String> {
    (0..OFFLINE_CHANGES)
        .rev()
        .map(|n| format!("offline{n}"))
        .collect()
}

#[test]
fn offline_changes_are_compacted_into_a_snapshot_that_lists_the_entries_it_keeps() {
    let (world, _) = offline_world();
    let snapshots = decoded(&world, 0, Store::Snapshots);
    let [(_, Record::Snapshot(snapshot))] = &snapshots[..] else {
        panic!("one snapshot record expected: {snapshots:?}");
    };
    let entries = decoded(&world, 0, Store::Entries);
    assert_eq!(entries.len(), OFFLINE_CHANGES, "nothing unacked is deleted");
    // The document's first entry (acked) counts too: compactions at the
    // 3rd and the 7th offline change, so the snapshot holds seven of them
    // and the last three are newer.
    assert_eq!(snapshot.covers.len(), 7);
    for id in &snapshot.covers {
        assert!(
            entries.iter().any(
                |(_, r)| matches!(r, Record::Entry(e) if e.id == *id && e.relay_seq.is_none())
            ),
            "the snapshot covers an outbox entry that is stored"
        );
    }
}

#[test]
fn opening_skips_the_entries_the_snapshot_covers() {
    let (world, url) = offline_world();
    let Record::Snapshot(snapshot) = &decoded(&world, 0, Store::Snapshots)[0].1 else {
        panic!("a snapshot record expected");
    };
    // Garble every covered entry's changes: an open that applied them
    // again would report them corrupt.
    let records =
        world.replicas[0].store.records().into_iter().map(
            |(store, key, bytes)| match Record::decode(&bytes) {
                Ok(Record::Entry(mut entry)) if snapshot.covers.contains(&entry.id) => {
                    entry.bytes = vec![1, 1, 3, 0xde, 0xad, 0xbe];
                    (store, key, Record::Entry(entry).encode())
                }
                _ => (store, key, bytes),
            },
        );
    let (engine, problems) = Engine::load([9; 32], records);
    assert!(problems.is_empty(), "{problems:?}");
    let value = engine.value_json(&url.doc).unwrap();
    assert_eq!(value["items"], serde_json::json!(expected()));
    assert_eq!(
        engine.status().pending,
        OFFLINE_CHANGES,
        "covered entries stay in the outbox"
    );
}

#[test]
fn covered_entries_are_deleted_once_the_relay_acks_them() {
    let (mut world, url) = offline_world();
    let Record::Snapshot(snapshot) = decoded(&world, 0, Store::Snapshots).remove(0).1 else {
        panic!("a snapshot record expected");
    };
    world.crash(0); // reopen from the snapshot: the outbox comes from the entries
    // No compaction from here on: only the acks may delete the covered entries.
    world.replicas[0].set_compaction(CompactionPolicy {
        max_changes: 100_000,
        max_bytes: 1 << 30,
        min_ops: u64::MAX,
        ops_divisor: 1,
        idle_ms: None,
    });
    // Connected and settled, with no time passing: the outbox is pushed and
    // acked, and no re-subscription fetches the deltas back as relay ones.
    world.connect(0);
    world.connect(1);
    world.settle();
    let mut sorted = expected();
    sorted.sort();
    assert_eq!(items(&world, 1, &url), sorted);
    assert_eq!(items(&world, 0, &url), sorted);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    for (_, record) in decoded(&world, 0, Store::Entries) {
        let Record::Entry(entry) = record else {
            panic!("only entries in the entries store");
        };
        assert!(entry.relay_seq.is_some(), "no outbox entry is left");
        assert!(
            !snapshot.covers.contains(&entry.id),
            "a covered entry outlived its ack"
        );
    }
}

#[test]
fn a_snapshot_in_the_earlier_format_still_loads() {
    let (world, url) = offline_world();
    let records =
        world.replicas[0].store.records().into_iter().map(
            |(store, key, bytes)| match Record::decode(&bytes) {
                Ok(Record::Snapshot(s)) => {
                    let old = Record::SnapshotV1(SnapshotRecordV1 {
                        doc: s.doc,
                        bytes: s.bytes,
                    });
                    (store, key, old.encode())
                }
                _ => (store, key, bytes),
            },
        );
    let (engine, problems) = Engine::load([9; 32], records);
    assert!(problems.is_empty(), "{problems:?}");
    let value = engine.value_json(&url.doc).unwrap();
    assert_eq!(value["items"], serde_json::json!(expected()));
    assert_eq!(engine.status().pending, OFFLINE_CHANGES);
}

#[test]
fn a_burst_logged_as_one_entry_counts_every_change_toward_compaction() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(CompactionPolicy {
        max_changes: 4,
        max_bytes: 1 << 20,
        ..CompactionPolicy::default()
    });
    world.disconnect(0);
    // Five changes before the outputs are taken: one entry.
    for n in 0..5 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("burst{n}")), None, 2)
            .unwrap();
    }
    world.collect(0);
    world.write(0);
    assert_eq!(decoded(&world, 0, Store::Entries).len(), 1, "one entry");
    assert_eq!(
        decoded(&world, 0, Store::Snapshots).len(),
        1,
        "its five changes passed the threshold of four"
    );
}

/// One local change inserting `n` items at the head of `items`: `n`
/// Automerge operations.
fn push_many(tag: &str, n: usize) -> Vec<syncline_core::Op> {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}{i}")).collect();
    serde_json::from_value(serde_json::json!([
        { "op": "insert", "obj": ["items"], "index": 0, "values": values }
    ]))
    .unwrap()
}

/// Replica 0 of a shared doc, offline, with `policy`.
fn offline_with(policy: CompactionPolicy) -> (World, DocUrl) {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(policy);
    world.disconnect(0);
    (world, url)
}

/// Makes one change of `n` operations on replica 0 and writes it.
fn change_many(world: &mut World, url: &DocUrl, tag: &str, n: usize) {
    world.replicas[0]
        .engine
        .change(url.doc, &push_many(tag, n), None, world.now)
        .unwrap();
    world.collect(0);
    world.write(0);
}

/// The snapshot record of replica 0, if any.
fn snapshot_of(world: &World) -> Option<syncline_core::store::SnapshotRecord> {
    decoded(world, 0, Store::Snapshots)
        .into_iter()
        .find_map(|(_, r)| match r {
            Record::Snapshot(s) => Some(s),
            _ => None,
        })
}

/// Counts and bytes far away: only the operation trigger can fire.
fn by_ops_only(min_ops: u64, ops_divisor: u64) -> CompactionPolicy {
    CompactionPolicy {
        max_changes: 100_000,
        max_bytes: 1 << 30,
        min_ops,
        ops_divisor,
        idle_ms: None,
    }
}

#[test]
fn a_few_changes_with_many_operations_trigger_compaction() {
    // The default policy: two changes are far below 512 changes and 1 MiB,
    // but their 1,200 operations would cost more to replay than to save.
    let (mut world, url) = offline_with(CompactionPolicy {
        idle_ms: None,
        ..CompactionPolicy::default()
    });
    change_many(&mut world, &url, "a", 600);
    assert!(snapshot_of(&world).is_none(), "600 operations: below 1,024");
    change_many(&mut world, &url, "b", 600);
    let snapshot = snapshot_of(&world).expect("1,200 operations: compacted");
    assert_eq!(snapshot.covers.len(), 2, "both outbox entries are covered");
}

#[test]
fn the_operation_threshold_grows_with_the_document() {
    // At least 100 operations, or half of those in the snapshot.
    let (mut world, url) = offline_with(by_ops_only(100, 2));
    change_many(&mut world, &url, "a", 1_000);
    let first = snapshot_of(&world).expect("1,000 operations: compacted");
    // The snapshot holds ~1,000 operations: the next one needs ~500 more.
    change_many(&mut world, &url, "b", 300);
    assert_eq!(snapshot_of(&world), Some(first.clone()), "300 < 500");
    change_many(&mut world, &url, "c", 300);
    let second = snapshot_of(&world).expect("a snapshot");
    assert_ne!(second, first, "600 >= 500: compacted again");
}

#[test]
fn the_operation_count_restarts_from_the_snapshot_a_replica_opens() {
    let (mut world, url) = offline_with(by_ops_only(100, 2));
    change_many(&mut world, &url, "a", 1_000);
    let first = snapshot_of(&world).expect("compacted");
    // Reopened from that snapshot, a small change is a small tail, not
    // the whole document's operations.
    world.crash(0);
    change_many(&mut world, &url, "b", 300);
    assert_eq!(snapshot_of(&world), Some(first), "300 < 500: no compaction");
    change_many(&mut world, &url, "c", 300);
    assert_ne!(snapshot_of(&world), None);
    assert_eq!(items(&world, 0, &url).len(), 1_600);
}

#[test]
fn a_quiet_document_with_a_tail_is_compacted_and_a_busy_one_waits() {
    let (mut world, url) = offline_with(CompactionPolicy {
        idle_ms: Some(2_000),
        ..CompactionPolicy::default()
    });
    // The creation entry is newer than any snapshot: quiet for 2 s, it is
    // compacted (and, the relay holding it, dropped).
    world.tick(0);
    world.now += 1_900;
    world.tick(0);
    world.write(0);
    assert!(snapshot_of(&world).is_none(), "quiet for 1.9 s: not yet");
    world.now += 100;
    world.tick(0);
    world.write(0);
    let first = snapshot_of(&world).expect("quiet for 2 s: compacted");
    assert!(first.covers.is_empty());
    assert!(decoded(&world, 0, Store::Entries).is_empty());
    // Changes 1.5 s apart keep it busy.
    change_many(&mut world, &url, "a", 1);
    world.tick(0);
    world.now += 1_500;
    change_many(&mut world, &url, "b", 1);
    world.tick(0);
    world.now += 1_500;
    world.tick(0);
    world.write(0);
    assert_eq!(snapshot_of(&world), Some(first), "a change 1.5 s ago");
    world.now += 600;
    world.tick(0);
    world.write(0);
    let second = snapshot_of(&world).expect("a snapshot");
    assert_eq!(second.covers.len(), 2, "quiet for 2.1 s: compacted");
    // Reopening applies nothing but the snapshot.
    world.crash(0);
    assert_eq!(items(&world, 0, &url), vec!["a0", "b0"]);
    // Nothing newer since: no further snapshot.
    world.now += 10_000;
    world.tick(0);
    world.now += 10_000;
    world.tick(0);
    world.write(0);
    assert_eq!(snapshot_of(&world), Some(second));
}

/// Offline, a snapshot can only cover the entries (the relay has none of
/// them), and each snapshot lists every entry it covers: compacting every
/// `max_changes` would redo that whole list each time (quadratic over a
/// long offline session). A count-triggered compaction waits until there
/// are as many new changes as covered entries.
#[test]
fn offline_compactions_by_count_space_out_as_covered_entries_pile_up() {
    let mut engine = Engine::new([5; 32]);
    engine.set_compaction(CompactionPolicy {
        max_changes: 4,
        max_bytes: 1 << 30,
        min_ops: u64::MAX,
        ops_divisor: 1,
        idle_ms: None,
    });
    let url = engine
        .create_doc(&serde_json::json!({"items": []}), 0)
        .unwrap();
    for effect in engine.take_effects() {
        if let syncline_core::Effect::Persist(batch) = effect {
            engine.persisted(batch.id, 0);
        }
    }
    let mut compacted_after = Vec::new();
    for n in 1..=32 {
        engine
            .change(url.doc, &push(&format!("{n}")), None, 1)
            .unwrap();
        for effect in engine.take_effects() {
            if let syncline_core::Effect::Persist(batch) = effect {
                if batch
                    .puts
                    .iter()
                    .any(|(store, _, _)| *store == Store::Snapshots)
                {
                    compacted_after.push(n);
                }
                engine.persisted(batch.id, 1);
            }
        }
    }
    // One entry per change, the document's own first: covered 0, 4, 8, 16
    // entries, so each compaction needs 4, 4, 8, 16 new changes (at a
    // fixed count: 3, 7, 11, 15, 19, ...).
    assert_eq!(compacted_after, [3, 7, 15, 31]);
    assert_eq!(items_of(&engine, &url).len(), 32);
}

fn items_of(engine: &Engine, url: &DocUrl) -> Vec<serde_json::Value> {
    engine.value_json(&url.doc).unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
