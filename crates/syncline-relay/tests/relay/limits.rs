//! Per-connection limits: each one refuses only the connection (or the
//! request) that broke it; everyone else carries on.

use syncline_protocol::{ClientFrame, ErrorCode, PushDelta, RelayFrame};

use crate::common::{Client, RelayProcess, delta, doc, get_metric, seqs};

fn big_delta(tag: u32, len: usize) -> PushDelta {
    let mut d = delta(tag);
    d.bytes = vec![0x42; len];
    d
}

#[tokio::test]
async fn an_oversized_frame_ends_only_its_connection_with_1009() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--max-frame-bytes", "4096"]).await;
    let (mut bystander, _) = Client::greeted(&relay.url()).await;
    bystander.subscribe(doc(1), 0).await;

    let (mut big, _) = Client::greeted(&relay.url()).await;
    // Under the limit: fine.
    assert_eq!(big.push(doc(1), vec![big_delta(1, 3000)]).await, 1);
    // Over it: refused before it is buffered, and the connection ends.
    big.send(&ClientFrame::Push {
        doc: doc(1),
        deltas: vec![big_delta(2, 20_000)],
    })
    .await;
    let message = big.expect_fatal(ErrorCode::LimitExceeded, 1009).await;
    assert!(message.contains("4096"), "{message}");

    assert_eq!(seqs(&bystander.recv_live(doc(1)).await), vec![1]);
    bystander.ping(1).await;
    assert_eq!(bystander.push(doc(1), vec![delta(3)]).await, 2);
    assert_eq!(
        get_metric(
            relay.addr,
            "syncline_limit_exceeded_total{limit=\"frame_size\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn one_subscription_too_many_is_a_doc_error() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--max-subscriptions", "3"]).await;
    let (mut client, _) = Client::greeted(&relay.url()).await;
    for n in 1..=3 {
        client.subscribe(doc(n), 0).await;
    }
    client
        .send(&ClientFrame::Subscribe {
            doc: doc(4),
            since: 0,
        })
        .await;
    let message = client
        .expect_doc_error(doc(4), ErrorCode::LimitExceeded)
        .await;
    assert!(message.contains("unsubscribe"), "{message}");
    // Subscribing again to one it has is not one more.
    client.subscribe(doc(2), 0).await;
    // Making room works.
    client.send(&ClientFrame::Unsubscribe { doc: doc(1) }).await;
    client.subscribe(doc(4), 0).await;

    // Another connection has its own allowance, and deltas flow.
    let (mut other, _) = Client::greeted(&relay.url()).await;
    for n in 5..=7 {
        other.subscribe(doc(n), 0).await;
    }
    other.push(doc(4), vec![delta(1)]).await;
    assert_eq!(seqs(&client.recv_live(doc(4)).await), vec![1]);
}

#[tokio::test]
async fn a_connection_over_its_frame_rate_is_closed_with_1013() {
    let data = tempfile::tempdir().unwrap();
    // 5 frames/s sustained, bursts of 10.
    let relay = RelayProcess::start_with(data.path(), &["--rate-frames", "5"]).await;
    let (mut calm, _) = Client::greeted(&relay.url()).await;
    calm.subscribe(doc(1), 0).await;

    let (mut flood, _) = Client::greeted(&relay.url()).await;
    for nonce in 0..40 {
        flood.send(&ClientFrame::Ping { nonce }).await;
    }
    // Some pongs (the burst), then the error and the close.
    let mut pongs = 0;
    loop {
        match flood.recv().await {
            RelayFrame::Pong { .. } => pongs += 1,
            RelayFrame::Error {
                code,
                fatal,
                message,
            } => {
                assert_eq!(code, ErrorCode::LimitExceeded, "{message}");
                assert!(fatal);
                assert!(message.contains("reconnect later"), "{message}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((5..40).contains(&pongs), "{pongs} pongs before the limit");
    let close = flood.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1013);

    calm.ping(1).await;
    assert_eq!(calm.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(
        get_metric(
            relay.addr,
            "syncline_limit_exceeded_total{limit=\"frame_rate\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_connection_over_its_byte_rate_is_closed_with_1013() {
    let data = tempfile::tempdir().unwrap();
    // 2 KiB/s sustained; the burst is one largest frame (8 KiB).
    let relay = RelayProcess::start_with(
        data.path(),
        &["--rate-bytes", "2048", "--max-frame-bytes", "8192"],
    )
    .await;
    let (mut calm, _) = Client::greeted(&relay.url()).await;
    let (mut heavy, _) = Client::greeted(&relay.url()).await;
    for n in 0..20 {
        heavy
            .send(&ClientFrame::Push {
                doc: doc(1),
                deltas: vec![big_delta(n, 2000)],
            })
            .await;
    }
    let mut acks = 0;
    loop {
        match heavy.recv().await {
            RelayFrame::Ack { .. } => acks += 1,
            RelayFrame::Error { code, fatal, .. } => {
                assert_eq!(code, ErrorCode::LimitExceeded);
                assert!(fatal);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((1..20).contains(&acks), "{acks} acks before the limit");
    let close = heavy.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1013);
    // What was acked is stored; the calm client is unaffected.
    let (log, _) = calm.subscribe(doc(1), 0).await;
    assert_eq!(log.len(), acks);
    assert_eq!(calm.push(doc(1), vec![delta(100)]).await, acks as u64 + 1);
}

#[tokio::test]
async fn a_delta_just_under_the_default_frame_limit_is_stored_and_delivered() {
    // The relay's WebSocket read buffer is small (a few KiB) and grows on
    // demand: the largest delta the protocol allows must still get through,
    // in both directions, on the default limits.
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut subscriber, _) = Client::greeted(&relay.url()).await;
    subscriber.subscribe(doc(1), 0).await;
    let (mut pusher, _) = Client::greeted(&relay.url()).await;

    let huge = big_delta(1, syncline_relay::MAX_DELTA_BYTES);
    assert_eq!(pusher.push(doc(1), vec![huge.clone()]).await, 1);
    // Small frames after the big one, on the same connection.
    assert_eq!(pusher.push(doc(1), vec![delta(2)]).await, 2);

    let live = subscriber.recv_live(doc(1)).await;
    assert_eq!(seqs(&live), vec![1]);
    assert_eq!(live[0].bytes, huge.bytes);
    assert_eq!(seqs(&subscriber.recv_live(doc(1)).await), vec![2]);

    // And from storage, to a fresh connection.
    let (mut reader, _) = Client::greeted(&relay.url()).await;
    let (caught_up, _) = reader.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&caught_up), vec![1, 2]);
    assert_eq!(caught_up[0].bytes, huge.bytes);
}
