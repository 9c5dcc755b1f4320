// Worker mode's protocol, tab and worker both in Node over MessageChannel:
// the version handshake, a tab's value reconciled with the worker's answer,
// flush() waiting for the worker's durability report, idempotent re-sends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WorkerHost } from "../.test-build/worker-host.js";
import { WorkerCore } from "../.test-build/worker-client.js";
import { PACKAGE_VERSION } from "../.test-build/version.js";
import { RepoImpl } from "../.test-build/repo.js";

const KEY = new Uint8Array(32).fill(3);
const tick = () => new Promise((resolve) => setImmediate(resolve));
async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i++) await tick();
}

/**
 * A stand-in for the wasm Core the worker opens: plain JSON documents,
 * list/map ops applied where they say (heads are recorded, not used).
 */
function fakeEngine() {
  const state = { docs: new Map(), applied: [], restored: [], changes: new Map(), flushes: [], next: 1, onEvent: null, hold: false };
  const apply = (doc, op) => {
    let obj = doc;
    for (const step of op.obj) obj = obj[step];
    if (op.op === "insert") {
      obj.splice(op.index, 0, ...structuredClone(op.values));
      return { action: "insert", path: [...op.obj], index: op.index, values: structuredClone(op.values) };
    }
    if (op.op === "put") {
      obj[op.key] = structuredClone(op.value);
      return { action: "put", path: [...op.obj], key: op.key, value: structuredClone(op.value) };
    }
    throw Object.assign(new Error("unknown op"), { code: "BadOp" });
  };
  const heads = (url) => [`h${state.changes.get(url)?.length ?? 0}`];
  const raw = {
    create(initial) {
      const url = `syncline:d${state.next++}#k`;
      state.docs.set(url, structuredClone(initial ?? {}));
      return url;
    },
    async openDoc(url) {
      return state.docs.has(url);
    },
    value: (url) => structuredClone(state.docs.get(url)),
    heads,
    changeAt(url, at, opsJson, message) {
      const ops = JSON.parse(opsJson);
      if (ops.some((op) => op.op === "fail")) throw Object.assign(new Error("refused"), { code: "BacklogFull" });
      const doc = state.docs.get(url);
      const patches = ops.map((op) => apply(doc, op));
      const list = state.changes.get(url) ?? [];
      const hash = `c${state.applied.length + 1}`;
      list.push(hash);
      state.changes.set(url, list);
      state.applied.push({ url, at, ops, message, hash });
      // The "encoded change": its hash and ops, enough to restore it.
      return [hash, patches, new TextEncoder().encode(JSON.stringify({ hash, ops }))];
    },
    restoreLocalChange(url, bytes) {
      const { hash, ops } = JSON.parse(new TextDecoder().decode(bytes));
      const list = state.changes.get(url) ?? [];
      if (list.includes(hash)) return hash;
      ops.forEach((op) => apply(state.docs.get(url), op));
      list.push(hash);
      state.changes.set(url, list);
      state.restored.push(hash);
      return hash;
    },
    /** Immediate, unless the test holds storage (`state.hold`): then until `durable()`. */
    flush() {
      if (state.failFlush) return Promise.reject(Object.assign(new Error("the disk is full"), { code: "QuotaExceeded" }));
      if (!state.hold) return Promise.resolve();
      return new Promise((resolve) => state.flushes.push(resolve));
    },
    status: () => state.status ?? { connection: "open", unsaved: 0, pending: 0, lastSyncedAt: null, buffered: 0 },
    docStatus: () => ({ unsaved: 0, pending: 0 }),
    setTabSync() {},
    setCompactionEnabled() {},
    receivedFromTab() {},
    deleteDoc(url) {
      state.docs.delete(url);
    },
    history: () => [{ hash: "c1", actor: "a", seq: 1, time: 0, deps: [] }],
    valueAt: (url, at) => ({ at }),
    setPresence() {},
    clearPresence() {},
    setOnline() {},
    undoState: (url) => [state.changes.get(url)?.length ? 1 : 0, 0],
    close() {
      state.closed = true;
    },
  };
  return {
    state,
    raw,
    Core: {
      async open(name, relay, onEvent) {
        state.onEvent = onEvent;
        return raw;
      },
    },
    /** Completes every flush started so far. */
    durable() {
      const waiting = state.flushes.splice(0);
      waiting.forEach((resolve) => resolve());
    },
    /** A change from elsewhere (the relay): applied and reported as the engine does. */
    remote(url, op) {
      const patch = apply(state.docs.get(url), op);
      state.onEvent({ type: "changed", url, patches: [patch] });
    },
  };
}

/** A tab connected to `host`: a Repo over a WorkerCore over a MessageChannel. */
async function tab(host, { version } = {}) {
  let repo;
  const events = [];
  const core = await WorkerCore.open({
    hello: { name: "r", relay: undefined, options: { durability: "default" }, tokenFunction: false, key: KEY },
    onEvent: (event) => (repo ? repo.receive(event) : events.push(event)),
    start: () => {
      const { port1, port2 } = new MessageChannel();
      if (version) {
        // A worker of another version: answers only its version.
        port2.onmessage = () => {};
        port2.postMessage({ t: "alive", version });
      } else host.connect(port2);
      port2.unref?.();
      port1.unref?.();
      return { port: port1, onerror: null };
    },
  });
  repo = new RepoImpl(core, "r", { mode: "worker" });
  return { repo, core };
}

/** A raw port to `host` that said hello as `version`; `answers` collects what the worker sends. */
function rawTab(host, version) {
  const { port1, port2 } = new MessageChannel();
  host.connect(port2);
  const answers = [];
  port1.onmessage = (event) => answers.push(event.data);
  port1.postMessage({ t: "hello", version, name: "r", relay: undefined, options: {}, tokenFunction: false, key: KEY });
  return { port: port1, answers };
}

test("the package version in version.ts is package.json's", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(PACKAGE_VERSION, pkg.version);
});

test("a tab of another version is refused with WorkerMismatch, both ways, before anything is read", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  // The worker refuses a tab's hello of another version.
  const { port: port1, answers } = rawTab(host, "0.0.1-old");
  await settle();
  assert.deepEqual(answers.map((m) => m.t), ["alive", "refused"]);
  assert.equal(answers[1].error.code, "WorkerMismatch");
  assert.equal(engine.state.onEvent, null, "no engine opened for it");
  port1.close();
  // And a tab refuses a worker of another version.
  await assert.rejects(tab(host, { version: "9.9.9" }), (error) => error.code === "WorkerMismatch");
});

test("a worker whose tabs all left ends after idleMs, its writes made durable first; a tab that comes back in time keeps it", async () => {
  const engine = fakeEngine();
  let ended = 0;
  const host = new WorkerHost(engine.Core, () => {}, { onIdle: () => ended++, idleMs: 80 });
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const a = await tab(host);
  const doc = await a.repo.create({ items: [] });
  await a.repo.flush();
  a.repo.close(); // bye
  await wait(40);
  // A reload: the next tab arrives within idleMs and is served by the same engine.
  const b = await tab(host);
  assert.deepEqual((await b.repo.open(doc.url)).value, { items: [] });
  await wait(150);
  assert.equal(ended, 0, "not while a tab uses it");
  engine.state.hold = true; // storage slow: the end waits for the flush
  b.repo.open(doc.url).then((d) => d.change((v) => void v.items.push("last")));
  await settle();
  b.repo.close();
  await wait(150);
  assert.equal(ended, 0, "not before its writes are durable");
  assert.equal(engine.state.closed, undefined);
  engine.durable();
  await settle();
  await wait(10);
  assert.equal(ended, 1, "ended once idle and durable");
  assert.equal(engine.state.closed, true, "its engine closed first");
  // A hello that arrives while it ends is refused, so the tab runs in its page.
  const late = rawTab(host, PACKAGE_VERSION);
  await settle();
  assert.deepEqual(late.answers.map((m) => m.t), ["alive", "refused"]);
  late.port.close();
});

test("an idle worker whose writes fail does not end: its unsaved changes stay in memory until a flush succeeds", async () => {
  const engine = fakeEngine();
  let ended = 0;
  const host = new WorkerHost(engine.Core, () => {}, { onIdle: () => ended++, idleMs: 50 });
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const a = await tab(host);
  await a.repo.create({ items: [] });
  engine.state.failFlush = true;
  a.repo.close();
  await wait(200);
  assert.equal(ended, 0, "not while a write fails");
  assert.equal(engine.state.closed, undefined, "its engine stays open");
  engine.state.failFlush = false;
  await wait(200);
  assert.equal(ended, 1, "ended at a later idle check, once durable");
  assert.equal(engine.state.closed, true);
});

test("a change is never missing from unsaved + pending between the worker's answers", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  const { repo } = await tab(host);
  try {
    const doc = await repo.create({ items: [] });
    await repo.flush();
    engine.state.hold = true; // the write waits
    doc.change((d) => void d.items.push("x"));
    const counted = () => repo.status.unsaved + repo.status.pending;
    assert.equal(repo.status.unsaved, 1, "at once: not durable");
    await settle(); // the worker applied it and answered; its status (the fake's: all zero) has not come since
    assert.equal(repo.status.unsaved, 1, "confirmed, and no status of the worker counts it yet");
    // Durable: the engine counts it as pending now, and the worker says so with its durable report.
    engine.state.status = { connection: "open", unsaved: 0, pending: 1, lastSyncedAt: null, buffered: 0 };
    engine.durable();
    await settle();
    assert.deepEqual([repo.status.unsaved, repo.status.pending], [0, 1], "pending, counted once");
    // The worker's next status counts it itself (here: acknowledged already).
    engine.state.onEvent({ type: "status", status: { connection: "open", unsaved: 0, pending: 0, lastSyncedAt: 1, buffered: 0 } });
    await settle();
    assert.equal(counted(), 0, "the worker's status is the truth again");
  } finally {
    repo.close();
  }
});

test("a change is applied at once in the tab, and the worker's answer reconciles it", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  const a = await tab(host);
  const b = await tab(host);
  const docA = await a.repo.create({ items: ["x"] });
  engine.durable();
  const docB = await b.repo.open(docA.url);
  const seenB = [];
  docB.subscribe((value) => seenB.push([...value.items]));

  // A's change shows at once; the worker's patches equal what A assumed: no reset.
  docA.change((d) => {
    d.items.push("a1");
  });
  assert.deepEqual(docA.value.items, ["x", "a1"]);
  await settle();
  assert.deepEqual(docA.value.items, ["x", "a1"]);
  assert.deepEqual(docB.value.items, ["x", "a1"]);
  assert.deepEqual(engine.state.applied[0].at, ["h0"], "applied as of the heads A saw");

  // A remote change reaches the worker before A's next change: A's value is
  // rebuilt from the worker's answer, which is authoritative.
  docA.change((d) => {
    d.items.push("a2"); // recorded at index 2
  });
  engine.remote(docA.url, { op: "insert", obj: ["items"], index: 0, values: ["r"] });
  await settle();
  const worker = engine.state.docs.get(docA.url).items;
  assert.deepEqual(docA.value.items, worker);
  assert.deepEqual(docB.value.items, worker);
  assert.deepEqual(seenB.at(-1), worker);
  // The change A made after its first was sent with that first's hash among its heads.
  assert.deepEqual(engine.state.applied[1].at.sort(), ["h1"]);
  a.repo.close();
  b.repo.close();
});

test("flush() resolves only when the worker reports the changes durable", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  const a = await tab(host);
  const doc = await a.repo.create({ items: [] });
  engine.state.hold = true;
  doc.change((d) => {
    d.items.push(1);
  });
  let flushed = false;
  const flushing = a.repo.flush().then(() => (flushed = true));
  await settle();
  assert.equal(flushed, false, "not before storage took it");
  assert.ok(a.repo.status.unsaved >= 0);
  engine.state.hold = false;
  engine.durable();
  await flushing;
  assert.equal(flushed, true);
  a.repo.close();
});

test("a change the engine refuses is taken back in the tab and reported", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  const a = await tab(host);
  const doc = await a.repo.create({ items: ["x"] });
  engine.durable();
  const errors = [];
  a.repo.on("error", (error) => errors.push(error.code));
  // Ops the stand-in engine refuses (as a full backlog would).
  const core = a.core;
  core.change(doc.url, [{ op: "fail", obj: [] }]);
  await settle();
  assert.deepEqual(errors, ["BacklogFull"]);
  assert.deepEqual(doc.value.items, ["x"]);
  a.repo.close();
});

test("a change sent again with its bytes is restored as that change: once, however often it is sent", async () => {
  const engine = fakeEngine();
  const host = new WorkerHost(engine.Core);
  const { port: port1, answers } = rawTab(host, PACKAGE_VERSION);
  await settle();
  port1.postMessage({ t: "call", id: 1, op: "create", initial: { items: [] } });
  await settle();
  engine.durable();
  await settle();
  const { url } = answers.find((m) => m.t === "reply").value;
  const change = { t: "change", seq: 1, url, ops: [{ op: "insert", obj: ["items"], index: 0, values: ["once"] }], heads: ["h0"], before: [] };
  port1.postMessage(change);
  await settle();
  const { hash, bytes } = answers.find((m) => m.t === "patches").own;
  assert.ok(bytes instanceof Uint8Array, "the author gets the change's bytes");
  port1.postMessage({ ...change, hash, bytes });
  await settle();
  assert.deepEqual(engine.state.docs.get(url).items, ["once"]);
  assert.equal(engine.state.applied.length, 1, "not made again from its ops");
  const confirmations = answers.filter((m) => m.t === "patches" && m.own?.seq === 1);
  assert.equal(confirmations.length, 2, "both sends confirmed");
  port1.close();
});

test("after a handoff, ops recorded against changes the new engine lacks are fitted to the current value", async () => {
  const { fitOps } = await import("../.test-build/rebase.js");
  const value = { items: ["a"], text: "hi", map: { k: 1 } };
  const ops = [
    { op: "insert", obj: ["items"], index: 5, values: ["x"] }, // past the end: appended
    { op: "put", obj: ["items"], key: 7, value: "y" }, // no such element: dropped
    { op: "delete", obj: ["items"], key: 1, count: 4 }, // the appended "x" only
    { op: "splice_text", obj: ["text"], index: 9, delete: 3, insert: "!" }, // at the end
    { op: "increment", obj: ["map"], key: "gone", by: 1 }, // no such counter: dropped
    { op: "put", obj: ["nowhere", 3], key: "z", value: 1 }, // no such path: dropped
  ];
  assert.deepEqual(fitOps(value, ops), [
    { op: "insert", obj: ["items"], index: 1, values: ["x"] },
    { op: "delete", obj: ["items"], key: 1, count: 1 },
    { op: "splice_text", obj: ["text"], index: 2, delete: 0, insert: "!" },
  ]);
});
