//! Puts every commit this relay hears of — its own, the bus's, and what it
//! reads back from the store — into per-document sequence order before the
//! hub sees it.
//!
//! The hub's rules ([`crate::hub`]) need each document's publications in
//! sequence order and without gaps. With one relay, the store's single
//! commit path gives that for free. In a cluster, a document's sequences
//! are committed by several relays and reach this one by two roads (its
//! own commit path, the bus) that can reorder them, and the bus may lose
//! some. So, per document with subscribers here, the sequencer keeps
//! `through`, the last sequence handed to the hub:
//!
//! * a run starting at or below `through + 1` is handed on (trimmed to what
//!   is above `through`), then any parked run that now follows;
//! * a run that leaves a gap is **parked**, and a repair is scheduled: after
//!   [`GAP_GRACE`] (the run that fills it usually arrives by then) the gap
//!   is read from the store by sequence and offered like any run — only
//!   up to the first parked run, which keeps its origin and tentative
//!   stamp (the store's copy has neither, and would send its deltas to
//!   subscribers that had them as `Tentative` once more);
//! * a run at or below `through` is dropped: nothing is handed on twice.
//!
//! A bus that is down or dropped messages leaves no later run to reveal a
//! gap, so every [`POLL_EVERY`] the sequencer also compares the store's
//! heads of the subscribed documents with `through`, and repairs what is
//! missing. A document's order starts at the hub's [`floor`](Hub::floor)
//! (what its live subscribers already have) when there is one, else just
//! before the first run offered. Documents without subscribers here are not
//! tracked: nobody here needs their deltas.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use syncline_protocol::{DocId, SequencedDelta};
use tokio::sync::mpsc;

use super::held::Held;
use crate::hub::{Hub, REMOTE_ORIGIN};
use crate::metrics::Metrics;
use crate::store::{Fanout, PageLimits, Store};

/// How long a gap may wait for the run that fills it before it is read
/// from the store.
pub const GAP_GRACE: Duration = Duration::from_millis(20);
/// How often the heads of the subscribed documents are compared with what
/// was delivered (what repairs a bus that lost messages while quiet).
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// Orders commits for the hub; cheap to clone.
#[derive(Clone)]
pub struct Sequencer {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    page: PageLimits,
    docs: Mutex<HashMap<DocId, Order>>,
    repairs: mpsc::UnboundedSender<DocId>,
    /// The other relays' pushes fanned out here before their commit.
    held: Arc<Held>,
}

#[derive(Default)]
struct Order {
    /// The last sequence handed to the hub.
    through: u64,
    /// Runs that came early, by first sequence.
    parked: BTreeMap<u64, Fanout>,
    /// The highest sequence known to exist (a parked run's, a head's).
    known: u64,
    /// Whether a repair is scheduled or running.
    repairing: bool,
}

fn span(fanout: &Fanout) -> Option<(u64, u64)> {
    Some((fanout.deltas.first()?.seq, fanout.deltas.last()?.seq))
}

impl Order {
    /// Hands `fanout` on (into `out`) or parks it; then what now follows.
    fn offer(&mut self, fanout: Fanout, out: &mut Vec<Fanout>) {
        let Some((first, last)) = span(&fanout) else {
            return;
        };
        self.known = self.known.max(last);
        if last <= self.through {
            return;
        }
        if first > self.through + 1 {
            let longer = self
                .parked
                .get(&first)
                .is_none_or(|old| span(old).is_some_and(|(_, l)| l < last));
            if longer {
                self.parked.insert(first, fanout);
            }
            return;
        }
        let fanout = if first <= self.through {
            let through = self.through;
            let rest: Vec<SequencedDelta> = fanout
                .deltas
                .iter()
                .filter(|d| d.seq > through)
                .cloned()
                .collect();
            Fanout {
                deltas: Arc::from(rest),
                ..fanout
            }
        } else {
            fanout
        };
        self.through = last;
        out.push(fanout);
        while let Some(entry) = self.parked.first_entry() {
            if *entry.key() > self.through + 1 {
                break;
            }
            let next = entry.remove();
            self.offer(next, out);
        }
    }

    /// Offers a run read back from the store by a repair: only its part
    /// before the first parked run, which follows with its own origin and
    /// stamp. (The store's copy has neither: handing it on in the parked
    /// run's place would send this relay's own pushes, and other relays'
    /// pushes fanned out here already, to their subscribers a second
    /// time, as `Tentative`.)
    fn fill(&mut self, fanout: Fanout, out: &mut Vec<Fanout>) {
        // What is left out exists: the repair reads it next.
        if let Some((_, last)) = span(&fanout) {
            self.known = self.known.max(last);
        }
        let fanout = match self.parked.first_key_value() {
            Some((&parked, _)) if span(&fanout).is_some_and(|(_, last)| last >= parked) => {
                let before: Vec<SequencedDelta> = fanout
                    .deltas
                    .iter()
                    .filter(|d| d.seq < parked)
                    .cloned()
                    .collect();
                Fanout {
                    deltas: Arc::from(before),
                    ..fanout
                }
            }
            _ => fanout,
        };
        self.offer(fanout, out);
    }

    fn missing(&self) -> bool {
        self.known > self.through
    }
}

impl Sequencer {
    /// A sequencer feeding `hub`, repairing from `store`, telling the hub
    /// which remote deltas it fanned out tentatively by `held`; starts its
    /// repair and poll tasks (call inside a tokio runtime).
    pub fn start(
        hub: Hub,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        page: PageLimits,
        held: Arc<Held>,
    ) -> Self {
        let (repairs, queue) = mpsc::unbounded_channel();
        let sequencer = Sequencer {
            inner: Arc::new(Inner {
                hub,
                store,
                metrics,
                page,
                docs: Mutex::new(HashMap::new()),
                repairs,
                held,
            }),
        };
        tokio::spawn(sequencer.clone().repair_loop(queue));
        tokio::spawn(sequencer.clone().poll_loop());
        sequencer
    }

    fn docs(&self) -> MutexGuard<'_, HashMap<DocId, Order>> {
        self.inner
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The order of `doc`, created if it has subscribers here.
    fn order<'a>(
        &self,
        docs: &'a mut HashMap<DocId, Order>,
        doc: DocId,
        first: u64,
    ) -> Option<&'a mut Order> {
        match docs.entry(doc) {
            Entry::Occupied(order) => Some(order.into_mut()),
            Entry::Vacant(vacant) => {
                if !self.inner.hub.has_subscribers(doc) {
                    return None;
                }
                let through = self.inner.hub.floor(doc).unwrap_or(first.saturating_sub(1));
                Some(vacant.insert(Order {
                    through,
                    known: through,
                    ..Order::default()
                }))
            }
        }
    }

    /// Offers committed runs (each one document's, in sequence order; this
    /// relay's own group commits or another's). Hands the hub, in one
    /// group, what follows what it already has. Never waits.
    pub fn offer(&self, fanouts: &[Fanout]) {
        self.offer_runs(fanouts, false);
    }

    /// [`offer`](Sequencer::offer), of runs read back from the store
    /// (`repaired`: see [`Order::fill`]) or not.
    fn offer_runs(&self, fanouts: &[Fanout], repaired: bool) {
        let mut docs = self.docs();
        let mut out = Vec::new();
        for fanout in fanouts {
            let Some((first, _)) = span(fanout) else {
                continue;
            };
            let Some(order) = self.order(&mut docs, fanout.doc, first) else {
                continue;
            };
            match repaired {
                true => order.fill(fanout.clone(), &mut out),
                false => order.offer(fanout.clone(), &mut out),
            }
            if order.missing() && !order.repairing {
                order.repairing = true;
                let _ = self.inner.repairs.send(fanout.doc);
            }
        }
        if !out.is_empty() {
            // Under the lock: two offers reach the hub in the order they
            // were ordered.
            self.inner.hub.publish_group(&self.inner.held.stamp(out));
        }
    }

    /// Notes that `doc` has sequences up to `head` (a hint from the bus or
    /// the store): schedules a repair if they were not all delivered.
    pub fn known(&self, doc: DocId, head: u64) {
        let mut docs = self.docs();
        let Some(order) = self.order(&mut docs, doc, head) else {
            return;
        };
        order.known = order.known.max(head);
        if order.missing() && !order.repairing {
            order.repairing = true;
            let _ = self.inner.repairs.send(doc);
        }
    }

    async fn repair_loop(self, mut queue: mpsc::UnboundedReceiver<DocId>) {
        while let Some(doc) = queue.recv().await {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(GAP_GRACE).await;
                this.repair(doc).await
            });
        }
    }

    /// Reads what `doc` misses from the store, page by page, until nothing
    /// known is missing.
    async fn repair(&self, doc: DocId) {
        let mut counted = false;
        loop {
            let after = {
                let mut docs = self.docs();
                let Some(order) = docs.get_mut(&doc) else {
                    return;
                };
                if !order.missing() {
                    order.repairing = false;
                    return;
                }
                order.through
            };
            if !counted {
                counted = true;
                self.inner.metrics.gap_repairs.inc();
            }
            match self
                .inner
                .store
                .read_page(doc, after, self.inner.page)
                .await
            {
                Ok(page) if page.items.is_empty() => {
                    // The store has nothing above `after` (yet): what was
                    // known to exist was not committed after all.
                    if let Some(order) = self.docs().get_mut(&doc) {
                        order.known = order.through;
                        order.repairing = false;
                    }
                    return;
                }
                Ok(page) => {
                    self.inner
                        .metrics
                        .repaired_deltas
                        .add(page.items.len() as u64);
                    let run = Fanout {
                        doc,
                        origin: REMOTE_ORIGIN,
                        tentative: 0,
                        deltas: Arc::from(page.items),
                    };
                    self.offer_runs(&[run], true);
                }
                Err(error) => {
                    tracing::warn!(%doc, %error, "cannot repair a gap from the store yet");
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        }
    }

    /// Every [`POLL_EVERY`]: forgets documents nobody here subscribes to,
    /// and compares the others' heads in the store with what was delivered.
    async fn poll_loop(self) {
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let subscribed = self.inner.hub.subscribed_docs();
            self.docs()
                .retain(|doc, _| self.inner.hub.has_subscribers(*doc));
            if subscribed.is_empty() {
                continue;
            }
            match self.inner.store.heads(subscribed).await {
                Ok(heads) => {
                    for (doc, head) in heads {
                        self.known(doc, head);
                    }
                }
                Err(error) => tracing::debug!(%error, "cannot read heads"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::DeltaId;

    fn run(doc: DocId, seqs: std::ops::RangeInclusive<u64>) -> Fanout {
        let deltas: Vec<SequencedDelta> = seqs
            .map(|seq| SequencedDelta {
                seq,
                id: DeltaId([seq as u8; 32]),
                bytes: vec![seq as u8],
            })
            .collect();
        Fanout {
            doc,
            origin: REMOTE_ORIGIN,
            tentative: 0,
            deltas: Arc::from(deltas),
        }
    }

    fn seqs(out: &[Fanout]) -> Vec<u64> {
        out.iter()
            .flat_map(|f| f.deltas.iter().map(|d| d.seq))
            .collect()
    }

    /// A document delivered through sequence 2, and nothing handed on.
    fn through_2() -> (DocId, Order, Vec<Fanout>) {
        let order = Order {
            through: 2,
            known: 2,
            ..Order::default()
        };
        (DocId([1; 16]), order, Vec::new())
    }

    #[test]
    fn runs_are_handed_on_in_order_once() {
        let (doc, mut order, mut out) = through_2();
        order.offer(run(doc, 6..=7), &mut out);
        assert!(out.is_empty(), "a gap parks the run");
        assert!(order.missing());
        order.offer(run(doc, 1..=4), &mut out);
        assert_eq!(seqs(&out), vec![3, 4], "trimmed to what is new");
        order.offer(run(doc, 5..=5), &mut out);
        assert_eq!(seqs(&out), vec![3, 4, 5, 6, 7], "the parked run follows");
        order.offer(run(doc, 6..=7), &mut out);
        order.offer(run(doc, 2..=3), &mut out);
        assert_eq!(seqs(&out), vec![3, 4, 5, 6, 7], "nothing twice");
        assert!(!order.missing());
        assert_eq!(order.through, 7);
    }

    #[test]
    fn a_repair_fills_the_gap_only_and_parked_runs_keep_their_stamps() {
        let (doc, mut order, mut out) = through_2();
        // This relay's own push, seq 5-6, fanned out tentatively (stamp 9)
        // by connection 4, parked behind the gap 3-4.
        let own = Fanout {
            origin: 4,
            tentative: 9,
            ..run(doc, 5..=6)
        };
        order.offer(own, &mut out);
        assert!(out.is_empty());
        // The repair reads 3-7 from the store: 3-4 fill the gap, the parked
        // run follows as it was, and 7 after it.
        order.fill(run(doc, 3..=7), &mut out);
        assert_eq!(seqs(&out), vec![3, 4, 5, 6]);
        let parts: Vec<(u64, u64)> = out.iter().map(|f| (f.origin, f.tentative)).collect();
        assert_eq!(parts, vec![(REMOTE_ORIGIN, 0), (4, 9)]);
        assert!(order.missing(), "7 is known to exist: the repair goes on");
        order.fill(run(doc, 7..=7), &mut out);
        assert_eq!(seqs(&out), vec![3, 4, 5, 6, 7], "nothing parked: all of it");
        assert!(!order.missing());
    }
}
