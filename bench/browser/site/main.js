// The benchmark page. Every scenario runs Syncline and its peer in this same
// page (or two pages of one browser), interleaved where it can, and returns
// raw samples; run.mjs computes medians and ratios. Syncline runs with the
// engine in the page (`worker: false`), beside Automerge in the same page;
// worker mode has its own bench (site-worker/, worker-bench.mjs).
import { createRepo, splice, Text } from "syncline";
import initSynclineGlue, { Core } from "syncline-glue";
import initAes, * as aes from "aes-glue";
import initAesSpeed, * as aesSpeed from "aes-glue-speed";
import * as A from "@automerge/automerge/slim";
import { Repo } from "@automerge/automerge-repo/slim";
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import automergeWasmUrl from "@automerge/automerge/automerge.wasm?url";
import { fromHex, sameBytes, storedValue, writeTrace } from "./trace-doc.js";

const now = () => performance.now();
/** A clock shared by pages of one machine (for A → B latency across pages). */
const wallMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let wasmTimes;
/** Instantiates the three wasm modules once per page load; returns how long each took (ms). */
async function initWasm() {
  if (wasmTimes) return wasmTimes;
  const t0 = now();
  await initSynclineGlue(); // the same module instance `syncline` uses: its own init() then returns at once
  const t1 = now();
  await A.initializeWasm(automergeWasmUrl);
  const t2 = now();
  await initAes();
  await initAesSpeed();
  const t3 = now();
  wasmTimes = { syncline: t1 - t0, automerge: t2 - t1, aes: t3 - t2 };
  return wasmTimes;
}

function randomKey() {
  return crypto.getRandomValues(new Uint8Array(32));
}
const uniq = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** xorshift32: the same pseudo-random op sequence for both sides. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

// ---------------------------------------------------------------- scenario 4
/**
 * change() → patch on a list of `size` items ({title, done}). Each sample is
 * one change, timed from the call until the app has the new value:
 * Syncline: `doc.change(fn)` returns after the engine applied it and the
 * handle published the new snapshot to its subscribers (one is subscribed);
 * Automerge: `A.change(doc, { patchCallback }, fn)` returns the new doc with
 * its patches. Op mix, same on both sides: toggle `done`, set `title`,
 * push an item, delete an item. Titles are scalar strings on both sides
 * (Automerge: `ImmutableString`; Syncline stores JSON strings as scalars).
 */
async function changePatch({ size = 10_000, changes = 1000, warmup = 50, seed = 42, peerChanges = 0 }) {
  await initWasm();
  const items = Array.from({ length: size }, (_, i) => ({ title: `item ${i}`, done: false }));
  const repo = await createRepo({ name: `s4-${uniq()}`, key: randomKey(), worker: false });
  const sdoc = await repo.create({ items });
  let seen = 0;
  const stop = sdoc.subscribe(() => seen++);
  let adoc = A.from({ items: items.map((it) => ({ title: new A.ImmutableString(it.title), done: it.done })) });
  let patches = 0;
  const patchCallback = (p) => {
    patches += p.length;
  };

  const pickS = rng(seed);
  const pickA = rng(seed);
  const syn = [];
  const am = [];
  const total = warmup + changes;
  for (let j = 0; j < total; j++) {
    const kind = j % 4;
    // Syncline
    {
      const len = sdoc.value.items.length;
      const k = pickS(len);
      const t0 = now();
      sdoc.change((d) => {
        if (kind === 0) d.items[k].done = !d.items[k].done;
        else if (kind === 1) d.items[k].title = `edited ${j}`;
        else if (kind === 2) d.items.push({ title: `new ${j}`, done: false });
        else d.items.splice(k, 1);
      });
      const t1 = now();
      if (j >= warmup) syn.push(t1 - t0);
    }
    // Automerge
    {
      const len = adoc.items.length;
      const k = pickA(len);
      const t0 = now();
      adoc = A.change(adoc, { patchCallback }, (d) => {
        if (kind === 0) d.items[k].done = !d.items[k].done;
        else if (kind === 1) d.items[k].title = new A.ImmutableString(`edited ${j}`);
        else if (kind === 2) d.items.push({ title: new A.ImmutableString(`new ${j}`), done: false });
        else d.items.splice(k, 1);
      });
      const t1 = now();
      if (j >= warmup) am.push(t1 - t0);
    }
  }
  stop();
  // Optionally more Automerge-only changes after the interleaved part (when
  // Syncline is too slow for `changes` samples in reasonable time).
  const amMore = [];
  let extra = adoc;
  for (let j = 0; j < peerChanges; j++) {
    const kind = j % 4;
    const k = pickA(extra.items.length);
    const t0 = now();
    extra = A.change(extra, { patchCallback }, (d) => {
      if (kind === 0) d.items[k].done = !d.items[k].done;
      else if (kind === 1) d.items[k].title = new A.ImmutableString(`more ${j}`);
      else if (kind === 2) d.items.push({ title: new A.ImmutableString(`more ${j}`), done: false });
      else d.items.splice(k, 1);
    });
    amMore.push(now() - t0);
  }
  // Both sides must have made the same edits.
  const sv = JSON.stringify(sdoc.value.items.map((it) => ({ title: it.title, done: it.done })));
  const av = JSON.stringify(A.toJS(adoc).items.map((it) => ({ title: String(it.title), done: it.done })));
  await repo.flush();
  repo.close();
  let firstDiff;
  if (sv !== av) {
    const si = sdoc.value.items, ai = JSON.parse(av);
    const i = si.findIndex((it, i) => JSON.stringify(it) !== JSON.stringify(ai[i]));
    firstDiff = { index: i, syncline: si[i], automerge: ai[i], lengths: [si.length, ai.length] };
  }
  return { firstDiff, syncline: syn, automerge: am, automergeMore: amMore, same: sv === av, finalLength: sdoc.value.items.length, subscriberCalls: seen, patches };
}

// ---------------------------------------------------------------- scenario 1
/**
 * Durable changes per second: `changes` calls of change() then a wait until
 * all of them are durable in IndexedDB. Syncline: `doc.change` × N, then
 * `await repo.flush()` (resolves after the IndexedDB transaction holding
 * them commits). automerge-repo 2.5.6 + IndexedDB storage: `handle.change`
 * × N, then `await repo.flush([id])` (saves the doc through the storage
 * adapter, whose save resolves on the transaction's `complete`).
 * op "push": each change appends {id, done} to a list (a fresh doc per
 * round); op "set": each change sets two fields of a small map.
 */
async function durable({ changes = 2000, rounds = 5, op = "push" }) {
  await initWasm();
  const srepo = await createRepo({ name: `s1-${uniq()}`, key: randomKey(), worker: false });
  const arepo = new Repo({ storage: new IndexedDBStorageAdapter(`s1-am-${uniq()}`), network: [] });
  const edit = (d, i) => {
    if (op === "push") d.items.push({ id: i, done: false });
    else {
      d.n = i;
      d.done = i % 2 === 0;
    }
  };
  const initial = () => (op === "push" ? { items: [] } : { n: 0, done: false });
  const out = { syncline: [], automerge: [] };
  const runS = async () => {
    const doc = await srepo.create(initial());
    await srepo.flush();
    const t0 = now();
    for (let i = 0; i < changes; i++) doc.change((d) => edit(d, i));
    const t1 = now();
    await srepo.flush();
    const t2 = now();
    out.syncline.push({ total: t2 - t0, changes: t1 - t0, flush: t2 - t1 });
  };
  const runA = async () => {
    const handle = arepo.create(initial());
    await arepo.flush([handle.documentId]);
    const t0 = now();
    for (let i = 0; i < changes; i++) handle.change((d) => edit(d, i));
    const t1 = now();
    await arepo.flush([handle.documentId]);
    const t2 = now();
    out.automerge.push({ total: t2 - t0, changes: t1 - t0, flush: t2 - t1 });
  };
  for (let r = 0; r < rounds; r++) {
    // Alternate who goes first.
    if (r % 2 === 0) {
      await runS();
      await runA();
    } else {
      await runA();
      await runS();
    }
  }
  srepo.close();
  await arepo.shutdown?.();
  return out;
}

// ---------------------------------------------------------------- scenario 5
/**
 * Timestamps (shared clock) every send and receive on Syncline's relay
 * socket, by wrapping the WebSocket constructor before the repo opens one:
 * the A → B latency is then split into its legs.
 */
function watchSyncSocket(relay) {
  const Native = window.WebSocket;
  const log = (window.socketLog = []);
  const relayHost = new URL(relay).host;
  function Watched(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    if (new URL(url).host !== relayHost) return ws;
    ws.addEventListener("message", (e) => log.push({ dir: "recv", at: wallMs(), bytes: e.data.byteLength ?? e.data.size }));
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      log.push({ dir: "send", at: wallMs() });
      return send(data);
    };
    return ws;
  }
  Watched.prototype = Native.prototype;
  Object.assign(Watched, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Watched;
}

function latencySocketLog() {
  return window.socketLog ?? [];
}

/** One side of the A → B latency benchmark; the state lives on window. */
async function latencySetup({ role, relay, amRelay, sUrl, aUrl }) {
  watchSyncSocket(relay);
  await initWasm();
  const state = (window.lat = { samplesS: [], samplesA: [] });
  state.srepo = await createRepo({ relay, name: `s5-${role}-${uniq()}`, key: randomKey(), worker: false });
  state.arepo = new Repo({
    storage: new IndexedDBStorageAdapter(`s5-am-${role}-${uniq()}`),
    network: [new BrowserWebSocketClientAdapter(amRelay)],
  });
  if (role === "a") {
    state.sdoc = await state.srepo.create({ seq: -1, t: 0 });
    state.ahandle = state.arepo.create({ seq: -1, t: 0 });
    await state.srepo.flush();
    await state.arepo.flush();
    return { sUrl: state.sdoc.url, aUrl: state.ahandle.url };
  }
  state.sdoc = await state.srepo.open(sUrl);
  state.ahandle = await state.arepo.find(aUrl);
  let lastS = -1;
  state.sdoc.subscribe((v) => {
    const t = wallMs();
    if (v.seq > lastS) {
      lastS = v.seq;
      state.samplesS.push({ seq: v.seq, ms: t - v.t, t0: v.t, t1: t });
    }
  });
  let lastA = -1;
  state.ahandle.on("change", ({ doc }) => {
    const t = wallMs();
    if (doc.seq > lastA) {
      lastA = doc.seq;
      state.samplesA.push({ seq: doc.seq, ms: t - doc.t });
    }
  });
  return {};
}

/** Page A: `count` edits on each system, alternating, `gapMs` apart. */
async function latencyDrive({ count = 200, gapMs = 150, from = 0 }) {
  const { sdoc, ahandle, srepo } = window.lat;
  window.lat.flushMs ??= [];
  for (let i = 0; i < count; i++) {
    const t0 = now();
    sdoc.change((d) => {
      d.seq = from + i;
      d.t = wallMs();
    });
    // Diagnosis: how long A's IndexedDB commit takes (off the A → B path
    // since Syncline pushes a change beside its log write).
    srepo.flush().then(() => window.lat.flushMs.push(now() - t0));
    await sleep(gapMs);
    ahandle.change((d) => {
      d.seq = from + i;
      d.t = wallMs();
    });
    await sleep(gapMs);
  }
}

function latencyResults() {
  return { syncline: window.lat.samplesS, automerge: window.lat.samplesA, flushMs: window.lat.flushMs ?? [] };
}

/** The floor under scenario 5: B's side of a bare forwarder (see run.mjs `wireFloor`). */
function floorReceive(url) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  window.floor = { ws, ms: [] };
  ws.onmessage = (e) => {
    const at = wallMs();
    window.floor.ms.push(at - new Float64Array(e.data, 0, 1)[0]);
  };
  return new Promise((ok, fail) => {
    ws.onopen = ok;
    ws.onerror = () => fail(new Error(`cannot reach ${url}`));
  });
}

/** A's side: `count` frames of `bytes` bytes, each stamped with its send time. */
async function floorSend({ url, count, bytes, gapMs }) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await new Promise((ok, fail) => {
    ws.onopen = ok;
    ws.onerror = () => fail(new Error(`cannot reach ${url}`));
  });
  for (let i = 0; i < count; i++) {
    const frame = new Float64Array(Math.max(1, Math.ceil(bytes / 8)));
    frame[0] = wallMs();
    ws.send(frame);
    await sleep(gapMs);
  }
  ws.close();
}

async function floorWait(n) {
  const deadline = performance.now() + 10_000;
  while (window.floor.ms.length < n) {
    if (performance.now() > deadline) throw new Error(`the forwarder delivered ${window.floor.ms.length} of ${n} frames`);
    await sleep(20);
  }
}

function floorResults() {
  window.floor.ws.close();
  return window.floor.ms;
}

// ---------------------------------------------------------------- scenario 2
/** Writes the trace into a Syncline doc through the raw Core (`trace-doc.js`). */
async function coldOpenSetup({ name, keyHex, edits, batch = 1 }) {
  await initWasm();
  return writeTrace(Core, { name, keyHex, edits, batch });
}


/**
 * After a reload: times Syncline's cold open (createRepo + repo.open(url)
 * until the value is there) and Automerge.load of `bytesUrl` (fetched
 * before timing) in the same page. Wasm instantiation is done first and
 * reported separately.
 */
async function coldOpenMeasure({ name, keyHex, url, bytesUrl, expectLength, order = "syncline-first" }) {
  const wasm = await initWasm();
  const bytes = new Uint8Array(await (await fetch(bytesUrl)).arrayBuffer());
  const key = fromHex(keyHex);
  const res = { wasm };
  const marker = Date.now();
  const runS = async () => {
    const t0 = now();
    const repo = await createRepo({ name, key, worker: false });
    const t1 = now();
    const doc = await repo.open(url);
    const len = doc.value.text.length;
    const t2 = now();
    // The first edit after open (needs the CRDT, not just the value). A
    // new value each time: assigning the value already there is no change.
    doc.change((d) => {
      d.marker = marker;
    });
    const t3 = now();
    res.syncline = { total: t2 - t0, createRepo: t1 - t0, open: t2 - t1, firstChange: t3 - t2, ok: len === expectLength };
    // The change above is newer than the snapshot: a tail, which makes the
    // next open a full load. An app that stays open 2 s after its last
    // change is compacted when idle (Engine::tick); wait for that (the
    // stored value record is rewritten), so every rep opens as a user
    // who left the page quiet would.
    const before = await storedValue(name, url);
    await repo.flush();
    const deadline = now() + 15_000;
    while (sameBytes(await storedValue(name, url), before)) {
      if (now() > deadline) throw new Error("the idle compaction did not happen within 15 s");
      await sleep(200);
    }
    repo.close();
  };
  const runA = () => {
    const t0 = now();
    const doc = A.load(bytes);
    const len = doc.text.length;
    const t1 = now();
    const d2 = A.change(doc, (d) => {
      d.marker = marker;
    });
    const t2 = now();
    res.automerge = { total: t1 - t0, firstChange: t2 - t1, ok: len === expectLength, bytes: bytes.length, keep: !!d2 };
  };
  if (order === "syncline-first") {
    await runS();
    runA();
  } else {
    runA();
    await runS();
  }
  return res;
}

// ---------------------------------------------------------------- scenario 3
/**
 * AES-256-GCM seal + open of one record of `size` bytes, `n` times.
 * Rust: syncline-core's seal/open in wasm, called once per record from JS
 * (what the storage layer does per record, but there the call stays inside
 * wasm) — and the same in a loop inside wasm, without crossing the boundary;
 * also that loop built at opt-level 3 instead of the shipped "z".
 * WebCrypto: `crypto.subtle.encrypt/decrypt` with a 12-byte random IV and the
 * same AAD, awaited one at a time, and all `n` in flight at once.
 */
async function aesBench({ size, n, reps = 5 }) {
  await initWasm();
  const keyBytes = randomKey();
  const aad = new TextEncoder().encode("records/some-key");
  const pt = crypto.getRandomValues(new Uint8Array(size));
  const ckey = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, ["encrypt", "decrypt"]);
  const out = { rustCall: [], rustLoop: [], rustLoopSpeed: [], webcryptoSeq: [], webcryptoPar: [] };
  for (let r = 0; r < reps; r++) {
    {
      const t0 = now();
      const sealed = [];
      for (let i = 0; i < n; i++) sealed.push(aes.seal(keyBytes, aad, pt));
      const t1 = now();
      for (const s of sealed) aes.open(keyBytes, aad, s);
      const t2 = now();
      out.rustCall.push({ seal: (t1 - t0) / n, open: (t2 - t1) / n });
    }
    {
      const [s, o] = aes.seal_open_loop(keyBytes, aad, pt, n);
      out.rustLoop.push({ seal: s / n, open: o / n });
    }
    {
      const [s, o] = aesSpeed.seal_open_loop(keyBytes, aad, pt, n);
      out.rustLoopSpeed.push({ seal: s / n, open: o / n });
    }
    {
      const t0 = now();
      const sealed = [];
      for (let i = 0; i < n; i++) {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        sealed.push([iv, await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, ckey, pt)]);
      }
      const t1 = now();
      for (const [iv, ct] of sealed) await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, ckey, ct);
      const t2 = now();
      out.webcryptoSeq.push({ seal: (t1 - t0) / n, open: (t2 - t1) / n });
    }
    {
      const t0 = now();
      const ivs = Array.from({ length: n }, () => crypto.getRandomValues(new Uint8Array(12)));
      const cts = await Promise.all(ivs.map((iv) => crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, ckey, pt)));
      const t1 = now();
      await Promise.all(cts.map((ct, i) => crypto.subtle.decrypt({ name: "AES-GCM", iv: ivs[i], additionalData: aad }, ckey, ct)));
      const t2 = now();
      out.webcryptoPar.push({ seal: (t1 - t0) / n, open: (t2 - t1) / n });
    }
  }
  // Cross-check: what Rust sealed, WebCrypto opens (same AES-GCM).
  const sealed = aes.seal(keyBytes, aad, pt);
  const iv = sealed.slice(1, 13);
  const back = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, ckey, sealed.slice(13)));
  out.interop = back.length === pt.length && back.every((b, i) => b === pt[i]);
  return out;
}

// ---------------------------------------------------------------- scenario 7
/**
 * Offline divergence (run.mjs `diverge`): this page is one of two replicas
 * (two browser contexts: two devices). It holds one document in each
 * system — Syncline (createRepo with a relay) and automerge-repo 2.5.6
 * (IndexedDB storage, a WebSocket client adapter to the sync server) — both
 * `{ text }` with the same collaborative text. The state lives on window.div.
 */
async function divergeSetup({ role, relay, amRelay, base, sUrl, aUrl }) {
  await initWasm();
  const div = (window.div = { role, amRelay, expect: {}, reachedAt: {}, changes: {} });
  div.srepo = await createRepo({ relay, name: `dv-${role}-${uniq()}`, key: randomKey(), worker: false });
  div.adapter = new BrowserWebSocketClientAdapter(amRelay);
  div.arepo = new Repo({ storage: new IndexedDBStorageAdapter(`dv-am-${role}-${uniq()}`), network: [div.adapter] });
  if (role === "a") {
    // (create() takes plain JSON: the Text goes in with the first change.)
    div.sdoc = await div.srepo.create({});
    div.sdoc.change((d) => {
      d.text = new Text(base);
    });
    div.ahandle = div.arepo.create({ text: base });
  } else {
    div.sdoc = await div.srepo.open(sUrl);
    div.ahandle = await div.arepo.find(aUrl);
  }
  // The first time each system's value is the expected text, on the wall
  // clock (shared by both pages), and how many change notifications came.
  const seen = (system, text) => {
    div.changes[system] = (div.changes[system] ?? 0) + 1;
    if (div.reachedAt[system] === undefined && div.expect[system] !== undefined && text === div.expect[system]) div.reachedAt[system] = wallMs();
  };
  div.sdoc.subscribe((v) => seen("syncline", v.text));
  // Why Syncline's connection dropped, if it did (status events carry the last error).
  div.errors = [];
  div.srepo.on("status", (st) => {
    const last = div.errors[div.errors.length - 1];
    if (st.lastError && (!last || last.code !== st.lastError.code || last.message !== st.lastError.message)) div.errors.push({ at: wallMs(), ...st.lastError });
  });
  div.ahandle.on("change", ({ doc }) => seen("automerge", doc.text));
  await div.srepo.flush();
  await div.arepo.flush();
  return { sUrl: div.sdoc.url, aUrl: div.ahandle.url };
}

/** Resolves once both documents hold `text` here and Syncline has nothing unacknowledged. */
async function divergeWaitSynced({ text, timeoutMs = 30_000 }) {
  const div = window.div;
  const deadline = now() + timeoutMs;
  for (;;) {
    const st = div.srepo.status;
    const ok = div.sdoc.value.text === text && div.ahandle.doc()?.text === text && st.pending === 0 && st.unsaved === 0 && st.connection === "open";
    if (ok) return true;
    if (now() > deadline) throw new Error(`not synced: ${JSON.stringify({ s: div.sdoc.value.text?.length, a: div.ahandle.doc()?.text?.length, want: text.length, st })}`);
    await sleep(50);
  }
}

/** Both systems leave the network: Syncline's work-offline switch; automerge-repo's adapter removed (its socket closed). */
async function divergeOffline() {
  const div = window.div;
  div.srepo.setOnline(false);
  div.arepo.networkSubsystem.removeNetworkAdapter(div.adapter);
  while (div.srepo.status.connection !== "offline") await sleep(20);
}

/** A macrotask turn (no timer clamping): what separates two keystrokes' event handlers. */
const taskTurn = (() => {
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => waiting.shift()();
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
})();

/**
 * One system's share of the offline edits: each edit one change (one
 * keystroke of the trace: a splice at `offset + pos`), then until it is
 * durable in IndexedDB. `pace` "task": each change in a task of its own, as
 * keystrokes arrive (the page's microtasks, where Syncline logs a change,
 * run between them); "sync": all of them in one synchronous loop (a paste,
 * an import: Syncline then logs them as one delta). Returns the times and
 * whether the local text is `text` afterwards.
 */
async function divergeEdit({ system, edits, offset, text, pace = "task" }) {
  const div = window.div;
  const t0 = now();
  const edit =
    system === "syncline"
      ? ([pos, del, ins]) => div.sdoc.change((d) => splice(d, "text", offset + pos, del, ins))
      : ([pos, del, ins]) => div.ahandle.change((d) => A.splice(d, ["text"], offset + pos, del, ins));
  for (const e of edits) {
    edit(e);
    if (pace === "task") await taskTurn();
  }
  const t1 = now();
  if (system === "syncline") await div.srepo.flush();
  else await div.arepo.flush();
  const t2 = now();
  const local = system === "syncline" ? div.sdoc.value.text : div.ahandle.doc().text;
  return { changesMs: t1 - t0, flushMs: t2 - t1, ok: local === text, length: local.length };
}

/** Sets the text this page waits for, then reconnects `system`; returns the wall-clock time of the call. */
function divergeOnline({ system, text }) {
  const div = window.div;
  div.expect[system] = text;
  div.reachedAt[system] = undefined;
  const current = system === "syncline" ? div.sdoc.value.text : div.ahandle.doc().text;
  const t0 = wallMs();
  if (current === text) div.reachedAt[system] = t0;
  if (system === "syncline") div.srepo.setOnline(true);
  else {
    // A new adapter, as on a page load: it sends the repo's full peer
    // metadata (storage id), which NetworkSubsystem.reconnect() would not.
    div.adapter = new BrowserWebSocketClientAdapter(div.amRelay);
    div.arepo.networkSubsystem.addNetworkAdapter(div.adapter);
  }
  return t0;
}

/** Where `system` stands here: reached the expected text when, heads, value check, Syncline's status. */
function divergeState({ system }) {
  const div = window.div;
  const text = system === "syncline" ? div.sdoc.value.text : div.ahandle.doc().text;
  const heads = system === "syncline" ? [...div.sdoc.heads()] : [...A.getHeads(div.ahandle.doc())];
  return {
    reachedAt: div.reachedAt[system] ?? null,
    ok: text === div.expect[system],
    length: text.length,
    heads: heads.sort(),
    notifications: div.changes[system] ?? 0,
    status: system === "syncline" ? { ...div.srepo.status } : null,
    errors: system === "syncline" ? div.errors : [],
  };
}

async function divergeClose() {
  const div = window.div;
  await div.srepo.flush();
  div.srepo.close();
  await div.arepo.shutdown?.();
}

window.bench = { initWasm, changePatch, durable, latencySetup, latencyDrive, latencyResults, latencySocketLog, floorReceive, floorSend, floorWait, floorResults, coldOpenSetup, coldOpenMeasure, aesBench, divergeSetup, divergeWaitSynced, divergeOffline, divergeEdit, divergeOnline, divergeState, divergeClose };
window.benchReady = true;
