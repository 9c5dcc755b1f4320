//! Bounded resources, over real sockets against the relay process:
//! connection caps, the hello and idle timeouts, the outgoing queue's byte
//! bound, storage quotas, `/metrics` access and `--allow-origin`.

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{ClientFrame, ErrorCode, PushDelta, RelayFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Client, RelayProcess, TIMEOUT, delta, doc, get_metric};

fn sized(tag: u32, len: usize) -> PushDelta {
    let mut d = delta(tag);
    d.bytes = vec![tag as u8; len];
    d
}

/// Waits (bounded) until `series` of the relay's metrics is `value`.
async fn metric_reaches(relay: &RelayProcess, series: &str, value: f64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = get_metric(relay.addr, series).await;
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {now}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_over_the_caps_get_a_typed_refusal_and_are_counted() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--max-connections-per-ip", "2"]).await;
    let (first, _) = Client::greeted(&relay.url()).await;
    let (mut second, _) = Client::greeted(&relay.url()).await;
    let mut third = Client::connect(&relay.url()).await;
    let message = third.expect_fatal(ErrorCode::LimitExceeded, 1013).await;
    assert!(message.contains("your address"), "{message}");
    assert_eq!(
        get_metric(
            relay.addr,
            "syncline_limit_exceeded_total{limit=\"connections_per_ip\"}"
        )
        .await,
        1.0
    );
    second.ping(1).await;
    drop(first);
    // Its place is freed once the relay sees it closed.
    metric_reaches(&relay, "syncline_connections", 1.0).await;
    let (mut again, _) = Client::greeted(&relay.url()).await;
    again.ping(2).await;

    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--max-connections", "1"]).await;
    let (mut only, _) = Client::greeted(&relay.url()).await;
    let mut refused = Client::connect(&relay.url()).await;
    let message = refused.expect_fatal(ErrorCode::LimitExceeded, 1013).await;
    assert!(message.contains("maximum of 1 connections"), "{message}");
    only.ping(1).await;
    assert_eq!(
        get_metric(
            relay.addr,
            "syncline_limit_exceeded_total{limit=\"connections\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_socket_that_never_says_hello_is_closed() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--hello-timeout", "1"]).await;
    let mut mute = Client::connect(&relay.url()).await;
    let message = mute.expect_fatal(ErrorCode::UnexpectedFrame, 1002).await;
    assert!(message.contains("Hello"), "{message}");
    assert_eq!(
        get_metric(
            relay.addr,
            "syncline_limit_exceeded_total{limit=\"hello_timeout\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn the_relay_pings_a_quiet_client_and_drops_a_dead_one() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--idle-timeout", "1"]).await;
    let (mut alive, _) = Client::greeted(&relay.url()).await;
    // Never reads: never answers a ping, like a peer that vanished.
    let (mut dead, _) = Client::greeted(&relay.url()).await;
    let started = Instant::now();
    let mut pings = 0;
    while pings < 4 {
        let ws = alive.ws_mut();
        let message = timeout(TIMEOUT, ws.next()).await.expect("a ping in time");
        match message {
            Some(Ok(Message::Ping(_))) => {
                pings += 1;
                // Sends the pong tungstenite queued (a browser does it alone).
                ws.flush().await.unwrap();
            }
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    assert!(
        started.elapsed().as_millis() >= 1500,
        "one ping per half second"
    );
    alive.ping(1).await;
    metric_reaches(
        &relay,
        "syncline_limit_exceeded_total{limit=\"idle_timeout\"}",
        1.0,
    )
    .await;
    assert!(
        dead.next_frame().await.is_err(),
        "the silent connection is gone"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_by_the_queue_byte_bound() {
    let data = tempfile::tempdir().unwrap();
    // 1,024 frames would hold all of it; 256 KiB cannot.
    let relay = RelayProcess::start_with(data.path(), &["--queue-bytes", "262144"]).await;
    let (mut stalled, _) = Client::greeted(&relay.url()).await;
    stalled.subscribe(doc(1), 0).await;
    let (mut pusher, _) = Client::greeted(&relay.url()).await;
    // 30 MB: more than the kernel's socket buffers hold on loopback.
    for n in 1..=300 {
        pusher.push(doc(1), vec![sized(n, 100 * 1024)]).await;
    }
    metric_reaches(&relay, "syncline_slow_consumer_disconnects_total", 1.0).await;
    stalled.drain_until_closed().await;
    pusher.ping(1).await;
}

#[tokio::test]
async fn storage_quotas_refuse_pushes_with_quota_exceeded_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let flags = ["--doc-quota", "10000", "--total-quota", "25000"];
    let relay = RelayProcess::start_with(data.path(), &flags).await;
    let mut v3 = Client::greeted_current(&relay.url(), 1).await;
    let (mut v1, _) = Client::greeted(&relay.url()).await;
    assert_eq!(v3.push(doc(1), vec![sized(1, 8000)]).await, 1);
    let over = ClientFrame::Push {
        doc: doc(1),
        deltas: vec![sized(2, 3000)],
    };
    v3.send(&over).await;
    let message = v3.expect_doc_error(doc(1), ErrorCode::QuotaExceeded).await;
    assert!(message.contains("10000"), "{message}");
    v1.send(&over).await;
    v1.expect_doc_error(doc(1), ErrorCode::LimitExceeded).await;
    // Within the document's quota, but not the relay's.
    assert_eq!(v3.push(doc(2), vec![sized(3, 8000)]).await, 1);
    assert_eq!(v3.push(doc(3), vec![sized(4, 8000)]).await, 1);
    v3.send(&ClientFrame::Push {
        doc: doc(4),
        deltas: vec![sized(5, 2000)],
    })
    .await;
    let message = v3.expect_doc_error(doc(4), ErrorCode::QuotaExceeded).await;
    assert!(message.contains("storage is full"), "{message}");
    let refusals = |which| async move {
        let series = format!("syncline_limit_exceeded_total{{limit=\"{which}\"}}");
        get_metric(relay.addr, &series).await
    };
    assert_eq!(refusals("doc_quota").await, 2.0);
    assert_eq!(refusals("total_quota").await, 1.0);
    // Nothing of a refused push was stored.
    let (mut reader, _) = Client::greeted(&relay.url()).await;
    assert_eq!(reader.subscribe(doc(1), 0).await.0.len(), 1);
    drop((v1, v3, reader));
    relay.terminate().await;

    // A restarted relay reads what is stored: the quota still holds.
    let relay = RelayProcess::start_with(data.path(), &flags).await;
    let mut v3 = Client::greeted_current(&relay.url(), 1).await;
    v3.send(&over).await;
    v3.expect_doc_error(doc(1), ErrorCode::QuotaExceeded).await;
    assert_eq!(v3.push(doc(1), vec![sized(6, 1000)]).await, 2);
}

/// A GET with one extra header; returns the status code.
async fn get_status(addr: std::net::SocketAddr, path: &str, header: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(TIMEOUT, stream.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_are_behind_a_token_or_on_their_own_listener() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--metrics-token", "m3trics"]).await;
    assert_eq!(get_status(relay.addr, "/metrics", "").await, 403);
    let wrong = "Authorization: Bearer nope\r\n";
    assert_eq!(get_status(relay.addr, "/metrics", wrong).await, 403);
    let right = "Authorization: Bearer m3trics\r\n";
    assert_eq!(get_status(relay.addr, "/metrics", right).await, 200);
    drop(relay);

    let data = tempfile::tempdir().unwrap();
    let mut relay =
        RelayProcess::start_with(data.path(), &["--metrics-listen", "127.0.0.1:0"]).await;
    let line = relay.stdout_line().await.expect("the second line");
    let addr = line
        .strip_prefix(syncline_relay::METRICS_PREFIX)
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    assert_eq!(get_status(relay.addr, "/metrics", "").await, 403);
    assert_eq!(get_status(addr, "/metrics", "").await, 200);
    assert_eq!(get_status(addr, "/healthz", "").await, 404, "metrics only");
    assert_eq!(get_status(relay.addr, "/healthz", "").await, 200);
}

#[tokio::test]
async fn allow_origin_restricts_the_websocket_upgrade() {
    let data = tempfile::tempdir().unwrap();
    let relay =
        RelayProcess::start_with(data.path(), &["--allow-origin", "https://app.example"]).await;
    let upgrade = |origin: Option<&'static str>| {
        let mut request = relay.url().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
        }
        async move { timeout(TIMEOUT, tokio_tungstenite::connect_async(request)).await }
    };
    let refused = upgrade(Some("https://evil.example")).await.unwrap();
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }
    assert!(upgrade(Some("https://app.example")).await.unwrap().is_ok());
    assert!(upgrade(None).await.unwrap().is_ok(), "not a browser");
    let mut client = Client::greeted_current(&relay.url(), 1).await;
    client.send(&ClientFrame::Ping { nonce: 5 }).await;
    assert_eq!(client.recv().await, RelayFrame::Pong { nonce: 5 });
}
