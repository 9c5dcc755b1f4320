//! Latency of one change on a 10,000-item list: `Engine::change` (ops in,
//! Automerge change committed, delta logged and queued) and the document's
//! patches for the UI, p50 and p99 over many single-item edits, against
//! `Automerge` doing the same edit and diff.
//!
//! `cargo bench -p syncline-bench --bench latency`

use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc};
use serde_json::json;
use syncline_core::{Effect, Engine, Op};

const ITEMS: usize = 10_000;
const SAMPLES: usize = 2_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut micros: Vec<f64>) -> f64 {
    micros.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (percentile(&micros, 0.5), percentile(&micros, 0.99));
    println!("{name:<40} p50 {p50:>8.1} µs   p99 {p99:>8.1} µs");
    p50
}

fn main() {
    let items: Vec<serde_json::Value> = (0..ITEMS)
        .map(|i| json!({"title": format!("item {i}"), "done": false}))
        .collect();

    let mut engine = Engine::new([1; 32]);
    let url = engine.create_doc(&json!({ "items": items }), 0).unwrap();
    engine.take_effects();
    engine.patches(&url.doc).unwrap(); // the UI has seen the initial state
    let mut engine_times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let ops: Vec<Op> = serde_json::from_value(json!([
            {"op": "put", "obj": ["items", (i * 7919) % ITEMS], "key": "done", "value": true}
        ]))
        .unwrap();
        let start = Instant::now();
        engine
            .change(url.doc, &ops, Some("todo.done".into()), i as u64)
            .unwrap();
        let patches = engine.patches(&url.doc).unwrap();
        engine_times.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(patches.len(), 1);
        for effect in engine.take_effects() {
            if let Effect::Persist(b) = effect {
                engine.persisted(b.id, 0);
            }
        }
    }

    let mut doc = AutoCommit::new();
    let list = doc
        .put_object(automerge::ROOT, "items", ObjType::List)
        .unwrap();
    for i in 0..ITEMS {
        let item = doc.insert_object(&list, i, ObjType::Map).unwrap();
        doc.put(&item, "title", format!("item {i}")).unwrap();
        doc.put(&item, "done", false).unwrap();
    }
    doc.commit();
    doc.update_diff_cursor();
    let mut raw_times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let start = Instant::now();
        let item = doc.get(&list, (i * 7919) % ITEMS).unwrap().unwrap().1;
        doc.put(&item, "done", true).unwrap();
        doc.commit();
        let patches = doc.diff_incremental();
        raw_times.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(patches.len(), 1);
    }

    println!("change -> patches on a {ITEMS}-item list ({SAMPLES} samples)");
    let ours = report("syncline Engine::change + patches", engine_times);
    let theirs = report("raw Automerge put + commit + diff", raw_times);
    println!("ratio (p50): {:.2}x", ours / theirs);
}
