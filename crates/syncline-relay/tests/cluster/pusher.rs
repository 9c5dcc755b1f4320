//! A pushing client that fails over: pipelined pushes of one delta each to
//! the first relay of a list that answers; when the connection breaks, it
//! moves to the next relay and pushes again everything not yet acked
//! (the relays deduplicate by id), as Syncline's clients do.

use std::collections::{BTreeMap, HashSet};

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, PushDelta, RelayFrame, decode_relay, encode_client,
};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TIMEOUT;

/// Pushes in flight at once.
const WINDOW: usize = 32;

/// What a [`push_all`] saw.
pub struct Pushed {
    /// Every id acked, with the sequence the ack gave it.
    pub acked: BTreeMap<DeltaId, u64>,
    /// How many times it had to move to another relay.
    pub failovers: usize,
}

/// Pushes `deltas` to `doc` through `urls`, starting at the first, until
/// every one is acked. `progress(acked)` runs after each ack; when it
/// returns `true` the current connection is considered lost (the test
/// killed its relay).
pub async fn push_all(
    urls: &[String],
    doc: DocId,
    deltas: &[PushDelta],
    mut progress: impl AsyncFnMut(usize) -> bool,
) -> Pushed {
    let mut acked: BTreeMap<DeltaId, u64> = BTreeMap::new();
    let mut failovers = 0;
    let mut at = 0;
    'relays: loop {
        let url = &urls[at % urls.len()];
        let (mut ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok(pair) => pair,
            Err(_) => {
                // Refused: the next relay at once.
                at += 1;
                failovers += 1;
                continue;
            }
        };
        let hello = ClientFrame::Hello {
            version: 1,
            replica: [3; 16],
            token: None,
        };
        if ws
            .send(Message::Binary(encode_client(&hello).into()))
            .await
            .is_err()
        {
            at += 1;
            failovers += 1;
            continue;
        }
        let pending: Vec<&PushDelta> = deltas
            .iter()
            .filter(|d| !acked.contains_key(&d.id))
            .collect();
        if pending.is_empty() {
            break;
        }
        let mut sent = 0;
        let mut in_flight: HashSet<DeltaId> = HashSet::new();
        loop {
            while sent < pending.len() && in_flight.len() < WINDOW {
                let delta = pending[sent].clone();
                in_flight.insert(delta.id);
                let push = ClientFrame::Push {
                    doc,
                    deltas: vec![delta],
                };
                if ws
                    .send(Message::Binary(
                        encode_client(&syncline_relay::test_docs::sign(push.clone(), &[3; 16]))
                            .into(),
                    ))
                    .await
                    .is_err()
                {
                    at += 1;
                    failovers += 1;
                    continue 'relays;
                }
                sent += 1;
            }
            if in_flight.is_empty() {
                break 'relays;
            }
            let next = timeout(TIMEOUT, ws.next())
                .await
                .expect("an answer in time");
            let bytes = match next {
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => {
                    at += 1;
                    failovers += 1;
                    continue 'relays;
                }
            };
            match decode_relay(&bytes).expect("a valid frame") {
                RelayFrame::Welcome { .. } => {}
                RelayFrame::Ack { ids, seq, .. } => {
                    for id in ids {
                        in_flight.remove(&id);
                        let old = acked.insert(id, seq);
                        assert!(
                            old.is_none_or(|old| old == seq),
                            "an id acked with two seqs"
                        );
                    }
                    if progress(acked.len()).await {
                        at += 1;
                        failovers += 1;
                        continue 'relays;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    Pushed { acked, failovers }
}
