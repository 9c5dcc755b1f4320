//! Writes without the document key, over real sockets against the real
//! relay: a client holding a valid **write token** but not the key tries to
//! erase or forge — a garbage snapshot, a snapshot signed with another key,
//! a captured snapshot replayed as covering more, garbage under a delta id,
//! forged presence. Each is refused with `Unproven` (and counted in
//! `/metrics`), and every change the relay acknowledged is still readable by
//! a fresh replica afterwards.

mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::{Relay, TIMEOUT, relay_token};
use syncline_cli::{Client, ClientConfig, FileStore, Tokens};
use syncline_core::{CompactionPolicy, DocKey, DocUrl, Op};
use syncline_protocol::proof::{self, Signer};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, ErrorCode, PROTOCOL_VERSION, PushDelta, RelayFrame, decode_relay,
    encode_client,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "an-attack-test-secret-of-32-bytes-or-more";

fn client(dir: &std::path::Path, relay: &str, token: &str) -> Client {
    let store = FileStore::open(dir).expect("the store opens");
    let config = ClientConfig {
        relay: relay.to_string(),
        tokens: Tokens::Fixed(token.to_string()),
    };
    Client::start(store, config).expect("the client starts")
}

fn set(key: &str, value: u32) -> Vec<Op> {
    serde_json::from_value(json!([{"op": "put", "obj": [], "key": key, "value": value}])).unwrap()
}

/// The body of `GET path` on the relay's HTTP port.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(TIMEOUT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

/// A raw protocol client: a write token, no document key.
struct Attacker {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Attacker {
    async fn connect(relay: &str, doc: DocId, token: String) -> Attacker {
        let (ws, _) = timeout(TIMEOUT, tokio_tungstenite::connect_async(relay))
            .await
            .unwrap()
            .unwrap();
        let mut attacker = Attacker { ws };
        attacker
            .send(ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                replica: [0xaa; 16],
                token: None,
            })
            .await;
        assert!(matches!(attacker.recv().await, RelayFrame::Welcome { .. }));
        attacker.send(ClientFrame::Authorize { doc, token }).await;
        attacker
    }

    async fn send(&mut self, frame: ClientFrame) {
        let bytes = encode_client(&frame);
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    async fn recv(&mut self) -> RelayFrame {
        loop {
            let message = timeout(TIMEOUT, self.ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Binary(bytes) = message {
                return decode_relay(&bytes).unwrap();
            }
        }
    }

    /// Sends `frame` and expects it refused as unproven, with nothing else
    /// (no ack) in between.
    async fn refused(&mut self, frame: ClientFrame, what: &str) {
        self.send(frame).await;
        match self.recv().await {
            RelayFrame::DocError { code, message, .. } => {
                assert_eq!(code, ErrorCode::Unproven, "{what}: {message}")
            }
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_write_token_without_the_key_can_neither_erase_nor_forge() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start_with(data.path(), &["--auth-secret", SECRET]).await;
    let url = DocUrl::for_key(DocKey([42; 32]));
    let doc = url.doc;
    let token = relay_token(SECRET, &url.to_string(), "write").await;

    // The honest writer: six changes, compacting every two, so the relay
    // holds a (signed) snapshot and a tail.
    let honest_dir = tempfile::tempdir().unwrap();
    let honest = client(honest_dir.path(), &relay.url(), &token);
    honest.with_engine(|engine, _| {
        engine.set_compaction(CompactionPolicy {
            max_changes: 2,
            ..CompactionPolicy::default()
        })
    });
    honest.open_doc(&url).unwrap();
    for n in 0..6 {
        honest.change(doc, &set(&format!("k{n}"), n), None).unwrap();
        honest.wait_synced(TIMEOUT).await.unwrap();
    }

    let mut attacker = Attacker::connect(&relay.url(), doc, token.clone()).await;
    let mallory = Signer::from_seed(&[66; 32]);
    let garbage = vec![0xee; 64];
    let id = DeltaId([0x5a; 32]);

    // 1. A garbage snapshot claiming to cover the whole log: unsigned, and
    //    signed with another key.
    let snapshot = ClientFrame::Snapshot {
        doc,
        covers_seq: 6,
        id,
        bytes: garbage.clone(),
    };
    attacker
        .refused(snapshot.clone(), "an unsigned snapshot")
        .await;
    attacker
        .refused(
            snapshot.signed(&mallory, &[0xaa; 16]),
            "a snapshot signed with another key",
        )
        .await;

    // 2. A valid snapshot (as if captured) replayed as covering more.
    let signer = url.key.signer();
    let proof = signer.prove(&proof::snapshot_digest(&doc, 1, &id, &garbage));
    let replayed = ClientFrame::SignedSnapshot {
        doc,
        covers_seq: 6,
        id,
        bytes: garbage.clone(),
        proof,
    };
    attacker
        .refused(replayed, "a snapshot replayed with a higher covers_seq")
        .await;

    // 3. Garbage under a delta id (squatting it before an honest push).
    let squat = ClientFrame::Push {
        doc,
        deltas: vec![PushDelta {
            id,
            bytes: garbage.clone(),
        }],
    };
    attacker.refused(squat.clone(), "an unsigned push").await;
    attacker
        .refused(
            squat.signed(&mallory, &[0xaa; 16]),
            "a push signed with another key",
        )
        .await;

    // 4. Forged presence: unsigned, and signed with another key.
    attacker
        .send(ClientFrame::Subscribe { doc, since: 0 })
        .await;
    loop {
        if let RelayFrame::Deltas {
            caught_up: true, ..
        } = attacker.recv().await
        {
            break;
        }
    }
    let presence = ClientFrame::Presence {
        doc,
        bytes: b"a ghost".to_vec(),
    };
    attacker
        .refused(presence.clone(), "unsigned presence")
        .await;
    attacker
        .refused(
            presence.signed(&mallory, &[0xaa; 16]),
            "presence signed with another key",
        )
        .await;

    // Every refusal was counted.
    let metrics = http_get(relay.addr, "/metrics").await;
    let unproven = "syncline_auth_failures_total{reason=\"unproven\"} 7";
    assert!(metrics.contains(unproven), "{metrics}");

    // The honest writer goes on, and a fresh replica reads every change.
    honest.change(doc, &set("after", 7), None).unwrap();
    honest.wait_synced(TIMEOUT).await.unwrap();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = client(fresh_dir.path(), &relay.url(), &token);
    fresh.open_doc(&url).unwrap();
    fresh.wait_caught_up(doc, TIMEOUT).await.unwrap();
    let expected = json!({"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "after": 7});
    assert_eq!(fresh.value(&doc).unwrap(), expected);
    honest.close().await;
    fresh.close().await;
}
