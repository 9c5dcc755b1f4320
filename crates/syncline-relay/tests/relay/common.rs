//! Test harness: a protocol client, and the relay as a child process
//! (from `syncline_relay::testing`, shared with the CLI's tests).

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, ErrorCode, PROTOCOL_VERSION, PushDelta, RelayFrame,
    SequencedDelta, decode_relay, encode_client,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use syncline_relay::testing::{RelayProcess, TIMEOUT};

/// Test document `n`: its writes are signed by [`Client::send`].
pub use syncline_relay::test_docs::doc;

/// A delta whose id is derived from `tag` (like a content hash would be).
pub fn delta(tag: u32) -> PushDelta {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&tag.to_be_bytes());
    id[4] = 0xd1;
    PushDelta {
        id: DeltaId(id),
        bytes: format!("sealed delta #{tag}").into_bytes(),
    }
}

/// The WebSocket of a [`Client`].
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client over tokio-tungstenite.
pub struct Client {
    ws: Ws,
    /// The replica id of its last `Hello` (presence is signed for it).
    replica: [u8; 16],
}

impl Client {
    /// The socket, to read and write frames directly.
    #[allow(dead_code)]
    pub fn ws_mut(&mut self) -> &mut Ws {
        &mut self.ws
    }

    /// Opens a WebSocket to `url` without saying anything.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("the WebSocket handshake succeeds");
        Client {
            ws,
            replica: [0; 16],
        }
    }

    /// Connects and completes the handshake with protocol version 1 (live
    /// deltas as `Deltas`, what most of these tests check); returns the
    /// relay's epoch.
    pub async fn greeted(url: &str) -> (Client, [u8; 16]) {
        Client::greeted_as(url, [7; 16], None).await
    }

    /// Connects and completes the handshake with the current
    /// [`PROTOCOL_VERSION`] (live deltas as `Tentative` and `Committed`,
    /// refusals with their exact code) as `replica`.
    pub async fn greeted_current(url: &str, replica: u8) -> Client {
        Client::greeted_with(url, PROTOCOL_VERSION, [replica; 16], None)
            .await
            .0
    }

    /// Connects and completes the version 1 handshake as `replica`, with
    /// `token`.
    pub async fn greeted_as(
        url: &str,
        replica: [u8; 16],
        token: Option<String>,
    ) -> (Client, [u8; 16]) {
        Client::greeted_with(url, 1, replica, token).await
    }

    /// Connects and completes the handshake with protocol `version`.
    pub async fn greeted_with(
        url: &str,
        version: u32,
        replica: [u8; 16],
        token: Option<String>,
    ) -> (Client, [u8; 16]) {
        let mut client = Client::connect(url).await;
        client
            .send(&ClientFrame::Hello {
                version,
                replica,
                token,
            })
            .await;
        match client.recv().await {
            RelayFrame::Welcome {
                version: spoken,
                epoch,
                ..
            } => {
                assert_eq!(spoken, version);
                (client, epoch)
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Sends `frame`; a write to a test document goes signed with its key,
    /// as a real client sends it.
    pub async fn send(&mut self, frame: &ClientFrame) {
        if let ClientFrame::Hello { replica, .. } = frame {
            self.replica = *replica;
        }
        let frame = syncline_relay::test_docs::sign(frame.clone(), &self.replica);
        self.send_unsigned(&frame).await;
    }

    /// Sends `frame` as it is: a write without a proof, for tests of what
    /// the relay does with those.
    pub async fn send_unsigned(&mut self, frame: &ClientFrame) {
        self.send_message(Message::Binary(encode_client(frame).into()))
            .await;
    }

    pub async fn send_message(&mut self, message: Message) {
        timeout(TIMEOUT, self.ws.send(message))
            .await
            .expect("send in time")
            .expect("send works");
    }

    /// The next relay frame (panics on close, timeout or a bad frame).
    pub async fn recv(&mut self) -> RelayFrame {
        loop {
            let message = timeout(TIMEOUT, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("the connection works");
            match message {
                Message::Binary(bytes) => return decode_relay(&bytes).expect("a valid frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a binary frame, got {other:?}"),
            }
        }
    }

    /// The next relay frame, or — when the connection ends instead — the
    /// close code, if a close frame came.
    pub async fn next_frame(&mut self) -> Result<RelayFrame, Option<u16>> {
        loop {
            let next = timeout(TIMEOUT, self.ws.next())
                .await
                .expect("a frame or the end arrives in time");
            match next {
                None | Some(Err(_)) => return Err(None),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Binary(bytes))) => {
                    return Ok(decode_relay(&bytes).expect("a valid frame"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected a binary frame, got {other:?}"),
            }
        }
    }

    /// Reads until the relay closes; returns its close frame, if any.
    /// Panics if a data frame arrives first.
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            let next = timeout(TIMEOUT, self.ws.next())
                .await
                .expect("the relay closes in time");
            match next {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected a close, got {other:?}"),
            }
        }
    }

    /// Reads (and counts) frames until the connection ends.
    pub async fn drain_until_closed(&mut self) -> usize {
        let mut frames = 0;
        loop {
            let next = timeout(TIMEOUT, self.ws.next())
                .await
                .expect("the relay closes in time");
            match next {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return frames,
                Some(Ok(_)) => frames += 1,
            }
        }
    }

    /// Pushes and waits for the `Ack`; returns its `seq`.
    pub async fn push(&mut self, doc: DocId, deltas: Vec<PushDelta>) -> u64 {
        let ids: Vec<DeltaId> = deltas.iter().map(|d| d.id).collect();
        self.send(&ClientFrame::Push { doc, deltas }).await;
        match self.recv().await {
            RelayFrame::Ack {
                doc: acked,
                ids: acked_ids,
                seq,
            } => {
                assert_eq!(acked, doc);
                assert_eq!(acked_ids, ids, "the ack names every pushed id, in order");
                seq
            }
            other => panic!("expected Ack, got {other:?}"),
        }
    }

    /// Subscribes and collects the whole catch-up; returns the deltas and
    /// the number of `Deltas` frames it came in.
    pub async fn subscribe(&mut self, doc: DocId, since: u64) -> (Vec<SequencedDelta>, usize) {
        self.send(&ClientFrame::Subscribe { doc, since }).await;
        let mut deltas = Vec::new();
        let mut pages = 0;
        loop {
            match self.recv().await {
                RelayFrame::Deltas {
                    doc: got,
                    items,
                    caught_up,
                } => {
                    assert_eq!(got, doc);
                    pages += 1;
                    deltas.extend(items);
                    if caught_up {
                        return (deltas, pages);
                    }
                }
                other => panic!("expected Deltas, got {other:?}"),
            }
        }
    }

    /// Expects the next frame to be live `Deltas` of `doc`.
    pub async fn recv_live(&mut self, doc: DocId) -> Vec<SequencedDelta> {
        match self.recv().await {
            RelayFrame::Deltas {
                doc: got,
                items,
                caught_up,
            } => {
                assert_eq!(got, doc);
                assert!(caught_up, "live deltas come with caught_up: true");
                items
            }
            other => panic!("expected live Deltas, got {other:?}"),
        }
    }

    /// Expects a `DocError` about `doc` with `code`; returns its message.
    pub async fn expect_doc_error(&mut self, doc: DocId, code: ErrorCode) -> String {
        match self.recv().await {
            RelayFrame::DocError {
                doc: got,
                code: got_code,
                message,
            } => {
                assert_eq!((got, got_code), (doc, code), "{message}");
                assert!(!message.is_empty());
                message
            }
            other => panic!("expected DocError {code:?}, got {other:?}"),
        }
    }

    /// Expects a fatal `Error` with `code`, then a close with `close_code`.
    pub async fn expect_fatal(&mut self, code: ErrorCode, close_code: u16) -> String {
        let message = match self.recv().await {
            RelayFrame::Error {
                code: got,
                message,
                fatal,
            } => {
                assert_eq!(got, code, "{message}");
                assert!(fatal);
                message
            }
            other => panic!("expected Error {code:?}, got {other:?}"),
        };
        let close = self.recv_close().await.expect("a close frame");
        assert_eq!(u16::from(close.code), close_code);
        message
    }

    /// Round-trips a `Ping`: proves the connection works and that nothing
    /// else was queued for this client before the `Pong`.
    pub async fn ping(&mut self, nonce: u64) {
        self.send(&ClientFrame::Ping { nonce }).await;
        match self.recv().await {
            RelayFrame::Pong { nonce: got } => assert_eq!(got, nonce),
            other => panic!("expected Pong, got {other:?}"),
        }
    }
}

/// Pushes deltas `1..=backlog` to `doc` one by one, each acked, then
/// returns a task that keeps pushing `backlog + 1..=total` (pipelined)
/// and reads their acks: a log that grows while someone catches up.
pub async fn push_backlog_then_more(
    url: &str,
    doc: DocId,
    backlog: u32,
    total: u32,
) -> tokio::task::JoinHandle<()> {
    let (mut pusher, _) = Client::greeted(url).await;
    for n in 1..=backlog {
        pusher.push(doc, vec![delta(n)]).await;
    }
    tokio::spawn(async move {
        for n in backlog + 1..=total {
            pusher
                .send(&ClientFrame::Push {
                    doc,
                    deltas: vec![delta(n)],
                })
                .await;
        }
        for _ in backlog + 1..=total {
            assert!(matches!(pusher.recv().await, RelayFrame::Ack { .. }));
        }
    })
}

/// The sequence numbers of `deltas`.
pub fn seqs(deltas: &[SequencedDelta]) -> Vec<u64> {
    deltas.iter().map(|d| d.seq).collect()
}

/// A minimal HTTP/1.1 GET: returns the status code, the headers (lower
/// case) and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
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
    (status, head.to_lowercase(), body.to_owned())
}

/// The value of one sample in a Prometheus text exposition.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Fetches `/metrics` and reads one series.
pub async fn get_metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, _, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    metric(&body, series)
}
