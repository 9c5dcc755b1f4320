//! Tentative delivery across relays: a push on relay A reaches a version 2
//! subscriber on relay B as `Tentative` before A commits it, then as a
//! `Committed` once it is stored, exactly as on one relay. The commit is
//! held back deterministically: the test locks the document's head row in
//! Postgres (`SELECT … FOR UPDATE`), which every append must lock too.

use std::time::Duration;

use syncline_protocol::{ClientFrame, DeltaId, DocId, PushDelta, RelayFrame};
use tokio::time::Instant;
use tokio_postgres::{Client as PgClient, NoTls};

use crate::Cluster;
use crate::common::{Client, TIMEOUT, delta, doc, get_metric};

/// A connection of the test's own to the cluster's Postgres.
pub async fn postgres(url: &str) -> PgClient {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the test connects to Postgres");
    tokio::spawn(connection);
    client
}

/// Locks `doc`'s head row in a transaction of `pg` (every append to the
/// document waits for it) until `ROLLBACK`.
pub async fn hold_commits(pg: &PgClient, doc: DocId) {
    pg.batch_execute("BEGIN").await.unwrap();
    let rows = pg
        .query(
            "SELECT head FROM syncline_docs WHERE doc = $1 FOR UPDATE",
            &[&doc.0.to_vec()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the document has a head row to lock");
}

/// `doc`'s head in Postgres, read past any lock.
pub async fn head(pg: &PgClient, doc: DocId) -> i64 {
    pg.query_one(
        "SELECT head FROM syncline_docs WHERE doc = $1",
        &[&doc.0.to_vec()],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until relay `i`'s gauge `series` is `value`. Bounded: gauges of
/// what the relays told each other over the bus settle within a few bus
/// hops.
pub async fn until_metric(cluster: &Cluster, i: usize, series: &str, value: f64) {
    let deadline = Instant::now() + TIMEOUT;
    while get_metric(cluster.addr(i), series).await != value {
        assert!(
            Instant::now() < deadline,
            "relay {i}'s {series} never became {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until relay `i` receives the other relays' uncommitted pushes to
/// `docs` documents (its subscription is on the NATS server) and relay
/// `publisher` knows it (so it publishes them).
pub async fn until_followed(cluster: &Cluster, i: usize, docs: f64, publisher: usize) {
    until_metric(cluster, i, "syncline_bus_followed_docs", docs).await;
    until_metric(cluster, publisher, "syncline_bus_remote_follows", docs).await;
}

pub async fn push_only(client: &mut Client, doc: DocId, deltas: Vec<PushDelta>) {
    client.send(&ClientFrame::Push { doc, deltas }).await;
}

pub fn expect_tentative(frame: RelayFrame, doc: DocId) -> Vec<PushDelta> {
    match frame {
        RelayFrame::Tentative { doc: got, deltas } => {
            assert_eq!(got, doc);
            deltas
        }
        other => panic!("expected Tentative, got {other:?}"),
    }
}

pub fn expect_committed(frame: RelayFrame, doc: DocId) -> (u64, u64, Vec<DeltaId>) {
    match frame {
        RelayFrame::Committed {
            doc: got,
            after,
            seq,
            ids,
        } => {
            assert_eq!(got, doc);
            (after, seq, ids)
        }
        other => panic!("expected Committed, got {other:?}"),
    }
}

/// Relay 0's alice has pushed delta 1 (acked, so the head row exists);
/// relay 1's bob (version 2) is subscribed and live, and relay 1 follows
/// the document on the bus (relay 0 heard it).
pub async fn alice_and_bob(cluster: &Cluster, d: DocId) -> (Client, Client) {
    let mut alice = Client::greeted_current(&cluster.url(0), 0xa).await;
    assert_eq!(alice.push(d, vec![delta(1)]).await, 1);
    let mut bob = Client::greeted_current(&cluster.url(1), 0xb).await;
    let (log, _) = bob.subscribe(d, 0).await;
    assert_eq!(log.len(), 1);
    bob.ping(1).await;
    until_followed(cluster, 1, 1.0, 0).await;
    (alice, bob)
}

#[tokio::test]
async fn a_push_reaches_a_subscriber_on_another_relay_as_tentative_before_its_commit() {
    let cluster = Cluster::start("tentative", 2).await;
    let d = doc(6);
    let (mut alice, mut bob) = alice_and_bob(&cluster, d).await;
    let pg = postgres(&cluster.postgres.url()).await;
    hold_commits(&pg, d).await;

    push_only(&mut alice, d, vec![delta(2)]).await;
    // Relay 0 cannot commit (the row is locked), yet bob has the push.
    assert_eq!(expect_tentative(bob.recv().await, d), vec![delta(2)]);
    let reader = postgres(&cluster.postgres.url()).await;
    assert_eq!(head(&reader, d).await, 1, "nothing was committed yet");
    assert!(get_metric(cluster.addr(1), "syncline_bus_tentative_in_total").await >= 1.0);

    pg.batch_execute("ROLLBACK").await.unwrap();
    // Then the commit: only the Committed, no second copy of the delta.
    assert_eq!(
        expect_committed(bob.recv().await, d),
        (1, 2, vec![delta(2).id])
    );
    match alice.recv().await {
        RelayFrame::Ack { seq, .. } => assert_eq!(seq, 2),
        other => panic!("expected Ack, got {other:?}"),
    }
    bob.ping(2).await; // and nothing else
    assert_eq!(head(&reader, d).await, 2);
}

#[tokio::test]
async fn a_relay_killed_between_tentative_and_commit_leaves_the_push_unconfirmed_until_repushed() {
    let mut cluster = Cluster::start("tentative-kill9", 2).await;
    let d = doc(7);
    let (mut alice, mut bob) = alice_and_bob(&cluster, d).await;
    let pg = postgres(&cluster.postgres.url()).await;
    hold_commits(&pg, d).await;

    push_only(&mut alice, d, vec![delta(2)]).await;
    assert_eq!(expect_tentative(bob.recv().await, d), vec![delta(2)]);
    cluster.relays[0]
        .take()
        .expect("relay 0 runs")
        .kill9()
        .await;
    pg.batch_execute("ROLLBACK").await.unwrap();
    // Relay 0's transaction died with it: nothing stored, nothing
    // confirmed. Bob holds the tentative delta, as when one relay's commit
    // fails.
    let reader = postgres(&cluster.postgres.url()).await;
    let deadline = Instant::now() + TIMEOUT;
    while reader
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' OR wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(Instant::now() < deadline, "relay 0's transaction lingers");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(head(&reader, d).await, 1, "the killed relay stored nothing");
    bob.ping(2).await; // no Committed for it

    // Alice fails over to relay 1 and pushes again: stored once, confirmed.
    drop(alice);
    let mut alice = Client::greeted_current(&cluster.url(1), 0xa).await;
    assert_eq!(alice.push(d, vec![delta(2)]).await, 2);
    // Bob gets it again as Tentative (a local push; clients skip a delta
    // they logged), then the Committed that confirms it.
    assert_eq!(expect_tentative(bob.recv().await, d), vec![delta(2)]);
    assert_eq!(
        expect_committed(bob.recv().await, d),
        (1, 2, vec![delta(2).id])
    );
    bob.ping(3).await;
    assert_eq!(head(&reader, d).await, 2);
}
