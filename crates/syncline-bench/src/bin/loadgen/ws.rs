//! A protocol client (version 1 or 2) over tokio-tungstenite, and small
//! helpers.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Mutex;

use syncline_protocol::{
    ClientFrame, DeltaId, DocId, PushDelta, RelayFrame, Signer, decode_relay, encode_client,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Each client's WebSocket read buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;

pub type Ws = WebSocketStream<TcpStream>;

pub const WAIT: Duration = Duration::from_secs(60);

/// Microseconds since the load generator started (one clock for senders
/// and receivers: they share the process).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// xorshift64*: cheap filler bytes and ids (not cryptographic; the relay
/// never looks inside a delta).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    pub fn id(&mut self) -> DeltaId {
        let mut id = [0u8; 32];
        self.fill(&mut id);
        DeltaId(id)
    }
    /// A fresh document: its id derives from a random signing key, kept
    /// so [`push`] can sign writes to it as real clients do.
    pub fn doc(&mut self) -> DocId {
        let mut seed = [0u8; 32];
        self.fill(&mut seed);
        let signer = Signer::from_seed(&seed);
        let doc = signer.doc_id();
        signers()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(doc, signer);
        doc
    }
}

fn signers() -> &'static Mutex<HashMap<DocId, Signer>> {
    static SIGNERS: OnceLock<Mutex<HashMap<DocId, Signer>>> = OnceLock::new();
    SIGNERS.get_or_init(Default::default)
}

/// A signed push of `deltas` to `doc` (made by [`Rng::doc`]).
pub fn push(doc: DocId, deltas: Vec<PushDelta>) -> Message {
    let signer = signers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&doc)
        .cloned()
        .expect("a document made by Rng::doc");
    // Pushes need no replica id (only presence is bound to one).
    message(&ClientFrame::Push { doc, deltas }.signed(&signer, &[0; 16]))
}

/// Opens a WebSocket to `addr` from `source` (any 127.x address) and
/// completes the protocol handshake in `version`.
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    replica: [u8; 16],
    version: u32,
) -> Ws {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .expect("bind the source address");
    }
    let stream = timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    // tungstenite zero-fills its read buffer up to `read_buffer_size`
    // (default 128 KiB) before every read: with hundreds of clients in this
    // one process that memset was ~16 % of its CPU in a 256-typist profile.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (mut ws, _) = timeout(
        WAIT,
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), stream, Some(config)),
    )
    .await
    .expect("WebSocket handshake in time")
    .expect("WebSocket handshake");
    send(
        &mut ws,
        &ClientFrame::Hello {
            version,
            replica,
            token: None,
        },
    )
    .await;
    match recv(&mut ws).await {
        Some(RelayFrame::Welcome {
            version: spoken, ..
        }) if spoken == version => ws,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

pub fn message(frame: &ClientFrame) -> Message {
    Message::Binary(encode_client(frame).into())
}

pub async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(message(frame)).await.expect("send");
}

/// The next relay frame; `None` when the connection ends.
pub async fn recv(ws: &mut Ws) -> Option<RelayFrame> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Binary(bytes))) => {
                return Some(decode_relay(&bytes).expect("a valid frame"));
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Subscribes and reads the catch-up until `caught_up`.
pub async fn subscribe(ws: &mut Ws, doc: DocId) {
    send(ws, &ClientFrame::Subscribe { doc, since: 0 }).await;
    loop {
        match recv(ws).await {
            Some(RelayFrame::Deltas {
                caught_up: true, ..
            }) => return,
            Some(RelayFrame::Deltas { .. }) | Some(RelayFrame::Presence { .. }) => {}
            other => panic!("expected Deltas, got {other:?}"),
        }
    }
}

/// The `q`-quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}
