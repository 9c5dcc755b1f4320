//! The engine's own cost per change, against raw Automerge, on the
//! automerge-paper trace (one change per transaction).
//!
//! ```text
//! cargo run --release -p syncline-bench --bin engine_cost -- [--txns N] [--rounds R] MODE...
//! ```
//!
//! Modes, each replaying the first `N` transactions (all by default):
//!
//! - `raw`: `splice_text` + `commit_with` a time on an `AutoCommit` (the
//!   engine records each change's time, as Automerge's JS `change` does;
//!   the time is the one the engine is given, transaction index ÷ 1000);
//! - `raw-notime`: the same with `commit()` (time 0 on every change, which
//!   Automerge stores more cheaply);
//! - `raw-extract:B`: the same, plus the change bytes taken out of
//!   Automerge (`get_changes` since the heads before them) every `B`
//!   commits: the part of logging a change no engine built on Automerge
//!   0.12 can avoid (its `commit` encodes the change and drops it);
//! - `engine:B`: `Engine::change` per transaction, the outputs taken (and
//!   their batches reported written) every `B` changes, as a host does
//!   once per microtask or tick;
//! - `engine-nocompact:B`: the same with compaction off
//!   ([`Engine::set_compaction_enabled`]): the per-change path alone,
//!   without the snapshots compaction writes every few hundred changes.
//!
//! The modes run interleaved for `R` rounds (default 5); it prints each
//! mode's median seconds and its ratio to `raw`. Under
//! `valgrind --tool=callgrind` use `--rounds 1` and one mode per run.

use std::time::Instant;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ChangeHash, ObjType};
use serde_json::json;
use syncline_bench::{Trace, load_trace};
use syncline_core::ops::Key;
use syncline_core::{Effect, Engine, Op};

enum Mode {
    Raw { time: bool },
    RawExtract(usize),
    Engine { drain_every: usize, compact: bool },
}

fn parse(mode: &str) -> Mode {
    let every = |s: &str| s.parse::<usize>().expect("a batch size").max(1);
    match mode.split_once(':') {
        None if mode == "raw" => Mode::Raw { time: true },
        None if mode == "raw-notime" => Mode::Raw { time: false },
        Some(("raw-extract", b)) => Mode::RawExtract(every(b)),
        Some(("engine", b)) => Mode::Engine {
            drain_every: every(b),
            compact: true,
        },
        Some(("engine-nocompact", b)) => Mode::Engine {
            drain_every: every(b),
            compact: false,
        },
        _ => panic!(
            "unknown mode {mode}: raw, raw-notime, raw-extract:B, engine:B or engine-nocompact:B"
        ),
    }
}

fn raw(trace: &Trace, txns: usize, time: bool, extract_every: Option<usize>) -> usize {
    let mut doc = AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
    let text = doc
        .put_object(automerge::ROOT, "text", ObjType::Text)
        .unwrap();
    doc.commit();
    let mut since: Vec<ChangeHash> = doc.get_heads();
    let mut extracted = 0;
    for (i, txn) in trace.txns[..txns].iter().enumerate() {
        for (pos, del, ins) in &txn.patches {
            doc.splice_text(&text, *pos, *del as isize, ins).unwrap();
        }
        if time {
            doc.commit_with(CommitOptions::default().with_time((i / 1000) as i64));
        } else {
            doc.commit();
        }
        if let Some(every) = extract_every
            && ((i + 1) % every == 0 || i + 1 == txns)
        {
            for change in doc.get_changes(&since) {
                extracted += std::hint::black_box(change.raw_bytes()).len();
            }
            since = doc.get_heads();
        }
    }
    std::hint::black_box(&doc);
    extracted
}

fn engine(ops: &[Vec<Op>], drain_every: usize, compact: bool) -> usize {
    let mut engine = Engine::new([7; 32]);
    engine.set_compaction_enabled(compact);
    let url = engine.create_doc(&json!({}), 0).unwrap();
    let init = vec![Op::PutText {
        obj: vec![],
        key: Key::Name("text".into()),
        value: String::new(),
    }];
    engine.change(url.doc, &init, None, 0).unwrap();
    let mut batches = 0;
    for (i, batch) in ops.iter().enumerate() {
        engine.change(url.doc, batch, None, i as u64).unwrap();
        if (i + 1) % drain_every == 0 || i + 1 == ops.len() {
            for effect in engine.take_effects() {
                if let Effect::Persist(b) = effect {
                    batches += 1;
                    engine.persisted(std::hint::black_box(b).id, i as u64);
                }
            }
        }
    }
    std::hint::black_box(&engine);
    batches
}

fn main() {
    let mut txns = None;
    let mut rounds = 5;
    let mut modes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--txns" => txns = args.next().and_then(|n| n.parse().ok()),
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
            _ => modes.push(arg),
        }
    }
    if modes.is_empty() {
        modes = vec!["raw".into(), "engine:1".into()];
    }
    let trace = load_trace("automerge-paper");
    let txns = txns.unwrap_or(trace.txns.len()).min(trace.txns.len());
    let ops: Vec<Vec<Op>> = trace.txns[..txns]
        .iter()
        .map(|txn| {
            txn.patches
                .iter()
                .map(|(pos, del, ins)| Op::SpliceText {
                    obj: vec![Key::Name("text".into())],
                    index: *pos as u64,
                    delete: *del as u64,
                    insert: ins.clone(),
                })
                .collect()
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (m, mode) in modes.iter().enumerate() {
            let start = Instant::now();
            match parse(mode) {
                Mode::Raw { time } => std::hint::black_box(raw(&trace, txns, time, None)),
                Mode::RawExtract(every) => {
                    std::hint::black_box(raw(&trace, txns, true, Some(every)))
                }
                Mode::Engine {
                    drain_every,
                    compact,
                } => std::hint::black_box(engine(&ops, drain_every, compact)),
            };
            times[m].push(start.elapsed().as_secs_f64());
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    let base = modes.iter().position(|m| m == "raw").map(|i| medians[i]);
    println!("{txns} transactions, {rounds} rounds, medians:");
    for (mode, secs) in modes.iter().zip(&medians) {
        let ratio = base.map_or(String::new(), |b| format!("  {:.2}× raw", secs / b));
        println!("  {mode:<16} {secs:>8.3} s{ratio}");
    }
}
