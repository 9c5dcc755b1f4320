//! Per-document tokens against a model relay that wants them: each
//! document is asked for, authorized and refused on its own, and a refusal
//! never stops the others or loses a local change.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::{AccessError, DocUrl};
use world::{World, items, push};

/// Replica 0 creates three documents and may write all of them; replica 1
/// may write the first two and read the third. Both are connected.
fn three_docs() -> (World, [DocUrl; 3]) {
    let mut world = World::new(2);
    world.require_tokens().everyone_writes = false;
    let urls: [DocUrl; 3] = std::array::from_fn(|_| {
        world.replicas[0]
            .engine
            .create_doc(&json!({"items": []}), world.now)
            .unwrap()
    });
    let service = world.tokens.as_mut().unwrap();
    for (n, url) in urls.iter().enumerate() {
        service.rights.insert((0, url.doc), true);
        service.rights.insert((1, url.doc), n < 2);
    }
    world.connect(0);
    world.connect(1);
    for url in &urls {
        world.replicas[1].engine.open_doc(url, world.now).unwrap();
    }
    world.collect(0);
    world.collect(1);
    world.settle();
    (world, urls)
}

fn last_error(world: &World, i: usize, url: &DocUrl) -> Option<AccessError> {
    let status = world.replicas[i].engine.doc_status(&url.doc).unwrap();
    status.last_error.map(|(error, _)| error)
}

#[test]
fn each_document_gets_its_own_token_and_a_read_only_one_keeps_its_changes() {
    let (mut world, urls) = three_docs();
    // Every document was asked for once per replica, and all three reached
    // replica 1 with replica 0's content.
    for url in &urls {
        assert_eq!(world.tokens.as_ref().unwrap().asked[&(1, url.doc)], 1);
        world.replicas[0]
            .engine
            .change(url.doc, &push("from 0"), None, world.now)
            .unwrap();
        world.collect(0);
    }
    world.settle();
    for url in &urls {
        assert_eq!(items(&world, 1, url), ["from 0"]);
    }

    // Replica 1 edits all three: the two writable ones are acked, the
    // read-only one is refused with ReadOnly and its change stays pending.
    for url in &urls {
        world.replicas[1]
            .engine
            .change(url.doc, &push("from 1"), None, world.now)
            .unwrap();
        world.collect(1);
    }
    world.settle();
    let engine = &world.replicas[1].engine;
    for url in &urls[..2] {
        let status = engine.doc_status(&url.doc).unwrap();
        assert_eq!(
            (status.unsaved, status.pending, status.last_error),
            (0, 0, None)
        );
        assert_eq!(items(&world, 0, url), ["from 0", "from 1"]);
    }
    let read_only = engine.doc_status(&urls[2].doc).unwrap();
    assert_eq!((read_only.unsaved, read_only.pending), (0, 1));
    assert_eq!(last_error(&world, 1, &urls[2]), Some(AccessError::ReadOnly));
    assert_eq!(items(&world, 0, &urls[2]), ["from 0"]);
    assert_eq!(world.replicas[1].errors, ["ReadOnly"], "told once");
    assert_eq!(engine.status().pending, 1);

    // Remote changes keep arriving on the read-only document, and the
    // others keep syncing both ways.
    world.replicas[0]
        .engine
        .change(urls[2].doc, &push("later"), None, world.now)
        .unwrap();
    world.collect(0);
    world.replicas[1]
        .engine
        .change(urls[0].doc, &push("still writing"), None, world.now)
        .unwrap();
    world.collect(1);
    world.settle();
    assert_eq!(items(&world, 1, &urls[2]), ["from 0", "from 1", "later"]);
    assert_eq!(
        items(&world, 0, &urls[0]),
        ["from 0", "from 1", "still writing"]
    );

    // Its change survives a restart, and is pushed once a write token comes.
    world.crash(1);
    world
        .tokens
        .as_mut()
        .unwrap()
        .rights
        .insert((1, urls[2].doc), true);
    world.connect(1);
    world.settle();
    assert_eq!(items(&world, 0, &urls[2]), ["from 0", "from 1", "later"]);
    assert_eq!(world.replicas[1].engine.status().pending, 0);
    assert_eq!(last_error(&world, 1, &urls[2]), None);
}

#[test]
fn a_token_for_another_document_parks_only_that_document_and_it_retries() {
    let mut world = World::new(2);
    world.require_tokens().everyone_writes = false;
    let a = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    let b = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    let service = world.tokens.as_mut().unwrap();
    service.rights.insert((0, a.doc), true);
    service.rights.insert((0, b.doc), true);
    service.rights.insert((1, a.doc), true); // none for b: another doc's token
    world.connect(0);
    world.connect(1);
    world.replicas[1].engine.open_doc(&a, world.now).unwrap();
    world.replicas[1].engine.open_doc(&b, world.now).unwrap();
    world.collect(0);
    world.collect(1);
    world.settle();
    assert_eq!(last_error(&world, 1, &b), Some(AccessError::Unauthorized));
    assert_eq!(last_error(&world, 1, &a), None);
    assert!(world.replicas[1].online, "the connection stays");

    // Edits on b (which replica 1 has not received: a root key) stay
    // pending while a syncs.
    let set_key: Vec<syncline_core::Op> =
        serde_json::from_value(json!([{"op": "put", "obj": [], "key": "k", "value": "b1"}]))
            .unwrap();
    world.replicas[1]
        .engine
        .change(b.doc, &set_key, None, world.now)
        .unwrap();
    world.replicas[1]
        .engine
        .change(a.doc, &push("a1"), None, world.now)
        .unwrap();
    world.collect(1);
    world.settle();
    assert_eq!(items(&world, 0, &a), ["a1"]);
    let b_value = |world: &World| world.replicas[0].engine.value_json(&b.doc).unwrap();
    assert_eq!(b_value(&world)["k"], json!(null));
    assert_eq!(
        world.replicas[1].engine.doc_status(&b.doc).unwrap().pending,
        1
    );

    // Retries back off: within the first backoff window nothing more is
    // asked; within a minute it is asked again and, once the app grants
    // it, b syncs with nothing lost.
    let asked = world.tokens.as_ref().unwrap().asked[&(1, b.doc)];
    world
        .tokens
        .as_mut()
        .unwrap()
        .rights
        .insert((1, b.doc), true);
    world.now += syncline_core::TOKEN_RETRY_CAP_MS + 1;
    world.tick(1);
    world.settle();
    assert_eq!(world.tokens.as_ref().unwrap().asked[&(1, b.doc)], asked + 1);
    assert_eq!(b_value(&world)["k"], json!("b1"));
    assert_eq!(last_error(&world, 1, &b), None);
    assert_eq!(world.replicas[1].engine.status().pending, 0);
}

#[test]
fn an_expired_token_is_renewed_without_the_app_hearing_of_it() {
    let mut world = World::new(2);
    world.require_tokens().ttl_ms = 60_000;
    world.tokens.as_mut().unwrap().everyone_writes = true;
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.connect(0);
    world.connect(1);
    world.replicas[1].engine.open_doc(&url, world.now).unwrap();
    world.collect(0);
    world.collect(1);
    world.settle();

    world.now += 61_000; // both tokens have expired, the connections live on
    world.replicas[1]
        .engine
        .change(url.doc, &push("late"), None, world.now)
        .unwrap();
    world.collect(1);
    world.settle();
    assert_eq!(items(&world, 0, &url), ["late"]);
    assert_eq!(world.tokens.as_ref().unwrap().asked[&(1, url.doc)], 2);
    assert_eq!(world.relay.refusals.get("TokenExpired"), Some(&1));
    assert!(
        world.replicas[1].errors.is_empty(),
        "{:?}",
        world.replicas[1].errors
    );
    assert_eq!(last_error(&world, 1, &url), None);
}

#[test]
fn a_token_still_expired_after_a_fresh_one_is_reported_and_retried() {
    let mut world = World::new(1);
    world.require_tokens().ttl_ms = 0; // the endpoint hands out dead tokens
    world.tokens.as_mut().unwrap().everyone_writes = true;
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.collect(0);
    world.connect(0);
    world.settle();
    assert_eq!(last_error(&world, 0, &url), Some(AccessError::TokenExpired));
    assert_eq!(world.replicas[0].engine.status().pending, 1);

    world.tokens.as_mut().unwrap().ttl_ms = 60_000;
    world.now += syncline_core::TOKEN_RETRY_CAP_MS + 1;
    world.tick(0);
    world.settle();
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    assert_eq!(last_error(&world, 0, &url), None);
}

#[test]
fn a_failing_token_provider_is_retried_with_backoff_and_loses_nothing() {
    let mut world = World::new(1);
    world.require_tokens().everyone_writes = true;
    world.tokens.as_mut().unwrap().failing.insert(0);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.replicas[0]
        .engine
        .change(url.doc, &push("kept"), None, world.now)
        .unwrap();
    world.collect(0);
    world.connect(0);
    world.settle();
    assert_eq!(
        last_error(&world, 0, &url),
        Some(AccessError::TokenProvider)
    );
    assert_eq!(world.replicas[0].errors, ["TokenProvider"]);

    // Backoff: ticking in quick succession asks a bounded number of times.
    for _ in 0..100 {
        world.now += 10;
        world.tick(0);
        world.settle();
    }
    let asked = world.tokens.as_ref().unwrap().asked[&(0, url.doc)];
    assert!(asked <= 4, "asked {asked} times in one second");

    world.tokens.as_mut().unwrap().failing.clear();
    world.now += syncline_core::TOKEN_RETRY_CAP_MS + 1;
    world.tick(0);
    world.settle();
    assert_eq!(last_error(&world, 0, &url), None);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
    let on_relay = world.relay_change_hashes(&url);
    assert_eq!(world.replicas[0].change_hashes(&url.doc), on_relay);
}

#[test]
fn every_open_document_is_authorized_again_after_a_relay_restart() {
    let (mut world, urls) = three_docs();
    world.restart_relay();
    world.connect(0);
    world.connect(1);
    world.settle();
    for url in &urls {
        assert_eq!(world.tokens.as_ref().unwrap().asked[&(1, url.doc)], 2);
    }
    world.replicas[0]
        .engine
        .change(urls[1].doc, &push("after"), None, world.now)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(items(&world, 1, &urls[1]), ["after"]);
}

#[test]
fn nothing_about_a_document_is_sent_before_its_token() {
    let mut world = World::new(1);
    world.require_tokens().everyone_writes = true;
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.collect(0);
    world.connect(0);
    world.deliver_to_relay(0); // Hello
    world.deliver_to_replica(0); // Welcome
    assert_eq!(world.replicas[0].token_requests, [url.doc]);
    assert!(world.to_relay[0].is_empty(), "nothing before the token");
    world.settle();
    assert!(
        world.relay.refusals.is_empty(),
        "{:?}",
        world.relay.refusals
    );
    assert_eq!(world.relay_change_hashes(&url).len(), 1);
}

#[test]
fn an_open_relay_needs_no_token() {
    let mut world = World::new(1);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.collect(0);
    world.connect(0);
    world.settle();
    assert!(world.replicas[0].token_requests.is_empty());
    assert_eq!(world.relay_change_hashes(&url).len(), 1);
    assert_eq!(world.replicas[0].engine.status().pending, 0);
}

#[test]
fn a_change_becoming_durable_is_announced_as_a_status_change() {
    let mut engine = syncline_core::Engine::new([9; 32]);
    let url = engine.create_doc(&json!({"items": []}), 0).unwrap();
    let batches: Vec<_> = engine
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            syncline_core::Effect::Persist(batch) => Some(batch.id),
            _ => None,
        })
        .collect();
    let status = engine.doc_status(&url.doc).unwrap();
    assert_eq!((status.unsaved, status.pending), (1, 0));
    engine.persisted(*batches.last().unwrap(), 0);
    let status = engine.doc_status(&url.doc).unwrap();
    assert_eq!((status.unsaved, status.pending), (0, 1));
    let effects = engine.take_effects();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, syncline_core::Effect::StatusChanged)),
        "{effects:?}"
    );
}

#[test]
fn a_document_made_before_signed_writes_is_read_only_and_says_so() {
    // Its id does not derive from its key: the relay cannot check its
    // writes, so it serves it for reading only.
    let mut world = World::new(2);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({}), world.now)
        .unwrap();
    let legacy = DocUrl {
        doc: syncline_protocol::DocId([0x42; 16]),
        key: url.key,
    };
    assert!(url.is_provable() && !legacy.is_provable());
    // Its old log is on the relay (written before version 3): a change
    // replica 0 made offline, sealed for that id.
    let engine = &mut world.replicas[0].engine;
    engine.open_doc(&legacy, world.now).unwrap();
    let init: Vec<syncline_core::Op> =
        serde_json::from_value(json!([{"op": "put", "obj": [], "key": "items", "value": []}]))
            .unwrap();
    engine.change(legacy.doc, &init, None, world.now).unwrap();
    world.collect(0);
    world.write(0);
    let entry = world.replicas[0]
        .store
        .records()
        .into_iter()
        .find_map(
            |(_, _, bytes)| match syncline_core::store::Record::decode(&bytes) {
                Ok(syncline_core::store::Record::Entry(e)) if e.doc == legacy.doc => Some(e),
                _ => None,
            },
        )
        .unwrap();
    let sealed = legacy.key.seal(&legacy.doc, [9; 12], &entry.bytes);
    let old = syncline_protocol::SequencedDelta {
        seq: 1,
        id: entry.id,
        bytes: sealed,
    };
    world.relay.logs.insert(legacy.doc, vec![old]);

    world.connect(1);
    world.replicas[1]
        .engine
        .open_doc(&legacy, world.now)
        .unwrap();
    world.collect(1);
    world.settle();
    assert_eq!(
        last_error(&world, 1, &legacy),
        Some(AccessError::UnsupportedDocument)
    );
    assert!(world.replicas[1].errors.is_empty(), "opening it is fine");
    assert_eq!(
        world.replicas[1].engine.value_json(&legacy.doc).unwrap(),
        json!({"items": []})
    );

    for n in 0..2 {
        world.replicas[1]
            .engine
            .change(legacy.doc, &push(&format!("local {n}")), None, world.now)
            .unwrap();
        world.collect(1);
    }
    world.settle();
    assert_eq!(
        world.replicas[1].errors,
        ["UnsupportedDocument"],
        "told once"
    );
    assert_eq!(world.relay.logs[&legacy.doc].len(), 1, "nothing pushed");
    assert!(
        world.relay.refusals.is_empty(),
        "not even tried: {:?}",
        world.relay.refusals
    );
    let status = world.replicas[1].engine.doc_status(&legacy.doc).unwrap();
    assert_eq!(status.pending, 2, "both kept here, durable");
}
