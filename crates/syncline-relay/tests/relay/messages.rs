//! Ephemeral messages (protocol version 4) through the real relay process:
//! relayed to the document's other version 4 subscribers (or only to the
//! addressee), never stored, bounded in size and rate, acted on only with
//! a proof of the document key.

use syncline_protocol::{ClientFrame, ErrorCode, RelayFrame};
use syncline_relay::test_docs::message;

use crate::common::{Client, RelayProcess, doc, get_metric};

fn relayed(from: u8, to: Option<[u8; 16]>, bytes: &[u8]) -> RelayFrame {
    RelayFrame::Message {
        doc: doc(1),
        from: [from; 16],
        to,
        bytes: bytes.to_vec(),
    }
}

#[tokio::test]
async fn a_message_reaches_the_other_subscribers_and_its_addressee_only() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let url = relay.url();
    let mut alice = Client::greeted_current(&url, 0xa).await;
    let mut bob = Client::greeted_current(&url, 0xb).await;
    let mut carol = Client::greeted_current(&url, 0xc).await;
    let (mut old, _) = Client::greeted_with(&url, 3, [0xd; 16], None).await;
    let mut outsider = Client::greeted_current(&url, 0xe).await;
    for client in [&mut alice, &mut bob, &mut carol, &mut old] {
        client.subscribe(doc(1), 0).await;
    }
    outsider.subscribe(doc(2), 0).await;

    alice.send(&message(1, &[0xa; 16], None, b"hi all")).await;
    assert_eq!(bob.recv().await, relayed(0xa, None, b"hi all"));
    assert_eq!(carol.recv().await, relayed(0xa, None, b"hi all"));
    // Not echoed, not to version 3, not to another document's subscribers.
    alice.ping(1).await;
    old.ping(1).await;
    outsider.ping(1).await;

    let to_carol = Some([0xc; 16]);
    bob.send(&message(1, &[0xb; 16], to_carol, b"psst")).await;
    assert_eq!(carol.recv().await, relayed(0xb, to_carol, b"psst"));
    alice.ping(2).await; // alice got nothing

    // Nothing is stored: a newcomer catches up on an empty log.
    let mut dave = Client::greeted_current(&url, 0xf).await;
    let (deltas, _) = dave.subscribe(doc(1), 0).await;
    assert!(deltas.is_empty());
    dave.ping(1).await;
    drop(relay);
    let mut stored = Vec::new();
    for entry in walkdir(data.path()) {
        stored.extend(std::fs::read(entry).unwrap_or_default());
    }
    assert!(
        !stored.windows(6).any(|w| w == b"hi all") && !stored.windows(4).any(|w| w == b"psst"),
        "no trace of a message in the relay's files"
    );
}

/// Every file under `dir`.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walkdir(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn oversize_unproven_unsubscribed_and_too_fast_messages_are_refused_per_document() {
    let data = tempfile::tempdir().unwrap();
    let flags = ["--max-message-bytes", "100", "--messages-per-sec", "1"];
    let relay = RelayProcess::start_with(data.path(), &flags).await;
    let url = relay.url();
    let mut alice = Client::greeted_current(&url, 0xa).await;
    let mut bob = Client::greeted_current(&url, 0xb).await;
    alice.subscribe(doc(1), 0).await;
    bob.subscribe(doc(1), 0).await;

    alice.send(&message(1, &[0xa; 16], None, &[0; 101])).await;
    alice
        .expect_doc_error(doc(1), ErrorCode::LimitExceeded)
        .await;
    // Signed for another replica than the session's: not acted on.
    alice.send(&message(1, &[0xb; 16], None, b"as bob")).await;
    alice.expect_doc_error(doc(1), ErrorCode::Unproven).await;
    alice
        .send(&message(2, &[0xa; 16], None, b"elsewhere"))
        .await;
    alice
        .expect_doc_error(doc(2), ErrorCode::UnexpectedFrame)
        .await;
    bob.ping(1).await; // none of those reached bob

    // Over the rate (1 a second, bursts of 2), messages are dropped, each
    // refused with RateLimited; the connection stays open.
    for n in 0..12u8 {
        alice.send(&message(1, &[0xa; 16], None, &[n])).await;
    }
    let refused = until_pong(&mut alice, 1)
        .await
        .iter()
        .filter(|f| matches!(f, RelayFrame::DocError { code: ErrorCode::RateLimited, message, .. } if message.contains("1 per second")))
        .count();
    let passed = until_pong(&mut bob, 2)
        .await
        .iter()
        .filter(|f| matches!(f, RelayFrame::Message { .. }))
        .count();
    assert!(passed >= 2, "the burst passes ({passed})");
    assert!(refused >= 1, "the rest is refused ({refused})");
    assert_eq!(passed + refused, 12, "each message passed or was refused");
    let series = "syncline_limit_exceeded_total{limit=\"message_rate\"}";
    assert_eq!(get_metric(relay.addr, series).await, refused as f64);
}

/// The frames `client` receives before the `Pong` of a `Ping` it sends.
async fn until_pong(client: &mut Client, nonce: u64) -> Vec<RelayFrame> {
    client.send(&ClientFrame::Ping { nonce }).await;
    let mut frames = Vec::new();
    loop {
        match client.recv().await {
            RelayFrame::Pong { nonce: n } if n == nonce => return frames,
            frame => frames.push(frame),
        }
    }
}
