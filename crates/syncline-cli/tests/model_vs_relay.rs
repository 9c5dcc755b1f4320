//! The core's model relay (`crates/syncline-core/tests/support/world.rs`),
//! which the engine's simulation trusts, against the real relay process:
//! the same frames in, the same frames out, connection by connection.
//!
//! Each step sends one frame on one connection to both. The model's answer
//! says exactly which frames each connection must get next; the real
//! relay's are read and compared (Welcome's epoch and limits, and the text
//! of refusals, may differ; their codes may not). At the end every
//! connection pings: a `Pong` next proves nothing else was queued.

mod support;
#[path = "../../syncline-core/tests/support/world.rs"]
mod world; // (it allows its own dead code)

use futures_util::{SinkExt, StreamExt};
use support::{Relay, TIMEOUT};
use syncline_protocol::{
    ClientFrame, DeltaId, PROTOCOL_VERSION, PushDelta, RelayFrame, decode_relay, encode_client,
};
use syncline_relay::test_docs;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use world::ModelRelay;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What must be equal between the two relays' frames.
fn comparable(frame: RelayFrame) -> RelayFrame {
    match frame {
        RelayFrame::Welcome { version, .. } => RelayFrame::Welcome {
            version,
            epoch: [0; 16],
            limits: Default::default(),
        },
        RelayFrame::DocError { doc, code, .. } => RelayFrame::DocError {
            doc,
            code,
            message: String::new(),
        },
        RelayFrame::Error { code, fatal, .. } => RelayFrame::Error {
            code,
            message: String::new(),
            fatal,
        },
        other => other,
    }
}

struct Both {
    model: ModelRelay,
    real: Vec<Ws>,
    replicas: Vec<[u8; 16]>,
}

impl Both {
    /// Sends `frame` (signed, if a write to a test document) on
    /// connection `conn` of both relays and compares what every
    /// connection gets.
    async fn step(&mut self, conn: usize, frame: ClientFrame, what: &str) {
        if let ClientFrame::Hello { replica, .. } = &frame {
            self.replicas[conn] = *replica;
        }
        let frame = test_docs::sign(frame, &self.replicas[conn]);
        let bytes = encode_client(&frame);
        let expected = self.model.handle(conn, &bytes);
        self.real[conn]
            .send(Message::Binary(bytes.into()))
            .await
            .unwrap();
        for (to, want) in expected {
            let got = recv(&mut self.real[to]).await;
            assert_eq!(
                comparable(got),
                comparable(want),
                "{what}: connection {to} got another frame from the real relay"
            );
        }
    }

    /// Every connection's next frame is the answer to its ping.
    async fn nothing_else_queued(&mut self) {
        for (conn, ws) in self.real.iter_mut().enumerate() {
            let ping = encode_client(&ClientFrame::Ping { nonce: conn as u64 });
            ws.send(Message::Binary(ping.into())).await.unwrap();
            match recv(ws).await {
                RelayFrame::Pong { nonce } => assert_eq!(nonce, conn as u64),
                other => panic!("connection {conn} had more: {other:?}"),
            }
        }
    }
}

async fn recv(ws: &mut Ws) -> RelayFrame {
    loop {
        let message = timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a readable message");
        if let Message::Binary(bytes) = message {
            return decode_relay(&bytes).expect("a decodable frame");
        }
    }
}

fn delta(n: u8) -> PushDelta {
    PushDelta {
        id: DeltaId([n; 32]),
        bytes: vec![n; 24],
    }
}

#[tokio::test]
async fn the_model_relay_answers_as_the_real_relay_does() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let mut real = Vec::new();
    for _ in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
        real.push(ws);
    }
    let mut both = Both {
        model: ModelRelay::default(),
        real,
        replicas: vec![[0; 16]; 3],
    };
    let doc = test_docs::doc(1);
    for conn in 0..3 {
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica: [conn as u8 + 1; 16],
            token: None,
        };
        both.step(conn, hello, "hello").await;
    }
    let subscribe = |since| ClientFrame::Subscribe { doc, since };
    let push = |deltas| ClientFrame::Push { doc, deltas };
    both.step(0, subscribe(0), "an empty catch-up").await;
    both.step(1, subscribe(0), "a second subscriber").await;
    both.step(0, push(vec![delta(1)]), "a push, live to the other")
        .await;
    both.step(0, push(vec![delta(2), delta(3)]), "two deltas at once")
        .await;
    both.step(1, push(vec![delta(2)]), "a delta stored already")
        .await;

    // An unsigned write is refused the same way.
    let unsigned = encode_client(&push(vec![delta(9)]));
    let expected = both.model.handle(0, &unsigned);
    both.real[0]
        .send(Message::Binary(unsigned.into()))
        .await
        .unwrap();
    for (to, want) in expected {
        assert_eq!(
            comparable(recv(&mut both.real[to]).await),
            comparable(want),
            "unsigned"
        );
    }

    // A client snapshot, served in place of the deltas it covers.
    let snapshot = ClientFrame::Snapshot {
        doc,
        covers_seq: 2,
        id: DeltaId([0x5a; 32]),
        bytes: vec![0x5a; 40],
    };
    both.step(1, snapshot, "a snapshot covering 2").await;
    both.step(2, subscribe(0), "a catch-up from the snapshot")
        .await;
    both.step(2, subscribe(3), "an up-to-date catch-up").await;

    // Presence, and a subscriber leaving.
    let presence = ClientFrame::Presence {
        doc,
        bytes: b"here".to_vec(),
    };
    both.step(1, presence, "presence to the others").await;
    both.step(0, ClientFrame::Unsubscribe { doc }, "unsubscribe")
        .await;
    both.step(1, push(vec![delta(4)]), "a push after one left")
        .await;
    both.nothing_else_queued().await;
}
