//! The engine against a model relay: convergence, offline edits, crashes,
//! acks, a relay that lost its log, and bad input.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::store::Record;
use syncline_core::{DocUrl, Engine, EngineError, Op, Store, delta};
use syncline_protocol::{DeltaId, RelayFrame, SequencedDelta, encode_relay};
use world::{World, items, push, shared_doc};

#[test]
fn two_replicas_converge_and_acks_empty_the_outbox() {
    let (mut world, url) = shared_doc(2);
    world.replicas[1]
        .engine
        .change(url.doc, &push("b"), Some("todo.added".into()), 5)
        .unwrap();
    world.collect(1);
    world.settle();
    assert_eq!(items(&world, 0, &url), ["b"]);
    assert_eq!(items(&world, 1, &url), ["b"]);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    assert_eq!(world.replicas[1].engine.status().pending, 0);
    assert!(world.replicas[0].changed.contains(&url.doc));
}

#[test]
fn the_relay_only_ever_sees_ciphertext() {
    let (mut world, url) = shared_doc(2);
    let canary = "canary-7f3a9c";
    world.replicas[0]
        .engine
        .change(url.doc, &push(canary), None, 5)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(items(&world, 1, &url), [canary]);
    for item in &world.relay.logs[&url.doc] {
        assert!(
            !item
                .bytes
                .windows(canary.len())
                .any(|w| w == canary.as_bytes())
        );
    }
}

#[test]
fn offline_edits_on_both_sides_converge_after_reconnect() {
    let (mut world, url) = shared_doc(2);
    world.disconnect(0);
    world.disconnect(1);
    world.replicas[0]
        .engine
        .change(url.doc, &push("from-a"), None, 1)
        .unwrap();
    world.replicas[1]
        .engine
        .change(url.doc, &push("from-b"), None, 1)
        .unwrap();
    world.collect(0);
    world.collect(1);
    world.settle();
    assert_eq!(world.replicas[0].engine.status().pending, 1);
    world.heal();
    assert_eq!(items(&world, 0, &url), ["from-a", "from-b"]);
    assert_eq!(items(&world, 1, &url), ["from-a", "from-b"]);
}

#[test]
fn a_crash_loses_only_what_was_never_written_and_the_outbox_survives() {
    let mut world = World::new(2);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), 0)
        .unwrap();
    world.replicas[0]
        .engine
        .change(url.doc, &push("durable"), None, 1)
        .unwrap();
    world.collect(0);
    world.write(0);
    world.replicas[0]
        .engine
        .change(url.doc, &push("lost"), None, 2)
        .unwrap();
    world.collect(0);
    world.crash(0);
    assert_eq!(items(&world, 0, &url), ["durable"]);
    assert_eq!(
        world.replicas[0].engine.status().pending,
        1,
        "creation + durable change, made before the outputs were taken: one entry"
    );
    world.replicas[1].engine.open_doc(&url, 0).unwrap();
    world.collect(1);
    world.heal();
    assert_eq!(items(&world, 1, &url), ["durable"]);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    // Acks are durable too: after another restart nothing is pending.
    world.crash(0);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
}

#[test]
fn cursors_survive_restart_and_catch_up_resumes_from_them() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("one"), None, 1)
        .unwrap();
    world.collect(0);
    world.settle();
    world.crash(1);
    assert_eq!(items(&world, 1, &url), ["one"]);
    world.replicas[0]
        .engine
        .change(url.doc, &push("two"), None, 2)
        .unwrap();
    world.collect(0);
    world.settle();
    world.heal();
    assert_eq!(items(&world, 1, &url), ["one", "two"]);
}

#[test]
fn a_relay_that_lost_its_log_gets_everything_back() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("kept"), None, 1)
        .unwrap();
    world.collect(0);
    world.settle();
    world.replace_relay([1; 16]);
    world.heal();
    assert_eq!(
        world.relay_change_hashes(&url),
        world.replicas[0].change_hashes(&url.doc)
    );
    // A newcomer gets everything from the new relay alone.
    let mut newcomer = World::new(3);
    std::mem::swap(&mut newcomer.relay, &mut world.relay);
    newcomer.replicas[2].engine.open_doc(&url, 0).unwrap();
    newcomer.collect(2);
    newcomer.connect(2);
    newcomer.settle();
    assert_eq!(items(&newcomer, 2, &url), ["kept"]);
}

#[test]
fn deltas_that_cannot_be_opened_or_applied_are_reported_and_skipped() {
    let (mut world, url) = shared_doc(1);
    let wrong_key = syncline_core::DocKey([0xee; 32]);
    let plain = syncline_core::delta::encode([&b"not a change"[..]]);
    let frames = [
        // Sealed with another key.
        (
            wrong_key.seal(&url.doc, [1; 12], &plain),
            wrong_key.delta_id(&plain),
        ),
        // Right key, but the plaintext is no Automerge change.
        (
            url.key.seal(&url.doc, [2; 12], &plain),
            url.key.delta_id(&plain),
        ),
        // Right key and content, but the id lies.
        (url.key.seal(&url.doc, [3; 12], &plain), DeltaId([0; 32])),
    ];
    // The creation is the log's first delta (and the creator's cursor).
    let head = world.relay.logs[&url.doc].len() as u64;
    for (i, (bytes, id)) in frames.into_iter().enumerate() {
        let frame = RelayFrame::Deltas {
            doc: url.doc,
            items: vec![SequencedDelta {
                seq: head + i as u64 + 1,
                id,
                bytes,
            }],
            caught_up: true,
        };
        world.replicas[0].engine.received(&encode_relay(&frame), 0);
    }
    world.replicas[0].engine.received(&[0xff, 0xff], 0);
    world.collect(0);
    assert_eq!(
        world.replicas[0].errors,
        ["BadDelta", "BadDelta", "BadDelta", "Protocol"]
    );
    assert_eq!(
        world.replicas[0].engine.value_json(&url.doc).unwrap(),
        json!({"items": []})
    );
}

#[test]
fn a_corrupt_record_is_reported_and_the_rest_loads() {
    let mut world = World::new(1);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": ["x"]}), 0)
        .unwrap();
    world.collect(0);
    world.write(0);
    let mut records = world.replicas[0].store.records();
    records.push((Store::Entries, "bogus".into(), vec![1, 0xff]));
    let (engine, problems) = Engine::load([3; 32], records);
    assert!(matches!(
        &problems[..],
        [EngineError::Corrupt {
            store: "entries",
            ..
        }]
    ));
    assert_eq!(
        engine.value_json(&url.doc).unwrap(),
        json!({"items": ["x"]})
    );
}

#[test]
fn changes_to_unknown_docs_bad_ops_and_wrong_keys_are_typed_errors() {
    let mut engine = Engine::new([1; 32]);
    let stranger = DocUrl {
        doc: syncline_protocol::DocId([5; 16]),
        key: syncline_core::DocKey([5; 32]),
    };
    assert_eq!(
        engine
            .change(stranger.doc, &push("x"), None, 0)
            .unwrap_err()
            .code(),
        "DocNotFound"
    );
    let url = engine.create_doc(&json!({"items": []}), 0).unwrap();
    let bad: Vec<Op> = serde_json::from_value(json!([
        { "op": "insert", "obj": ["items"], "index": 0, "values": ["ok"] },
        { "op": "put", "obj": ["missing"], "key": "a", "value": 1 }
    ]))
    .unwrap();
    assert_eq!(
        engine.change(url.doc, &bad, None, 0).unwrap_err().code(),
        "BadOp"
    );
    assert_eq!(
        engine.value_json(&url.doc).unwrap(),
        json!({"items": []}),
        "rolled back whole"
    );
    let wrong = DocUrl {
        key: syncline_core::DocKey([1; 32]),
        ..url
    };
    assert_eq!(
        engine.open_doc(&wrong, 0).unwrap_err().code(),
        "KeyMismatch"
    );
    assert_eq!(engine.value_json(&url.doc).unwrap(), json!({"items": []}));
}

#[test]
fn compaction_snapshots_and_drops_only_what_the_relay_holds() {
    use syncline_core::CompactionPolicy;
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(CompactionPolicy {
        max_changes: 4,
        max_bytes: 1 << 20,
        ..CompactionPolicy::default()
    });
    for n in 0..3 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("acked{n}")), None, 1)
            .unwrap();
        world.collect(0);
    }
    world.settle();
    // Offline: these stay in the outbox and must survive compaction.
    world.disconnect(0);
    for n in 0..2 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("pending{n}")), None, 2)
            .unwrap();
        world.collect(0);
    }
    world.write(0);
    let stores = |w: &World| {
        let records = w.replicas[0].store.records();
        let count = |s: Store| records.iter().filter(|(st, _, _)| *st == s).count();
        (count(Store::Snapshots), count(Store::Entries))
    };
    assert_eq!(
        stores(&world),
        (1, 2),
        "one snapshot; only the two unacked entries remain"
    );
    world.crash(0);
    assert_eq!(world.replicas[0].engine.status().pending, 2);
    assert_eq!(
        items(&world, 0, &url),
        ["acked0", "acked1", "acked2", "pending0", "pending1"]
    );
    world.heal();
    assert_eq!(
        items(&world, 1, &url),
        ["acked0", "acked1", "acked2", "pending0", "pending1"]
    );
}

#[test]
fn a_crash_before_the_compaction_batch_is_written_keeps_the_old_log() {
    use syncline_core::CompactionPolicy;
    let (mut world, url) = shared_doc(2);
    world.replicas[1].set_compaction(CompactionPolicy {
        max_changes: 2,
        max_bytes: 1 << 20,
        ..CompactionPolicy::default()
    });
    for n in 0..3 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("x{n}")), None, 1)
            .unwrap();
        world.collect(0);
        world.write(0);
        world.deliver_to_relay(0);
    }
    // Replica 1 applies the deltas (and plans a compaction) but crashes
    // before anything it planned is written.
    while world.deliver_to_replica(1) {}
    assert!(!world.replicas[1].unwritten.is_empty());
    world.crash(1);
    world.heal();
    assert_eq!(items(&world, 1, &url), ["x0", "x1", "x2"]);
}

#[test]
fn a_change_is_pushed_beside_its_log_write_and_a_crash_before_that_write_loses_nothing() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("x"), None, 1)
        .unwrap();
    world.collect(0);
    assert_eq!(world.to_relay[0].len(), 1, "pushed before the log write");
    assert_eq!(world.replicas[0].unwritten.len(), 1, "the write is queued");
    while world.deliver_to_relay(0) {}
    // The tab dies before its storage commits: the change is only at the
    // relay (and replica 1) now.
    world.crash(0);
    world.heal();
    assert_eq!(items(&world, 0, &url), ["x"], "fetched back from the relay");
    // The restarted replica edits on with a fresh actor: no clash.
    world.replicas[0]
        .engine
        .change(url.doc, &push("y"), None, 2)
        .unwrap();
    world.collect(0);
    world.heal();
    assert_eq!(items(&world, 0, &url), ["x", "y"]);
    assert_eq!(items(&world, 1, &url), ["x", "y"]);
    assert!(
        world.replicas[0].errors.is_empty(),
        "{:?}",
        world.replicas[0].errors
    );
}

#[test]
fn a_change_waits_for_the_write_of_an_earlier_unwritten_one() {
    // Found by the simulation (seed 752): the relay must never store a
    // change whose predecessor this replica could still lose in a crash.
    let (mut world, url) = shared_doc(2);
    for (n, item) in ["first", "second"].into_iter().enumerate() {
        world.replicas[0]
            .engine
            .change(url.doc, &push(item), None, n as u64)
            .unwrap();
        world.collect(0);
    }
    assert_eq!(world.to_relay[0].len(), 1, "only the first goes early");
    world.write(0);
    assert_eq!(
        world.to_relay[0].len(),
        2,
        "the second once the first is durable"
    );
    world.settle();
    assert_eq!(items(&world, 1, &url), ["first", "second"]);
}

#[test]
fn while_local_writes_fail_changes_still_leave_one_ack_at_a_time() {
    // Replica 0's storage fails (its batches are never written): each
    // change goes once the relay has acked the one before it, so none
    // depends on a change only this replica holds, and all reach replica 1.
    let (mut world, url) = shared_doc(2);
    world.write(0);
    for (n, item) in ["a", "b", "c", "d"].into_iter().enumerate() {
        world.replicas[0]
            .engine
            .change(url.doc, &push(item), None, n as u64)
            .unwrap();
        world.collect(0);
    }
    for _ in 0..20 {
        while world.deliver_to_relay(0) {}
        world.commit_relay();
        while world.deliver_to_replica(0) {}
        world.write(1);
        while world.deliver_to_relay(1) {}
        while world.deliver_to_replica(1) {}
    }
    assert!(
        !world.replicas[0].unwritten.is_empty(),
        "storage never wrote"
    );
    assert_eq!(items(&world, 1, &url), ["a", "b", "c", "d"]);
    let status = world.replicas[0].engine.status();
    assert_eq!((status.unsaved, status.pending), (0, 0), "all acked");
}

#[test]
fn a_live_delta_lost_with_nothing_after_it_is_fetched_once_the_doc_has_been_idle() {
    // Found by the 100k-seed simulation (seed 58041): the last live deltas
    // to a caught-up replica are lost and no later frame reveals the gap.
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("lost"), None, world.now)
        .unwrap();
    world.collect(0);
    world.write(0);
    world.deliver_to_relay(0);
    // Its tentative copy and the commit's confirmation.
    let dropped: Vec<_> = world.to_replica[1].drain(..).collect();
    assert_eq!(
        dropped.len(),
        2,
        "the live delta to replica 1 was in flight"
    );
    world.settle();
    assert!(
        items(&world, 1, &url).is_empty(),
        "lost, and nothing says so yet"
    );
    world.now += syncline_core::RESYNC_IDLE_MS - 1_000;
    world.tick(1);
    world.settle();
    assert!(
        items(&world, 1, &url).is_empty(),
        "not idle long enough yet"
    );
    world.now += 2_000;
    world.tick(1);
    world.settle();
    assert_eq!(items(&world, 1, &url), ["lost"]);
}

#[test]
fn a_burst_of_changes_is_logged_and_pushed_as_one_delta_without_remote_changes() {
    let (mut world, url) = shared_doc(2);
    let before = world.relay.logs[&url.doc].len();
    // Replica 1's change reaches replica 0 in the middle of 0's burst.
    world.replicas[1]
        .engine
        .change(url.doc, &push("remote"), None, 1)
        .unwrap();
    world.collect(1);
    for n in 0..5 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("burst{n}")), None, 1)
            .unwrap();
        if n == 2 {
            // Handed to the engine without taking its outputs, as a host
            // does when the frame is read between two changes of one task.
            while world.deliver_to_relay(1) {}
            let frames: Vec<_> = world.to_replica[0].drain(..).collect();
            assert!(!frames.is_empty(), "replica 1's change is on its way");
            for frame in frames {
                world.replicas[0].engine.received(&frame, world.now);
            }
            assert_eq!(items(&world, 0, &url).len(), 4, "merged mid-burst");
        }
    }
    assert_eq!(
        world.replicas[0].engine.status().unsaved,
        1,
        "counted before it is logged"
    );
    world.collect(0);
    world.settle();
    let log = &world.relay.logs[&url.doc];
    assert_eq!(
        log.len(),
        before + 2,
        "one delta for the remote change, one for the burst"
    );
    let expected = ["burst0", "burst1", "burst2", "burst3", "burst4", "remote"];
    assert_eq!(items(&world, 0, &url), expected);
    assert_eq!(items(&world, 1, &url), expected);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    // The burst's delta holds only replica 0's five changes.
    let changes: Vec<usize> = world.replicas[0]
        .store
        .records()
        .into_iter()
        .filter_map(|(_, _, bytes)| match Record::decode(&bytes) {
            Ok(Record::Entry(e)) => Some(delta::decode(&e.bytes).unwrap().len()),
            _ => None,
        })
        .collect();
    assert!(
        changes.contains(&5),
        "one entry of five changes: {changes:?}"
    );
}

#[test]
fn after_a_local_change_patches_are_needed_only_if_something_else_changed_the_doc() {
    let (mut world, url) = shared_doc(2);
    // Replica 0 pushes `item` and asks whether it needs patches.
    let local = |world: &mut World, item: &str| {
        let engine = &mut world.replicas[0].engine;
        engine.change(url.doc, &push(item), None, 1).unwrap();
        engine.patches_after_local_change(&url.doc).unwrap()
    };
    world.replicas[0].engine.restart_patches(&url.doc).unwrap();
    assert_eq!(
        local(&mut world, "mine"),
        None,
        "only the local change: the caller's ops are the patches"
    );
    // A remote change arrives in between: the diff must describe it too.
    world.replicas[1]
        .engine
        .change(url.doc, &push("theirs"), None, 1)
        .unwrap();
    world.collect(0);
    world.collect(1);
    world.settle();
    let patches = local(&mut world, "mine again").expect("a remote change came in: patches");
    let mut inserted: Vec<String> = patches
        .iter()
        .filter_map(|p| match &p.action {
            automerge::PatchAction::Insert { values, .. } => Some(
                values
                    .iter()
                    .map(|(v, _, _)| v.to_string().trim_matches('"').to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    inserted.sort();
    assert_eq!(inserted, ["mine again", "theirs"].map(String::from));
    // Described: the next local change needs none again.
    assert_eq!(local(&mut world, "third"), None);
}

/// The engine remembers where a typist's text is between changes; a remote
/// change that puts a new text in its place must end that.
#[test]
fn a_splice_after_a_remote_change_replaced_the_text_goes_into_the_new_text() {
    use syncline_core::ops::Key;
    let (mut world, url) = shared_doc(2);
    let put = |value: &str| {
        vec![Op::PutText {
            obj: vec![],
            key: Key::Name("t".into()),
            value: value.into(),
        }]
    };
    let splice = |index: u64, insert: &str| {
        vec![Op::SpliceText {
            obj: vec![Key::Name("t".into())],
            index,
            delete: 0,
            insert: insert.into(),
        }]
    };
    let text = |world: &World, i: usize| {
        world.replicas[i].engine.value_json(&url.doc).unwrap()["t"].clone()
    };
    world.replicas[0]
        .engine
        .change(url.doc, &put("ab"), None, 1)
        .unwrap();
    world.replicas[0]
        .engine
        .change(url.doc, &splice(2, "c"), None, 2)
        .unwrap();
    world.replicas[0]
        .engine
        .change(url.doc, &splice(3, "d"), None, 3)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(text(&world, 1), "abcd");
    world.replicas[1]
        .engine
        .change(url.doc, &put("xy"), None, 4)
        .unwrap();
    world.collect(1);
    world.settle();
    world.replicas[0]
        .engine
        .change(url.doc, &splice(0, "!"), None, 5)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(text(&world, 0), "!xy");
    assert_eq!(text(&world, 1), "!xy");
}
