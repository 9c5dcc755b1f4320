//! The log is durable: across a graceful restart and across `kill -9`.

use std::collections::HashMap;

use syncline_protocol::{ClientFrame, DeltaId, RelayFrame};

use crate::common::{Client, RelayProcess, delta, doc, seqs};

#[tokio::test]
async fn the_log_survives_a_restart_with_the_same_seqs_and_epoch() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut client, epoch) = Client::greeted(&relay.url()).await;
    assert_eq!(client.push(doc(1), vec![delta(1), delta(2)]).await, 2);
    assert_eq!(client.push(doc(1), vec![delta(3)]).await, 3);
    assert_eq!(client.push(doc(2), vec![delta(4)]).await, 1);

    // Graceful stop: the connected client is told "going away" (1001).
    let (mut watcher, _) = Client::greeted(&relay.url()).await;
    let status = relay.terminate().await;
    assert!(status.success(), "SIGTERM is a clean exit, got {status}");
    let close = watcher.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);
    drop(client);

    let relay = RelayProcess::start(data.path()).await;
    let (mut client, epoch_after) = Client::greeted(&relay.url()).await;
    assert_eq!(epoch_after, epoch, "the epoch is kept across restarts");

    let (all, _) = client.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&all), vec![1, 2, 3]);
    let expected: Vec<DeltaId> = [1, 2, 3].map(|t| delta(t).id).to_vec();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), expected);
    assert_eq!(all[2].bytes, delta(3).bytes);

    let (mut other, _) = Client::greeted(&relay.url()).await;
    let (newer, _) = other.subscribe(doc(1), 2).await;
    assert_eq!(seqs(&newer), vec![3]);
    let (doc2, _) = other.subscribe(doc(2), 0).await;
    assert_eq!(seqs(&doc2), vec![1]);

    // The sequence continues where it stopped.
    assert_eq!(client.push(doc(1), vec![delta(5)]).await, 4);
}

#[tokio::test]
async fn every_acked_delta_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut a, epoch) = Client::greeted(&relay.url()).await;
    let (mut b, _) = Client::greeted(&relay.url()).await;

    // Pipeline pushes from two clients to one document, without waiting.
    const PUSHES: u32 = 40;
    for n in 0..PUSHES {
        a.send(&ClientFrame::Push {
            doc: doc(3),
            deltas: vec![delta(1000 + n)],
        })
        .await;
        b.send(&ClientFrame::Push {
            doc: doc(3),
            deltas: vec![delta(2000 + n), delta(3000 + n)],
        })
        .await;
    }
    let mut acked: HashMap<DeltaId, u64> = HashMap::new();
    for client in [&mut a, &mut b] {
        for _ in 0..PUSHES {
            match client.recv().await {
                RelayFrame::Ack { ids, seq, .. } => {
                    // One-delta pushes: the ack's seq is that delta's seq.
                    if ids.len() == 1 {
                        acked.insert(ids[0], seq);
                    } else {
                        acked.extend(ids.into_iter().map(|id| (id, 0)));
                    }
                }
                other => panic!("expected Ack, got {other:?}"),
            }
        }
    }
    // Right after the last ack: no goodbye, no flush, no shutdown.
    relay.kill9().await;

    let relay = RelayProcess::start(data.path()).await;
    let (mut client, epoch_after) = Client::greeted(&relay.url()).await;
    assert_eq!(epoch_after, epoch);
    let (log, _) = client.subscribe(doc(3), 0).await;
    assert_eq!(seqs(&log), (1..=3 * PUSHES as u64).collect::<Vec<_>>());
    let stored: HashMap<DeltaId, u64> = log.iter().map(|d| (d.id, d.seq)).collect();
    for (id, seq) in &acked {
        let found = stored
            .get(id)
            .unwrap_or_else(|| panic!("acked {id} was lost"));
        if *seq != 0 {
            assert_eq!(found, seq, "{id} keeps the seq it was acked with");
        }
    }
    assert_eq!(acked.len(), stored.len());
}
