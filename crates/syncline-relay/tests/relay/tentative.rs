//! Protocol version 2 live delivery over real sockets: `Tentative` when a
//! push arrives, `Committed` once it is durable; version 1 alongside.

use std::collections::HashSet;
use std::sync::Arc;

use syncline_protocol::{ClientFrame, DeltaId, DocId, PushDelta, RelayFrame};
use syncline_relay::store::memory::MemoryStore;
use syncline_relay::store::{
    Appended, OnCommit, Page, PageLimits, Snapshot, SnapshotOutcome, Store, StoreError, StoreFuture,
};
use syncline_relay::{Config, Relay};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::common::{Client, RelayProcess, TIMEOUT, delta, doc, push_backlog_then_more, seqs};

fn ids(deltas: &[PushDelta]) -> Vec<DeltaId> {
    deltas.iter().map(|d| d.id).collect()
}

/// Expects the next frame to be `Tentative` for `doc`; returns its deltas.
async fn recv_tentative(client: &mut Client, doc: DocId) -> Vec<PushDelta> {
    match client.recv().await {
        RelayFrame::Tentative { doc: got, deltas } => {
            assert_eq!(got, doc);
            deltas
        }
        other => panic!("expected Tentative, got {other:?}"),
    }
}

/// Expects the next frame to be `Committed` for `doc`: (after, seq, ids).
async fn recv_committed(client: &mut Client, doc: DocId) -> (u64, u64, Vec<DeltaId>) {
    match client.recv().await {
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

async fn recv_ack(client: &mut Client, doc: DocId) -> u64 {
    match client.recv().await {
        RelayFrame::Ack { doc: got, seq, .. } => {
            assert_eq!(got, doc);
            seq
        }
        other => panic!("expected Ack, got {other:?}"),
    }
}

#[tokio::test]
async fn a_v2_subscriber_gets_tentative_then_committed_and_the_seqs_match_a_catch_up() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let mut alice = Client::greeted_current(&relay.url(), 1).await;
    let mut bob = Client::greeted_current(&relay.url(), 2).await;
    alice.subscribe(doc(1), 0).await;
    bob.subscribe(doc(1), 0).await;

    let pushed = vec![delta(1), delta(2)];
    bob.send(&ClientFrame::Push {
        doc: doc(1),
        deltas: pushed.clone(),
    })
    .await;
    assert_eq!(recv_tentative(&mut alice, doc(1)).await, pushed);
    assert_eq!(
        recv_committed(&mut alice, doc(1)).await,
        (0, 2, ids(&pushed))
    );
    // The pusher: no echo, but its own deltas' range, then its Ack.
    assert_eq!(recv_committed(&mut bob, doc(1)).await, (0, 2, vec![]));
    assert_eq!(recv_ack(&mut bob, doc(1)).await, 2);

    // Alice pushes: the next range continues where the last one ended.
    alice
        .send(&ClientFrame::Push {
            doc: doc(1),
            deltas: vec![delta(3)],
        })
        .await;
    assert_eq!(recv_tentative(&mut bob, doc(1)).await, vec![delta(3)]);
    assert_eq!(
        recv_committed(&mut bob, doc(1)).await,
        (2, 3, vec![delta(3).id])
    );
    assert_eq!(recv_committed(&mut alice, doc(1)).await, (2, 3, vec![]));
    assert_eq!(recv_ack(&mut alice, doc(1)).await, 3);
    alice.ping(1).await;
    bob.ping(2).await;

    // The committed ids sit at the seqs a fresh catch-up reports.
    let (mut carol, _) = Client::greeted(&relay.url()).await;
    let (log, _) = carol.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&log), vec![1, 2, 3]);
    let logged: Vec<DeltaId> = log.iter().map(|d| d.id).collect();
    assert_eq!(logged, vec![delta(1).id, delta(2).id, delta(3).id]);
}

#[tokio::test]
async fn a_v1_client_beside_v2_ones_still_gets_deltas_and_no_tentative() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path()).await;
    let (mut old, _) = Client::greeted(&relay.url()).await;
    let mut new = Client::greeted_current(&relay.url(), 2).await;
    let mut pusher = Client::greeted_current(&relay.url(), 3).await;
    old.subscribe(doc(1), 0).await;
    new.subscribe(doc(1), 0).await;

    assert_eq!(pusher.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(seqs(&old.recv_live(doc(1)).await), vec![1]);
    old.ping(1).await;
    assert_eq!(recv_tentative(&mut new, doc(1)).await, vec![delta(1)]);
    assert_eq!(
        recv_committed(&mut new, doc(1)).await,
        (0, 1, vec![delta(1).id])
    );

    // And a v1 pusher's push reaches the v2 subscriber the same way.
    assert_eq!(old.push(doc(1), vec![delta(2)]).await, 2);
    old.ping(2).await;
    assert_eq!(recv_tentative(&mut new, doc(1)).await, vec![delta(2)]);
    assert_eq!(
        recv_committed(&mut new, doc(1)).await,
        (1, 2, vec![delta(2).id])
    );
}

/// What a version 2 client knows of one document, checking every frame
/// against the protocol's promises.
#[derive(Default)]
struct View {
    cursor: u64,
    have: HashSet<DeltaId>,
}

impl View {
    fn frame(&mut self, frame: RelayFrame) {
        match frame {
            RelayFrame::Deltas { items, .. } => {
                for item in items {
                    assert_eq!(item.seq, self.cursor + 1, "catch-up pages are dense");
                    self.cursor = item.seq;
                    self.have.insert(item.id);
                }
            }
            RelayFrame::Tentative { deltas, .. } => {
                self.have.extend(deltas.iter().map(|d| d.id));
            }
            RelayFrame::Committed {
                after, seq, ids, ..
            } => {
                assert_eq!(after, self.cursor, "ranges continue the cursor");
                assert_eq!(ids.len() as u64, seq - after, "it pushed nothing");
                for id in &ids {
                    assert!(self.have.contains(id), "{id} was sent before");
                }
                self.cursor = seq;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn pushes_during_a_v2_catch_up_are_all_sent_before_they_are_committed_without_gaps() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--page-max-items", "7"]).await;
    let url = relay.url();
    const BACKLOG: u32 = 60;
    const TOTAL: u32 = 300;
    let pushing = push_backlog_then_more(&url, doc(1), BACKLOG, TOTAL).await;

    let mut reader = Client::greeted_current(&url, 9).await;
    reader
        .send(&ClientFrame::Subscribe {
            doc: doc(1),
            since: 0,
        })
        .await;
    let mut view = View::default();
    while view.cursor < u64::from(TOTAL) {
        view.frame(reader.recv().await);
    }
    tokio::time::timeout(TIMEOUT, pushing)
        .await
        .expect("the pusher finishes")
        .expect("the pusher succeeded");
    assert_eq!(view.cursor, u64::from(TOTAL));
    assert_eq!(view.have.len(), TOTAL as usize);
    reader.ping(1).await;
}

/// A [`MemoryStore`] whose appends wait, in order, until the test lets
/// them commit.
struct HeldStore {
    jobs: mpsc::UnboundedSender<(DocId, Vec<PushDelta>, OnCommit, oneshot::Sender<Appended>)>,
    gate: Arc<Semaphore>,
    inner: Arc<MemoryStore>,
}

impl HeldStore {
    fn new() -> HeldStore {
        let inner = Arc::new(MemoryStore::new());
        let gate = Arc::new(Semaphore::new(0));
        let (jobs, mut queue) = mpsc::unbounded_channel::<(
            DocId,
            Vec<PushDelta>,
            OnCommit,
            oneshot::Sender<Appended>,
        )>();
        let (store, permits) = (Arc::clone(&inner), Arc::clone(&gate));
        tokio::spawn(async move {
            while let Some((doc, deltas, on_commit, reply)) = queue.recv().await {
                permits.acquire().await.expect("open").forget();
                let appended = store.append(doc, deltas, on_commit).await;
                let _ = reply.send(appended.expect("memory appends succeed"));
            }
        });
        HeldStore { jobs, gate, inner }
    }

    /// Lets `n` more appends commit.
    fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

impl Store for HeldStore {
    fn epoch(&self) -> [u8; 16] {
        self.inner.epoch()
    }

    fn append(
        &self,
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
    ) -> StoreFuture<Appended> {
        let (reply, appended) = oneshot::channel();
        let queued = self.jobs.send((doc, deltas, on_commit, reply));
        Box::pin(async move {
            queued.map_err(|_| StoreError::WorkerGone)?;
            appended.await.map_err(|_| StoreError::WorkerGone)
        })
    }

    fn snapshot(&self, doc: DocId, snapshot: Snapshot) -> StoreFuture<SnapshotOutcome> {
        self.inner.snapshot(doc, snapshot)
    }

    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page> {
        self.inner.read_page(doc, after, limits)
    }

    fn document_count(&self) -> StoreFuture<u64> {
        self.inner.document_count()
    }
}

#[tokio::test]
async fn tentative_arrives_while_the_commit_is_held_and_committed_only_after_it() {
    let store = Arc::new(HeldStore::new());
    let relay = Relay::with_store(Config::new("unused"), store.clone())
        .await
        .expect("the relay starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(relay.serve(listener, async {
        let _ = stopped.await;
    }));

    let mut alice = Client::greeted_current(&url, 1).await;
    let mut bob = Client::greeted_current(&url, 2).await;
    alice.subscribe(doc(1), 0).await;
    bob.subscribe(doc(1), 0).await;
    bob.send(&ClientFrame::Push {
        doc: doc(1),
        deltas: vec![delta(1)],
    })
    .await;
    // The commit cannot have happened: no permit was given yet.
    assert_eq!(recv_tentative(&mut alice, doc(1)).await, vec![delta(1)]);
    // Nothing else is queued for Alice (a Committed would precede the Pong).
    alice.ping(1).await;

    store.release(1);
    assert_eq!(
        recv_committed(&mut alice, doc(1)).await,
        (0, 1, vec![delta(1).id])
    );
    assert_eq!(recv_committed(&mut bob, doc(1)).await, (0, 1, vec![]));
    assert_eq!(recv_ack(&mut bob, doc(1)).await, 1);

    let _ = stop.send(());
    drop((alice, bob));
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("the relay stops in time")
        .expect("the server task")
        .expect("the relay ran cleanly");
}
