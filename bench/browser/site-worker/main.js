// The worker-mode benchmark page (issue 16), driven by ../worker-bench.mjs.
// Each function runs one side of one measurement in this page and returns
// raw samples; the runner computes medians and ratios. Worker mode is
// `createRepo({ worker: true })`: the engine runs in the origin's
// SharedWorker (npm/src/worker.ts, bundled by vite.worker.config.mjs); page
// mode (`worker: false`) runs the engine in this page. Every worker-mode repo is
// checked to really run in the worker (`repo.status.mode === "worker"`).
import { createRepo } from "syncline";
import initSynclineGlue, { Core } from "syncline-glue";
import * as A from "@automerge/automerge/slim";
import automergeWasmUrl from "@automerge/automerge/automerge.wasm?url";
import { fromHex, sameBytes, storedValue, writeTrace } from "../site/trace-doc.js";

const now = () => performance.now();
/** A clock shared by the pages of one machine (A → B latency across pages). */
const wallMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uniq = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

// ------------------------------------------------------------ long tasks
/** Every main-thread long task (> 50 ms) of this page since it loaded. */
const longTasks = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push({ start: e.startTime, duration: e.duration, name: e.name });
  }).observe({ type: "longtask", buffered: true });
} catch (error) {
  console.error(`no longtask observer: ${error}`);
}
/** The long tasks that overlap [from, to] (page clock, ms). */
function longTasksIn(from, to) {
  const xs = longTasks.filter((t) => t.start + t.duration > from && t.start < to);
  return { count: xs.length, totalMs: xs.reduce((s, t) => s + t.duration, 0), tasks: xs.map((t) => ({ at: t.start - from, ms: t.duration })) };
}

// ------------------------------------------------------------ the worker's port, observed
/**
 * Wraps SharedWorker so this page sees, with its own clock, every message
 * the worker sends this tab (a second listener beside the package's own
 * `onmessage`; nothing is changed). Gives the phases of a worker-mode open.
 */
const portLog = [];
let portWaiters = [];
if (typeof SharedWorker === "function") {
  const Native = SharedWorker;
  window.SharedWorker = function Watched(url, options) {
    const worker = new Native(url, options);
    portLog.push({ t: "(constructed)", at: now() });
    worker.port.addEventListener("message", (e) => {
      const entry = { t: e.data?.t, at: now(), wall: wallMs(), data: e.data };
      portLog.push(entry);
      portWaiters = portWaiters.filter((w) => !(w.match(entry) && (w.resolve(entry), true)));
    });
    return worker;
  };
  window.SharedWorker.prototype = Native.prototype;
}
/** The first port message from now on that `match`es. */
function nextPortMessage(match, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching message from the worker within ${timeoutMs} ms`)), timeoutMs);
    portWaiters.push({ match, resolve: (x) => (clearTimeout(timer), resolve(x)) });
  });
}

function requireMode(repo, worker) {
  const { mode = "page", warning } = repo.status;
  if ((worker ? "worker" : "page") !== mode) throw new Error(`asked for ${worker ? "worker" : "page"} mode, got ${mode}${warning ? `: ${warning}` : ""}`);
}

let synclineWasmMs;
/** Syncline's wasm in this page (page mode only): instantiated once, timed. */
async function initPageWasm() {
  if (synclineWasmMs === undefined) {
    const t0 = now();
    await initSynclineGlue();
    synclineWasmMs = now() - t0;
  }
  return synclineWasmMs;
}
let automergeReady;
const initAutomerge = () => (automergeReady ??= A.initializeWasm(automergeWasmUrl));

// ------------------------------------------------------------ cold open
/** Writes the trace into a Syncline doc through the raw Core (`site/trace-doc.js`). */
async function coldSetup({ name, keyHex, edits, batch = 100 }) {
  await initPageWasm();
  return writeTrace(Core, { name, keyHex, edits, batch });
}


/**
 * One cold open in a fresh page (a fresh SharedWorker in worker mode: the
 * runner waits until the previous one is gone), and `Automerge.load` of the
 * same trace in this same page. Syncline: t0 `createRepo` → `repo.open(url)`
 * → value there (t2) → `doc.change()` → returned (t3). In page mode the
 * change loads the CRDT synchronously: applied at t3. In worker mode the
 * tab applies its own ops at once and the worker applies them to the CRDT
 * (loading it first): applied when the worker's patches for that change
 * (`own`) reach this tab (tConfirmed). Then until durable (`flush()`).
 * Automerge: `load(bytes)` + `change` (bytes fetched and its wasm
 * instantiated before timing; Syncline's page-mode wasm too, reported).
 */
async function coldMeasure({ name, keyHex, url, bytesUrl, expectLength, amLength = expectLength, worker, order }) {
  await initAutomerge();
  const wasmMs = worker ? null : await initPageWasm();
  const bytes = new Uint8Array(await (await fetch(bytesUrl)).arrayBuffer());
  const key = fromHex(keyHex);
  const marker = Date.now();
  const res = { worker, wasmMs, order };
  await sleep(100); // let the page settle: no long task of the page's own start in the window
  const runS = async () => {
    portLog.length = 0;
    const t0 = now();
    const confirmed = worker ? nextPortMessage((m) => m.t === "patches" && m.data?.own !== undefined) : null;
    const repo = await createRepo({ name, key, worker });
    const t1 = now();
    requireMode(repo, worker);
    const doc = await repo.open(url);
    const len = doc.value.text.length;
    const t2 = now();
    doc.change((d) => {
      d.marker = marker;
    });
    const t3 = now();
    const tConfirmed = worker ? (await confirmed).at : t3;
    const tab = doc.value.marker === marker;
    await repo.flush();
    const tDurable = now();
    const phases = {};
    if (worker) {
      const first = (t) => portLog.find((m) => m.t === t)?.at;
      phases.workerConstructed = first("(constructed)") - t0;
      phases.alive = first("alive") - t0; // the worker's script runs (module fetched and evaluated)
      phases.welcome = first("welcome") - t0; // the engine opened there: wasm instantiated + Core.open (IndexedDB)
      const reply = portLog.find((m) => m.t === "reply" && m.data?.value?.value?.text !== undefined);
      phases.openReply = reply ? reply.at - t0 : null; // the value arrived (structured clone of the plain value)
      phases.valueChars = reply ? reply.data.value.value.text.length : null;
      phases.messages = portLog.filter((m) => m.at <= tDurable).map((m) => ({ t: m.t, at: m.at - t0 }));
    }
    res.syncline = {
      createRepo: t1 - t0,
      open: t2 - t1,
      value: t2 - t0,
      changeCall: t3 - t2,
      editableTab: t3 - t0,
      editable: tConfirmed - t0,
      durable: tDurable - t0,
      ok: len === expectLength && tab,
      mode: repo.status.mode ?? "page",
      phases,
      longTasksEditable: longTasksIn(t0, tConfirmed),
      longTasksDurable: longTasksIn(t0, tDurable),
    };
    // As run.mjs cold-open: wait until the idle compaction rewrote the value
    // record, so the next open is a quiet user's (fast value, no tail).
    const before = await storedValue(name, url);
    const deadline = now() + 20_000;
    while (sameBytes(await storedValue(name, url), before)) {
      if (now() > deadline) throw new Error("the idle compaction did not happen within 20 s");
      await sleep(200);
    }
    const tAfter = now();
    res.syncline.longTasksToCompacted = longTasksIn(t0, tAfter);
    repo.close();
  };
  const runA = async () => {
    await sleep(50);
    const t0 = now();
    const doc = A.load(bytes);
    const len = doc.text.length;
    const t1 = now();
    const d2 = A.change(doc, (d) => {
      d.marker = marker;
    });
    const t2 = now();
    res.automerge = { load: t1 - t0, change: t2 - t1, editable: t2 - t0, ok: len === amLength && d2.marker === marker, bytes: bytes.length, longTasks: longTasksIn(t0, t2) };
    await sleep(50);
  };
  // The floor: Automerge alone in a fresh SharedWorker (am-worker.js), from
  // the constructor until the worker's change is made and its answer is here.
  const runW = async () => {
    await sleep(50);
    const t0 = now();
    const w = new SharedWorker(new URL("./am-worker.js", import.meta.url), { type: "module", name: `wbench-am-${uniq()}` });
    const answer = new Promise((resolve) => (w.port.onmessage = (e) => resolve(e.data)));
    w.port.postMessage({ bytes, marker });
    const a = await answer;
    const t1 = now();
    w.port.close();
    res.automergeWorker = { editable: t1 - t0, ...a, ok: a.ok && a.length === amLength };
  };
  if (order === "syncline-first") {
    await runS();
    await runA();
  } else {
    await runA();
    await runS();
  }
  await runW();
  return res;
}

// ------------------------------------------------------------ A → B latency
/**
 * One side of A → B (as site/main.js latency): A edits `{ seq, t }` with
 * `t` on the shared clock; B records wall-clock arrival - t in a subscriber.
 */
async function latSetup({ role, relay, worker, url }) {
  if (!worker) await initPageWasm();
  const state = (window.lat = { samples: [], worker });
  state.repo = await createRepo({ relay, name: `lat-${role}-${uniq()}`, key: crypto.getRandomValues(new Uint8Array(32)), worker });
  requireMode(state.repo, worker);
  if (role === "a") {
    state.doc = await state.repo.create({ seq: -1, t: 0 });
    await state.repo.flush();
    return { url: state.doc.url, mode: state.repo.status.mode ?? "page" };
  }
  state.doc = await state.repo.open(url);
  let last = -1;
  state.doc.subscribe((v) => {
    const t = wallMs();
    if (v.seq > last) {
      last = v.seq;
      state.samples.push({ seq: v.seq, ms: t - v.t, t0: v.t, t1: t });
    }
  });
  return { mode: state.repo.status.mode ?? "page" };
}

function latEdit(seq) {
  const t = wallMs();
  (window.lat.edits ??= []).push({ seq, t });
  window.lat.doc.change((d) => {
    d.seq = seq;
    d.t = t;
  });
}

function latResults() {
  // Worker mode, where the time goes: in A, change() → the worker's patches
  // for it back in the tab (tab → worker, changeAt, worker → tab); in B, the
  // worker's patches arriving at the tab → the subscriber ran.
  const patches = portLog.filter((m) => m.t === "patches");
  const own = patches.filter((m) => m.data?.own !== undefined);
  const legs = { aRoundTrip: [], bPortToSubscriber: [] };
  if (window.lat.worker) {
    for (const e of window.lat.edits ?? []) {
      const back = own.find((m) => m.wall >= e.t);
      if (back) legs.aRoundTrip.push({ seq: e.seq, ms: back.wall - e.t });
    }
    for (const x of window.lat.samples) {
      const got = patches.filter((m) => m.data?.own === undefined && m.wall <= x.t1 + 0.01).pop();
      if (got && got.wall >= x.t0) legs.bPortToSubscriber.push({ seq: x.seq, ms: x.t1 - got.wall, sinceEdit: got.wall - x.t0 });
    }
  }
  return {
    legs, samples: window.lat.samples, mode: window.lat.repo.status.mode ?? "page", status: { ...window.lat.repo.status } };
}

async function latClose() {
  await window.lat.repo.flush();
  window.lat.repo.close();
}

// ------------------------------------------------------------ hop floor
/**
 * The floor under worker mode's extra A → B time: a round trip from this
 * page through a do-nothing SharedWorker (`echo-worker.js`), carrying a
 * message shaped like a one-key change. Timed on this page's clock.
 */
let echo;
function echoSetup() {
  const worker = new SharedWorker(new URL("./echo-worker.js", import.meta.url), { type: "module", name: "wbench-echo" });
  echo = { port: worker.port, samples: [], waiting: null };
  echo.port.onmessage = (e) => {
    const t = now();
    echo.samples.push({ seq: e.data.seq, ms: t - e.data.sent });
    echo.waiting?.();
  };
  echo.port.start();
}

/** One round trip through the echo worker; resolves when it is back. */
function echoPing(seq) {
  return new Promise((resolve) => {
    echo.waiting = resolve;
    echo.port.postMessage({ t: "change", url: "automerge:bench", seq, sent: now(), heads: ["0".repeat(64)], before: [], ops: [{ op: "put", path: ["seq"], value: seq }, { op: "put", path: ["t"], value: wallMs() }] });
  });
}

function echoResults() {
  return echo.samples;
}

// ------------------------------------------------------------ memory
/** Opens the trace doc in this tab (one of five) and makes its CRDT load (page mode: `heads()` needs it). */
async function memOpen({ name, keyHex, url, worker, expectLength }) {
  if (!worker) await initPageWasm();
  const repo = await createRepo({ name, key: fromHex(keyHex), worker });
  requireMode(repo, worker);
  const doc = await repo.open(url);
  doc.heads();
  window.mem = { repo, doc };
  return { mode: repo.status.mode ?? "page", ok: doc.value.text.length === expectLength };
}

function memClose() {
  window.mem?.repo.close();
  window.mem = undefined;
}

window.wbench = { coldSetup, coldMeasure, latSetup, latEdit, latResults, latClose, echoSetup, echoPing, echoResults, memOpen, memClose, initAutomerge };
window.benchReady = true;
