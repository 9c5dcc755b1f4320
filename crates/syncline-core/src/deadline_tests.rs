//! [`Engine::next_deadline`] under simulated time: ticking exactly at the
//! deadline does the due work, ticking before it does nothing, and after
//! a tick the deadline is always later than the tick.

use serde_json::json;
use syncline_protocol::{
    ClientFrame, ErrorCode, Limits, PROTOCOL_VERSION, RelayFrame, decode_client, encode_relay,
};

use crate::access::TOKEN_RETRY_BASE_MS;
use crate::engine::{Effect, Engine, Output};
use crate::presence::PRESENCE_REFRESH_MS;
use crate::sync::{HANDSHAKE_TIMEOUT_MS, RESEND_AFTER_MS, RESYNC_IDLE_MS};
use crate::{CompactionPolicy, DocId};

const T0: u64 = 1_000_000;

fn welcome() -> Vec<u8> {
    encode_relay(&RelayFrame::Welcome {
        version: PROTOCOL_VERSION,
        epoch: [3; 16],
        limits: Limits {
            max_frame_bytes: 1 << 22,
            max_deltas_per_frame: 256,
        },
    })
}

/// What the engine asked for, with batches reported durable at `now`.
fn outputs(engine: &mut Engine, now: u64) -> Vec<Output> {
    let outputs = engine.take_outputs();
    for output in &outputs {
        if let Output::Effect(Effect::Persist(batch)) = output {
            engine.persisted(batch.id, now);
        }
    }
    outputs
}

/// The frames sent, decoded.
fn sent(outputs: &[Output]) -> Vec<ClientFrame> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Effect(Effect::Send(bytes)) => decode_client(bytes).ok(),
            _ => None,
        })
        .collect()
}

/// Ticks at `now`, checks the next deadline is later, returns the outputs.
fn tick(engine: &mut Engine, now: u64) -> Vec<Output> {
    engine.tick(now);
    if let Some(deadline) = engine.next_deadline() {
        assert!(
            deadline > now,
            "after tick({now}) the deadline is {deadline}"
        );
    }
    outputs(engine, now)
}

/// An engine with compaction off, welcomed by an open relay at `T0`, with
/// one document whose first push went out at `T0`.
fn ready_with_doc(tokens: bool) -> (Engine, DocId) {
    let mut engine = Engine::new([1; 32]);
    engine.set_compaction_enabled(false);
    engine.set_tokens_required(tokens);
    engine.connected([2; 16], None, T0);
    engine.received(&welcome(), T0);
    let url = engine.create_doc(&json!({"n": 1}), T0).unwrap();
    outputs(&mut engine, T0);
    (engine, url.doc)
}

#[test]
fn nothing_to_do_means_no_deadline() {
    let mut engine = Engine::new([1; 32]);
    assert_eq!(engine.next_deadline(), None);
    engine.set_compaction_enabled(false);
    engine.create_doc(&json!({}), T0).unwrap();
    outputs(&mut engine, T0);
    assert_eq!(engine.next_deadline(), None, "offline, compaction off");
}

#[test]
fn the_handshake_timeout_fires_exactly_at_its_deadline() {
    let mut engine = Engine::new([1; 32]);
    engine.connected([2; 16], None, T0);
    outputs(&mut engine, T0);
    let deadline = T0 + HANDSHAKE_TIMEOUT_MS;
    assert_eq!(engine.next_deadline(), Some(deadline));
    let disconnects = |outputs: &[Output]| {
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Effect(Effect::Disconnect)))
            .count()
    };
    assert_eq!(disconnects(&tick(&mut engine, deadline - 1)), 0);
    assert_eq!(disconnects(&tick(&mut engine, deadline)), 1);
    // A host that does not act is asked again a timeout later, not at once.
    assert_eq!(
        engine.next_deadline(),
        Some(deadline + HANDSHAKE_TIMEOUT_MS)
    );
    engine.disconnected();
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn an_unacknowledged_push_and_a_stalled_subscription_are_redone_at_their_deadline() {
    let (mut engine, doc) = ready_with_doc(false);
    let deadline = T0 + RESEND_AFTER_MS.min(HANDSHAKE_TIMEOUT_MS);
    assert_eq!(engine.next_deadline(), Some(deadline));
    assert!(sent(&tick(&mut engine, deadline - 1)).is_empty());
    let frames = sent(&tick(&mut engine, deadline));
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ClientFrame::SignedPush { doc: d, .. } if *d == doc)),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ClientFrame::Subscribe { .. }))
    );
    assert_eq!(engine.next_deadline(), Some(deadline + RESEND_AFTER_MS));
}

#[test]
fn an_idle_caught_up_document_is_subscribed_again_at_its_deadline() {
    let (mut engine, doc) = ready_with_doc(false);
    let heard = T0 + 5;
    let caught_up = RelayFrame::Deltas {
        doc,
        items: Vec::new(),
        caught_up: true,
    };
    engine.received(&encode_relay(&caught_up), heard);
    let pushed: Vec<_> = (0..engine.outbox.len())
        .map(|i| engine.outbox.get(i).entry().id)
        .collect();
    let ack = RelayFrame::Ack {
        doc,
        ids: pushed,
        seq: 1,
    };
    engine.received(&encode_relay(&ack), heard);
    outputs(&mut engine, heard);
    assert_eq!(engine.status().pending, 0);
    let deadline = heard + RESYNC_IDLE_MS;
    assert_eq!(engine.next_deadline(), Some(deadline));
    assert!(sent(&tick(&mut engine, deadline - 1)).is_empty());
    let frames = sent(&tick(&mut engine, deadline));
    assert!(
        matches!(frames.as_slice(), [ClientFrame::Subscribe { doc: d, .. }] if *d == doc),
        "{frames:?}"
    );
}

#[test]
fn a_refused_document_is_asked_for_again_at_its_retry() {
    let (mut engine, doc) = ready_with_doc(true);
    engine.token_failed(doc, "down".into(), T0);
    outputs(&mut engine, T0);
    let retry_at = engine.next_deadline().expect("a retry");
    assert!((T0..=T0 + TOKEN_RETRY_BASE_MS).contains(&retry_at));
    let wanted = |outputs: &[Output]| {
        outputs
            .iter()
            .any(|o| matches!(o, Output::TokenWanted { doc: d } if *d == doc))
    };
    if retry_at > T0 {
        assert!(!wanted(&tick(&mut engine, retry_at - 1)));
    }
    assert!(wanted(&tick(&mut engine, retry_at)));
    // Waiting for the host's answer: no timer of its own.
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn presence_is_refreshed_at_its_deadline() {
    let (mut engine, doc) = ready_with_doc(false);
    let caught_up = RelayFrame::Deltas {
        doc,
        items: Vec::new(),
        caught_up: true,
    };
    engine.received(&encode_relay(&caught_up), T0);
    let ids: Vec<_> = (0..engine.outbox.len())
        .map(|i| engine.outbox.get(i).entry().id)
        .collect();
    engine.received(&encode_relay(&RelayFrame::Ack { doc, ids, seq: 1 }), T0);
    let at = T0 + 100;
    engine.set_presence(doc, b"here".to_vec(), at).unwrap();
    outputs(&mut engine, at);
    let deadline = at + PRESENCE_REFRESH_MS;
    assert_eq!(engine.next_deadline(), Some(deadline));
    assert!(sent(&tick(&mut engine, deadline - 1)).is_empty());
    let frames = sent(&tick(&mut engine, deadline));
    assert!(
        matches!(frames.as_slice(), [ClientFrame::SignedPresence { .. }]),
        "{frames:?}"
    );
}

#[test]
fn a_document_that_may_not_be_written_has_no_push_deadline() {
    let (mut engine, doc) = ready_with_doc(false);
    let read_only = RelayFrame::DocError {
        doc,
        code: ErrorCode::ReadOnly,
        message: "read token".into(),
    };
    engine.received(&encode_relay(&read_only), T0 + 1);
    outputs(&mut engine, T0 + 1);
    // Only the subscription's deadline is left; once it is redone, the
    // unpushable entry keeps no deadline in the past.
    let deadline = T0 + HANDSHAKE_TIMEOUT_MS;
    assert_eq!(engine.next_deadline(), Some(deadline));
    let frames = sent(&tick(&mut engine, deadline));
    assert!(
        frames
            .iter()
            .all(|f| !matches!(f, ClientFrame::SignedPush { .. })),
        "{frames:?}"
    );
    tick(&mut engine, deadline + RESEND_AFTER_MS);
}

#[test]
fn idle_compaction_happens_at_the_end_of_the_quiet_period() {
    let mut engine = Engine::new([1; 32]);
    engine.set_compaction(CompactionPolicy {
        idle_ms: Some(2_000),
        ..CompactionPolicy::default()
    });
    engine.create_doc(&json!({"n": 1}), T0).unwrap();
    outputs(&mut engine, T0);
    // The quiet period starts at the next tick: due now.
    assert_eq!(engine.next_deadline(), Some(0));
    let persists = |outputs: &[Output]| {
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Effect(Effect::Persist(_))))
            .count()
    };
    assert_eq!(persists(&tick(&mut engine, T0 + 10)), 0);
    let deadline = T0 + 10 + 2_000;
    assert_eq!(engine.next_deadline(), Some(deadline));
    assert_eq!(persists(&tick(&mut engine, deadline - 1)), 0);
    assert_eq!(persists(&tick(&mut engine, deadline)), 1, "the snapshot");
    assert_eq!(engine.next_deadline(), None);
}
