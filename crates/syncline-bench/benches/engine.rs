//! Throughput: the automerge-paper trace through the engine's op API
//! against raw Automerge; the durable benchmark's `set` change (two map
//! puts) through both, which bounds what any Automerge-based engine can log
//! per second; and seal/open of deltas.
//!
//! `cargo bench -p syncline-bench --bench engine`

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ObjType, ReadDoc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use syncline_bench::{Trace, load_trace};
use syncline_core::{DocKey, Effect, Engine, Op};
use syncline_protocol::DocId;

/// The trace as the engine sees it: one batch of ops per transaction.
fn as_ops(trace: &Trace) -> Vec<Vec<Op>> {
    trace
        .txns
        .iter()
        .map(|txn| {
            txn.patches
                .iter()
                .map(|(pos, del, ins)| Op::SpliceText {
                    obj: vec![syncline_core::ops::Key::Name("text".into())],
                    index: *pos as u64,
                    delete: *del as u64,
                    insert: ins.clone(),
                })
                .collect()
        })
        .collect()
}

/// Every transaction as one change through the engine, effects drained as a
/// host would (batches handed to storage and acknowledged).
fn replay_engine(ops: &[Vec<Op>]) -> Engine {
    let mut engine = Engine::new([7; 32]);
    let url = engine.create_doc(&json!({}), 0).unwrap();
    let init = vec![Op::PutText {
        obj: vec![],
        key: syncline_core::ops::Key::Name("text".into()),
        value: String::new(),
    }];
    engine.change(url.doc, &init, None, 0).unwrap();
    for (i, batch) in ops.iter().enumerate() {
        engine.change(url.doc, batch, None, i as u64).unwrap();
        for effect in engine.take_effects() {
            if let Effect::Persist(b) = effect {
                std::hint::black_box(&b);
                engine.persisted(b.id, i as u64);
            }
        }
    }
    engine
}

/// The same through Automerge directly: one commit per transaction, with
/// the time the engine records for it (Automerge stores a constant time
/// more cheaply; see `src/bin/engine_cost.rs`).
fn replay_raw(trace: &Trace) -> AutoCommit {
    let mut doc = AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
    let text = doc
        .put_object(automerge::ROOT, "text", ObjType::Text)
        .unwrap();
    doc.commit();
    for (i, txn) in trace.txns.iter().enumerate() {
        for (pos, del, ins) in &txn.patches {
            doc.splice_text(&text, *pos, *del as isize, ins).unwrap();
        }
        doc.commit_with(CommitOptions::default().with_time((i / 1000) as i64));
    }
    doc
}

fn paper_trace(c: &mut Criterion) {
    let trace = load_trace("automerge-paper");
    let ops = as_ops(&trace);
    // Both must produce the paper, or the comparison means nothing.
    let engine = replay_engine(&ops);
    let doc = engine.automerge(engine.doc_ids().next().unwrap()).unwrap();
    let text = doc.get(automerge::ROOT, "text").unwrap().unwrap().1;
    assert_eq!(doc.text(&text).unwrap(), trace.end_content);
    let raw = replay_raw(&trace);
    let raw_text = raw.get(automerge::ROOT, "text").unwrap().unwrap().1;
    assert_eq!(raw.text(&raw_text).unwrap(), trace.end_content);

    let mut group = c.benchmark_group("automerge-paper (259,778 edits, one change each)");
    group.sample_size(10);
    group.throughput(Throughput::Elements(trace.txns.len() as u64));
    group.bench_function("raw automerge", |b| b.iter(|| replay_raw(&trace)));
    group.bench_function("syncline engine", |b| b.iter(|| replay_engine(&ops)));
    group.finish();
}

fn seal_open(c: &mut Criterion) {
    let key = DocKey([3; 32]);
    let doc = DocId([1; 16]);
    let mut group = c.benchmark_group("seal/open");
    for size in [100usize, 10_000, 1_000_000] {
        let plain = vec![0x5a; size];
        let sealed = key.seal(&doc, [9; 12], &plain);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("seal {size} B"), |b| {
            b.iter_batched(
                || (),
                |_| key.seal(&doc, [9; 12], &plain),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("open {size} B"), |b| {
            b.iter(|| key.open(&doc, &sealed).unwrap())
        });
    }
    group.finish();
}

/// Browser scenario 1's `set` change (`d.n = i; d.done = i % 2 == 0`), one
/// change per iteration on an ever longer history, as raw Automerge
/// (put, put, commit) and through the engine (change + logging, sealing and
/// the storage batch a host takes).
fn map_set(c: &mut Criterion) {
    let mut group = c.benchmark_group("set two keys, one change");
    group.throughput(Throughput::Elements(1));
    let mut doc = AutoCommit::new();
    let mut i = 0i64;
    group.bench_function("raw automerge", |b| {
        b.iter(|| {
            i += 1;
            doc.put(automerge::ROOT, "n", i).unwrap();
            doc.put(automerge::ROOT, "done", i % 2 == 0).unwrap();
            doc.commit()
        })
    });
    let mut engine = Engine::new([7; 32]);
    let url = engine
        .create_doc(&json!({"n": 0, "done": false}), 0)
        .unwrap();
    let mut n = 0u64;
    group.bench_function("syncline engine", |b| {
        b.iter(|| {
            n += 1;
            let ops: Vec<Op> = serde_json::from_value(json!([
                {"op": "put", "obj": [], "key": "n", "value": n},
                {"op": "put", "obj": [], "key": "done", "value": n.is_multiple_of(2)},
            ]))
            .unwrap();
            engine.change(url.doc, &ops, None, n).unwrap();
            for effect in engine.take_effects() {
                if let Effect::Persist(b) = effect {
                    engine.persisted(std::hint::black_box(b).id, n);
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, paper_trace, map_set, seal_open);
criterion_main!(benches);
