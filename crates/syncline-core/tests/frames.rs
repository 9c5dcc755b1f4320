//! A frame of many deltas (a catch-up page, a `Tentative` fan-out) is
//! applied with one Automerge call, with the per-delta semantics of one
//! call each: every delta applied, a bad one reported under its id and
//! skipped, the cursor moved per sequence, a snapshot among them loaded in
//! its place. See `crate::delta` (module docs) for why.

#[path = "support/world.rs"]
mod world;

use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc};
use syncline_core::store::{Origin, Record};
use syncline_core::{DocUrl, delta};
use syncline_protocol::{DeltaId, PushDelta, RelayFrame, SequencedDelta, encode_relay};
use world::{World, durable_cursor, shared_doc};

/// The lowest unusable sequence in replica `i`'s durable records.
fn durable_unusable(world: &World, i: usize) -> Option<u64> {
    world.replicas[i]
        .store
        .records()
        .iter()
        .filter_map(|(_, _, bytes)| match Record::decode(bytes) {
            Ok(Record::Unusable(u)) => Some(u.from_seq),
            _ => None,
        })
        .min()
}

/// Another device's copy of the document, with its own actor.
fn other_device(world: &World, url: &DocUrl, actor: u8) -> AutoCommit {
    let base = world.replicas[0].engine.automerge(&url.doc).unwrap();
    base.clone().fork().with_actor(ActorId::from([actor; 16]))
}

/// `n` changes on `source`, one item each; returns each as a delta
/// plaintext.
fn changes(source: &mut AutoCommit, n: usize) -> Vec<Vec<u8>> {
    let (_, items) = source.get(ROOT, "items").unwrap().unwrap();
    (0..n)
        .map(|i| {
            let at = source.length(&items);
            source.insert(&items, at, format!("item {i}")).unwrap();
            source.commit();
            let change = source.get_last_local_change().unwrap();
            delta::encode([change.raw_bytes()])
        })
        .collect()
}

/// Sealed relay items for `plains`, numbered from `first`.
fn sequenced(url: &DocUrl, plains: &[Vec<u8>], first: u64) -> Vec<SequencedDelta> {
    plains
        .iter()
        .enumerate()
        .map(|(i, plain)| {
            let mut nonce = [0; 12];
            nonce[..8].copy_from_slice(&(first + i as u64).to_le_bytes());
            SequencedDelta {
                seq: first + i as u64,
                id: url.key.delta_id(plain),
                bytes: url.key.seal(&url.doc, nonce, plain),
            }
        })
        .collect()
}

/// Hands replica 0 one catch-up frame; returns the Automerge calls it took.
fn receive(world: &mut World, url: &DocUrl, items: Vec<SequencedDelta>) -> u64 {
    let frame = encode_relay(&RelayFrame::Deltas {
        doc: url.doc,
        items,
        caught_up: true,
    });
    let before = delta::automerge_calls();
    world.replicas[0].engine.received(&frame, world.now);
    let calls = delta::automerge_calls() - before;
    world.collect(0);
    world.write(0);
    calls
}

fn heads(world: &World, url: &DocUrl) -> Vec<automerge::ChangeHash> {
    world.replicas[0]
        .engine
        .automerge(&url.doc)
        .unwrap()
        .clone()
        .get_heads()
}

#[test]
fn a_catch_up_frame_is_applied_in_one_call() {
    let (mut world, url) = shared_doc(1);
    let head = durable_cursor(&world, 0, &url);
    let mut source = other_device(&world, &url, 0xa1);
    let plains = changes(&mut source, 500);

    let calls = receive(&mut world, &url, sequenced(&url, &plains, head + 1));

    assert_eq!(calls, 1, "one Automerge call for the whole frame");
    assert_eq!(heads(&world, &url), source.get_heads());
    assert_eq!(durable_cursor(&world, 0, &url), head + 500);
    assert!(world.replicas[0].errors.is_empty());
    let logged = world.replicas[0]
        .store
        .records()
        .iter()
        .filter(|(_, _, b)| matches!(Record::decode(b), Ok(Record::Entry(e)) if e.relay_seq > Some(head)))
        .count();
    assert_eq!(logged, 500, "each delta logged with its sequence");
}

#[test]
fn a_bad_delta_in_a_frame_is_reported_under_its_id_and_the_rest_applied() {
    let (mut world, url) = shared_doc(1);
    let head = durable_cursor(&world, 0, &url);
    let mut source = other_device(&world, &url, 0xa2);
    let mut plains = changes(&mut source, 300);
    // Seq head + 101: opens, but holds no Automerge change.
    let garbage = delta::encode([&b"not a change"[..]]);
    plains.insert(100, garbage.clone());
    // Seq head + 202: a change reusing the source's actor and sequence 1
    // with other content. It decodes, but Automerge refuses it, and so the
    // frame's one call: the deltas go again one call each.
    let mut imposter = other_device(&world, &url, 0xa2);
    let (_, items) = imposter.get(ROOT, "items").unwrap().unwrap();
    imposter.insert(&items, 0, "imposter").unwrap();
    imposter.commit();
    let imposter = delta::encode([imposter.get_last_local_change().unwrap().raw_bytes()]);
    plains.insert(201, imposter.clone());

    let calls = receive(&mut world, &url, sequenced(&url, &plains, head + 1));

    assert_eq!(
        world.replicas[0].errors,
        ["BadDelta", "BadDelta"],
        "one error per bad delta"
    );
    assert_eq!(
        calls,
        1 + 301,
        "the failed call for all, then one per decoded delta"
    );
    assert_eq!(heads(&world, &url), source.get_heads(), "the rest applied");
    assert_eq!(
        durable_cursor(&world, 0, &url),
        head + 302,
        "the cursor passes the skipped deltas"
    );
    assert_eq!(durable_unusable(&world, 0), Some(head + 101));
    let logged: Vec<DeltaId> = world.replicas[0]
        .store
        .records()
        .iter()
        .filter_map(|(_, _, b)| match Record::decode(b) {
            Ok(Record::Entry(e)) if e.relay_seq > Some(head) => Some(e.id),
            _ => None,
        })
        .collect();
    assert_eq!(logged.len(), 300);
    for bad in [&garbage, &imposter] {
        assert!(!logged.contains(&url.key.delta_id(bad)), "not logged");
    }
}

#[test]
fn a_bad_delta_reports_the_id_it_came_under() {
    let (mut world, url) = shared_doc(1);
    let head = durable_cursor(&world, 0, &url);
    let mut source = other_device(&world, &url, 0xa3);
    let mut items = sequenced(&url, &changes(&mut source, 20), head + 1);
    items[7].bytes[20] ^= 0xff; // damaged on the way: cannot be opened
    let damaged = items[7].id;
    let frame = encode_relay(&RelayFrame::Deltas {
        doc: url.doc,
        items,
        caught_up: true,
    });
    world.replicas[0].engine.received(&frame, 0);
    let errors: Vec<DeltaId> = world.replicas[0]
        .engine
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            syncline_core::Effect::Error(syncline_core::EngineError::BadDelta { id, .. }) => {
                Some(id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(errors, [damaged]);
    // The deltas after it depend on it, so they wait inside Automerge:
    // the frame's first seven changes are in, the rest are not.
    let doc = world.replicas[0].engine.automerge(&url.doc).unwrap();
    let (_, list) = doc.get(ROOT, "items").unwrap().unwrap();
    assert_eq!(doc.length(&list), 7);
}

#[test]
fn a_snapshot_in_a_frame_is_loaded_after_the_deltas_before_it() {
    let (mut world, url) = shared_doc(1);
    let head = durable_cursor(&world, 0, &url);
    let mut source = other_device(&world, &url, 0xa4);
    let mut plains = changes(&mut source, 50);
    let mut other = other_device(&world, &url, 0xa5);
    changes(&mut other, 10);
    plains.push(delta::encode_snapshot(&other.save()));
    plains.extend(changes(&mut source, 50));

    let calls = receive(&mut world, &url, sequenced(&url, &plains, head + 1));

    assert_eq!(
        calls, 3,
        "the deltas before, the snapshot, the deltas after"
    );
    assert!(world.replicas[0].errors.is_empty());
    source.merge(&mut other).unwrap();
    assert_eq!(heads(&world, &url), source.get_heads());
    assert_eq!(durable_cursor(&world, 0, &url), head + 101);
}

#[test]
fn a_tentative_frame_is_applied_in_one_call_and_a_bad_delta_skipped() {
    let (mut world, url) = shared_doc(1);
    let mut source = other_device(&world, &url, 0xa6);
    let mut plains = changes(&mut source, 200);
    plains.insert(50, delta::encode([&b"not a change"[..]]));
    let mut deltas: Vec<PushDelta> = sequenced(&url, &plains, 1)
        .into_iter()
        .map(|s| PushDelta {
            id: s.id,
            bytes: s.bytes,
        })
        .collect();
    deltas.push(PushDelta {
        id: deltas[3].id,
        bytes: deltas[3].bytes.clone(),
    }); // a repeat within the frame
    let frame = encode_relay(&RelayFrame::Tentative {
        doc: url.doc,
        deltas,
    });
    let before = delta::automerge_calls();
    world.replicas[0].engine.received(&frame, 0);
    assert_eq!(delta::automerge_calls() - before, 1);
    world.collect(0);
    assert_eq!(world.replicas[0].errors, ["BadDelta"]);
    assert_eq!(heads(&world, &url), source.get_heads());
    world.write(0);
    let held = world.replicas[0]
        .store
        .records()
        .iter()
        .filter(|(_, _, b)| {
            matches!(Record::decode(b), Ok(Record::Entry(e)) if e.origin == Origin::Tentative)
        })
        .count();
    assert_eq!(held, 200, "each delta held once");
}

/// Catching up on `FRAME_DELTAS` keystroke deltas (2,000 by default)
/// into a text of 21,000 characters, through the engine, in catch-up pages
/// of `FRAME_PAGE` (1,000, the relay's default page) deltas: one Automerge
/// call per page, and the time it took. The figure in
/// docs/benchmarks/divergence.md: `FRAME_DELTAS=10000 cargo test --release
/// -p syncline-core --test frames keystrokes -- --nocapture`.
#[test]
fn catching_up_on_keystrokes_is_one_call_per_page() {
    let var = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let (n, page) = (var("FRAME_DELTAS", 2_000), var("FRAME_PAGE", 1_000));
    let (mut world, url) = shared_doc(1);
    let head = durable_cursor(&world, 0, &url);
    let mut source = other_device(&world, &url, 0xb1);
    let text = source.put_object(ROOT, "text", ObjType::Text).unwrap();
    let base: String = (0..21_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    source.splice_text(&text, 0, 0, &base).unwrap();
    source.commit();
    let start = source.get_changes(&[]).len();
    let plains: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let at = 10_000 + i % 5_000;
            source.splice_text(&text, at, 0, "x").unwrap();
            source.commit();
            delta::encode([source.get_last_local_change().unwrap().raw_bytes()])
        })
        .collect();
    let setup: Vec<Vec<u8>> = source.get_changes(&[])[..start]
        .iter()
        .map(|c| delta::encode([c.raw_bytes()]))
        .collect();
    receive(&mut world, &url, sequenced(&url, &setup, head + 1));

    let items = sequenced(&url, &plains, head + 1 + setup.len() as u64);
    let frames: Vec<Vec<u8>> = items
        .chunks(page)
        .map(|items| {
            encode_relay(&RelayFrame::Deltas {
                doc: url.doc,
                items: items.to_vec(),
                caught_up: false,
            })
        })
        .collect();
    let mut slowest = std::time::Duration::ZERO;
    let calls = delta::automerge_calls();
    let began = Instant::now();
    for frame in &frames {
        let one = Instant::now();
        world.replicas[0].engine.received(frame, world.now);
        slowest = slowest.max(one.elapsed());
    }
    let took = began.elapsed();
    assert_eq!(
        delta::automerge_calls() - calls,
        frames.len() as u64,
        "one Automerge call per page, not one per delta"
    );
    world.collect(0);
    assert!(world.replicas[0].errors.is_empty());
    assert_eq!(heads(&world, &url), source.get_heads());
    println!(
        "{n} deltas in {} frames: Engine::received took {took:?} in all, {slowest:?} for the slowest frame",
        frames.len()
    );
}
