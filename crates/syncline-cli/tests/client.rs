//! The library's [`Client`] against the real relay binary: events, waits,
//! reconnection and reloading a replica from its file store.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Relay, TIMEOUT};
use syncline_cli::{Client, ClientConfig, ClientError, Event, FileStore};
use syncline_core::Op;
use syncline_core::ops::Key;
use tokio::time::timeout;

fn client(dir: &std::path::Path, relay: &str) -> Client {
    let store = FileStore::open(dir).expect("the store opens");
    let config = ClientConfig {
        relay: relay.to_string(),
        tokens: syncline_cli::Tokens::None,
    };
    Client::start(store, config).expect("the client starts")
}

fn push_item(value: serde_json::Value) -> Vec<Op> {
    vec![Op::Insert {
        obj: vec![Key::Name("items".into())],
        index: 0,
        values: vec![value],
    }]
}

#[tokio::test]
async fn changes_flow_between_clients_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = client(dir_a.path(), &relay.url());
    let b = client(dir_b.path(), &relay.url());

    let url = a.create_doc(&json!({"items": []})).unwrap();
    a.wait_synced(TIMEOUT).await.unwrap();
    assert_eq!(a.status().pending, 0);

    let mut events = b.subscribe();
    assert!(!b.open_doc(&url).unwrap(), "b has nothing of it yet");
    b.wait_caught_up(url.doc, TIMEOUT).await.unwrap();
    assert_eq!(b.value(&url.doc).unwrap(), json!({"items": []}));

    a.change(
        url.doc,
        &push_item(json!("milk")),
        Some("item.added".into()),
    )
    .unwrap();
    assert_eq!(a.status().pending, 1);
    a.wait_synced(TIMEOUT).await.unwrap();
    // b hears of it (the catch-up itself was an event too).
    timeout(TIMEOUT, async {
        loop {
            if let Event::DocChanged(doc) = events.recv().await.unwrap() {
                assert_eq!(doc, url.doc);
                if b.value(&url.doc).unwrap() == json!({"items": ["milk"]}) {
                    break;
                }
            }
        }
    })
    .await
    .expect("b hears of the change");

    // A restarted replica has its document and an empty outbox, with no
    // relay at all.
    a.close().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = client(dir_a.path(), &format!("ws://{port}"));
    assert!(a.load_problems().is_empty());
    assert_eq!(a.value(&url.doc).unwrap(), json!({"items": ["milk"]}));
    assert_eq!(a.status().pending, 0);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_change_made_while_the_relay_is_down_is_acked_after_it_returns() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let addr = relay.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let a = client(dir.path(), &relay.url());
    let url = a.create_doc(&json!({"items": []})).unwrap();
    a.wait_synced(TIMEOUT).await.unwrap();

    relay.kill9().await;
    a.change(url.doc, &push_item(json!(1)), None).unwrap();
    let err = a
        .wait_synced(Duration::from_millis(300))
        .await
        .expect_err("no relay, no ack");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 0.3s"), "{err}");
    assert_eq!(a.status().pending, 1, "still in the outbox");

    // Same address, same data: the client reconnects on its own.
    let relay = Relay::start_at(data.path(), &addr, &[]).await;
    a.wait_synced(TIMEOUT).await.unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let b = client(dir_b.path(), &relay.url());
    b.open_doc(&url).unwrap();
    b.wait_caught_up(url.doc, TIMEOUT).await.unwrap();
    assert_eq!(b.value(&url.doc).unwrap(), json!({"items": [1]}));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_relay_url_that_is_not_a_websocket_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let config = ClientConfig {
        relay: "http://127.0.0.1:1".into(),
        tokens: syncline_cli::Tokens::None,
    };
    let err = Client::start(store, config).err().expect("refused");
    assert!(matches!(err, ClientError::BadRelayUrl(_)), "{err}");
}
