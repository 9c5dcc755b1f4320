//! Export and import: a document out as standard Automerge bytes, and a
//! new document in from them, synced through the model relay like any
//! other; bad bytes and unsupported values are typed errors.

#[path = "support/world.rs"]
mod world;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use serde_json::json;
use syncline_core::{Engine, Op, SynclineErrorCode};
use world::{World, shared_doc};

#[test]
fn an_export_loads_in_automerge_and_an_import_syncs_with_its_history() {
    let (mut world, url) = shared_doc(2);
    let now = world.now;
    let ops: Vec<Op> = serde_json::from_value(json!([
        {"op": "insert", "obj": ["items"], "index": 0, "values": ["milk"]}
    ]))
    .unwrap();
    world.replicas[0]
        .engine
        .change(url.doc, &ops, Some("todo.added".into()), now)
        .unwrap();
    world.collect(0);
    world.settle();

    let bytes = world.replicas[0].engine.export_doc(&url.doc).unwrap();
    let mut outside = AutoCommit::load(&bytes).unwrap();
    let items = outside.get(ROOT, "items").unwrap().unwrap().1;
    assert_eq!(outside.length(&items), 1, "the export is the document");
    let exported_history = outside.get_changes(&[]).len();
    // Changed outside Syncline, then imported back as a new document.
    outside.insert(&items, 1, "eggs").unwrap();
    outside.commit();
    let url2 = world.replicas[1]
        .engine
        .import_doc(&outside.save(), world.now)
        .unwrap();
    assert_ne!(url2.doc, url.doc, "an import is a new document");
    world.collect(1);
    world.settle();
    world.replicas[0].engine.open_doc(&url2, world.now).unwrap();
    world.collect(0);
    world.settle();
    for i in 0..2 {
        let engine = &mut world.replicas[i].engine;
        assert_eq!(
            engine.value_json(&url2.doc).unwrap(),
            json!({"items": ["milk", "eggs"]})
        );
        assert_eq!(
            engine.history(&url2.doc).unwrap().len(),
            exported_history + 1,
            "the whole history came along"
        );
    }
    assert_eq!(world.replicas[1].engine.status().pending, 0, "acknowledged");
}

#[test]
fn bad_bytes_and_unsupported_values_are_bad_import_and_create_nothing() {
    let mut engine = Engine::new([3; 32]);
    let error = engine.import_doc(b"not automerge", 0).unwrap_err();
    assert_eq!(error.code(), SynclineErrorCode::BadImport);

    let mut doc = AutoCommit::new();
    let list = doc.put_object(ROOT, "list", ObjType::List).unwrap();
    doc.insert(&list, 0, ScalarValue::Timestamp(1)).unwrap();
    let error = engine.import_doc(&doc.save(), 0).unwrap_err();
    assert_eq!(error.code(), SynclineErrorCode::BadImport);
    assert!(error.to_string().contains("`/list/0`"), "{error}");
    assert!(error.to_string().contains("timestamp"), "{error}");

    let mut doc = AutoCommit::new();
    doc.put(ROOT, "b", ScalarValue::Bytes(vec![1, 2])).unwrap();
    let error = engine.import_doc(&doc.save(), 0).unwrap_err();
    assert_eq!(error.code(), SynclineErrorCode::BadImport);
    assert_eq!(engine.doc_ids().count(), 0, "nothing was created");
    assert!(engine.take_effects().is_empty(), "nothing was written");
}

#[test]
fn an_import_survives_a_restart_from_the_log() {
    let mut world = World::new(1);
    let mut doc = AutoCommit::new();
    let text = doc.put_object(ROOT, "note", ObjType::Text).unwrap();
    doc.splice_text(&text, 0, 0, "hello").unwrap();
    doc.put(ROOT, "n", ScalarValue::counter(2)).unwrap();
    let url = world.replicas[0]
        .engine
        .import_doc(&doc.save(), world.now)
        .unwrap();
    world.collect(0);
    world.write(0);
    world.replicas[0].crash_and_restart();
    assert_eq!(
        world.replicas[0].engine.value_json(&url.doc).unwrap(),
        json!({"note": "hello", "n": 2})
    );
}

/// Whatever the bytes — garbage, a save cut short, a save with a byte
/// flipped — an import returns (a document or `BadImport`), never panics.
#[test]
fn an_import_of_any_bytes_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut doc = AutoCommit::new();
    let list = doc.put_object(ROOT, "items", ObjType::List).unwrap();
    for i in 0..20 {
        doc.insert(&list, i, format!("item {i}")).unwrap();
        doc.commit();
    }
    let text = doc.put_object(ROOT, "note", ObjType::Text).unwrap();
    doc.splice_text(&text, 0, 0, "hello").unwrap();
    let saved = doc.save();
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let mut engine = Engine::new([4; 32]);
    let mut imported = 0;
    for round in 0..3_000 {
        let bytes: Vec<u8> = match round % 3 {
            0 => (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect(),
            1 => saved[..rng.random_range(0..saved.len())].to_vec(),
            _ => {
                let mut bytes = saved.clone();
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
                bytes
            }
        };
        match engine.import_doc(&bytes, 0) {
            Ok(_) => imported += 1,
            Err(e) => assert_eq!(e.code(), SynclineErrorCode::BadImport, "{e}"),
        }
        engine.take_outputs();
    }
    assert!(imported < 3_000, "most of these are refused");
}
