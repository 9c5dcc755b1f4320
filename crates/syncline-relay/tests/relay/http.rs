//! Plain HTTP: `/healthz` and `--serve`.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::{Client, RelayProcess, TIMEOUT};

/// A minimal HTTP/1.1 GET: returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = timeout(TIMEOUT, exchange)
        .await
        .expect("an HTTP answer in time");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers end with a blank line");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
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
