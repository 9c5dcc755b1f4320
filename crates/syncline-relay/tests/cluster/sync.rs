//! Two clients on two relays converge; the relays number one document's
//! deltas densely between them; a late subscriber catches up anywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, PushDelta, RelayFrame, SequencedDelta, decode_relay, encode_client,
};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::Cluster;
use crate::common::{Client, TIMEOUT, delta, doc, get_metric};

/// What one peer saw: its own deltas by acked seq, and the others'
/// deltas in the order they arrived.
pub struct Seen {
    pub own: BTreeMap<u64, DeltaId>,
    pub received: Vec<SequencedDelta>,
}

impl Seen {
    /// Panics unless own and received together are exactly `1..=total`,
    /// each once, and received came in strictly increasing order.
    pub fn assert_complete(&self, total: u64) {
        for pair in self.received.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq,
                "received seq {} after {}: a duplicate or out of order",
                pair[1].seq,
                pair[0].seq
            );
        }
        let mut all: Vec<u64> = self.own.keys().copied().collect();
        all.extend(self.received.iter().map(|d| d.seq));
        all.sort_unstable();
        let expected: Vec<u64> = (1..=total).collect();
        assert_eq!(all, expected, "every sequence exactly once");
    }
}

/// Connects to `url`, subscribes to `doc` from 0, pushes `deltas` one
/// push at a time (each waiting for its ack) while taking live deltas,
/// then keeps taking them until `total` sequences are accounted for or
/// `patience` passes after its own last ack.
pub async fn peer(
    url: &str,
    doc: DocId,
    deltas: Vec<PushDelta>,
    total: u64,
    patience: Duration,
) -> Seen {
    let (mut client, _) = Client::greeted(url).await;
    let (caught, _) = client.subscribe(doc, 0).await;
    let mut seen = Seen {
        own: BTreeMap::new(),
        received: caught,
    };
    let ws = client.ws_mut();
    let take = |frame: RelayFrame, seen: &mut Seen| match frame {
        RelayFrame::Deltas { items, .. } => seen.received.extend(items),
        RelayFrame::Ack { ids, seq, .. } => {
            seen.own.insert(seq, ids[0]);
        }
        other => panic!("unexpected {other:?}"),
    };
    for delta in deltas {
        let push = ClientFrame::Push {
            doc,
            deltas: vec![delta],
        };
        ws.send(Message::Binary(
            encode_client(&syncline_relay::test_docs::sign(push.clone(), &[7; 16])).into(),
        ))
        .await
        .unwrap();
        let before = seen.own.len();
        while seen.own.len() == before {
            let frame = next(ws, TIMEOUT).await.expect("an ack in time");
            take(frame, &mut seen);
        }
    }
    let deadline = Instant::now() + patience;
    while (seen.own.len() + seen.received.len()) < total as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Some(frame) => take(frame, &mut seen),
            None => break,
        }
    }
    seen
}

/// The next frame within `wait`, or `None`.
pub async fn next(ws: &mut crate::common::Ws, wait: Duration) -> Option<RelayFrame> {
    loop {
        match timeout(wait, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                return Some(decode_relay(&bytes).expect("a valid frame"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("the connection ended: {other:?}"),
        }
    }
}

fn tagged(from: u32, count: u32) -> Vec<PushDelta> {
    (from..from + count).map(delta).collect()
}

#[tokio::test]
async fn two_clients_on_different_relays_converge_with_one_dense_sequence() {
    let cluster = Cluster::start("converge", 3).await;
    let d = doc(1);
    let (url0, url1) = (cluster.url(0), cluster.url(1));
    let (a, b) = tokio::join!(
        peer(&url0, d, tagged(0, 200), 400, TIMEOUT),
        peer(&url1, d, tagged(1000, 200), 400, TIMEOUT),
    );
    // Two relays wrote one document at once: one dense sequence, each
    // delta once; each client saw the other's deltas in order, once.
    a.assert_complete(400);
    b.assert_complete(400);
    assert_eq!(a.own.len(), 200);
    // A third relay, which nobody pushed to, catches a newcomer up.
    let (mut late, _) = Client::greeted(&cluster.url(2)).await;
    let (all, _) = late.subscribe(d, 0).await;
    let seqs: Vec<u64> = all.iter().map(|x| x.seq).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    // The deltas went over the bus, not only through store polling.
    assert!(get_metric(cluster.addr(1), "syncline_bus_in_total").await > 0.0);
    assert_eq!(get_metric(cluster.addr(0), "syncline_bus_up").await, 1.0);
    assert_eq!(get_metric(cluster.addr(0), "syncline_store_up").await, 1.0);
}

#[tokio::test]
async fn presence_crosses_relays() {
    let cluster = Cluster::start("presence", 2).await;
    let d = doc(2);
    let (mut a, _) = Client::greeted_as(&cluster.url(0), [0xa; 16], None).await;
    let (mut b, _) = Client::greeted_as(&cluster.url(1), [0xb; 16], None).await;
    a.subscribe(d, 0).await;
    b.subscribe(d, 0).await;
    // Answered once B's subscription is live (frames are handled in order).
    b.ping(1).await;
    a.send(&ClientFrame::Presence {
        doc: d,
        bytes: b"cursor at 3".to_vec(),
    })
    .await;
    match b.recv().await {
        RelayFrame::Presence {
            doc: got,
            from,
            bytes,
        } => {
            assert_eq!((got, from), (d, [0xa; 16]));
            assert_eq!(bytes, b"cursor at 3");
        }
        other => panic!("expected Presence, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_cross_relays_to_everyone_or_to_their_addressee() {
    use syncline_relay::test_docs::message;
    let cluster = Cluster::start("messages", 2).await;
    let n = 3;
    let d = doc(n);
    let mut a = Client::greeted_current(&cluster.url(0), 0xa).await;
    let mut b = Client::greeted_current(&cluster.url(1), 0xb).await;
    let mut c = Client::greeted_current(&cluster.url(1), 0xc).await;
    for client in [&mut a, &mut b, &mut c] {
        client.subscribe(d, 0).await;
    }
    a.send(&message(n, &[0xa; 16], None, b"to all")).await;
    for client in [&mut b, &mut c] {
        let expected = RelayFrame::Message {
            doc: d,
            from: [0xa; 16],
            to: None,
            bytes: b"to all".to_vec(),
        };
        assert_eq!(client.recv().await, expected);
    }
    // A reply addressed to A, sent on relay B, reaches A on relay A only.
    b.send(&message(n, &[0xb; 16], Some([0xa; 16]), b"reply"))
        .await;
    let expected = RelayFrame::Message {
        doc: d,
        from: [0xb; 16],
        to: Some([0xa; 16]),
        bytes: b"reply".to_vec(),
    };
    assert_eq!(a.recv().await, expected);
    c.ping(1).await; // C, beside B, got nothing of it
    assert!(get_metric(cluster.addr(1), "syncline_messages_in_total").await >= 1.0);
}
