// The Svelte store contract: subscribe calls at once, then on every change,
// and returns an unsubscribe function.
import { test } from "node:test";
import assert from "node:assert/strict";
import { docStore, historyStore, statusStore, undoStore } from "../.test-build/svelte.js";
import { Handle } from "../.test-build/doc-handle.js";
import { undoHost } from "./undo-host.mjs";

test("statusStore follows repo status and unsubscribes", () => {
  const listeners = new Set();
  const repo = {
    status: { connection: "open", pending: 0, lastSyncedAt: null },
    on(event, fn) {
      assert.equal(event, "status");
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
  const seen = [];
  const stop = statusStore(repo).subscribe((s) => seen.push(s.connection));
  assert.deepEqual(seen, ["open"], "called at once");
  for (const fn of listeners) fn({ connection: "offline", pending: 1, lastSyncedAt: null });
  assert.deepEqual(seen, ["open", "offline"]);
  stop();
  assert.equal(listeners.size, 0);
});

test("docStore is the handle's own subscription", () => {
  let unsubscribed = false;
  const handle = {
    subscribe(fn) {
      fn({ items: [] });
      return () => (unsubscribed = true);
    },
  };
  const seen = [];
  const stop = docStore(handle).subscribe((v) => seen.push(v));
  assert.deepEqual(seen, [{ items: [] }]);
  stop();
  assert.ok(unsubscribed);
});

test("undoStore: the state at once, a new value when canUndo/canRedo change, unsubscribes", () => {
  // A real Handle over an in-memory host whose undo stack is two counts.
  const host = undoHost();
  const handle = new Handle(host, "syncline:doc1#key", { n: 0 });
  const seen = [];
  const stop = undoStore(handle).subscribe((s) => seen.push([s.canUndo, s.canRedo]));
  assert.deepEqual(seen, [[false, false]], "called at once");
  handle.change((d) => void (d.n = 1));
  handle.change((d) => void (d.n = 2));
  assert.deepEqual(seen, [[false, false], [true, false]], "the second change changed neither: no new value");
  assert.equal(handle.undo(), true);
  assert.equal(handle.undo(), true);
  assert.deepEqual(seen.slice(2), [[true, true], [false, true]]);
  stop();
  handle.redo();
  assert.equal(seen.length, 4, "nothing after unsubscribing");
});

test("historyStore: the entries at once, a new array when they grew (also without a new value, as in worker mode), unsubscribes", () => {
  const entries = [];
  const host = { ...undoHost(), history: () => entries.map((entry) => ({ ...entry })) };
  const handle = new Handle(host, "syncline:doc1#key", { n: 0 });
  const entry = (n) => ({ hash: `h${n}`, actor: "a", seq: n, time: 0, deps: [] });
  const seen = [];
  const stop = historyStore(handle).subscribe((list) => seen.push(list.map((e) => e.hash)));
  assert.deepEqual(seen, [[]], "called at once");
  entries.push(entry(1));
  handle.change((d) => void (d.n = 1)); // in the page the entry comes with the change
  assert.deepEqual(seen, [[], ["h1"]]);
  handle.change((d) => void (d.n = 2)); // in worker mode it comes later: nothing added yet, no new value
  assert.deepEqual(seen.length, 2);
  entries.push(entry(2));
  handle.historyChanged(); // the worker's entry arrived
  assert.deepEqual(seen.at(-1), ["h1", "h2"]);
  stop();
  entries.push(entry(3));
  handle.historyChanged();
  assert.equal(seen.length, 3, "nothing after unsubscribing");
});
