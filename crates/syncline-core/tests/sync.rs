//! The engine against a model relay: convergence, offline edits, crashes,
//! acks, a relay that lost its log, and bad input.

#[path = "support/model_relay.rs"]
mod model_relay;

use model_relay::Net;
use serde_json::json;
use syncline_core::{Engine, EngineError, Op, Store};
use syncline_protocol::{DeltaId, DocId, RelayFrame, SequencedDelta, encode_relay};

const DOC: DocId = DocId([9; 16]);

fn push(item: &str) -> Vec<Op> {
    // Append at the end: the index is resolved by the caller's view.
    serde_json::from_value(
        json!([{ "op": "insert", "obj": ["items"], "index": 0, "values": [item] }]),
    )
    .unwrap()
}

fn items(net: &Net, i: usize) -> Vec<String> {
    let v = net.replicas[i].engine.value_json(&DOC).unwrap();
    let mut items: Vec<String> = serde_json::from_value(v["items"].clone()).unwrap_or_default();
    items.sort();
    items
}

#[test]
fn two_replicas_converge_and_acks_empty_the_outbox() {
    let mut net = Net::new(2);
    net.connect(0);
    net.connect(1);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": []}), 0)
        .unwrap();
    net.settle();
    assert!(!net.replicas[1].engine.open_doc(DOC));
    net.settle();
    net.replicas[1]
        .engine
        .change(DOC, &push("b"), Some("todo.added".into()), 5)
        .unwrap();
    net.settle();
    assert_eq!(items(&net, 0), ["b"]);
    assert_eq!(items(&net, 1), ["b"]);
    assert_eq!(net.replicas[0].engine.status().pending, 0);
    assert_eq!(net.replicas[1].engine.status().pending, 0);
    assert!(net.replicas[0].changed.contains(&DOC));
}

#[test]
fn offline_edits_on_both_sides_converge_after_reconnect() {
    let mut net = Net::new(2);
    net.connect(0);
    net.connect(1);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": []}), 0)
        .unwrap();
    net.settle();
    net.replicas[1].engine.open_doc(DOC);
    net.settle();
    net.disconnect(0);
    net.disconnect(1);
    net.replicas[0]
        .engine
        .change(DOC, &push("from-a"), None, 1)
        .unwrap();
    net.replicas[1]
        .engine
        .change(DOC, &push("from-b"), None, 1)
        .unwrap();
    net.settle();
    assert_eq!(net.replicas[0].engine.status().pending, 1);
    net.connect(0);
    net.connect(1);
    net.settle();
    assert_eq!(items(&net, 0), ["from-a", "from-b"]);
    assert_eq!(items(&net, 1), ["from-a", "from-b"]);
}

#[test]
fn a_crash_loses_only_what_was_never_written_and_the_outbox_survives() {
    let mut net = Net::new(2);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": []}), 0)
        .unwrap();
    net.replicas[0]
        .engine
        .change(DOC, &push("durable"), None, 1)
        .unwrap();
    net.replicas[0].write();
    net.replicas[0]
        .engine
        .change(DOC, &push("lost"), None, 2)
        .unwrap();
    net.replicas[0].crash_and_restart();
    assert_eq!(items(&net, 0), ["durable"]);
    assert_eq!(
        net.replicas[0].engine.status().pending,
        2,
        "creation + durable change"
    );
    // Back online, the restored outbox reaches the other replica.
    net.connect(0);
    net.connect(1);
    net.replicas[1].engine.open_doc(DOC);
    net.settle();
    assert_eq!(items(&net, 1), ["durable"]);
    assert_eq!(net.replicas[0].engine.status().pending, 0);
    // Acks are durable too: after another restart nothing is pending.
    net.replicas[0].crash_and_restart();
    assert_eq!(net.replicas[0].engine.status().pending, 0);
}

#[test]
fn cursors_survive_restart_and_catch_up_resumes_from_them() {
    let mut net = Net::new(2);
    net.connect(0);
    net.connect(1);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": []}), 0)
        .unwrap();
    net.replicas[1].engine.open_doc(DOC);
    net.settle();
    net.replicas[0]
        .engine
        .change(DOC, &push("one"), None, 1)
        .unwrap();
    net.settle();
    net.replicas[1].crash_and_restart();
    assert_eq!(items(&net, 1), ["one"]);
    net.relay.disconnect(1);
    net.replicas[0]
        .engine
        .change(DOC, &push("two"), None, 2)
        .unwrap();
    net.settle();
    net.connect(1);
    net.settle();
    assert_eq!(items(&net, 1), ["one", "two"]);
}

#[test]
fn a_relay_that_lost_its_log_gets_everything_back() {
    let mut net = Net::new(2);
    net.connect(0);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": []}), 0)
        .unwrap();
    net.replicas[0]
        .engine
        .change(DOC, &push("kept"), None, 1)
        .unwrap();
    net.settle();
    // The relay is replaced by an empty one with a new epoch.
    net.disconnect(0);
    net.relay = model_relay::ModelRelay {
        epoch: [1; 16],
        ..Default::default()
    };
    net.connect(0);
    net.settle();
    net.connect(1);
    net.replicas[1].engine.open_doc(DOC);
    net.settle();
    assert_eq!(items(&net, 1), ["kept"]);
}

#[test]
fn bad_deltas_from_the_relay_are_reported_and_skipped() {
    let mut net = Net::new(1);
    net.connect(0);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": ["x"]}), 0)
        .unwrap();
    net.settle();
    let garbage = vec![1, 2, 3];
    let frames = [
        RelayFrame::Deltas {
            doc: DOC,
            items: vec![SequencedDelta {
                seq: 50,
                id: DeltaId([0; 32]),
                bytes: garbage.clone(),
            }],
            caught_up: true,
        },
        RelayFrame::Deltas {
            doc: DOC,
            items: vec![SequencedDelta {
                seq: 51,
                id: DeltaId(sha256(&garbage)),
                bytes: garbage,
            }],
            caught_up: true,
        },
    ];
    let engine = &mut net.replicas[0].engine;
    for frame in &frames {
        engine.received(&encode_relay(frame), 0);
    }
    engine.received(&[0xff, 0xff], 0);
    net.replicas[0].collect();
    assert_eq!(net.replicas[0].errors, ["BadDelta", "BadDelta", "Protocol"]);
    assert_eq!(
        net.replicas[0].engine.value_json(&DOC).unwrap(),
        json!({"items": ["x"]})
    );
}

#[test]
fn a_corrupt_record_is_reported_and_the_rest_loads() {
    let mut net = Net::new(1);
    net.replicas[0]
        .engine
        .create_doc(DOC, &json!({"items": ["x"]}), 0)
        .unwrap();
    net.replicas[0].write();
    let mut records = net.replicas[0].store.records();
    records.push((Store::Entries, "bogus".into(), vec![1, 0xff]));
    let (engine, problems) = Engine::load([3; 16], records);
    assert!(matches!(
        &problems[..],
        [EngineError::Corrupt {
            store: "entries",
            ..
        }]
    ));
    assert_eq!(engine.value_json(&DOC).unwrap(), json!({"items": ["x"]}));
}

#[test]
fn changes_to_unknown_docs_and_bad_ops_are_typed_errors() {
    let mut engine = Engine::new([1; 16]);
    assert_eq!(
        engine.change(DOC, &push("x"), None, 0).unwrap_err().code(),
        "DocNotFound"
    );
    engine.create_doc(DOC, &json!({"items": []}), 0).unwrap();
    let bad: Vec<Op> = serde_json::from_value(json!([
        { "op": "insert", "obj": ["items"], "index": 0, "values": ["ok"] },
        { "op": "put", "obj": ["missing"], "key": "a", "value": 1 }
    ]))
    .unwrap();
    assert_eq!(
        engine.change(DOC, &bad, None, 0).unwrap_err().code(),
        "BadOp"
    );
    assert_eq!(
        engine.value_json(&DOC).unwrap(),
        json!({"items": []}),
        "rolled back whole"
    );
    assert_eq!(
        engine.create_doc(DOC, &json!({}), 0).unwrap_err().code(),
        "DocExists"
    );
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
