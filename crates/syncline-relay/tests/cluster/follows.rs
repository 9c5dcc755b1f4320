//! Follow announcements steer the tentative shortcut between relays: a
//! push goes on the bus before its commit only while another relay has
//! announced that it follows the document (see `bus/follows.rs`); a lost or
//! expired announcement only delays delivery to the commit, and asking
//! brings it back.
//!
//! The relays run with a refresh period of an hour, so no periodic
//! announcement lands in the middle of a test. The test talks to NATS
//! itself to see announcements and to stand for a relay whose announcement
//! was lost or expired; the wire format is the one `bus/follows.rs`
//! documents (kind, sender's 16-byte id, body).

use async_nats::Subscriber;
use futures_util::StreamExt;
use syncline_protocol::{ClientFrame, DocId};
use tokio::time::timeout;

use crate::Cluster;
use crate::common::{Client, TIMEOUT, delta, doc, get_metric};
use crate::tentative::{
    alice_and_bob, expect_committed, expect_tentative, head, hold_commits, postgres, push_only,
    until_followed, until_metric,
};

/// No periodic announcement during a test.
const QUIET: &[&str] = &["--bus-refresh-ms", "3600000"];
const FOLLOWS: &str = "syncline.follows";
const FOLLOW: u8 = 5;
const UNFOLLOW: u8 = 6;
const ASK: u8 = 7;
/// The id the test uses when it stands for a relay of its own.
const STRANGER: [u8; 16] = [0xee; 16];

async fn metric(cluster: &Cluster, i: usize, series: &str) -> f64 {
    get_metric(cluster.addr(i), series).await
}

/// Publishes an announcement of `kind` as relay `sender`.
async fn announce(nats: &async_nats::Client, kind: u8, sender: [u8; 16], body: &[u8]) {
    let mut message = vec![kind];
    message.extend_from_slice(&sender);
    message.extend_from_slice(body);
    nats.publish(FOLLOWS, message.into()).await.unwrap();
    nats.flush().await.unwrap();
}

/// A follow's body: its TTL in milliseconds, then the documents.
fn follow_body(ttl_ms: u32, docs: &[DocId]) -> Vec<u8> {
    let mut body = ttl_ms.to_le_bytes().to_vec();
    for d in docs {
        body.extend_from_slice(&d.0);
    }
    body
}

/// Reads announcements until a follow of `d`; returns its sender.
async fn follow_of(follows: &mut Subscriber, d: DocId) -> [u8; 16] {
    loop {
        let message = timeout(TIMEOUT, follows.next())
            .await
            .expect("a follow is announced in time")
            .expect("the subscription is open");
        let payload = &message.payload;
        let lists_d = payload.len() >= 21 && payload[21..].chunks(16).any(|id| id == d.0);
        if payload[0] == FOLLOW && lists_d {
            return payload[1..17].try_into().unwrap();
        }
    }
}

#[tokio::test]
async fn a_push_goes_on_the_bus_before_its_commit_only_while_another_relay_follows_its_document() {
    let cluster = Cluster::start_with("follows", 2, QUIET).await;
    let d = doc(8);
    let mut alice = Client::greeted_current(&cluster.url(0), 0xa).await;
    // Carol subscribes on alice's own relay: that is no reason to publish.
    let mut carol = Client::greeted_current(&cluster.url(0), 0xc).await;
    carol.subscribe(d, 0).await;
    carol.ping(1).await;
    assert_eq!(alice.push(d, vec![delta(1)]).await, 1);
    tentative_then_committed(&mut carol, d, 1).await;
    let out = "syncline_bus_tentative_out_total";
    let skipped = "syncline_bus_tentative_unfollowed_total";
    assert_eq!(metric(&cluster, 0, out).await, 0.0, "nobody else follows d");
    assert_eq!(metric(&cluster, 0, skipped).await, 1.0);

    // Bob subscribes on relay 1: relay 1 follows d, relay 0 hears it.
    let mut bob = Client::greeted_current(&cluster.url(1), 0xb).await;
    assert_eq!(bob.subscribe(d, 0).await.0.len(), 1);
    bob.ping(2).await;
    until_followed(&cluster, 1, 1.0, 0).await;
    let pg = postgres(&cluster.postgres.url()).await;
    hold_commits(&pg, d).await;
    push_only(&mut alice, d, vec![delta(2)]).await;
    assert_eq!(expect_tentative(bob.recv().await, d), vec![delta(2)]);
    assert_eq!(expect_tentative(carol.recv().await, d), vec![delta(2)]);
    let reader = postgres(&cluster.postgres.url()).await;
    assert_eq!(head(&reader, d).await, 1, "bob has it before its commit");
    assert_eq!(metric(&cluster, 0, out).await, 1.0);
    pg.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        expect_committed(bob.recv().await, d),
        (1, 2, vec![delta(2).id])
    );
    assert_eq!(
        expect_committed(carol.recv().await, d),
        (1, 2, vec![delta(2).id])
    );
    assert_eq!(alice.recv().await, ack(d, 2));

    // Bob leaves: relay 1 unfollows, relay 0 stops publishing.
    bob.send(&ClientFrame::Unsubscribe { doc: d }).await;
    bob.ping(3).await;
    until_metric(&cluster, 1, "syncline_bus_followed_docs", 0.0).await;
    until_metric(&cluster, 0, "syncline_bus_remote_follows", 0.0).await;
    assert_eq!(alice.push(d, vec![delta(3)]).await, 3);
    assert_eq!(metric(&cluster, 0, out).await, 1.0);
    assert_eq!(metric(&cluster, 0, skipped).await, 2.0);
    tentative_then_committed(&mut carol, d, 3).await;
    bob.ping(4).await; // nothing for bob any more
}

/// Expects delta `n` as `Tentative`, then the `Committed` of sequence
/// `n` (delta `n` is the document's `n`th).
async fn tentative_then_committed(client: &mut Client, d: DocId, n: u32) {
    assert_eq!(expect_tentative(client.recv().await, d), vec![delta(n)]);
    let committed = expect_committed(client.recv().await, d);
    assert_eq!(
        committed,
        (u64::from(n) - 1, u64::from(n), vec![delta(n).id])
    );
}

fn ack(doc: DocId, seq: u64) -> syncline_protocol::RelayFrame {
    syncline_protocol::RelayFrame::Ack {
        doc,
        ids: vec![delta(seq as u32).id],
        seq,
    }
}

#[tokio::test]
async fn a_lost_or_expired_follow_delays_delivery_to_the_commit_and_asking_restores_it() {
    let cluster = Cluster::start_with("follows-lost", 2, QUIET).await;
    let nats = async_nats::connect(cluster.nats.url()).await.unwrap();
    let mut follows = nats.subscribe(FOLLOWS).await.unwrap();
    nats.flush().await.unwrap();
    let d = doc(9);
    let (mut alice, mut bob) = alice_and_bob(&cluster, d).await;
    let relay1 = follow_of(&mut follows, d).await;
    let out = "syncline_bus_tentative_out_total";
    let skipped = "syncline_bus_tentative_unfollowed_total";
    let (out0, skipped0) = (
        metric(&cluster, 0, out).await,
        metric(&cluster, 0, skipped).await,
    );

    // Lost: relay 0 no longer knows that relay 1 follows d (as if relay
    // 1's follow never arrived). The push is not published before its
    // commit; bob gets it from the commit path, as a late subscriber would.
    announce(&nats, UNFOLLOW, relay1, &d.0).await;
    until_metric(&cluster, 0, "syncline_bus_remote_follows", 0.0).await;
    assert_eq!(alice.push(d, vec![delta(2)]).await, 2);
    assert_eq!(metric(&cluster, 0, out).await, out0);
    assert_eq!(metric(&cluster, 0, skipped).await, skipped0 + 1.0);
    tentative_then_committed(&mut bob, d, 2).await;
    assert_eq!(
        metric(&cluster, 1, "syncline_bus_tentative_in_total").await,
        0.0
    );

    // Asking: relay 1 announces what it follows, and pushes cross before
    // their commit again.
    announce(&nats, ASK, STRANGER, &[]).await;
    assert_eq!(follow_of(&mut follows, d).await, relay1);
    until_metric(&cluster, 0, "syncline_bus_remote_follows", 1.0).await;
    let pg = postgres(&cluster.postgres.url()).await;
    hold_commits(&pg, d).await;
    push_only(&mut alice, d, vec![delta(3)]).await;
    assert_eq!(expect_tentative(bob.recv().await, d), vec![delta(3)]);
    let reader = postgres(&cluster.postgres.url()).await;
    assert_eq!(head(&reader, d).await, 2, "bob has it before its commit");
    pg.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        expect_committed(bob.recv().await, d),
        (2, 3, vec![delta(3).id])
    );
    assert_eq!(alice.recv().await, ack(d, 3));
    assert_eq!(metric(&cluster, 0, out).await, out0 + 1.0);

    // Expired: relay 1's follow is heard with no time left (as if its
    // refreshes were lost); a stranger's follow of another document comes
    // after it, to know when relay 0 has heard both.
    announce(&nats, FOLLOW, relay1, &follow_body(0, &[d])).await;
    announce(&nats, FOLLOW, STRANGER, &follow_body(3_600_000, &[doc(99)])).await;
    until_metric(&cluster, 0, "syncline_bus_remote_follows", 2.0).await;
    assert_eq!(alice.push(d, vec![delta(4)]).await, 4);
    assert_eq!(metric(&cluster, 0, out).await, out0 + 1.0, "not published");
    assert_eq!(metric(&cluster, 0, skipped).await, skipped0 + 2.0);
    tentative_then_committed(&mut bob, d, 4).await;
    bob.ping(5).await;
    assert_eq!(head(&reader, d).await, 4);
}
