// The Svelte store contract: subscribe calls at once, then on every change,
// and returns an unsubscribe function.
import { test } from "node:test";
import assert from "node:assert/strict";
import { docStore, statusStore } from "../.test-build/svelte.js";

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
