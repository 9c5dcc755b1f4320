// Repo and DocHandle over an in-memory fake of the wasm Core (same contract).
import { test } from "node:test";
import assert from "node:assert/strict";
import { openRepo } from "../.test-build/repo.js";
import { SynclineError } from "../.test-build/errors.js";

/** A fake Core: applies ops to plain JSON; `remote()` simulates the relay. */
const KEY = new Uint8Array(32).fill(7);

function fakeCoreClass({ openName = "openDoc" } = {}) {
  const state = { docs: new Map(), calls: [], onEvent: null, status: { connection: "open", unsaved: 0, pending: 0, lastSyncedAt: null }, docStatus: new Map(), next: 1 };
  const inCore = { depth: 0 };
  const guard = (fn) => (...args) => {
    inCore.depth++;
    try {
      return fn(...args);
    } finally {
      inCore.depth--;
    }
  };
  const fail = (code, message) => Object.assign(new Error(message), { code });
  /** Applies one op to plain JSON; returns the patch the engine would report. */
  const apply = (doc, op) => {
    let obj = doc;
    for (const step of op.obj) obj = obj[step];
    const path = [...op.obj];
    if (op.op === "put") {
      obj[op.key] = structuredClone(op.value);
      return { action: "put", path, key: op.key, value: structuredClone(op.value) };
    }
    if (op.op === "delete") {
      Array.isArray(obj) ? obj.splice(op.key, op.count ?? 1) : delete obj[op.key];
      return { action: "del", path, key: op.key, length: op.count ?? 1 };
    }
    if (op.op === "insert") {
      obj.splice(op.index, 0, ...structuredClone(op.values));
      return { action: "insert", path, index: op.index, values: structuredClone(op.values) };
    }
    throw fail("BadOp", "unknown op");
  };
  const core = {
    create: guard((initial) => {
      const url = `syncline:doc${state.next++}`;
      state.docs.set(url, structuredClone(initial ?? {}));
      return url;
    }),
    [openName]: guard((url) => {
      if (!/^syncline:\w+$/.test(url)) throw fail("BadUrl", "bad url");
      state.calls.push(["open", url]);
      return state.docs.has(url);
    }),
    value: guard((url) => {
      if (!state.docs.has(url)) throw fail("DocNotFound", "no doc");
      return structuredClone(state.docs.get(url));
    }),
    change: guard((url, opsJson, message) => {
      // The glue takes ops as JSON text, as the real wasm does.
      const ops = JSON.parse(opsJson);
      state.calls.push(["change", url, ops, message]);
      const doc = state.docs.get(url);
      if (!doc) throw fail("DocNotFound", "no doc");
      const copy = structuredClone(doc);
      const patches = ops.map((op) => apply(copy, op));
      state.docs.set(url, copy);
      return patches;
    }),
    flush: async () => {},
    status: guard(() => ({ ...state.status })),
    docStatus: guard((url) => {
      if (!state.docs.has(url)) throw fail("DocNotFound", "no doc");
      return { ...(state.docStatus.get(url) ?? { unsaved: 0, pending: 0 }) };
    }),
    setOnline: guard((online) => state.calls.push(["setOnline", online])),
    setTabSync: guard((on) => state.calls.push(["setTabSync", on])),
    setCompactionEnabled: guard((on) => state.calls.push(["setCompactionEnabled", on])),
    receivedFromTab: guard((bytes) => state.calls.push(["fromTab", [...bytes]])),
    setPresence: guard((url, bytes) => state.calls.push(["setPresence", url, new TextDecoder().decode(bytes)])),
    clearPresence: guard((url) => state.calls.push(["clearPresence", url])),
    deleteDoc: guard((url) => {
      state.calls.push(["deleteDoc", url]);
      state.docs.delete(url);
    }),
    history: guard(() => [{ hash: "aa", actor: "01", seq: 1, time: 1000, message: "made", deps: [] }]),
    valueAt: guard((url, heads) => ({ at: heads })),
    heads: guard((url) => [`heads-of-${url}`]),
    close: guard(() => state.calls.push(["close"])),
  };
  const emit = (event) => {
    assert.equal(inCore.depth, 0, "events are never emitted from inside a Core call");
    state.onEvent(event);
  };
  return {
    state,
    emit,
    /** The object `Core.open` resolves to (tests may replace its methods). */
    core,
    /** Another replica changed `url`; the relay delivered it. */
    remote(url, mutate) {
      const before = state.docs.get(url) ?? {};
      const doc = structuredClone(before);
      mutate(doc);
      state.docs.set(url, doc);
      // Top-level patches: enough for these tests.
      const patches = [];
      for (const key of Object.keys(before)) if (!(key in doc)) patches.push({ action: "del", path: [], key, length: 1 });
      for (const [key, value] of Object.entries(doc)) {
        if (JSON.stringify(before[key]) !== JSON.stringify(value)) patches.push({ action: "put", path: [], key, value: structuredClone(value) });
      }
      emit({ type: "changed", url, patches });
    },
    Core: {
      async open(name, relay, onEvent, key) {
        state.name = name;
        state.relay = relay;
        state.key = key;
        state.onEvent = (e) => {
          // Any call back into the core while an event is delivered would be re-entrant.
          inCore.depth++;
          try {
            onEvent(e);
          } finally {
            inCore.depth--;
          }
        };
        return core;
      },
    },
    inCore,
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("create, change, subscribe: one core call per change, subscribers after it", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { relay: "ws://127.0.0.1:1", key: KEY });
  assert.equal(fake.state.name, "default");
  assert.deepEqual(fake.state.relay, ["ws://127.0.0.1:1"]);
  const doc = await repo.create({ items: [] });
  assert.match(doc.url, /^syncline:/);
  assert.deepEqual(doc.value, { items: [] });
  assert.ok(Object.isFrozen(doc.value) && Object.isFrozen(doc.value.items));

  const seen = [];
  const stop = doc.subscribe((v) => {
    assert.equal(fake.inCore.depth, 0, "never notified from inside the core");
    seen.push(v);
  });
  assert.equal(seen.length, 1, "called at once with the current value");
  doc.change((d) => {
    d.items.push("x");
    d.items.push("y");
  }, { message: "todo.added" });
  const changes = fake.state.calls.filter((c) => c[0] === "change");
  assert.equal(changes.length, 1);
  assert.deepEqual(changes[0][2], [
    { op: "insert", obj: ["items"], index: 0, values: ["x"] },
    { op: "insert", obj: ["items"], index: 1, values: ["y"] },
  ]);
  assert.equal(changes[0][3], "todo.added");
  assert.deepEqual(doc.value, { items: ["x", "y"] });
  assert.equal(seen.length, 2);
  assert.equal(seen[1], doc.value);

  doc.change(() => {}); // no ops: no core call, no notification
  assert.equal(fake.state.calls.filter((c) => c[0] === "change").length, 1);
  assert.equal(seen.length, 2);

  stop();
  doc.change((d) => {
    d.items.pop();
  });
  assert.equal(seen.length, 2);
  repo.close();
});

test("unchanged subtrees keep identity across changes", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ a: { list: [1, 2] }, b: { x: 1 } });
  const before = doc.value;
  doc.change((d) => {
    d.b.x = 2;
  });
  assert.notEqual(doc.value, before);
  assert.equal(doc.value.a, before.a);
  assert.notEqual(doc.value.b, before.b);
});

test("remote changes update the value and notify, outside any core call", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ items: [] });
  const seen = [];
  doc.subscribe((v) => seen.push(v));
  fake.remote(doc.url, (d) => d.items.push("r"));
  await tick();
  assert.deepEqual(doc.value, { items: ["r"] });
  assert.equal(seen.length, 2);
});

test("patches apply in the engine's order: a remote change received before a local change is under it", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ items: [] });
  const seen = [];
  doc.subscribe((v) => seen.push([...v.items]));
  fake.remote(doc.url, (d) => d.items.push("r"));
  // Subscribers haven't heard of it yet, but the value has it: a local
  // change made now starts from it, as the engine's own state does.
  doc.change((d) => {
    d.items.push("l");
  });
  await tick();
  assert.deepEqual(doc.value, { items: ["r", "l"] });
  assert.deepEqual(doc.value, fake.state.docs.get(doc.url), "the same as the engine's state");
  assert.deepEqual(seen, [[], ["r", "l"]], "one notification per new value, the latest");
});

test("open: local data resolves at once; otherwise on caughtUp or a change", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ n: 1 });
  assert.equal(await repo.open(doc.url), doc, "the same handle");

  let resolved = false;
  const opening = repo.open("syncline:far").then((h) => {
    resolved = true;
    return h;
  });
  const again = repo.open("syncline:far");
  await tick();
  assert.equal(resolved, false);
  fake.state.docs.set("syncline:far", { items: ["from relay"] });
  fake.emit({ type: "caughtUp", url: "syncline:far" });
  const handle = await opening;
  assert.deepEqual(handle.value, { items: ["from relay"] });
  assert.equal(await again, handle);

  const viaChange = repo.open("syncline:tab");
  await tick();
  fake.remote("syncline:tab", (d) => (d.t = 1));
  assert.deepEqual((await viaChange).value, { t: 1 });
});

test("errors are SynclineErrors with the core's code", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  await assert.rejects(repo.open("http://nope"), (e) => e instanceof SynclineError && e.code === "BadUrl");
  const doc = await repo.create({});
  fake.state.docs.delete(doc.url);
  assert.throws(
    () => doc.change((d) => { d.x = 1; }),
    (e) => e instanceof SynclineError && e.code === "DocNotFound" && e.cause instanceof Error,
  );
  await assert.rejects(openRepo(fake.Core, { relay: "http://x", key: KEY }), (e) => e.code === "BadOption");
  await assert.rejects(openRepo(fake.Core, { relay: [], key: KEY }), (e) => e.code === "BadOption");
  await assert.rejects(openRepo(fake.Core, { relay: ["ws://a:1", "ftp://b"], key: KEY }), (e) => e.code === "BadOption");
  const cluster = fakeCoreClass();
  (await openRepo(cluster.Core, { relay: ["ws://a:1", "wss://b:2"], key: KEY })).close();
  assert.deepEqual(cluster.state.relay, ["ws://a:1", "wss://b:2"]);
});

test("status events reach listeners; close rejects pending opens and ends changes", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  await tick();
  // Node has no navigator.storage: persistence can't be granted there.
  assert.deepEqual(repo.status, { connection: "open", unsaved: 0, pending: 0, lastSyncedAt: null, buffered: 0, persisted: false, mode: "page" });
  const statuses = [];
  const off = repo.on("status", (s) => statuses.push(s.connection));
  fake.emit({ type: "status", status: { connection: "offline", pending: 2, lastSyncedAt: 5 } });
  await tick();
  assert.deepEqual(statuses, ["offline"]);
  off();
  fake.emit({ type: "status", status: { connection: "open", pending: 0, lastSyncedAt: 6 } });
  await tick();
  assert.deepEqual(statuses, ["offline"]);

  const doc = await repo.create({});
  const pending = repo.open("syncline:never");
  repo.close();
  await assert.rejects(pending, (e) => e.code === "Closed");
  assert.equal(repo.status.connection, "closed");
  assert.throws(() => doc.change((d) => { d.x = 1; }), (e) => e.code === "Closed");
  await assert.rejects(repo.flush(), (e) => e.code === "Closed");
});

test("the engine runs in a worker by default where SharedWorker exists, else silently in the page", async () => {
  const warn = console.warn;
  console.warn = () => {};
  // Node has no SharedWorker: the default is the page, without a warning.
  assert.equal(typeof globalThis.SharedWorker, "undefined");
  const plain = await openRepo(fakeCoreClass().Core, { key: KEY });
  assert.equal(plain.status.mode, "page");
  assert.equal(plain.status.warning, undefined);
  plain.close();
  // Asked for explicitly where there is none: the page, and the warning says why.
  const asked = await openRepo(fakeCoreClass().Core, { key: KEY, worker: true });
  assert.equal(asked.status.mode, "page");
  assert.match(asked.status.warning, /no SharedWorker.*runs in this page/);
  asked.close();
  // Where SharedWorker exists the default tries it: here one whose script fails to start.
  let started = 0;
  globalThis.SharedWorker = function () {
    started += 1;
    throw new Error("refused by a Content-Security-Policy");
  };
  try {
    const tried = await openRepo(fakeCoreClass().Core, { key: KEY });
    assert.equal(started, 1);
    assert.equal(tried.status.mode, "page");
    assert.match(tried.status.warning, /Content-Security-Policy.*runs in this page/);
    tried.close();
    // `worker: false` never tries.
    const page = await openRepo(fakeCoreClass().Core, { key: KEY, worker: false });
    assert.equal(started, 1);
    assert.deepEqual([page.status.mode, page.status.warning], ["page", undefined]);
    page.close();
  } finally {
    delete globalThis.SharedWorker;
    console.warn = warn;
  }
});

test("repo.status is the same frozen object until something changes", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const first = repo.status;
  assert.ok(Object.isFrozen(first));
  assert.equal(repo.status, first);
  fake.state.status = { connection: "open", pending: 3, lastSyncedAt: null };
  assert.notEqual(repo.status, first);
  assert.equal(repo.status.pending, 3);
  assert.equal(repo.status, repo.status);
});

test("background errors reach `error` listeners as SynclineErrors, early ones included", async () => {
  const fake = fakeCoreClass();
  const open = fake.Core.open;
  fake.Core.open = async (name, relay, onEvent, key) => {
    const core = await open(name, relay, onEvent, key);
    // Emitted while Core.open is still running, before the repo exists.
    onEvent({ type: "error", error: Object.assign(new Error("skipped a record"), { code: "Corrupt" }) });
    return core;
  };
  const repo = await openRepo(fake.Core, { key: KEY });
  const errors = [];
  repo.on("error", (e) => errors.push(e));
  // Ordering, not sleeping: this timer runs after the one the repo queued.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof SynclineError);
  assert.equal(errors[0].code, "Corrupt");
});

test("open tolerates surrounding spaces and keys the handle by the canonical URL", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({});
  assert.equal(await repo.open(`  ${doc.url}\n`), doc);
});

test("the storage key option is checked and handed to the engine", async () => {
  const fake = fakeCoreClass();
  await openRepo(fake.Core, { key: KEY });
  assert.equal(fake.state.key, KEY);
  await assert.rejects(openRepo(fake.Core, { key: new Uint8Array(16) }), (e) => e.code === "BadKey");
  await assert.rejects(openRepo(fake.Core, { key: KEY, passphrase: "x" }), (e) => e.code === "BadOption");
  await assert.rejects(openRepo(fake.Core, { passphrase: "" }), (e) => e.code === "BadOption");
});

test("a wasm trap inside a call closes the repo: code Crashed everywhere, the module never called again", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ n: 0 });
  const errors = [];
  const statuses = [];
  repo.on("error", (e) => errors.push(e));
  repo.on("status", (s) => statuses.push(s));
  const pending = repo.open("syncline:never");
  // The next call into the module traps, as a panic or stack overflow would.
  fake.core.change = () => {
    throw new WebAssembly.RuntimeError("unreachable");
  };
  assert.throws(() => doc.change((d) => { d.n = 1; }), (e) => e instanceof SynclineError && e.code === "Crashed");
  await assert.rejects(pending, (e) => e.code === "Crashed");
  await tick();
  assert.deepEqual(errors.map((e) => e.code), ["Crashed"]);
  assert.equal(repo.status.connection, "closed");
  assert.equal(repo.status.lastError?.code, "Crashed");
  assert.equal(statuses.at(-1)?.connection, "closed");
  const callsBefore = fake.state.calls.length;
  assert.throws(() => doc.change((d) => { d.n = 2; }), (e) => e.code === "Crashed");
  await assert.rejects(repo.flush(), (e) => e.code === "Crashed");
  await assert.rejects(repo.create({}), (e) => e.code === "Crashed");
  repo.close();
  assert.equal(fake.state.calls.length, callsBefore, "nothing reached the trapped module, not even close()");
});

test("a crash reported by the module's panic hook closes the repo the same way", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({});
  const errors = [];
  repo.on("error", (e) => errors.push(e));
  // The hook calls back synchronously, from inside whatever call panicked.
  fake.state.onEvent({ type: "crashed", error: Object.assign(new Error("the module crashed (panicked at x)"), { code: "Crashed" }) });
  assert.throws(() => doc.change((d) => { d.x = 1; }), (e) => e.code === "Crashed" && /panicked at x/.test(e.message));
  await tick();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "Crashed");
  assert.equal(repo.status.connection, "closed");
});

test("sendBufferBytes is checked and handed to the transport", async () => {
  const fake = fakeCoreClass();
  await assert.rejects(openRepo(fake.Core, { key: KEY, sendBufferBytes: -1 }), (e) => e.code === "BadOption");
  await assert.rejects(openRepo(fake.Core, { key: KEY, sendBufferBytes: 1.5 }), (e) => e.code === "BadOption");
});

test("maxUnsavedBytes is checked", async () => {
  const fake = fakeCoreClass();
  await assert.rejects(openRepo(fake.Core, { key: KEY, maxUnsavedBytes: 0 }), (e) => e.code === "BadOption");
  await assert.rejects(openRepo(fake.Core, { key: KEY, maxUnsavedBytes: "1MB" }), (e) => e.code === "BadOption");
});

test("presence: set sends JSON bytes; peers arrive decoded, frozen, and leave", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({});
  doc.presence.set({ name: "Ada", cursor: 3 });
  assert.deepEqual(fake.state.calls.at(-1), ["setPresence", doc.url, '{"name":"Ada","cursor":3}']);
  const seen = [];
  doc.presence.subscribe((peers) => seen.push(peers));
  const bytes = (v) => new TextEncoder().encode(JSON.stringify(v));
  fake.emit({ type: "presence", url: doc.url, peer: "p1", state: bytes({ name: "Bo" }) });
  fake.emit({ type: "presence", url: doc.url, peer: "p2", state: new Uint8Array([0xff]) }); // not JSON: ignored
  await tick();
  assert.deepEqual(doc.presence.peers, [{ id: "p1", state: { name: "Bo" } }]);
  assert.ok(Object.isFrozen(doc.presence.peers) && Object.isFrozen(doc.presence.peers[0].state));
  fake.emit({ type: "presence", url: doc.url, peer: "p1", state: null });
  await tick();
  assert.deepEqual(seen, [[], [{ id: "p1", state: { name: "Bo" } }], []]);
  doc.presence.clear();
  assert.deepEqual(fake.state.calls.at(-1), ["clearPresence", doc.url]);
});

test("history, heads and view come from the engine, frozen; delete forgets the doc durably", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const doc = await repo.create({ a: 1 });
  const history = doc.history();
  assert.equal(history[0].message, "made");
  assert.ok(Object.isFrozen(history) && Object.isFrozen(history[0]));
  assert.deepEqual(doc.view(["aa"]), { at: ["aa"] });
  const heads = doc.heads();
  assert.deepEqual(heads, [`heads-of-${doc.url}`], "the engine's heads of the value shown");
  assert.ok(Object.isFrozen(heads));
  assert.deepEqual(doc.view(heads), { at: heads });
  await repo.delete(doc.url);
  assert.deepEqual(fake.state.calls.filter((c) => c[0] === "deleteDoc"), [["deleteDoc", doc.url]]);
  assert.notEqual(await Promise.race([repo.open(doc.url), tick().then(() => "pending")]), doc, "a new handle after delete");
});

test("tabs: changes and deletes cross a real BroadcastChannel between two repos of one name", async () => {
  const a = fakeCoreClass();
  const b = fakeCoreClass();
  const repoA = await openRepo(a.Core, { key: KEY, name: "shared-tabs" });
  const repoB = await openRepo(b.Core, { key: KEY, name: "shared-tabs" });
  assert.deepEqual(a.state.calls.filter((c) => c[0] === "setTabSync"), [["setTabSync", true]]);
  a.emit({ type: "broadcast", bytes: new Uint8Array([1, 2, 3]) });
  const arrived = async (fake, kind) => {
    for (let i = 0; i < 100 && !fake.state.calls.some((c) => c[0] === kind); i++) await new Promise((r) => setTimeout(r, 5));
    return fake.state.calls.filter((c) => c[0] === kind);
  };
  assert.deepEqual(await arrived(b, "fromTab"), [["fromTab", [1, 2, 3]]]);
  const doc = await repoA.create({});
  await repoA.delete(doc.url);
  assert.deepEqual(await arrived(b, "deleteDoc"), [["deleteDoc", doc.url]]);
  repoA.close();
  repoB.close();
});

test("a refusal of one document reaches its handle's status and error listeners, not the others'", async () => {
  const fake = fakeCoreClass();
  const repo = await openRepo(fake.Core, { key: KEY });
  const a = await repo.create({ n: 1 });
  const b = await repo.create({ n: 2 });
  assert.deepEqual(a.status, { unsaved: 0, pending: 0 });
  const first = a.status;
  const aStatuses = [];
  const aErrors = [];
  const bErrors = [];
  const repoErrors = [];
  a.on("status", (s) => aStatuses.push(s));
  a.on("error", (e) => aErrors.push(e));
  b.on("error", (e) => bErrors.push(e));
  repo.on("error", (e) => repoErrors.push(e));

  const refusal = { code: "ReadOnly", message: "the token grants read only" };
  fake.state.docStatus.set(a.url, { unsaved: 0, pending: 1, lastError: refusal });
  fake.emit({ type: "error", url: a.url, error: Object.assign(new Error(refusal.message), { code: "ReadOnly" }) });
  fake.emit({ type: "status", status: { connection: "open", unsaved: 0, pending: 1, lastSyncedAt: null } });
  await new Promise((resolve) => setTimeout(resolve, 0));

  assert.deepEqual(a.status, { unsaved: 0, pending: 1, lastError: refusal });
  assert.ok(Object.isFrozen(a.status));
  assert.notEqual(a.status, first);
  assert.equal(aStatuses.length, 1, "one status event for one change");
  assert.equal(aErrors.length, 1);
  assert.ok(aErrors[0] instanceof SynclineError);
  assert.equal(aErrors[0].code, "ReadOnly");
  assert.equal(aErrors[0].docId, a.url.split("#")[0]);
  assert.equal(repoErrors.length, 1, "the repo hears it too");
  assert.deepEqual(bErrors, []);
  assert.deepEqual(b.status, { unsaved: 0, pending: 0 });
  assert.equal(repo.status.connection, "open", "the repo keeps syncing");
  assert.throws(() => a.on("nope", () => {}), (e) => e.code === "BadEvent");
  repo.close();
});

test("deleting a document fails its waiting requests with DocNotFound and drops its handlers", { timeout: 5_000 }, async () => {
  const fake = fakeCoreClass();
  fake.core.request = () => "r1";
  fake.core.serve = () => {};
  fake.core.reply = (...args) => fake.state.calls.push(["reply", ...args]);
  const repo = await openRepo(fake.Core, { relay: "ws://127.0.0.1:1", key: KEY });
  const doc = await repo.create({});
  const waiting = doc.request("m", 1);
  doc.serve("s", () => "served");
  await repo.delete(doc.url);
  await assert.rejects(waiting, { code: "DocNotFound" });
  // A request for the deleted doc's method arriving late is not run.
  fake.emit({ type: "request", url: doc.url, from: "p", id: "q", method: "s", payload: new TextEncoder().encode("1") });
  await tick();
  assert.equal(fake.state.calls.filter((c) => c[0] === "reply").length, 0);
  repo.close();
});
