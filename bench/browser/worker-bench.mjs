// Worker-mode benchmarks (issue 16): `createRepo({ worker: true })` against
// the default page mode, side by side in one run, real Chromium, real relay,
// real IndexedDB. Results: docs/benchmarks/worker.md.
//
//   node build.mjs --skip-cargo   (or npm run build: the wasm glue and the relay)
//   npx vite build --config vite.worker.config.mjs
//   node worker-bench.mjs [all|cold|latency|memory] --traces DIR [--rounds 5] [--lat-rounds 3] [--count 100] [--gap 100] [--mem-rounds 3] [--tabs 5]
//
// Prints a markdown summary, writes raw samples to
// .build/results/worker-<time>.json. Nothing leaves 127.0.0.1.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { freePort, startProcess, startStatic as serveStatic } from "./serve.mjs";
import { median, parseFlags, pct } from "./stats.mjs";
import { automergeBytes, loadTrace as readTrace } from "./traces.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const build = join(here, ".build");
// --site DIR serves another bundle of the page (e.g. built with SYNCLINE_BENCH_NPM_SRC, to try a change side by side).
const siteFlag = process.argv.indexOf("--site");
const site = siteFlag > 0 ? resolve(process.argv[siteFlag + 1]) : join(build, "site-worker");
const targetDir = resolve(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target", "bench"));

// ------------------------------------------------------------------ flags
const argv = process.argv.slice(2);
const what = argv[0] && !argv[0].startsWith("--") ? argv.shift() : "all";
const flags = parseFlags(argv);
const num = (name, dflt) => (flags[name] === undefined ? dflt : Number(flags[name]));

// ------------------------------------------------------------------ stats
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
const load = () => loadavg().map((x) => +x.toFixed(2));
const loadLog = [];
const noteLoad = (label) => {
  const l = load();
  loadLog.push({ label, at: new Date().toISOString(), load: l });
  console.error(`[load] ${label}: ${l.join(" ")}`);
};

/** Bounded: every browser call has a deadline. */
function within(ms, promise, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ servers
// The static server, free ports and server processes of serve.mjs (shared with run.mjs).
const startStatic = (extra = {}) => serveStatic(site, { extra });

// ------------------------------------------------------------------ browser + raw CDP
/**
 * Chromium as run.mjs launches it, plus a DevTools port on 127.0.0.1: the
 * runner's own CDP connection sees the SharedWorker (Playwright does not),
 * to wait until a worker is gone, collect garbage in it and read its heap.
 */
async function launch() {
  const cdpPort = await freePort();
  const browser = await chromium.launch({
    executablePath: process.env.SYNCLINE_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    timeout: 60_000,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
      `--remote-debugging-port=${cdpPort}`, "--remote-debugging-address=127.0.0.1",
    ],
  });
  const cdp = await cdpConnect(cdpPort);
  return { browser, cdp };
}

async function cdpConnect(port) {
  let info;
  for (let i = 0; i < 50 && !info; i++) {
    try {
      info = await (await fetch(`http://127.0.0.1:${port}/json/version`)).json();
    } catch {
      await sleep(100);
    }
  }
  if (!info) throw new Error("no DevTools endpoint");
  const ws = new WebSocket(info.webSocketDebuggerUrl, { perMessageDeflate: false });
  await new Promise((ok, fail) => (ws.once("open", ok), ws.once("error", fail)));
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString());
    if (m.id && pending.has(m.id)) {
      const { resolve: ok, reject: fail } = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) fail(new Error(`${m.error.message}`));
      else ok(m.result);
    }
  });
  const send = (method, params = {}, sessionId) =>
    within(30_000, new Promise((ok, fail) => {
      const id = next++;
      pending.set(id, { resolve: ok, reject: fail });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    }), `CDP ${method}`);
  return { send, close: () => ws.close() };
}

async function targets(cdp, type) {
  const { targetInfos } = await cdp.send("Target.getTargets");
  return targetInfos.filter((t) => !type || t.type === type);
}

/** Waits until this browser runs no SharedWorker (the next worker-mode open starts a fresh one). */
async function noSharedWorker(cdp, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await targets(cdp, "shared_worker")).length > 0) {
    if (Date.now() > deadline) throw new Error("the SharedWorker did not end after its last tab closed");
    await sleep(100);
  }
}

/** For every page and SharedWorker target: a full GC, then its JS heap (CDP Runtime.getHeapUsage). */
async function gcAndHeaps(cdp) {
  const out = [];
  for (const t of await targets(cdp)) {
    if (t.type !== "page" && t.type !== "shared_worker") continue;
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId: t.targetId, flatten: true });
    try {
      await cdp.send("HeapProfiler.collectGarbage", {}, sessionId);
      const h = await cdp.send("Runtime.getHeapUsage", {}, sessionId);
      out.push({ type: t.type, url: t.url, usedSize: h.usedSize, totalSize: h.totalSize });
    } finally {
      await cdp.send("Target.detachFromTarget", { sessionId }).catch(() => {});
    }
  }
  return out;
}

// ------------------------------------------------------------------ /proc
/** Every process descending from this runner (the Chromium instance and the relay, which we exclude by pid). */
function descendants(root) {
  const parent = new Map();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const out = [];
  const walk = (p) => {
    for (const [child, pp] of parent) if (pp === p) (out.push(child), walk(child));
  };
  walk(root);
  return out;
}

/** PSS and RSS (KiB) of each Chromium process of this runner, by process type. */
function chromiumMemory(excludePids = []) {
  const procs = [];
  for (const pid of descendants(process.pid)) {
    if (excludePids.includes(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split(/[\0 ]/);
      if (!/chrom/i.test(cmd[0])) continue;
      const roll = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(roll)?.[1] ?? 0);
      const type = cmd.find((a) => a.startsWith("--type="))?.slice(7) ?? "browser";
      const sub = cmd.find((a) => a.startsWith("--utility-sub-type="))?.slice(19);
      procs.push({ pid, type: sub ? `${type}:${sub}` : type, pss: kb("Pss"), rss: kb("Rss") });
    } catch {}
  }
  const sum = (xs, k) => xs.reduce((s, p) => s + p[k], 0);
  const renderers = procs.filter((p) => p.type === "renderer");
  return { procs, pss: sum(procs, "pss"), rss: sum(procs, "rss"), rendererPss: sum(renderers, "pss"), renderers: renderers.length };
}

// ------------------------------------------------------------------ pages
async function newPage(context, name) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning" || m.type() === "info" || flags.verbose) console.error(`[${name}] console.${m.type()}: ${m.text()}`);
  });
  return page;
}

async function openPage(context, url, name) {
  const page = await newPage(context, name);
  await page.goto(url, { timeout: 30_000 });
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30_000 });
  if (!(await page.evaluate(() => crossOriginIsolated))) console.error(`[${name}] warning: not cross-origin isolated`);
  return page;
}

const call = (page, ms, fn, arg, what) => within(ms, page.evaluate(fn, arg), what);

// ------------------------------------------------------------------ trace
const loadTrace = () => readTrace(flags.traces ?? process.env.SYNCLINE_TRACES ?? join(repoRoot, "bench", "traces"));


// ------------------------------------------------------------------ the run
const modes = ["worker", "page"];
const report = { what, started: new Date().toISOString(), flags, cold: [], latency: [], memory: [] };

async function main() {
  if (!existsSync(join(site, "index.html"))) throw new Error("build first: npx vite build --config vite.worker.config.mjs");
  const needDoc = what === "all" || what === "cold" || what === "memory";
  const trace = needDoc ? loadTrace() : null;
  const batch = num("batch", 100);
  const bytesFile = needDoc ? await automergeBytes(build, trace, batch) : null;
  const web = await startStatic(bytesFile ? { "/trace.automerge": bytesFile } : {});
  const dir = mkdtempSync(join(tmpdir(), "syncline-wbench-"));
  const relayBin = resolve(flags.relay ?? join(targetDir, "release", "syncline-relay"));
  const needRelay = what === "all" || what === "latency";
  if (needRelay && !existsSync(relayBin)) throw new Error(`missing ${relayBin}`);
  const relay = needRelay
    ? await startProcess(relayBin, ["--listen", "127.0.0.1:0", "--data", join(dir, "relay")], { name: "relay", ready: /syncline-relay listening on 127\.0\.0\.1:(\d+)/, env: { RUST_LOG: "warn" } })
    : null;
  const { browser, cdp } = await launch();
  report.chromium = browser.version();
  noteLoad("start");
  try {
    if (needDoc) {
      const context = await browser.newContext();
      const name = `wb-${Date.now()}`;
      const keyHex = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
      const edits = trace.txns.map((p) => p[0]);
      const limit = num("edits", edits.length);
      const setupPage = await openPage(context, web.url, "setup");
      console.error(`writing ${limit} edits (${batch} per change) into encrypted IndexedDB...`);
      const setup = await call(setupPage, 600_000, (x) => window.wbench.coldSetup(x), { name, keyHex, edits: edits.slice(0, limit), batch }, "setup");
      console.error(`written in ${f(setup.ms / 1000)} s; text length ${setup.length}`);
      if (limit === edits.length && setup.length !== trace.endContent.length) throw new Error("the replay did not reach endContent");
      await setupPage.close();
      const doc = { name, keyHex, url: setup.url, expectLength: setup.length };
      const amLength = trace.endContent.length;
      report.setup = { ms: setup.ms, length: setup.length, edits: limit, batch };
      if (what === "all" || what === "cold") await coldOpen(context, web.url, cdp, { ...doc, amLength });
      if (what === "all" || what === "memory") await memory(context, web.url, cdp, doc, relay ? [relay.pid] : []);
      await context.close();
    }
    if (what === "all" || what === "latency") await latency(browser, web.url, `ws://127.0.0.1:${relay.match[1]}`);
  } finally {
    noteLoad("end");
    cdp.close();
    await browser.close();
    await web.close();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Item 1 and 2: time to editable and main-thread long tasks of a cold open, per mode, each in a fresh page. */
async function coldOpen(context, url, cdp, doc) {
  const rounds = num("rounds", 5);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? modes : [...modes].reverse();
    noteLoad(`cold round ${round}`);
    for (const mode of order) {
      await noSharedWorker(cdp);
      const page = await openPage(context, url, `cold-${mode}`);
      const amOrder = round % 2 === 0 ? "syncline-first" : "automerge-first";
      const r = await call(page, 120_000, (x) => window.wbench.coldMeasure(x), { ...doc, bytesUrl: "/trace.automerge", worker: mode === "worker", order: amOrder }, `cold ${mode}`);
      await page.close();
      if (!r.syncline.ok || !r.automerge.ok || !r.automergeWorker.ok) throw new Error(`wrong value after open: ${JSON.stringify({ s: r.syncline.ok, a: r.automerge.ok, w: r.automergeWorker.ok })}`);
      if (r.syncline.mode !== mode) throw new Error(`expected ${mode} mode, ran in ${r.syncline.mode}`);
      report.cold.push({ round, mode, ...r });
      const s = r.syncline;
      console.error(
        `cold round ${round} ${mode}: value ${f(s.value)} ms, editable ${f(s.editable)} ms (tab ${f(s.editableTab)}), durable ${f(s.durable)} ms; long tasks to editable ${s.longTasksEditable.count} / ${f(s.longTasksEditable.totalMs)} ms; Automerge load ${f(r.automerge.load)} + change ${f(r.automerge.change)} ms; Automerge alone in a fresh SharedWorker ${f(r.automergeWorker.editable)} ms (wasm ${f(r.automergeWorker.initMs)}, load + change ${f(r.automergeWorker.loadChangeMs)})` +
          (mode === "worker" ? `; alive ${f(s.phases.alive)}, welcome ${f(s.phases.welcome)}, open reply ${f(s.phases.openReply)}` : `; page wasm ${f(r.wasmMs)} ms`),
      );
    }
  }
}

/** Item 4: the doc open in `tabs` tabs of one context; Chromium's PSS before and after, per mode. */
async function memory(context, url, cdp, doc, excludePids) {
  const rounds = num("mem-rounds", 3), tabs = num("tabs", 5), settle = num("settle", 4000);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? modes : [...modes].reverse();
    noteLoad(`memory round ${round}`);
    for (const mode of order) {
      await noSharedWorker(cdp);
      const pages = [];
      for (let i = 0; i < tabs; i++) pages.push(await openPage(context, url, `mem-${mode}-${i}`));
      await sleep(1500);
      await gcAndHeaps(cdp);
      const before = chromiumMemory(excludePids);
      for (const page of pages) {
        const r = await call(page, 60_000, (x) => window.wbench.memOpen(x), { ...doc, worker: mode === "worker" }, `memOpen ${mode}`);
        if (r.mode !== mode || !r.ok) throw new Error(`memOpen: ${JSON.stringify(r)}`);
      }
      await sleep(settle);
      const heaps = await gcAndHeaps(cdp);
      await sleep(500);
      const after = chromiumMemory(excludePids);
      const workers = (await targets(cdp, "shared_worker")).length;
      if (mode === "worker" && workers !== 1) throw new Error(`worker mode with ${tabs} tabs: ${workers} SharedWorkers`);
      const heap = (type) => heaps.filter((h) => h.type === type).reduce((s, h) => s + h.usedSize, 0);
      const sample = {
        round, mode, tabs, sharedWorkers: workers,
        before: { pss: before.pss, rss: before.rss, rendererPss: before.rendererPss, renderers: before.renderers },
        after: { pss: after.pss, rss: after.rss, rendererPss: after.rendererPss, renderers: after.renderers, procs: after.procs },
        deltaPss: after.pss - before.pss, deltaRss: after.rss - before.rss, deltaRendererPss: after.rendererPss - before.rendererPss,
        jsHeap: { pages: heap("page"), worker: heap("shared_worker"), targets: heaps },
      };
      report.memory.push(sample);
      console.error(`memory round ${round} ${mode}: PSS ${f(before.pss / 1024)} → ${f(after.pss / 1024)} MiB (Δ ${f(sample.deltaPss / 1024)} MiB; renderers ${before.renderers} → ${after.renderers}, Δ renderer PSS ${f(sample.deltaRendererPss / 1024)} MiB); JS heap pages ${f(sample.jsHeap.pages / 2 ** 20)} MiB, worker ${f(sample.jsHeap.worker / 2 ** 20)} MiB`);
      for (const page of pages) await call(page, 10_000, () => window.wbench.memClose(), undefined, "memClose").catch(() => {});
      for (const page of pages) await page.close();
    }
  }
}

/** Item 3: A → B through the relay; A and B in separate contexts (each its own SharedWorker), edits alternating between modes. */
async function latency(browser, url, relayUrl) {
  const rounds = num("lat-rounds", 3), count = num("count", 100), gap = num("gap", 100), warm = 10;
  for (let round = 0; round < rounds; round++) {
    noteLoad(`latency round ${round}`);
    const contexts = [], pages = {};
    for (const mode of modes) {
      pages[mode] = {};
      for (const role of ["a", "b"]) {
        const context = await browser.newContext();
        contexts.push(context);
        pages[mode][role] = await openPage(context, url, `lat-${mode}-${role}`);
      }
      const { url: docUrl, mode: got } = await call(pages[mode].a, 30_000, (x) => window.wbench.latSetup(x), { role: "a", relay: relayUrl, worker: mode === "worker" }, "latSetup a");
      const b = await call(pages[mode].b, 30_000, (x) => window.wbench.latSetup(x), { role: "b", relay: relayUrl, worker: mode === "worker", url: docUrl }, "latSetup b");
      if (got !== mode || b.mode !== mode) throw new Error(`latency: expected ${mode}, got ${got} / ${b.mode}`);
    }
    // The hop floor: a do-nothing SharedWorker round trip from worker-mode A's page, pinged in the same loop.
    await call(pages.worker.a, 10_000, () => window.wbench.echoSetup(), undefined, "echoSetup");
    try {
      for (let i = 0; i < warm + count; i++) {
        const order = (i + round) % 2 === 0 ? modes : [...modes].reverse();
        for (const mode of order) {
          await call(pages[mode].a, 10_000, (s) => window.wbench.latEdit(s), i, "latEdit");
          await sleep(gap);
        }
        await call(pages.worker.a, 10_000, (s) => window.wbench.echoPing(s), i, "echoPing");
        await sleep(gap);
      }
      await sleep(2000);
      const sample = { round, count, gap };
      const echoMs = (await call(pages.worker.a, 10_000, () => window.wbench.echoResults(), undefined, "echoResults")).filter((x) => x.seq >= warm).map((x) => x.ms);
      sample.echo = { ms: echoMs, received: echoMs.length, p50: median(echoMs), p99: pct(echoMs, 99) };
      for (const mode of modes) {
        const r = await call(pages[mode].b, 10_000, () => window.wbench.latResults(), undefined, "latResults");
        if (r.mode !== mode) throw new Error(`latency: B ran in ${r.mode}`);
        const ms = r.samples.filter((x) => x.seq >= warm).map((x) => x.ms);
        sample[mode] = { ms, received: ms.length, p50: median(ms), p99: pct(ms, 99), max: Math.max(...ms) };
        if (mode === "worker") {
          const a = await call(pages[mode].a, 10_000, () => window.wbench.latResults(), undefined, "latResults a");
          const rt = a.legs.aRoundTrip.filter((x) => x.seq >= warm).map((x) => x.ms);
          const bl = r.legs.bPortToSubscriber.filter((x) => x.seq >= warm);
          sample.workerLegs = {
            aRoundTrip: { p50: median(rt), p99: pct(rt, 99), n: rt.length },
            bEditToPort: { p50: median(bl.map((x) => x.sinceEdit)), p99: pct(bl.map((x) => x.sinceEdit), 99), n: bl.length },
            bPortToSubscriber: { p50: median(bl.map((x) => x.ms)), p99: pct(bl.map((x) => x.ms), 99) },
          };
          console.error(`latency round ${round} worker legs: ${JSON.stringify(sample.workerLegs)}`);
        }
        for (const role of ["a", "b"]) await call(pages[mode][role], 10_000, () => window.wbench.latClose(), undefined, "latClose").catch(() => {});
      }
      report.latency.push(sample);
      console.error(`latency round ${round}: worker p50 ${f(sample.worker.p50, 2)} p99 ${f(sample.worker.p99, 2)} (${sample.worker.received}/${count}); page p50 ${f(sample.page.p50, 2)} p99 ${f(sample.page.p99, 2)} (${sample.page.received}/${count}); echo round trip p50 ${f(sample.echo.p50, 3)} p99 ${f(sample.echo.p99, 3)}`);
    } finally {
      for (const c of contexts) await c.close();
    }
  }
}

// ------------------------------------------------------------------ summary
function summary() {
  const lines = [];
  const cold = (mode) => report.cold.filter((x) => x.mode === mode);
  if (report.cold.length > 0) {
    const med = (xs, get) => median(xs.map(get));
    const raw = (xs, get) => xs.map((x) => f(get(x))).join(" / ");
    const am = report.cold.map((x) => x.automerge.editable);
    const amLoad = report.cold.map((x) => x.automerge.load);
    const w = cold("worker"), p = cold("page");
    const amAll = median(am), amLoadAll = median(amLoad);
    lines.push(
      `### Cold open of the automerge-paper doc (${report.setup.edits} edits, ${report.setup.batch} per change), ${w.length} fresh pages per mode, modes alternating; Automerge.load in the same pages`,
      `| | worker mode | page mode | \`Automerge.load\` + \`change\` |`,
      `| --- | --- | --- | --- |`,
      `| time to value (open until \`doc.value\`) | ${f(med(w, (x) => x.syncline.value))} (${raw(w, (x) => x.syncline.value)}) | ${f(med(p, (x) => x.syncline.value))} (${raw(p, (x) => x.syncline.value)}) | load ${f(amLoadAll)} (${raw(report.cold, (x) => x.automerge.load)}) |`,
      `| **time to editable**: the first change applied (worker: its patches back from the worker) | **${f(med(w, (x) => x.syncline.editable))}** (${raw(w, (x) => x.syncline.editable)}) | **${f(med(p, (x) => x.syncline.editable))}** (${raw(p, (x) => x.syncline.editable)}) | **${f(amAll)}** (${raw(report.cold, (x) => x.automerge.editable)}) |`,
      `| ratio to \`Automerge.load\` + \`change\` (all pages) | **${ratio(med(w, (x) => x.syncline.editable), amAll)}** | **${ratio(med(p, (x) => x.syncline.editable), amAll)}** | |`,
      `| ratio to \`Automerge.load\` + \`change\` in that mode's own pages | ${ratio(med(w, (x) => x.syncline.editable), med(w, (x) => x.automerge.editable))} | ${ratio(med(p, (x) => x.syncline.editable), med(p, (x) => x.automerge.editable))} | |`,
      `| **floor**: \`Automerge.load\` + \`change\` alone in a fresh SharedWorker (constructor → its answer in the page; wasm instantiate / load + change inside), every page | **${f(med(report.cold, (x) => x.automergeWorker.editable))}** (${f(med(report.cold, (x) => x.automergeWorker.initMs))} / ${f(med(report.cold, (x) => x.automergeWorker.loadChangeMs))}) | | ratio to the page's: **${ratio(med(report.cold, (x) => x.automergeWorker.editable), amAll)}** |`,
      `| worker: \`change()\` returned in the tab (value shows the edit, engine not yet) | ${f(med(w, (x) => x.syncline.editableTab))} | — | |`,
      `| first change durable (\`flush()\` resolved) | ${f(med(w, (x) => x.syncline.durable))} | ${f(med(p, (x) => x.syncline.durable))} | |`,
      `| page mode: Syncline wasm instantiate in the page (not in the above) | — | ${f(median(p.map((x) => x.wasmMs)))} | |`,
      `| worker phases (ms after createRepo): SharedWorker constructed / \`alive\` (script ran) / \`welcome\` (wasm + Core.open done) / open reply (value) | ${["workerConstructed", "alive", "welcome", "openReply"].map((k) => f(med(w, (x) => x.syncline.phases[k]))).join(" / ")} | | |`,
      `| **main-thread long tasks, createRepo → editable**: count / total ms (median) | **${med(w, (x) => x.syncline.longTasksEditable.count)} / ${f(med(w, (x) => x.syncline.longTasksEditable.totalMs))}** (${w.map((x) => `${x.syncline.longTasksEditable.count}/${f(x.syncline.longTasksEditable.totalMs, 0)}`).join(", ")}) | **${med(p, (x) => x.syncline.longTasksEditable.count)} / ${f(med(p, (x) => x.syncline.longTasksEditable.totalMs))}** (${p.map((x) => `${x.syncline.longTasksEditable.count}/${f(x.syncline.longTasksEditable.totalMs, 0)}`).join(", ")}) | ${med(report.cold, (x) => x.automerge.longTasks.count)} / ${f(med(report.cold, (x) => x.automerge.longTasks.totalMs))} |`,
      `| long tasks, createRepo → durable | ${w.map((x) => `${x.syncline.longTasksDurable.count}/${f(x.syncline.longTasksDurable.totalMs, 0)}`).join(", ")} | ${p.map((x) => `${x.syncline.longTasksDurable.count}/${f(x.syncline.longTasksDurable.totalMs, 0)}`).join(", ")} | |`,
      `| long tasks, createRepo → idle compaction rewrote the value (~3 s) | ${w.map((x) => `${x.syncline.longTasksToCompacted.count}/${f(x.syncline.longTasksToCompacted.totalMs, 0)}`).join(", ")} | ${p.map((x) => `${x.syncline.longTasksToCompacted.count}/${f(x.syncline.longTasksToCompacted.totalMs, 0)}`).join(", ")} | |`,
      "",
    );
  }
  if (report.latency.length > 0) {
    const all = (mode) => report.latency.flatMap((x) => x[mode].ms);
    const per = (mode, k) => report.latency.map((x) => f(x[mode][k], 2)).join(" / ");
    const mr = (mode, k) => median(report.latency.map((x) => x[mode][k]));
    lines.push(
      `### A → B through syncline-relay, ${report.latency.length} rounds × ${report.latency[0].count} edits per mode, alternating every ${report.latency[0].gap} ms; A and B in separate browser contexts`,
      `| | worker mode | page mode | ratio (worker ÷ page) |`,
      `| --- | --- | --- | --- |`,
      `| p50, median of rounds (each round) | **${f(mr("worker", "p50"), 2)}** (${per("worker", "p50")}) | **${f(mr("page", "p50"), 2)}** (${per("page", "p50")}) | **${ratio(mr("worker", "p50"), mr("page", "p50"))}** |`,
      `| p99, median of rounds (each round) | **${f(mr("worker", "p99"), 2)}** (${per("worker", "p99")}) | **${f(mr("page", "p99"), 2)}** (${per("page", "p99")}) | **${ratio(mr("worker", "p99"), mr("page", "p99"))}** |`,
      `| p50 / p99 of all samples pooled | ${f(median(all("worker")), 2)} / ${f(pct(all("worker"), 99), 2)} | ${f(median(all("page")), 2)} / ${f(pct(all("page"), 99), 2)} | ${ratio(median(all("worker")), median(all("page")))} / ${ratio(pct(all("worker"), 99), pct(all("page"), 99))} |`,
      `| worker mode, p50 (median of rounds): A change() → the worker's patches for it back in A (tab → worker → tab) | ${f(median(report.latency.map((x) => x.workerLegs?.aRoundTrip.p50)), 2)} | | |`,
      `| worker mode, p50: A change() → the patches arrive at B's tab (port message) / → B's subscriber after that | ${f(median(report.latency.map((x) => x.workerLegs?.bEditToPort.p50)), 2)} / ${f(median(report.latency.map((x) => x.workerLegs?.bPortToSubscriber.p50)), 2)} | | |`,
      `| **hop floor**: a do-nothing SharedWorker's round trip from worker-mode A's page (tab → worker → tab, no engine), p50 / p99 (median of rounds; each round's p50) | ${f(mr("echo", "p50"), 3)} / ${f(mr("echo", "p99"), 3)} (${per("echo", "p50")}) | | |`,
      `| **floor for worker mode**: page-mode p50 + the hop floor's p50 (each round, then the median) | ${f(median(report.latency.map((x) => x.page.p50 + x.echo.p50)), 2)} | ${f(mr("page", "p50"), 2)} | **${ratio(median(report.latency.map((x) => x.page.p50 + x.echo.p50)), mr("page", "p50"))}** |`,
      `| received | ${report.latency.map((x) => x.worker.received).join(" / ")} | ${report.latency.map((x) => x.page.received).join(" / ")} | |`,
      "",
    );
  }
  if (report.memory.length > 0) {
    const m = (mode) => report.memory.filter((x) => x.mode === mode);
    const mib = (kb) => f(kb / 1024);
    const med = (mode, get) => median(m(mode).map(get));
    const raw = (mode, get) => m(mode).map((x) => mib(get(x))).join(" / ");
    const tabs = report.memory[0].tabs;
    lines.push(
      `### Memory, the doc open in ${tabs} tabs of one browser context (PSS of every Chromium process, /proc smaps_rollup, after a GC in every page and worker), ${m("worker").length} rounds per mode`,
      `| MiB | worker mode | page mode | ratio (worker ÷ page) |`,
      `| --- | --- | --- | --- |`,
      `| **Δ PSS, all Chromium processes** (after opening − the same ${tabs} tabs before) | **${mib(med("worker", (x) => x.deltaPss))}** (${raw("worker", (x) => x.deltaPss)}) | **${mib(med("page", (x) => x.deltaPss))}** (${raw("page", (x) => x.deltaPss)}) | **${ratio(med("worker", (x) => x.deltaPss), med("page", (x) => x.deltaPss))}** |`,
      `| PSS, all Chromium processes, with the doc open | ${mib(med("worker", (x) => x.after.pss))} (${raw("worker", (x) => x.after.pss)}) | ${mib(med("page", (x) => x.after.pss))} (${raw("page", (x) => x.after.pss)}) | ${ratio(med("worker", (x) => x.after.pss), med("page", (x) => x.after.pss))} |`,
      `| Δ PSS of renderer processes (renderers before → after) | ${mib(med("worker", (x) => x.deltaRendererPss))} (${m("worker").map((x) => `${x.before.renderers}→${x.after.renderers}`).join(", ")}) | ${mib(med("page", (x) => x.deltaRendererPss))} (${m("page").map((x) => `${x.before.renderers}→${x.after.renderers}`).join(", ")}) | ${ratio(med("worker", (x) => x.deltaRendererPss), med("page", (x) => x.deltaRendererPss))} |`,
      `| Δ RSS, all Chromium processes (double-counts shared pages) | ${mib(med("worker", (x) => x.deltaRss))} | ${mib(med("page", (x) => x.deltaRss))} | ${ratio(med("worker", (x) => x.deltaRss), med("page", (x) => x.deltaRss))} |`,
      `| JS heap used (CDP), pages + worker: not wasm memory | ${f(med("worker", (x) => x.jsHeap.pages) / 2 ** 20)} + ${f(med("worker", (x) => x.jsHeap.worker) / 2 ** 20)} | ${f(med("page", (x) => x.jsHeap.pages) / 2 ** 20)} + 0 | |`,
      "",
    );
  }
  lines.push(`load average (1, 5, 15 min): ${loadLog.map((x) => `${x.label} ${x.load.join(" ")}`).join("; ")}`);
  return lines;
}

function gitHead() {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "crates", "npm/src"], { cwd: repoRoot, encoding: "utf8" });
  return `${r.stdout.trim()}${dirty.stdout.trim() ? " (crates/ or npm/src/ modified)" : ""}`;
}

const c = cpus();
report.machine = { commit: gitHead(), cpu: `${c.length} × ${c[0]?.model ?? "?"}`, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version };
let failure;
try {
  await main();
} catch (error) {
  failure = error;
  report.error = String(error?.stack ?? error);
}
mkdirSync(join(build, "results"), { recursive: true });
const out = join(build, "results", `worker-${report.started.replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ ...report, loadLog }, null, 1));
console.log(`\n## worker mode vs page mode (${what}) — ${report.started}`);
console.log(`commit ${report.machine.commit}; ${report.machine.cpu}, ${report.machine.memGiB} GiB, node ${report.machine.node}, Chromium ${report.chromium}; flags ${JSON.stringify(flags)}\n`);
console.log(summary().join("\n"));
console.log(`\nraw samples: ${out}`);
if (failure) {
  console.error(failure);
  process.exit(1);
}
