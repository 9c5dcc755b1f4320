//! Faults: a relay killed with `kill -9` mid-stream, Postgres restarted
//! or stopped under load, NATS killed, and wrong URLs at start.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::SinkExt;
use syncline_protocol::{ClientFrame, DeltaId, DocId, PushDelta, RelayFrame, encode_client};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::Cluster;
use crate::common::{Client, TIMEOUT, delta, doc, get_metric, http_get};
use crate::pusher::push_all;
use crate::sync::{Seen, next, peer};

/// Reads `doc`'s whole log through relay `url` and checks it holds every
/// acked delta once, at its acked sequence, densely numbered.
async fn assert_log_holds(url: &str, doc: DocId, acked: &BTreeMap<DeltaId, u64>) {
    let (mut reader, _) = Client::greeted(url).await;
    let (log, _) = reader.subscribe(doc, 0).await;
    let seqs: Vec<u64> = log.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "dense");
    let stored: BTreeMap<DeltaId, u64> = log.iter().map(|d| (d.id, d.seq)).collect();
    assert_eq!(stored.len(), log.len(), "no delta stored twice");
    for (id, seq) in acked {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "an acked delta is in the log at its seq"
        );
    }
}

/// A v1 subscriber of `doc` on `url`, in a task, until it has `total`
/// deltas or `patience` passes without any new one.
fn watch(url: String, doc: DocId, total: usize) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move { peer(&url, doc, Vec::new(), total as u64, TIMEOUT).await })
}

#[tokio::test]
async fn kill9_of_a_relay_during_2000_acked_pushes_loses_none() {
    let mut cluster = Cluster::start("kill9", 3).await;
    let d = doc(3);
    let watcher = watch(cluster.url(2), d, 2000);
    let deltas: Vec<PushDelta> = (0..2000).map(delta).collect();
    let urls = vec![cluster.url(0), cluster.url(1), cluster.url(2)];
    let victim = &mut cluster.relays[0];
    let pushed = push_all(&urls, d, &deltas, async |acked| {
        if acked == 700
            && let Some(relay) = victim.take()
        {
            relay.kill9().await;
            return true;
        }
        false
    })
    .await;
    assert_eq!(pushed.acked.len(), 2000, "every push acked in the end");
    assert!(pushed.failovers >= 1, "the client moved to another relay");
    assert_log_holds(&cluster.url(1), d, &pushed.acked).await;
    // A subscriber on a third relay saw every delta once, in order.
    let seen = watcher.await.unwrap();
    seen.assert_complete(2000);
}

#[tokio::test]
async fn postgres_down_means_no_acks_then_recovery_without_restarting_relays() {
    let cluster = Cluster::start("pgdown", 2).await;
    let d = doc(4);
    let url = cluster.url(0);
    let (mut client, _) = Client::greeted(&url).await;
    for tag in 0..50 {
        client.push(d, vec![delta(tag)]).await;
    }
    cluster.postgres.stop();
    let down_since = Instant::now();
    let ws = client.ws_mut();
    for tag in 50..100 {
        let push = ClientFrame::Push {
            doc: d,
            deltas: vec![delta(tag)],
        };
        ws.send(Message::Binary(
            encode_client(&syncline_relay::test_docs::sign(push.clone(), &[7; 16])).into(),
        ))
        .await
        .unwrap();
    }
    // Nothing is acknowledged while Postgres is down...
    assert!(
        next(ws, Duration::from_millis(1500)).await.is_none(),
        "an ack (or anything) while Postgres was down"
    );
    // ...and both relays say so (the idle one from its probe).
    for i in 0..2 {
        let (status, _, body) = http_get(cluster.addr(i), "/healthz").await;
        assert_eq!(status, 503, "relay {i}: {body}");
        assert!(body.contains("store down"), "{body}");
        assert_eq!(get_metric(cluster.addr(i), "syncline_store_up").await, 0.0);
    }
    cluster.postgres.start_again();
    let mut acked = BTreeMap::new();
    while acked.len() < 50 {
        match next(ws, TIMEOUT).await.expect("acks once Postgres is back") {
            RelayFrame::Ack { ids, seq, .. } => {
                acked.insert(ids[0], seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(down_since.elapsed() >= Duration::from_millis(1500));
    for i in 0..2 {
        let (status, _, body) = http_get(cluster.addr(i), "/healthz").await;
        assert_eq!(status, 200, "relay {i} recovered by itself: {body}");
    }
    drop(client);

    // `pg_ctl restart -m immediate` in the middle of a stream of pushes.
    let deltas: Vec<PushDelta> = (100..600).map(delta).collect();
    let postgres = &cluster.postgres;
    let pushed = push_all(std::slice::from_ref(&url), d, &deltas, async |n| {
        if n == 150 {
            postgres.restart_immediate();
        }
        false
    })
    .await;
    acked.extend(pushed.acked);
    assert_eq!(
        pushed.failovers, 0,
        "the relay held the pushes, no reconnect needed"
    );
    assert_log_holds(&cluster.url(1), d, &acked).await;
}

#[tokio::test]
async fn without_nats_relays_converge_through_gap_repair_within_5s() {
    let mut cluster = Cluster::start("nonats", 2).await;
    let d = doc(5);
    let watcher = watch(cluster.url(1), d, 120);
    let (mut writer, _) = Client::greeted(&cluster.url(0)).await;
    for tag in 0..20 {
        writer.push(d, vec![delta(tag)]).await;
    }
    cluster.nats.kill();
    for tag in 20..120 {
        writer.push(d, vec![delta(tag)]).await;
    }
    let last_ack = Instant::now();
    let seen = watcher.await.unwrap();
    assert!(
        last_ack.elapsed() <= Duration::from_secs(5),
        "converged {:?} after the last ack",
        last_ack.elapsed()
    );
    seen.assert_complete(120);
    let (status, _, body) = http_get(cluster.addr(1), "/healthz").await;
    assert_eq!(status, 200, "the store is fine: {body}");
    assert!(body.contains("bus down"), "{body}");
    assert!(get_metric(cluster.addr(1), "syncline_gap_repairs_total").await >= 1.0);
}

/// Runs the relay binary with `args`; it must exit non-zero in time, with
/// `expected` in its stderr.
async fn fails_at_start(args: &[&str], expected: &str) {
    let output = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(syncline_relay::testing::relay_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "error")
            .output(),
    )
    .await
    .expect("the relay gives up in time")
    .expect("the relay binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with {args:?}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[tokio::test]
async fn wrong_store_or_bus_urls_fail_at_start_saying_which_and_why() {
    let cluster = Cluster::start("badurls", 0).await;
    let nowhere = syncline_relay::testing::services::free_port();
    let dead_pg = format!("postgres://postgres@127.0.0.1:{nowhere}/postgres");
    fails_at_start(&["--store", &dead_pg], "cannot reach Postgres at").await;
    fails_at_start(
        &["--store", "postgres://127.0.0.1:99999/x"],
        "not a valid postgres:// URL",
    )
    .await;
    fails_at_start(&["--store", "mysql://127.0.0.1/x"], "only postgres:// URLs").await;
    let sqlite = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("badurls-sqlite");
    let sqlite = sqlite.to_str().unwrap();
    let bus = cluster.nats.url();
    fails_at_start(
        &["--data", sqlite, "--bus", &bus],
        "--bus needs --store postgres://",
    )
    .await;
    let store = cluster.postgres.url();
    let dead_bus = format!("nats://127.0.0.1:{nowhere}");
    fails_at_start(
        &["--store", &store, "--bus", &dead_bus],
        "cannot connect to NATS at",
    )
    .await;
    fails_at_start(
        &["--store", &store, "--bus", "http://x"],
        "use a nats://HOST:PORT URL",
    )
    .await;
}
