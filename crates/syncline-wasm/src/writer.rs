//! Write-behind storage: the engine's batches go to IndexedDB in as few
//! transactions as possible, in order, and `flush()` waits for the one
//! that covers everything made before it was called.
//!
//! Batches pile up ([`Writer::queue`]) while one transaction is in flight
//! and all go into the next one, so a burst of changes costs one
//! transaction. After each commit the engine hears which batches are
//! durable ([`syncline_core::Engine::persisted`]), which pushes the outbox
//! entries they hold. A failed transaction puts its batches back in front,
//! so a later success never vouches for an earlier failure; the next
//! change retries them.

use std::rc::Rc;

use futures_channel::oneshot;
use syncline_core::{Batch, SynclineErrorCode};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::errors::js_error;
use crate::events::{Event, emit};
use crate::host::{self, HostRef};
use crate::platform::now_ms;
use crate::storage::Storage;

type Waiter = oneshot::Sender<Result<(), JsValue>>;

/// The batches on their way to IndexedDB, and who waits for them.
pub struct Writer {
    storage: Rc<Storage>,
    /// Batches not yet handed to IndexedDB.
    unwritten: Vec<Batch>,
    /// A [`write_loop`] runs.
    running: bool,
    /// The last batch the engine emitted, and the last one committed.
    produced: u64,
    committed: u64,
    /// `flush()` calls, each with the last batch it waits for.
    waiters: Vec<(u64, Waiter)>,
}

impl Writer {
    pub fn new(storage: Storage) -> Writer {
        Writer {
            storage: Rc::new(storage),
            unwritten: Vec::new(),
            running: false,
            produced: 0,
            committed: 0,
            waiters: Vec::new(),
        }
    }

    /// The log, for reads outside the engine's batches.
    pub fn storage(&self) -> Rc<Storage> {
        self.storage.clone()
    }

    /// A batch the engine emitted, to write after every earlier one.
    pub fn queue(&mut self, batch: Batch) {
        debug_assert!(batch.id > self.produced, "batches come in order");
        self.produced = batch.id;
        self.unwritten.push(batch);
    }

    /// Whether a [`write_loop`] must start now (it is then counted as
    /// running).
    pub fn needs_loop(&mut self) -> bool {
        let start = !self.running && !self.unwritten.is_empty();
        self.running |= start;
        start
    }

    /// The batches of the next transaction; `None` (and the loop ends)
    /// when there are none.
    fn next_round(&mut self) -> Option<Vec<Batch>> {
        if self.unwritten.is_empty() {
            self.running = false;
            return None;
        }
        Some(std::mem::take(&mut self.unwritten))
    }

    /// A transaction of `batches` ended; returns the waiters it answers.
    fn ended(&mut self, batches: Vec<Batch>, ok: bool) -> Vec<(u64, Waiter)> {
        let last = batches.last().map_or(0, |b| b.id);
        if ok {
            debug_assert!(last > self.committed, "commits come in order");
            self.committed = last;
        } else {
            let newer = std::mem::take(&mut self.unwritten);
            self.unwritten = batches;
            self.unwritten.extend(newer);
            self.running = false;
        }
        let (done, waiting) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(target, _)| *target <= last);
        self.waiters = waiting;
        done
    }

    /// A receiver answered once everything produced so far is committed;
    /// `None`: it already is.
    fn wait(&mut self) -> Option<oneshot::Receiver<Result<(), JsValue>>> {
        if self.committed >= self.produced {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters.push((self.produced, sender));
        Some(receiver)
    }
}

/// Writes batches until none are left; one IndexedDB transaction per round.
pub async fn write_loop(host: HostRef) {
    after_page_microtasks().await;
    loop {
        let (batches, storage) = {
            let mut h = host.borrow_mut();
            match h.writer.next_round() {
                Some(batches) => (batches, h.writer.storage()),
                None => return,
            }
        };
        let last = batches.last().map_or(0, |b| b.id);
        let outcome = storage.write(&batches).await;
        let failure = outcome.as_ref().err().map(|e| (e.code(), e.to_string()));
        let result = outcome.map_err(|e| e.to_js());
        let waiters = {
            let mut h = host.borrow_mut();
            if result.is_ok() {
                h.engine.persisted(last, now_ms());
            }
            h.writer.ended(batches, result.is_ok())
        };
        for (_, waiter) in waiters {
            let _ = waiter.send(result.clone());
        }
        match failure {
            None => host::drain(&host),
            Some((code, message)) => {
                let doc = None;
                emit(&host, vec![Event::Error { code, message, doc }]);
                return;
            }
        }
    }
}

/// Lets the page's microtasks queued so far run first. [`emit`] hands
/// events to the page in a microtask, and the page tells its subscribers in
/// one it queues from there; a write started in the same turn would seal
/// its records and open its transaction (about a millisecond) before any
/// subscriber sees the change. Durability moves by one microtask.
async fn after_page_microtasks() {
    let _ = JsFuture::from(js_sys::Promise::resolve(&JsValue::UNDEFINED)).await;
}

/// Resolves once everything produced before the call is committed.
pub async fn flush(host: &HostRef) -> Result<(), JsValue> {
    host::drain(host); // changes of this task are logged (and counted) now
    let receiver = host.borrow_mut().writer.wait();
    match receiver {
        None => Ok(()),
        Some(receiver) => flush_answer(receiver.await),
    }
}

/// What `flush()` resolves with, from its waiter's answer. A waiter dropped
/// unanswered (the repo went away first) proves nothing durable: that is
/// the error `Closed`, never success.
fn flush_answer(answer: Result<Result<(), JsValue>, oneshot::Canceled>) -> Result<(), JsValue> {
    answer.unwrap_or_else(|_| {
        Err(js_error(
            SynclineErrorCode::Closed,
            "the repo closed before these changes were known to be durable: reopen it and check",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn a_flush_whose_waiter_was_dropped_fails_with_closed() {
        let (sender, mut receiver) = oneshot::channel::<Result<(), JsValue>>();
        drop(sender);
        let answer = receiver.try_recv().map(|a| a.unwrap_or(Ok(())));
        let error = flush_answer(answer).expect_err("not durable");
        let code = js_sys::Reflect::get(&error, &"code".into()).unwrap();
        assert_eq!(code.as_string().as_deref(), Some("Closed"));
        assert!(flush_answer(Ok(Ok(()))).is_ok());
    }
}
