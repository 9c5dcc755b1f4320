//! Bad input gets a typed, fatal error and closes only that connection.

use syncline_protocol::{
    ClientFrame, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, RelayFrame,
};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Client, RelayProcess, delta, doc, seqs};

async fn expect_fatal(client: &mut Client, expected: ErrorCode) {
    match client.recv().await {
        RelayFrame::Error {
            code,
            fatal,
            message,
        } => {
            assert_eq!(code, expected, "{message}");
            assert!(fatal);
            assert!(!message.is_empty());
        }
        other => panic!("expected Error, got {other:?}"),
    }
    let close = client.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002);
}

#[tokio::test]
async fn bad_frames_get_a_typed_error_then_close_and_others_keep_working() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut good, _) = Client::greeted(&relay.url()).await;
    good.subscribe(doc(1), 0).await;
    let (mut pusher, _) = Client::greeted(&relay.url()).await;

    // Garbage after a valid Hello.
    let (mut bad, _) = Client::greeted(&relay.url()).await;
    bad.send_message(Message::Binary(vec![0xff, 0xff, 0xff, 0x01].into()))
        .await;
    expect_fatal(&mut bad, ErrorCode::Malformed).await;

    // Garbage as the very first frame.
    let mut bad = Client::connect(&relay.url()).await;
    bad.send_message(Message::Binary(vec![42; 3].into())).await;
    expect_fatal(&mut bad, ErrorCode::Malformed).await;

    // A text message.
    let (mut bad, _) = Client::greeted(&relay.url()).await;
    bad.send_message(Message::Text("hello?".into())).await;
    expect_fatal(&mut bad, ErrorCode::Malformed).await;

    // A valid frame, but before Hello.
    let mut bad = Client::connect(&relay.url()).await;
    bad.send(&ClientFrame::Ping { nonce: 1 }).await;
    expect_fatal(&mut bad, ErrorCode::UnexpectedFrame).await;

    // A second Hello.
    let (mut bad, _) = Client::greeted(&relay.url()).await;
    bad.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        replica: [1; 16],
        token: None,
    })
    .await;
    expect_fatal(&mut bad, ErrorCode::UnexpectedFrame).await;

    // The good connections never noticed.
    good.ping(7).await;
    assert_eq!(pusher.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(seqs(&good.recv_live(doc(1)).await), vec![1]);
}

#[tokio::test]
async fn a_protocol_version_outside_the_supported_range_is_refused_and_closed() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut good, _) = Client::greeted(&relay.url()).await;

    for version in [MIN_PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
        let mut bad = Client::connect(&relay.url()).await;
        bad.send(&ClientFrame::Hello {
            version,
            replica: [2; 16],
            token: Some("ignored for now".into()),
        })
        .await;
        let message = bad.expect_fatal(ErrorCode::UnsupportedVersion, 1002).await;
        assert!(
            message.contains(&format!(
                "versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
            )) && message.contains(&format!("sent {version}")),
            "{message}"
        );
    }
    // Every version in the range is welcomed as itself (greeted_with
    // checks the Welcome).
    for version in MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION {
        let (mut client, _) = Client::greeted_with(&relay.url(), version, [3; 16], None).await;
        client.ping(u64::from(version)).await;
    }

    good.ping(1).await;
    assert_eq!(good.push(doc(1), vec![delta(1)]).await, 1);
}
