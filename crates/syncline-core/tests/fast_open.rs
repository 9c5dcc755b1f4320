//! Fast open: compaction stores the document's value beside its snapshot,
//! and `store::fast_values` hands it out only when the log has nothing
//! newer than that snapshot; every other case (a tail, no value, a stale
//! or misplaced value) falls back to loading the CRDT.

use serde_json::json;
use syncline_core::store::{
    FastValue, Record, SnapshotRecordV1, ValueRecord, fast_values, snapshot_digest,
};
use syncline_core::{CompactionPolicy, DocUrl, Effect, Engine, MemoryStore, Op, Store};

fn ops(value: serde_json::Value) -> Vec<Op> {
    serde_json::from_value(value).unwrap()
}

/// Compacts after every logged entry (`compact_every == true`) or never.
fn policy(compact_every: bool) -> CompactionPolicy {
    if compact_every {
        CompactionPolicy {
            max_changes: 1,
            ..CompactionPolicy::default()
        }
    } else {
        CompactionPolicy {
            max_changes: usize::MAX,
            max_bytes: usize::MAX,
            min_ops: u64::MAX,
            ops_divisor: 1,
            idle_ms: None,
        }
    }
}

fn write(engine: &mut Engine, store: &mut MemoryStore) {
    for effect in engine.take_effects() {
        if let Effect::Persist(batch) = effect {
            store.apply(&batch);
            engine.persisted(batch.id, 0);
        }
    }
}

/// A document with a map, a list, a text and a counter, compacted after
/// each change, all written.
fn compacted() -> (Engine, MemoryStore, DocUrl) {
    let mut engine = Engine::new([1; 32]);
    engine.set_compaction(policy(true));
    let mut store = MemoryStore::default();
    let url = engine
        .create_doc(&json!({ "title": "notes", "items": [] }), 1)
        .unwrap();
    write(&mut engine, &mut store);
    let changes = [
        json!([{ "op": "put_text", "obj": [], "key": "body", "value": "hello" }]),
        json!([{ "op": "put_counter", "obj": [], "key": "likes", "value": 1 }]),
        json!([
            { "op": "insert", "obj": ["items"], "index": 0, "values": [{ "n": 1.5, "done": false }, null, "x"] },
            { "op": "splice_text", "obj": ["body"], "index": 5, "insert": " wörld 🌍" },
            { "op": "increment", "obj": [], "key": "likes", "by": 41 },
            { "op": "put", "obj": [], "key": "meta", "value": { "tags": ["a", "b"], "big": 9007199254740991i64 } }
        ]),
    ];
    for (n, change) in changes.into_iter().enumerate() {
        engine
            .change(url.doc, &ops(change), None, 2 + n as u64)
            .unwrap();
        write(&mut engine, &mut store);
    }
    (engine, store, url)
}

fn records_of(store: &MemoryStore, store_name: Store) -> Vec<(String, Vec<u8>)> {
    store
        .records()
        .into_iter()
        .filter(|(s, _, _)| *s == store_name)
        .map(|(_, k, v)| (k, v))
        .collect()
}

/// What a host does at open: decrypted non-entry records, entry keys only.
fn fast(store: &MemoryStore) -> std::collections::BTreeMap<syncline_protocol::DocId, FastValue> {
    let records = store.records();
    let keys: Vec<String> = records
        .iter()
        .filter(|(s, _, _)| *s == Store::Entries)
        .map(|(_, k, _)| k.clone())
        .collect();
    fast_values(&records, keys.iter().map(String::as_str))
}

/// The value a full load shows, as JSON text (the same serializer).
fn loaded_json(store: &MemoryStore, url: &DocUrl) -> String {
    let (engine, problems) = Engine::load([7; 32], store.records());
    assert!(problems.is_empty(), "{problems:?}");
    serde_json::to_string(&engine.value(&url.doc).unwrap()).unwrap()
}

/// Loads the log, which must report exactly one problem: the value record.
fn load_reporting_the_value(store: &MemoryStore) -> Engine {
    let (engine, problems) = Engine::load([7; 32], store.records());
    let one_corrupt_value = matches!(
        &problems[..],
        [syncline_core::EngineError::Corrupt {
            store: "values",
            ..
        }]
    );
    assert!(one_corrupt_value, "{problems:?}");
    engine
}

#[test]
fn compaction_stores_the_value_beside_the_snapshot_in_the_same_batch() {
    let mut engine = Engine::new([1; 32]);
    engine.set_compaction(policy(true));
    let url = engine.create_doc(&json!({ "a": 1 }), 1).unwrap();
    let batches: Vec<_> = engine
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Persist(b) => Some(b),
            _ => None,
        })
        .collect();
    let with_snapshot: Vec<_> = batches
        .iter()
        .filter(|b| b.puts.iter().any(|(s, _, _)| *s == Store::Snapshots))
        .collect();
    let [batch] = &with_snapshot[..] else {
        panic!("one compaction batch expected: {batches:?}");
    };
    let snapshot = batch
        .puts
        .iter()
        .find(|(s, _, _)| *s == Store::Snapshots)
        .unwrap();
    let value = batch
        .puts
        .iter()
        .find(|(s, _, _)| *s == Store::Values)
        .expect("the value is in the snapshot's batch");
    let (Ok(Record::Snapshot(snapshot)), Ok(Record::Value(value))) =
        (Record::decode(&snapshot.2), Record::decode(&value.2))
    else {
        panic!("a snapshot and a value record expected");
    };
    assert_eq!(value.doc, url.doc);
    assert_eq!(value.snapshot, snapshot_digest(&snapshot.bytes));
    assert_eq!(value.json, r#"{"a":1}"#);
}

#[test]
fn a_log_with_nothing_newer_than_the_snapshot_opens_with_exactly_the_loaded_value() {
    let (_, store, url) = compacted();
    let fast = fast(&store);
    let value = fast.get(&url.doc).expect("no tail: the value is available");
    assert_eq!(value.url, url, "with the document's key, to check the URL");
    // Byte for byte what a full load serializes: same keys, same order,
    // text as a string, counter as a number.
    assert_eq!(value.json, loaded_json(&store, &url));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&value.json).unwrap(),
        json!({
            "body": "hello wörld 🌍",
            "items": [{ "done": false, "n": 1.5 }, null, "x"],
            "likes": 42,
            "meta": { "big": 9007199254740991i64, "tags": ["a", "b"] },
            "title": "notes",
        })
    );
    assert!(
        !records_of(&store, Store::Entries).is_empty(),
        "the outbox entries are kept (covered), and do not count as a tail"
    );
}

#[test]
fn an_entry_newer_than_the_snapshot_means_a_full_load() {
    let (mut engine, mut store, url) = compacted();
    assert!(fast(&store).contains_key(&url.doc), "no tail yet");
    engine.set_compaction(policy(false));
    engine
        .change(
            url.doc,
            &ops(json!([{ "op": "put", "obj": [], "key": "late", "value": true }])),
            None,
            9,
        )
        .unwrap();
    write(&mut engine, &mut store);
    assert!(fast(&store).is_empty(), "a tail: no fast value");
    assert!(loaded_json(&store, &url).contains(r#""late":true"#));
}

#[test]
fn a_snapshot_without_a_value_loads_as_before() {
    let (_, mut store, url) = compacted();
    let expected = loaded_json(&store, &url);
    assert_eq!(fast(&store)[&url.doc].json, expected);
    // Written before this change: no value record...
    store.data.retain(|(s, _), _| *s != Store::Values);
    assert!(fast(&store).is_empty());
    assert_eq!(loaded_json(&store, &url), expected);
    // ...or an old-format snapshot beside a value of another snapshot.
    let (_, mut store, url) = compacted();
    let Ok(Record::Snapshot(snapshot)) =
        Record::decode(&store.data[&(Store::Snapshots, url.doc.to_string())])
    else {
        panic!("a snapshot expected");
    };
    let old = Record::SnapshotV1(SnapshotRecordV1 {
        doc: url.doc,
        bytes: snapshot.bytes,
    });
    store
        .data
        .insert((Store::Snapshots, url.doc.to_string()), old.encode());
    assert!(fast(&store).is_empty(), "a V1 snapshot has no covers");
}

#[test]
fn a_value_of_another_snapshot_or_document_is_not_used() {
    let (_, mut store, url) = compacted();
    let key = (Store::Values, url.doc.to_string());
    let Ok(Record::Value(value)) = Record::decode(&store.data[&key]) else {
        panic!("a value record expected");
    };
    // A stale value (its snapshot was replaced without it): not used, not
    // an error.
    let stale = ValueRecord {
        snapshot: [0; 32],
        ..value.clone()
    };
    store
        .data
        .insert(key.clone(), Record::Value(stale).encode());
    assert!(fast(&store).is_empty());
    let expected = r#""likes":42"#;
    assert!(loaded_json(&store, &url).contains(expected));

    // Another document's value stored under this one's key: not used, and
    // the load reports it.
    let other = ValueRecord {
        doc: syncline_protocol::DocId([9; 16]),
        json: r#"{"evil":true}"#.into(),
        ..value
    };
    store.data.insert(key, Record::Value(other).encode());
    assert!(fast(&store).is_empty());
    let engine = load_reporting_the_value(&store);
    let json = serde_json::to_string(&engine.value(&url.doc).unwrap()).unwrap();
    assert!(json.contains(expected) && !json.contains("evil"));
}

#[test]
fn a_garbled_value_record_is_skipped_and_reported() {
    let (_, mut store, url) = compacted();
    store
        .data
        .insert((Store::Values, url.doc.to_string()), vec![1, 0xff, 0xff]);
    assert!(fast(&store).is_empty());
    load_reporting_the_value(&store);
}

#[test]
fn deleting_a_document_deletes_its_value() {
    let (mut engine, mut store, url) = compacted();
    assert!(!records_of(&store, Store::Values).is_empty());
    engine.delete_doc(url.doc).unwrap();
    write(&mut engine, &mut store);
    assert!(records_of(&store, Store::Values).is_empty());
    assert!(records_of(&store, Store::Snapshots).is_empty());
}
