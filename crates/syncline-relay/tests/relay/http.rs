//! Plain HTTP: `/healthz`, `/metrics` and `--serve`.

use std::net::SocketAddr;

use crate::common::{Client, RelayProcess, delta, doc, get_metric, http_get, metric};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get(addr, path).await;
    (status, body)
}

#[tokio::test]
async fn serve_dir_serves_files_beside_the_websocket_and_healthz() {
    let data = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>syncline demo</h1>").unwrap();
    std::fs::write(site.path().join("app.js"), "console.log('hi')").unwrap();
    let site_arg = site.path().to_str().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--serve", site_arg]).await;

    assert_eq!(get(relay.addr, "/healthz").await, (200, "ok".into()));
    assert_eq!(
        get(relay.addr, "/").await,
        (200, "<h1>syncline demo</h1>".into())
    );
    assert_eq!(
        get(relay.addr, "/app.js").await,
        (200, "console.log('hi')".into())
    );
    assert_eq!(get(relay.addr, "/missing.css").await.0, 404);

    // The WebSocket on `/` still works next to the static site.
    let (mut client, _) = Client::greeted(&relay.url()).await;
    client.ping(5).await;
}

#[tokio::test]
async fn without_serve_only_healthz_and_the_websocket_answer() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    assert_eq!(get(relay.addr, "/healthz").await, (200, "ok".into()));
    let (status, _) = get(relay.addr, "/").await;
    assert!(
        (400..500).contains(&status),
        "GET / without upgrade: {status}"
    );
    assert_eq!(get(relay.addr, "/index.html").await.0, 404);
}

#[tokio::test]
async fn metrics_answer_in_prometheus_text_and_counters_move() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (status, head, body) = http_get(relay.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    for series in [
        "syncline_connections",
        "syncline_documents",
        "syncline_deltas_in_total",
        "syncline_bytes_out_total",
        "syncline_commit_duration_seconds_count",
        "syncline_slow_consumer_disconnects_total",
        "syncline_presence_dropped_total",
        "syncline_auth_failures_total{reason=\"missing\"}",
    ] {
        assert_eq!(metric(&body, series), 0.0, "{series} starts at 0");
    }
    assert!(body.contains("# TYPE syncline_commit_duration_seconds histogram"));

    let (mut alice, _) = Client::greeted(&relay.url()).await;
    let (mut bob, _) = Client::greeted(&relay.url()).await;
    bob.subscribe(doc(1), 0).await;
    alice.push(doc(1), vec![delta(1), delta(2)]).await;
    alice.push(doc(1), vec![delta(2), delta(3)]).await;
    alice.push(doc(2), vec![delta(4)]).await;
    bob.recv_live(doc(1)).await;
    bob.recv_live(doc(1)).await;

    let (_, _, body) = http_get(relay.addr, "/metrics").await;
    assert_eq!(metric(&body, "syncline_connections"), 2.0);
    assert_eq!(metric(&body, "syncline_connections_total"), 2.0);
    assert_eq!(metric(&body, "syncline_subscriptions"), 1.0);
    assert_eq!(metric(&body, "syncline_documents"), 2.0);
    assert_eq!(metric(&body, "syncline_deltas_in_total"), 5.0);
    assert_eq!(metric(&body, "syncline_deltas_stored_total"), 4.0);
    assert_eq!(metric(&body, "syncline_deltas_out_total"), 3.0);
    assert_eq!(metric(&body, "syncline_commit_duration_seconds_count"), 3.0);
    assert!(metric(&body, "syncline_store_transactions_total") >= 1.0);
    assert!(metric(&body, "syncline_bytes_in_total") > 0.0);
    assert!(metric(&body, "syncline_frames_in_total") >= 6.0);
    // Frames out are counted as the writer sends them: both Welcomes, the
    // catch-up page, three acks and two live frames at least.
    assert!(metric(&body, "syncline_frames_out_total") >= 8.0);

    drop(alice);
    drop(bob);
    // The gauge follows the connections down (the relay notices the close
    // asynchronously; a fresh connection's ping orders us after it).
    let (mut carol, _) = Client::greeted(&relay.url()).await;
    carol.ping(1).await;
    let deadline = std::time::Instant::now() + crate::common::TIMEOUT;
    while get_metric(relay.addr, "syncline_connections").await != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "connections gauge did not drop"
        );
        tokio::task::yield_now().await;
    }
    // The documents gauge survives a restart: it is read from the store.
    drop(carol);
    relay.terminate().await;
    let relay = RelayProcess::start(data.path()).await;
    assert_eq!(get_metric(relay.addr, "syncline_documents").await, 2.0);
}
