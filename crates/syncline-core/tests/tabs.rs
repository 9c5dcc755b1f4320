//! Tabs of one origin: engines sharing one log converge over broadcast
//! messages with no relay, a change made in a tab that dies is pushed by
//! another, records another tab wrote are absorbed, and only one tab
//! compacts.

#[path = "support/world.rs"]
mod world;

use serde_json::{Value, json};
use syncline_core::{
    CompactionPolicy, DocId, DocUrl, Effect, Engine, MemoryStore, Output, Store, store::Record,
};
use syncline_protocol::encode_relay;
use world::{ModelRelay, push};

/// One tab: an engine over the shared store, and what it has not yet
/// written or broadcast.
struct Tab {
    engine: Engine,
    unwritten: Vec<syncline_core::Batch>,
    outgoing: Vec<Vec<u8>>,
    frames: Vec<Vec<u8>>,
}

impl Tab {
    fn load(seed: u8, store: &MemoryStore) -> Tab {
        let (mut engine, problems) = Engine::load([seed; 32], store.records());
        assert!(problems.is_empty(), "{problems:?}");
        engine.set_tab_sync(true);
        Tab {
            engine,
            unwritten: Vec::new(),
            outgoing: Vec::new(),
            frames: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for output in self.engine.take_outputs() {
            match output {
                Output::Effect(Effect::Persist(b)) => self.unwritten.push(b),
                Output::Effect(Effect::Send(f)) => self.frames.push(f),
                Output::Broadcast(bytes) => self.outgoing.push(bytes),
                _ => {}
            }
        }
    }

    /// The tab's storage transaction commits.
    fn write(&mut self, store: &mut MemoryStore) {
        self.collect();
        let mut last = None;
        for batch in self.unwritten.drain(..) {
            store.apply(&batch);
            last = Some(batch.id);
        }
        if let Some(last) = last {
            self.engine.persisted(last, 0);
        }
        self.collect();
    }

    fn items(&self, url: &DocUrl) -> Vec<String> {
        let v = self.engine.value_json(&url.doc).unwrap();
        let mut items: Vec<String> = serde_json::from_value(v["items"].clone()).unwrap();
        items.sort();
        items
    }
}

/// Hands every message `from` broadcast to `to`.
fn deliver(from: &mut Tab, to: &mut Tab) {
    from.collect();
    for message in std::mem::take(&mut from.outgoing) {
        to.engine.received_from_tab(&message, 0).unwrap();
    }
    to.collect();
}

/// Every record of one document, as a host reads them back.
fn records_of(store: &MemoryStore, doc: &DocId) -> Vec<(Store, String, Vec<u8>)> {
    let id = doc.to_string();
    store
        .records()
        .into_iter()
        .filter(|(_, key, _)| key == &id || key.starts_with(&format!("{id}/")))
        .collect()
}

/// Tab `a` creates a doc; tab `b`, loaded before it existed, absorbs it.
fn two_tabs() -> (MemoryStore, Tab, Tab, DocUrl) {
    let mut store = MemoryStore::default();
    let mut a = Tab::load(1, &store);
    let mut b = Tab::load(2, &store);
    let url = a.engine.create_doc(&json!({"items": []}), 0).unwrap();
    a.write(&mut store);
    deliver(&mut a, &mut b); // b does not have the doc yet: ignored
    assert!(b.engine.value_json(&url.doc).is_err());
    let problems = b.engine.absorb(records_of(&store, &url.doc), 0);
    assert!(problems.is_empty(), "{problems:?}");
    b.engine.open_doc(&url, 0).unwrap();
    b.write(&mut store);
    (store, a, b, url)
}

#[test]
fn tabs_converge_with_no_relay() {
    let (mut store, mut a, mut b, url) = two_tabs();
    assert_eq!(b.items(&url), Vec::<String>::new());
    a.engine.change(url.doc, &push("from-a"), None, 1).unwrap();
    b.engine.change(url.doc, &push("from-b"), None, 1).unwrap();
    deliver(&mut a, &mut b);
    deliver(&mut b, &mut a);
    a.write(&mut store);
    b.write(&mut store);
    assert_eq!(a.items(&url), ["from-a", "from-b"]);
    assert_eq!(b.items(&url), ["from-a", "from-b"]);
    // Both tabs wrote the same entries under the same keys.
    let (reloaded, problems) = Engine::load([9; 32], store.records());
    assert!(problems.is_empty());
    assert_eq!(
        reloaded.value_json(&url.doc).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_duplicate_is_a_no_op_and_missing_dependencies_wait() {
    let (_store, mut a, mut b, url) = two_tabs();
    // Outputs taken after each change: two entries, two messages.
    a.engine.change(url.doc, &push("one"), None, 1).unwrap();
    a.collect();
    a.engine.change(url.doc, &push("two"), None, 2).unwrap();
    a.collect();
    let messages = std::mem::take(&mut a.outgoing);
    assert_eq!(messages.len(), 2);
    // The second change arrives first: it waits for the first.
    b.engine.received_from_tab(&messages[1], 3).unwrap();
    assert_eq!(b.items(&url), Vec::<String>::new());
    b.engine.received_from_tab(&messages[0], 3).unwrap();
    assert_eq!(b.items(&url), ["one", "two"]);
    b.collect();
    let pending = b.engine.status().pending;
    let batches = b.unwritten.len();
    b.engine.received_from_tab(&messages[0], 4).unwrap();
    b.collect();
    assert_eq!(b.engine.status().pending, pending, "logged once");
    assert_eq!(b.unwritten.len(), batches, "nothing new to write");
}

#[test]
fn a_change_from_a_tab_that_died_is_pushed_by_the_survivor() {
    let (mut store, mut a, mut b, url) = two_tabs();
    a.engine.change(url.doc, &push("orphan"), None, 1).unwrap();
    deliver(&mut a, &mut b);
    // Tab a dies before its log write: only b's write holds the change.
    drop(a);
    b.write(&mut store);
    let (mut survivor, _) = Engine::load([7; 32], store.records());
    assert_eq!(
        survivor.value_json(&url.doc).unwrap()["items"],
        json!(["orphan"])
    );
    // The survivor pushes it (with the creation, also a's and unpushed).
    let mut relay = ModelRelay::default();
    survivor.connected([7; 16], None, 0);
    let mut inbox: Vec<Vec<u8>> = Vec::new();
    for _ in 0..10 {
        for effect in survivor.take_effects() {
            if let Effect::Send(frame) = effect {
                for (_, reply) in relay.handle(0, &frame) {
                    inbox.push(encode_relay(&reply));
                }
            }
        }
        for frame in inbox.drain(..) {
            survivor.received(&frame, 0);
        }
    }
    assert_eq!(survivor.status().pending, 0);
    let on_relay = &relay.logs[&url.doc];
    assert_eq!(on_relay.len(), 2, "creation and the orphaned change");
}

#[test]
fn garbage_unknown_docs_and_tampering_are_handled() {
    let (_store, mut a, mut b, url) = two_tabs();
    assert_eq!(
        b.engine.received_from_tab(&[], 0).unwrap_err().code(),
        "BadTabMessage"
    );
    assert_eq!(
        b.engine
            .received_from_tab(&[1, 0xff, 0xff], 0)
            .unwrap_err()
            .code(),
        "BadTabMessage"
    );
    assert_eq!(
        b.engine.received_from_tab(&[9], 0).unwrap_err().code(),
        "BadTabMessage"
    );
    a.engine.change(url.doc, &push("x"), None, 1).unwrap();
    a.collect();
    let message = a.outgoing.pop().unwrap();
    let mut tampered = message.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        b.engine.received_from_tab(&tampered, 0).unwrap_err().code(),
        "BadDelta"
    );
    let mut longer = message.clone();
    longer.push(0);
    assert_eq!(
        b.engine.received_from_tab(&longer, 0).unwrap_err().code(),
        "BadTabMessage"
    );
    // A tab that does not have the document ignores it.
    let mut stranger = Tab::load(5, &MemoryStore::default());
    stranger.engine.received_from_tab(&message, 0).unwrap();
    stranger.collect();
    assert!(stranger.unwritten.is_empty());
    assert_eq!(b.items(&url), Vec::<String>::new(), "nothing applied");
}

#[test]
fn absorbing_records_is_idempotent_and_adopts_the_outbox() {
    let mut store = MemoryStore::default();
    let mut a = Tab::load(1, &store);
    let mut b = Tab::load(2, &store);
    let url = a.engine.create_doc(&json!({"items": []}), 0).unwrap();
    a.engine
        .change(url.doc, &push("x"), Some("todo.added".into()), 1)
        .unwrap();
    a.write(&mut store);
    for _ in 0..2 {
        let problems = b.engine.absorb(records_of(&store, &url.doc), 2);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(b.items(&url), ["x"]);
        // The creation and the change were logged together, as one entry.
        assert_eq!(b.engine.status().pending, 1, "a's unpushed entry");
    }
    // Absorbing into a document that moved on merges, never loses.
    b.engine.change(url.doc, &push("y"), None, 3).unwrap();
    a.engine.change(url.doc, &push("z"), None, 3).unwrap();
    a.write(&mut store);
    b.engine.absorb(records_of(&store, &url.doc), 4);
    b.collect();
    assert_eq!(b.items(&url), ["x", "y", "z"]);
    // A record stored under a doc the engine has with another key.
    let mut other = Tab::load(3, &MemoryStore::default());
    let mut wrong = records_of(&store, &url.doc);
    for (store, _, bytes) in &mut wrong {
        if *store == Store::Docs {
            let Ok(Record::Doc(mut d)) = Record::decode(bytes) else {
                panic!()
            };
            d.key = [0; 32];
            *bytes = Record::Doc(d).encode();
        }
    }
    other.engine.absorb(records_of(&store, &url.doc), 0);
    let problems = other.engine.absorb(wrong, 0);
    assert_eq!(problems[0].code(), "KeyMismatch");
}

#[test]
fn only_the_tab_allowed_to_compacts() {
    let (mut store, mut a, mut b, url) = two_tabs();
    let policy = CompactionPolicy {
        max_changes: 1,
        max_bytes: 1,
        ..CompactionPolicy::default()
    };
    a.engine.set_compaction(policy);
    b.engine.set_compaction(policy);
    b.engine.set_compaction_enabled(false);
    // Relay deltas are droppable at once: feed b some.
    let snapshots = |store: &MemoryStore| {
        store
            .records()
            .iter()
            .filter(|(s, _, _)| *s == Store::Snapshots)
            .count()
    };
    let mut relay = ModelRelay::default();
    let mut feed = |tab: &mut Tab, store: &mut MemoryStore, conn: usize| {
        tab.engine.connected([conn as u8; 16], None, 0);
        for _ in 0..6 {
            tab.write(store);
            let frames: Vec<_> = tab.frames.drain(..).collect();
            for frame in frames {
                for (to, reply) in relay.handle(conn, &frame) {
                    if to == conn {
                        tab.engine.received(&encode_relay(&reply), 0);
                    }
                }
            }
        }
    };
    a.engine.change(url.doc, &push("x"), None, 1).unwrap();
    feed(&mut a, &mut store, 0);
    assert_eq!(
        snapshots(&store),
        1,
        "a compacts once its entries are acked"
    );
    store.data.retain(|(s, _), _| *s != Store::Snapshots);
    feed(&mut b, &mut store, 1);
    assert_eq!(b.items(&url), ["x"]);
    assert_eq!(snapshots(&store), 0, "b never compacts");
    b.engine.set_compaction_enabled(true);
    b.engine.change(url.doc, &push("y"), None, 2).unwrap();
    feed(&mut b, &mut store, 1);
    assert_eq!(snapshots(&store), 1, "b compacts once allowed");
    let _: Value = b.engine.value_json(&url.doc).unwrap();
}
