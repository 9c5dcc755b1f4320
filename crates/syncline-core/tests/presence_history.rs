//! Presence (sealed, fanned out, re-sent, expired, never stored), history
//! and views at past heads, and deleting a document.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::store::{Origin, Record};
use syncline_core::{ChangeHash, Engine, PRESENCE_REFRESH_MS, PRESENCE_TTL_MS, Store};
use syncline_protocol::{RelayFrame, encode_relay};
use world::{World, push, shared_doc};

/// Replica `i`'s replica id, as the world connects it.
fn peer(i: usize) -> [u8; 16] {
    [i as u8 + 1; 16]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn presence_is_sealed_fanned_out_replayed_and_never_stored() {
    let (mut world, url) = shared_doc(3);
    let canary = b"cursor-canary-42";
    world.replicas[0]
        .engine
        .set_presence(url.doc, canary.to_vec(), world.now)
        .unwrap();
    world.collect(0);
    world.settle();
    for i in [1, 2] {
        assert_eq!(
            world.replicas[i].presence.get(&(url.doc, peer(0))),
            Some(&canary.to_vec()),
            "replica {i}"
        );
    }
    // The relay holds only ciphertext; no replica stored any of it.
    let held = &world.relay.presence[&url.doc][&0];
    assert!(!contains(held, canary));
    for r in &world.replicas {
        for (_, _, bytes) in r.store.records() {
            assert!(!contains(&bytes, canary));
        }
    }
    // A peer that leaves is gone; when it comes back, it says so again.
    world.disconnect(0);
    world.settle();
    assert!(world.replicas[1].presence.is_empty());
    world.connect(0);
    world.settle();
    assert_eq!(
        world.replicas[1].presence.len(),
        1,
        "re-sent after subscribe"
    );
    // A newcomer hears who is already here.
    world.disconnect(2);
    world.settle();
    world.connect(2);
    world.settle();
    assert_eq!(world.replicas[2].presence.len(), 1);
    // Clearing withdraws it.
    world.replicas[0].engine.clear_presence(url.doc).unwrap();
    world.collect(0);
    world.settle();
    assert!(world.replicas[1].presence.is_empty());
    assert!(world.replicas[2].presence.is_empty());
}

#[test]
fn presence_is_refreshed_and_silent_peers_expire() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .set_presence(url.doc, b"here".to_vec(), world.now)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(world.replicas[1].presence.len(), 1);
    // Replica 0 keeps ticking: its refresh keeps it alive at replica 1.
    for _ in 0..4 {
        world.now += PRESENCE_REFRESH_MS;
        world.tick(0);
        world.settle();
        world.tick(1);
    }
    assert_eq!(world.replicas[1].presence.len(), 1);
    // Replica 0 goes silent without the relay noticing: it expires.
    world.now += PRESENCE_TTL_MS;
    world.tick(1);
    assert!(world.replicas[1].presence.is_empty());
    // Our own connection dropping forgets every peer at once.
    world.tick(0);
    world.settle();
    assert_eq!(world.replicas[1].presence.len(), 1);
    world.disconnect(1);
    assert!(world.replicas[1].presence.is_empty());
}

#[test]
fn bad_presence_is_a_typed_error_and_unknown_docs_are_refused() {
    let (mut world, url) = shared_doc(1);
    let frame = RelayFrame::Presence {
        doc: url.doc,
        from: [9; 16],
        bytes: vec![1, 2, 3],
    };
    world.replicas[0]
        .engine
        .received(&encode_relay(&frame), world.now);
    world.collect(0);
    assert_eq!(world.replicas[0].errors, ["BadPresence"]);
    assert!(world.replicas[0].presence.is_empty());
    let stranger = syncline_protocol::DocId([3; 16]);
    let engine = &mut world.replicas[0].engine;
    assert_eq!(
        engine
            .set_presence(stranger, vec![1], 0)
            .unwrap_err()
            .code(),
        "DocNotFound"
    );
}

#[test]
fn history_lists_changes_with_time_actor_and_message() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("milk"), Some("todo.added".into()), 7_250)
        .unwrap();
    world.collect(0);
    world.settle();
    world.replicas[1]
        .engine
        .change(url.doc, &push("eggs"), Some("todo.added".into()), 9_000)
        .unwrap();
    world.collect(1);
    world.settle();
    let history = world.replicas[0].engine.history(&url.doc).unwrap();
    assert_eq!(history.len(), 3);
    let (create, milk, eggs) = (&history[0], &history[1], &history[2]);
    assert_eq!(milk.message.as_deref(), Some("todo.added"));
    assert_eq!(milk.time_ms, 7_000, "whole seconds");
    assert_eq!(create.actor, milk.actor);
    assert_ne!(milk.actor, eggs.actor, "made elsewhere");
    assert_eq!(eggs.time_ms, 9_000);
    assert_eq!(milk.deps, [create.hash]);
    assert_eq!(
        world.replicas[1].engine.history(&url.doc).unwrap(),
        history,
        "every replica tells the same history"
    );
    // Views at past heads.
    let engine = &mut world.replicas[0].engine;
    assert_eq!(
        engine.value_at(&url.doc, &[create.hash]).unwrap(),
        json!({"items": []})
    );
    assert_eq!(
        engine.value_at(&url.doc, &[milk.hash]).unwrap(),
        json!({"items": ["milk"]})
    );
    assert_eq!(engine.value_at(&url.doc, &[]).unwrap(), json!({}));
    let heads = engine.heads(&url.doc).unwrap();
    assert_eq!(
        engine.value_at(&url.doc, &heads).unwrap(),
        engine.value_json(&url.doc).unwrap()
    );
    let bogus = ChangeHash([7; 32]);
    assert_eq!(
        engine.value_at(&url.doc, &[bogus]).unwrap_err().code(),
        "UnknownHeads"
    );
    let stranger = syncline_protocol::DocId([3; 16]);
    assert_eq!(engine.history(&stranger).unwrap_err().code(), "DocNotFound");
}

#[test]
fn history_since_heads_lists_only_what_they_do_not_cover() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0]
        .engine
        .change(url.doc, &push("milk"), None, 1_000)
        .unwrap();
    world.collect(0);
    world.settle();
    let mirror = world.replicas[1].engine.history(&url.doc).unwrap();
    let at = world.replicas[1].engine.heads(&url.doc).unwrap();
    // Concurrent changes on both replicas, then merged.
    for (i, item) in [(0, "eggs"), (1, "tea")] {
        world.replicas[i]
            .engine
            .change(url.doc, &push(item), None, 2_000)
            .unwrap();
        world.collect(i);
    }
    world.settle();
    let engine = &mut world.replicas[1].engine;
    let all = engine.history(&url.doc).unwrap();
    let since = engine.history_since(&url.doc, &at).unwrap();
    assert_eq!(since.len(), 2, "the two concurrent changes, nothing before");
    let mut joined = mirror.clone();
    joined.extend(since);
    let hashes = |h: &[syncline_core::HistoryEntry]| {
        let mut v: Vec<_> = h.iter().map(|e| e.hash).collect();
        v.sort();
        v
    };
    assert_eq!(
        hashes(&joined),
        hashes(&all),
        "mirror + since = the whole history"
    );
    assert_eq!(engine.history_since(&url.doc, &[]).unwrap(), all);
    let now = engine.heads(&url.doc).unwrap();
    assert!(engine.history_since(&url.doc, &now).unwrap().is_empty());
    assert_eq!(
        engine
            .history_since(&url.doc, &[ChangeHash([7; 32])])
            .unwrap_err()
            .code(),
        "UnknownHeads"
    );
}

#[test]
fn a_deleted_doc_is_gone_from_storage_memory_and_the_relay_session() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(syncline_core::CompactionPolicy {
        max_changes: 2,
        max_bytes: 1 << 20,
        ..syncline_core::CompactionPolicy::default()
    });
    for n in 0..3 {
        world.replicas[1]
            .engine
            .change(url.doc, &push(&format!("x{n}")), None, 1)
            .unwrap();
        world.collect(1);
        world.settle();
    }
    // A second document that must survive.
    let keep = world.replicas[0]
        .engine
        .create_doc(&json!({"keep": true}), 2)
        .unwrap();
    world.collect(0);
    world.settle();
    let id = url.doc.to_string();
    let mine = |world: &World| {
        world.replicas[0]
            .store
            .records()
            .into_iter()
            .filter(|(_, key, _)| key.starts_with(&id))
            .map(|(s, _, _)| s)
            .collect::<Vec<Store>>()
    };
    assert!(mine(&world).contains(&Store::Snapshots));
    // A change not yet durable here (already pushed): its entry is
    // deleted with the rest.
    world.replicas[0]
        .engine
        .change(url.doc, &push("unpushed"), None, 2)
        .unwrap();
    world.collect(0);
    let status = world.replicas[0].engine.status();
    assert_eq!((status.unsaved, status.pending), (1, 0));
    world.replicas[0].engine.delete_doc(url.doc).unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(world.relay.logs[&url.doc].len(), 5, "the relay has it");
    assert_eq!(mine(&world), [], "every record of the doc is deleted");
    let status = world.replicas[0].engine.status();
    assert_eq!((status.unsaved, status.pending), (0, 0));
    assert!(world.replicas[0].engine.value_json(&url.doc).is_err());
    assert!(
        !world.relay.subscribers[&url.doc].contains(&0),
        "unsubscribed"
    );
    // The other replica's edits no longer reach it.
    world.replicas[1]
        .engine
        .change(url.doc, &push("later"), None, 3)
        .unwrap();
    world.collect(1);
    world.settle();
    assert!(world.replicas[0].engine.value_json(&url.doc).is_err());
    // After a reload it is still gone, and the other document is intact.
    let (engine, problems) = Engine::load([5; 32], world.replicas[0].store.records());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(engine.doc_ids().collect::<Vec<_>>(), [&keep.doc]);
    assert_eq!(
        world.replicas[0]
            .engine
            .delete_doc(url.doc)
            .unwrap_err()
            .code(),
        "DocNotFound"
    );
}

#[test]
fn every_change_of_a_burst_keeps_its_own_message() {
    let (mut world, url) = shared_doc(2);
    // Three changes between two takes of the outputs: one log entry.
    for (item, message) in [("a", None), ("b", Some("two")), ("c", Some("three"))] {
        world.replicas[0]
            .engine
            .change(url.doc, &push(item), message.map(Into::into), 7_250)
            .unwrap();
    }
    world.collect(0);
    world.settle();
    let messages = |world: &mut World, i: usize| {
        let history = world.replicas[i].engine.history(&url.doc).unwrap();
        history.into_iter().map(|e| e.message).collect::<Vec<_>>()
    };
    let expected = [None, None, Some("two".into()), Some("three".into())];
    assert_eq!(messages(&mut world, 0), expected, "where they were made");
    assert_eq!(messages(&mut world, 1), expected, "at another replica");
    world.replicas[0].crash_and_restart();
    assert_eq!(messages(&mut world, 0), expected, "after a reload");
    // The burst's log entry is labelled with the first message among its
    // changes (as an entry received from a tab is), not the first change's
    // missing one.
    let labels: Vec<_> = world.replicas[0]
        .store
        .records()
        .into_iter()
        .filter_map(|(_, _, bytes)| match Record::decode(&bytes) {
            Ok(Record::Entry(entry)) if entry.origin == Origin::Local => Some(entry.message),
            _ => None,
        })
        .collect();
    assert!(labels.contains(&Some("two".into())), "{labels:?}");
}

#[test]
fn shown_heads_are_those_of_the_value_the_host_was_given() {
    let (mut world, url) = shared_doc(2);
    let engine = &mut world.replicas[1].engine;
    engine.restart_patches(&url.doc).unwrap();
    let shown = engine.value_json(&url.doc).unwrap();
    let at_read = engine.shown_heads(&url.doc).unwrap();
    assert_eq!(at_read, engine.heads(&url.doc).unwrap());
    // A change from elsewhere arrives: not shown until its patches are taken.
    world.replicas[0]
        .engine
        .change(url.doc, &push("remote"), None, 1)
        .unwrap();
    world.collect(0);
    world.settle();
    let engine = &mut world.replicas[1].engine;
    assert_ne!(engine.heads(&url.doc).unwrap(), at_read);
    assert_eq!(engine.shown_heads(&url.doc).unwrap(), at_read);
    assert_eq!(engine.value_at(&url.doc, &at_read).unwrap(), shown);
    engine.patches(&url.doc).unwrap();
    assert_eq!(
        engine.shown_heads(&url.doc).unwrap(),
        engine.heads(&url.doc).unwrap()
    );
    // A local change is shown by the caller as soon as it is made.
    engine.change(url.doc, &push("local"), None, 2).unwrap();
    engine.patches_after_local_change(&url.doc).unwrap();
    let heads = engine.shown_heads(&url.doc).unwrap();
    assert_eq!(heads, engine.heads(&url.doc).unwrap());
    assert_eq!(
        engine.value_at(&url.doc, &heads).unwrap(),
        engine.value_json(&url.doc).unwrap()
    );
}
