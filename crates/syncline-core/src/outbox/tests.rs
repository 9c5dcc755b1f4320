//! The outbox's invariants: what each operation keeps true, and that a
//! violation is caught in debug builds.

use super::*;

const A: DocId = DocId([1; 16]);
const B: DocId = DocId([2; 16]);

fn entry(doc: DocId, n: u8, origin: Origin) -> LogEntry {
    LogEntry {
        doc,
        id: DeltaId([n; 32]),
        bytes: vec![n],
        time_ms: 0,
        message: None,
        origin,
        relay_seq: None,
    }
}

/// Emits a batch and logs `n` of `doc` in it.
fn log(outbox: &mut Outbox, doc: DocId, n: u8) {
    outbox.next_batch(0);
    assert!(outbox.log(entry(doc, n, Origin::Local)));
}

#[test]
fn stages_move_counts_from_unsaved_to_pending_to_gone() {
    let mut outbox = Outbox::default();
    outbox.start_burst(A, Vec::new(), 0);
    assert_eq!(outbox.counts(None), (1, 0), "an unlogged burst is unsaved");
    assert_eq!(outbox.take_bursts().len(), 1);
    log(&mut outbox, A, 1);
    log(&mut outbox, B, 2);
    assert_eq!(outbox.counts(None), (2, 0));
    assert_eq!(outbox.counts(Some(&A)), (1, 0));
    assert!(outbox.written(1), "entry 1 became durable");
    assert_eq!(outbox.counts(None), (1, 1));
    assert!(!outbox.written(1), "nothing new");
    assert!(outbox.written(99), "capped at the last batch emitted");
    assert_eq!(outbox.durable(), 2);
    assert_eq!(outbox.counts(None), (0, 2));
    let retired = outbox.retire(&A, &[DeltaId([1; 32]), DeltaId([9; 32])]);
    assert_eq!(retired, vec![entry(A, 1, Origin::Local)]);
    assert_eq!(outbox.counts(None), (0, 1));
    assert!(!outbox.contains(&A, &DeltaId([1; 32])));
    outbox.check();
}

#[test]
fn held_deltas_are_neither_unsaved_nor_pending_and_keep_their_clock() {
    let mut outbox = Outbox::default();
    outbox.next_batch(0);
    assert!(outbox.hold(entry(A, 1, Origin::Tentative), 100));
    assert_eq!(outbox.counts(None), (0, 0));
    assert!(
        !outbox.may_push(0, 100 + RESEND_AFTER_MS - 1),
        "its author's turn"
    );
    assert!(outbox.may_push(0, 100 + RESEND_AFTER_MS));
    outbox.disconnected();
    assert_eq!(outbox.get(0).pushed_at, Some(100), "the clock survives");
    assert_eq!(outbox.first_unpushed(None), None);
    assert_eq!(
        outbox.first_due(100 + RESEND_AFTER_MS, RESEND_AFTER_MS),
        Some(0)
    );
}

#[test]
fn an_entry_waits_for_the_write_of_an_earlier_one_of_its_document() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, B, 2);
    log(&mut outbox, A, 3);
    assert!(
        outbox.may_push(0, 0),
        "nothing earlier: pushed beside its write"
    );
    assert!(
        outbox.may_push(1, 0),
        "another document's write is no reason"
    );
    assert!(!outbox.may_push(2, 0), "entry 1 of A is unwritten");
    outbox.mark_pushed(0, 0);
    outbox.mark_pushed(1, 0);
    outbox.written(1);
    assert!(outbox.may_push(2, 0), "entry 1 of A is durable now");
    outbox.mark_pushed(2, 0);
    outbox.check();
    // Or the relay acknowledges the earlier one before it is written.
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, A, 2);
    assert!(!outbox.may_push(1, 0));
    outbox.retire(&A, &[DeltaId([1; 32])]);
    assert!(outbox.may_push(0, 0));
}

#[test]
fn adopted_entries_are_durable_and_never_doubled() {
    let mut outbox = Outbox::default();
    assert!(outbox.adopt(entry(A, 1, Origin::Local)));
    assert!(!outbox.adopt(entry(A, 1, Origin::Local)), "known already");
    assert_eq!(outbox.counts(None), (0, 1));
    log(&mut outbox, A, 2);
    assert!(outbox.may_push(1, 0), "the adopted entry is durable");
    assert_eq!(
        outbox.remove_doc(&A),
        vec![DeltaId([1; 32]), DeltaId([2; 32])]
    );
    assert_eq!((outbox.len(), outbox.counts(None)), (0, (0, 0)));
    outbox.check();
}

#[test]
fn disconnecting_unpushes_local_entries() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    outbox.mark_pushed(0, 5);
    assert_eq!(outbox.first_unpushed(None), None);
    outbox.disconnected();
    assert_eq!(outbox.first_unpushed(Some(&A)), Some(0));
    assert_eq!(outbox.first_unpushed(Some(&B)), None);
}

// Violations: caught by debug assertions (these tests need them).

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "added twice")]
fn a_duplicate_entry_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, A, 1);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "earlier entry of its document is unwritten")]
fn pushing_past_an_unwritten_earlier_entry_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, A, 2);
    outbox.mark_pushed(1, 0);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "batch is emitted first")]
fn an_entry_of_a_batch_not_emitted_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    outbox.add(entry(A, 2, Origin::Local), None, 5);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "out of batch order")]
fn entries_out_of_batch_order_are_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, B, 2);
    outbox.entries.swap(0, 1);
    outbox.check();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "durable batch past emitted")]
fn a_durable_batch_never_emitted_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    outbox.durable = 2;
    outbox.check();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "pushed before its write")]
fn a_state_that_broke_the_push_rule_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    log(&mut outbox, A, 2);
    outbox.entries[1].pushed_at = Some(0);
    outbox.check();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "unwritten counts disagree")]
fn bookkeeping_that_drifts_is_caught() {
    let mut outbox = Outbox::default();
    log(&mut outbox, A, 1);
    outbox.unwritten.clear();
    outbox.check();
}

#[test]
fn the_backlog_counts_the_bytes_of_batches_not_yet_durable() {
    let mut outbox = Outbox::default();
    assert_eq!(outbox.next_batch(100), 1);
    assert_eq!(outbox.next_batch(50), 2);
    assert_eq!(outbox.next_batch(7), 3);
    assert_eq!(outbox.backlog_bytes(), 157);
    outbox.written(2); // every batch up to 2
    assert_eq!(outbox.backlog_bytes(), 7);
    outbox.written(1); // old news: changes nothing
    assert_eq!(outbox.backlog_bytes(), 7);
    outbox.written(9); // capped at the last batch emitted
    assert_eq!(outbox.backlog_bytes(), 0);
    outbox.check();
}

#[test]
fn which_entries_wait_is_found_in_one_pass() {
    // A replica's own offline edits, written, then a catch-up's worth of
    // another replica's held deltas of the same document, their batch not
    // written yet: of those, only the first may go before that write.
    let n = 40_000usize;
    let id = |i: usize| DeltaId(std::array::from_fn(|b| (i >> (8 * (b % 4))) as u8));
    let mut outbox = Outbox::default();
    outbox.next_batch(0);
    for i in 0..n {
        assert!(outbox.log(LogEntry {
            id: id(i),
            ..entry(A, 0, Origin::Local)
        }));
    }
    outbox.written(1);
    outbox.next_batch(0);
    for i in n..2 * n {
        let held = LogEntry {
            id: id(i),
            ..entry(A, 0, Origin::Tentative)
        };
        assert!(outbox.hold(held, 0));
    }
    outbox.check();
    // Asked after every drain (`Engine::next_deadline`) and on every push.
    // A scan of the earlier entries for each entry took seconds here.
    let started = std::time::Instant::now();
    assert_eq!(outbox.pushed().count(), 1);
    let pushable: Vec<usize> = outbox.pushable(0..2 * n, RESEND_AFTER_MS).collect();
    assert_eq!(pushable, (0..=n).collect::<Vec<_>>());
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(1),
        "{} entries took {took:?}: a scan per entry",
        2 * n
    );
}
