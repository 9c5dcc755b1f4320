// Runs one browser benchmark scenario: `npm run bench -- <scenario> [flags]`.
// Scenarios: change-patch, durable, latency, cold-open, aes, size, diverge.
// Needs `npm run build` first. Prints a markdown summary and writes the raw
// samples to .build/results/<scenario>-<time>.json.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { WebSocketServer } from "ws";
import { startCountingProxy } from "./counting-proxy.mjs";
import { freePort, launch, startProcess as startServerProcess, startStatic as serveStatic } from "./serve.mjs";
import { median, parseFlags, pct } from "./stats.mjs";
import { automergeBytes, loadTrace as readTrace } from "./traces.mjs";
import { recordFrames, summarizeFrames } from "./wire-frames.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const build = join(here, ".build");
// --site DIR serves another bundle (compare.mjs runs two builds side by side).
const siteFlag = process.argv.indexOf("--site");
const site = siteFlag > 0 ? resolve(process.argv[siteFlag + 1]) : join(build, "site");
const targetDir = resolve(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target", "bench"));

// ------------------------------------------------------------------ flags
const [scenario, ...rest] = process.argv.slice(2);
const flags = parseFlags(rest);
const num = (name, dflt) => (flags[name] === undefined ? dflt : Number(flags[name]));

// ------------------------------------------------------------------ stats
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const ratio = (ours, theirs) => `${f(ours / theirs, 2)}×`;

// ------------------------------------------------------------------ machine
function gitHead() {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "crates", "npm/src"], { cwd: repoRoot, encoding: "utf8" });
  return `${r.stdout.trim()}${dirty.stdout.trim() ? " (crates/ or npm/src/ had uncommitted changes at run time)" : ""}`;
}

function machine() {
  const c = cpus();
  return {
    commit: gitHead(),
    cpu: `${c.length} × ${c[0]?.model ?? "?"}`,
    memGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    load: loadavg().map((x) => +x.toFixed(2)),
  };
}

// ------------------------------------------------------------------ servers
/** Serves the site (`--site`, default .build/site) and `extra` files by exact path. */
const startStatic = (extra = {}) => serveStatic(site, { extra });
const startProcess = (cmd, args, { env = {}, ready, name }) => startServerProcess(cmd, args, { env, ready, name, cwd: env.CWD ?? here, verbose: Boolean(flags.verbose) });

async function openPage(browser, url, name, context) {
  context ??= await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "info" || flags.verbose) console.error(`[${name}] console.${m.type()}: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => window.benchReady === true);
  const isolated = await page.evaluate(() => crossOriginIsolated);
  if (!isolated) console.error(`[${name}] warning: not cross-origin isolated (performance.now() is coarse)`);
  return { context, page };
}

function requireBuilt() {
  if (!existsSync(join(site, "index.html"))) throw new Error("run `npm run build` in bench/browser first");
}

/** Optional Chromium trace of one phase (--trace FILE): open it in chrome://tracing or Perfetto. */
async function maybeTrace(browser, page, fn) {
  if (flags.profile) return profile(page, fn);
  if (!flags.trace) return fn();
  await browser.startTracing(page, { path: resolve(flags.trace), screenshots: false, categories: ["devtools.timeline", "v8.execute", "disabled-by-default-devtools.timeline", "disabled-by-default-v8.cpu_profiler", "blink", "v8"] });
  try {
    return await fn();
  } finally {
    await browser.stopTracing();
    console.error(`trace written to ${resolve(flags.trace)}`);
  }
}

/**
 * --profile: V8's sampling CPU profiler over the phase (through CDP); prints
 * the functions with the most self time (wasm functions show with their
 * names when the module keeps its name section) and writes the .cpuprofile.
 */
async function profile(page, fn) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  let result;
  try {
    result = await fn();
  } finally {
    const { profile: prof } = await cdp.send("Profiler.stop");
    const file = resolve(flags.profile === "true" ? join(build, "results", `${scenario}.cpuprofile`) : flags.profile);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(prof));
    const self = new Map();
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const dt = new Map();
    prof.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
    let total = 0;
    for (const [id, us] of dt) {
      const n = byId.get(id);
      const key = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop()}`;
      self.set(key, (self.get(key) ?? 0) + us);
      total += us;
    }
    console.error(`CPU profile (${f(total / 1000, 0)} ms sampled) written to ${file}; top self time:`);
    for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(flags.top ?? 25))) {
      console.error(`  ${f((100 * us) / total, 1).padStart(5)}%  ${f(us / 1000, 0).padStart(7)} ms  ${k}`);
    }
  }
  return result;
}

// ------------------------------------------------------------------ scenarios
async function changePatch() {
  requireBuilt();
  const web = await startStatic();
  const browser = await launch();
  try {
    const { page } = await openPage(browser, web.url, "s4");
    const args = { size: num("size", 10_000), changes: num("changes", 1000), warmup: num("warmup", 50), peerChanges: num("peer-changes", 0) };
    const r = await maybeTrace(browser, page, () => page.evaluate((a) => window.bench.changePatch(a), args));
    if (!r.same) throw new Error(`Syncline and Automerge ended with different documents: ${JSON.stringify(r.firstDiff)}`);
    const s50 = median(r.syncline), a50 = median(r.automerge), s99 = pct(r.syncline, 99), a99 = pct(r.automerge, 99);
    const summary = [
      `change() → patch on a ${args.size}-item list, ${args.changes} changes (+${args.warmup} warm-up), interleaved; same final doc: ${r.same}`,
      `| | Syncline | Automerge 3.5 | ratio |`,
      `| --- | --- | --- | --- |`,
      `| p50 | ${f(s50)} ms | ${f(a50)} ms | ${ratio(s50, a50)} |`,
      `| p99 | ${f(s99)} ms | ${f(a99)} ms | ${ratio(s99, a99)} |`,
      `| mean | ${f(r.syncline.reduce((a, b) => a + b, 0) / r.syncline.length)} ms | ${f(r.automerge.reduce((a, b) => a + b, 0) / r.automerge.length)} ms | |`,
    ];
    if (r.automergeMore.length > 0) {
      summary.push(`| Automerge alone, ${r.automergeMore.length} more changes after: p50 / p99 | | ${f(median(r.automergeMore))} / ${f(pct(r.automergeMore, 99))} ms | |`);
    }
    return { args, raw: r, summary };
  } finally {
    await browser.close();
    await web.close();
  }
}

async function durable() {
  requireBuilt();
  const web = await startStatic();
  const browser = await launch();
  try {
    const { page } = await openPage(browser, web.url, "s1");
    const args = { changes: num("changes", 2000), rounds: num("rounds", 5), op: flags.op ?? "push" };
    const r = await maybeTrace(browser, page, () => page.evaluate((a) => window.bench.durable(a), args));
    const rate = (xs) => xs.map((x) => (args.changes / x.total) * 1000);
    const sRate = median(rate(r.syncline)), aRate = median(rate(r.automerge));
    const part = (xs, k) => f(median(xs.map((x) => x[k])), 1);
    const summary = [
      `Durable changes/s, op "${args.op}", ${args.changes} changes then flush, ${args.rounds} rounds alternating`,
      `| | Syncline | automerge-repo 2.5.6 + IndexedDB | throughput ratio (ours ÷ theirs; > 1 = Syncline faster) |`,
      `| --- | --- | --- | --- |`,
      `| changes/s (median of rounds) | ${f(sRate, 0)} | ${f(aRate, 0)} | ${f(sRate / aRate, 2)}× |`,
      `| time in change() calls | ${part(r.syncline, "changes")} ms | ${part(r.automerge, "changes")} ms | |`,
      `| time in flush() | ${part(r.syncline, "flush")} ms | ${part(r.automerge, "flush")} ms | |`,
      `| total | ${part(r.syncline, "total")} ms | ${part(r.automerge, "total")} ms | |`,
    ];
    return { args, raw: r, summary };
  } finally {
    await browser.close();
    await web.close();
  }
}

async function latency() {
  requireBuilt();
  const relayBin = join(targetDir, "release", "syncline-relay");
  if (!existsSync(relayBin)) throw new Error(`missing ${relayBin}: run npm run build`);
  const dir = mkdtempSync(join(tmpdir(), "syncline-bench-"));
  const relay = await startProcess(relayBin, ["--listen", "127.0.0.1:0", "--data", join(dir, "relay")], {
    name: "relay", ready: /syncline-relay listening on 127\.0\.0\.1:(\d+)/, env: { RUST_LOG: "warn" },
  });
  const amPort = await freePort();
  mkdirSync(join(dir, "am"));
  const amServer = await startProcess(process.execPath, [join(here, "am-sync-server.mjs")], {
    name: "am-sync-server", ready: /Listening on port/, env: { PORT: String(amPort), DATA_DIR: join(dir, "am"), AM_SERVER: flags["am-server"] ?? "published", CWD: dir },
  });
  const web = await startStatic();
  const browser = await launch();
  try {
    const relayUrl = `ws://127.0.0.1:${relay.match[1]}`, amRelay = `ws://127.0.0.1:${amPort}`;
    const a = await openPage(browser, web.url, "A");
    const b = await openPage(browser, web.url, "B");
    const urls = await a.page.evaluate((x) => window.bench.latencySetup(x), { role: "a", relay: relayUrl, amRelay });
    await b.page.evaluate((x) => window.bench.latencySetup(x), { role: "b", relay: relayUrl, amRelay, ...urls });
    const args = { count: num("count", 200), gapMs: num("gap", 150), amServer: flags["am-server"] ?? "published", from: 1000 };
    // Warm-up: a few edits not counted (connections settle, JIT).
    await a.page.evaluate(() => window.bench.latencyDrive({ count: 10, gapMs: 100 }));
    await new Promise((d) => setTimeout(d, 1000));
    const before = await b.page.evaluate(() => window.bench.latencyResults());
    const skipS = before.syncline.length, skipA = before.automerge.length;
    await maybeTrace(browser, flags["profile-page"] === "b" ? b.page : a.page, () => a.page.evaluate((x) => window.bench.latencyDrive(x), args));
    await new Promise((d) => setTimeout(d, 2000));
    const r = await b.page.evaluate(() => window.bench.latencyResults());
    const flushMs = (await a.page.evaluate(() => window.bench.latencyResults())).flushMs.slice(10);
    // Where Syncline's time goes: the socket sends of A and receives of B,
    // timestamped in the pages on the shared clock, matched to each edit.
    const sends = (await a.page.evaluate(() => window.bench.latencySocketLog())).filter((e) => e.dir === "send");
    const recvs = (await b.page.evaluate(() => window.bench.latencySocketLog())).filter((e) => e.dir === "recv");
    const legs = { send: [], wire: [], apply: [], bytes: [] };
    for (const x of r.syncline.slice(skipS)) {
      const sent = sends.find((e) => e.at >= x.t0);
      const got = sent && recvs.find((e) => e.at >= sent.at);
      if (!got || got.at > x.t1) continue;
      legs.send.push(sent.at - x.t0);
      legs.wire.push(got.at - sent.at);
      legs.apply.push(x.t1 - got.at);
      legs.bytes.push(got.bytes);
    }
    const floor = await wireFloor(a.page, b.page, { count: args.count, bytes: Math.round(median(legs.bytes)) });
    // The measured edits carry seq ≥ 1000: keep only the samples after the warm-up ones.
    const s = r.syncline.slice(skipS).map((x) => x.ms), am = r.automerge.slice(skipA).map((x) => x.ms);
    const summary = [
      `Edit in A → visible in B, ${args.count} edits per system alternating every ${args.gapMs} ms; received: Syncline ${s.length}, automerge-repo ${am.length}; am server: ${args.amServer}`,
      `| | Syncline (syncline-relay) | automerge-repo 2.5.6 (sync server) | ratio (ours ÷ theirs) |`,
      `| --- | --- | --- | --- |`,
      `| p50 | ${f(median(s))} ms | ${f(median(am))} ms | ${ratio(median(s), median(am))} |`,
      `| p99 | ${f(pct(s, 99))} ms | ${f(pct(am, 99))} ms | ${ratio(pct(s, 99), pct(am, 99))} |`,
      `| max | ${f(Math.max(...s))} ms | ${f(Math.max(...am))} ms | |`,
      `| in A: change → local IndexedDB commit (flush resolved), p50 / p99 | ${f(median(flushMs))} / ${f(pct(flushMs, 99))} ms | | |`,
      `| Syncline's legs, p50 / p99: A change → socket send; → B socket receive (relay included); → B subscriber | ${f(median(legs.send))} / ${f(pct(legs.send, 99))}; ${f(median(legs.wire))} / ${f(pct(legs.wire, 99))}; ${f(median(legs.apply))} / ${f(pct(legs.apply, 99))} ms | | |`,
      `| the browser's floor, p50 / p99: A socket send → B socket receive through a bare forwarder (Node \`ws\`, ${floor.bytes} B frames, ${floor.ms.length} frames) | ${f(median(floor.ms))} / ${f(pct(floor.ms, 99))} ms | | |`,
    ];
    return { args, raw: { syncline: s, automerge: am, flushMs, legs, floor: floor.ms }, summary };
  } finally {
    await browser.close();
    await web.close();
    await relay.stop();
    await amServer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What any relay costs at least here: page A sends `bytes`-byte frames on a
 * plain WebSocket to a forwarder that does nothing but pass them to page B's
 * socket (Node's `ws`, TCP_NODELAY), one every 50 ms; B timestamps each on
 * the shared clock. Chromium's network service, twice, and the loopback.
 */
async function wireFloor(pageA, pageB, { count, bytes }) {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((ok) => server.once("listening", ok));
  const peers = new Set();
  server.on("connection", (ws, req) => {
    req.socket.setNoDelay(true);
    peers.add(ws);
    ws.on("message", (data) => {
      for (const other of peers) if (other !== ws) other.send(data, { binary: true });
    });
    ws.on("close", () => peers.delete(ws));
  });
  const url = `ws://127.0.0.1:${server.address().port}`;
  try {
    await pageB.evaluate((url) => window.bench.floorReceive(url), url);
    await pageA.evaluate((x) => window.bench.floorSend(x), { url, count: count + 10, bytes, gapMs: 50 });
    await pageB.evaluate((n) => window.bench.floorWait(n), count + 10);
    const ms = (await pageB.evaluate(() => window.bench.floorResults())).slice(10);
    return { ms, bytes };
  } finally {
    for (const ws of peers) ws.terminate();
    await new Promise((ok) => server.close(ok));
  }
}

/** The trace's edits as [pos, del, insert], one per transaction's patch. */
const loadTrace = () => readTrace(flags.traces ?? process.env.SYNCLINE_TRACES ?? join(repoRoot, "bench", "traces"));


async function coldOpen() {
  requireBuilt();
  const trace = loadTrace();
  const batch = num("batch", 100);
  const bytesFile = await automergeBytes(build, trace, batch);
  const web = await startStatic({ "/trace.automerge": bytesFile });
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const { page } = await openPage(browser, web.url, "s2", context);
    const name = `s2-${Date.now()}`;
    const keyHex = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
    const edits = trace.txns.map((p) => {
      if (p.length !== 1) throw new Error("expected one patch per transaction");
      return p[0];
    });
    if (trace.startContent !== "") throw new Error("expected an empty start");
    const limit = num("edits", edits.length);
    console.error(`writing ${limit} edits into Syncline (${batch} per change)...`);
    const setup = await page.evaluate((x) => window.bench.coldOpenSetup(x), { name, keyHex, edits: edits.slice(0, limit), batch });
    console.error(`written in ${f(setup.ms / 1000, 1)} s; text length ${setup.length}`);
    const expectLength = setup.length;
    if (limit === edits.length && expectLength !== trace.endContent.length) throw new Error("Syncline replay did not reach endContent");
    const reps = num("reps", 5);
    const samples = [];
    for (let i = 0; i < reps; i++) {
      await page.reload();
      await page.waitForFunction(() => window.benchReady === true);
      const order = i % 2 === 0 ? "syncline-first" : "automerge-first";
      const r = await (i === 0 ? maybeTrace : (_b, _p, fn) => fn())(browser, page, () =>
        page.evaluate((x) => window.bench.coldOpenMeasure(x), { name, keyHex, url: setup.url, bytesUrl: "/trace.automerge", expectLength, order }),
      );
      if (!r.syncline.ok || !r.automerge.ok) throw new Error(`wrong text length after open: ${JSON.stringify(r)}`);
      for (const side of [r.syncline, r.automerge]) side.editable = side.total + side.firstChange;
      samples.push(r);
      console.error(`rep ${i} (${order}): syncline ${f(r.syncline.total)} ms, automerge ${f(r.automerge.total)} ms`);
    }
    const m = (k1, k2) => median(samples.map((s) => s[k1][k2]));
    const summary = [
      `Cold open of the automerge-paper doc (${limit} edits, ${batch} per change on both sides), ${reps} page reloads, order alternating; Automerge bytes ${samples[0].automerge.bytes} B`,
      `| | Syncline (encrypted IndexedDB) | Automerge.load (bytes in memory) | ratio |`,
      `| --- | --- | --- | --- |`,
      `| **time to value**: open until \`doc.value\` is there (Automerge: \`load\`) | ${f(m("syncline", "total"))} ms | ${f(m("automerge", "total"))} ms | ${ratio(m("syncline", "total"), m("automerge", "total"))} |`,
      `| of which createRepo / repo.open | ${f(m("syncline", "createRepo"))} / ${f(m("syncline", "open"))} ms | | |`,
      `| first change after open (Syncline: loads the CRDT if not yet loaded) | ${f(m("syncline", "firstChange"))} ms | ${f(m("automerge", "firstChange"))} ms | |`,
      `| **time to editable**: open + first change (Automerge: \`load\` + \`change\`) | ${f(m("syncline", "editable"))} ms | ${f(m("automerge", "editable"))} ms | ${ratio(m("syncline", "editable"), m("automerge", "editable"))} |`,
      `| wasm instantiate (not in the above) | ${f(median(samples.map((s) => s.wasm.syncline)))} ms | ${f(median(samples.map((s) => s.wasm.automerge)))} ms | |`,
    ];
    return { args: { limit, reps, batch }, raw: { setup: { ms: setup.ms }, samples }, summary };
  } finally {
    await browser.close();
    await web.close();
  }
}

async function aesScenario() {
  requireBuilt();
  const web = await startStatic();
  const browser = await launch();
  try {
    const { page } = await openPage(browser, web.url, "s3");
    const sizes = [64, 1024, 16 * 1024, 64 * 1024];
    const raw = {};
    const summary = [
      `AES-256-GCM seal + open per record (µs, median of ${num("reps", 5)} runs); Rust = syncline-core seal/open in wasm`,
      `| record | Rust wasm, one JS call per record | Rust wasm, loop inside wasm | same loop, opt-level 3 | WebCrypto, awaited one by one | WebCrypto, all in flight | Rust (per call) ÷ WebCrypto (one by one) |`,
      `| --- | --- | --- | --- | --- | --- | --- |`,
    ];
    for (const size of sizes) {
      const n = Math.max(50, Math.round((num("bytes", 8 * 2 ** 20)) / size));
      const r = await page.evaluate((x) => window.bench.aesBench(x), { size, n: Math.min(n, 20000), reps: num("reps", 5) });
      if (!r.interop) throw new Error("WebCrypto could not open what Rust sealed");
      raw[size] = r;
      const cell = (xs) => {
        const s = median(xs.map((x) => x.seal * 1000)), o = median(xs.map((x) => x.open * 1000));
        return { s, o, txt: `${f(s, 1)} + ${f(o, 1)} = ${f(s + o, 1)}` };
      };
      const rc = cell(r.rustCall), rl = cell(r.rustLoop), rs = cell(r.rustLoopSpeed), ws = cell(r.webcryptoSeq), wp = cell(r.webcryptoPar);
      const label = size >= 1024 ? `${size / 1024} KB` : `${size} B`;
      const mbs = (c) => f((size * 2) / ((c.s + c.o) / 1e6) / 1e6, 0);
      summary.push(`| ${label} | ${rc.txt} (${mbs(rc)} MB/s) | ${rl.txt} | ${rs.txt} (${mbs(rs)} MB/s) | ${ws.txt} (${mbs(ws)} MB/s) | ${wp.txt} | ${ratio(rc.s + rc.o, ws.s + ws.o)} |`);
    }
    return { args: {}, raw, summary };
  } finally {
    await browser.close();
    await web.close();
  }
}

function size() {
  const ours = join(build, "syncline-wasm", "syncline_wasm_bg.wasm");
  const theirs = join(here, "node_modules", "@automerge", "automerge", "dist", "mjs", "wasm_bindgen_output", "web", "automerge_wasm_bg.wasm");
  const theirsAlt = join(here, "node_modules", "@automerge", "automerge", "dist", "automerge.wasm");
  const rows = [];
  const measure = (label, file) => {
    if (!existsSync(file)) return;
    const b = readFileSync(file);
    rows.push({ label, raw: b.length, gzip: gzipSync(b, { level: 9 }).length });
  };
  measure("Syncline: syncline_wasm_bg.wasm (wasm-release, wasm-bindgen, no wasm-opt)", ours);
  if (flags["wasm-opt"]) {
    // What `wasm-opt -Oz` (npm binaryen 132; not Debian's, which breaks wasm-bindgen output) would save.
    const opt = join(build, "syncline-wasm-opt.wasm");
    const r = spawnSync(join(here, "node_modules", ".bin", "wasm-opt"), ["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue", ours, "-o", opt], { stdio: "inherit" });
    if (r.status !== 0) throw new Error("wasm-opt failed");
    measure("Syncline: the same after wasm-opt -Oz (binaryen 132)", opt);
  }
  for (const extraFile of (flags.also ?? "").split(",").filter(Boolean)) measure(extraFile, resolve(extraFile));
  measure("@automerge/automerge 3.5.0: dist/automerge.wasm", theirsAlt);
  if (existsSync(theirs)) measure("@automerge/automerge 3.5.0: dist/mjs/wasm_bindgen_output/web/automerge_wasm_bg.wasm", theirs);
  const summary = [`| module | raw | gzip -9 |`, `| --- | --- | --- |`, ...rows.map((r) => `| ${r.label} | ${r.raw.toLocaleString("en")} B | ${r.gzip.toLocaleString("en")} B |`)];
  return { args: {}, raw: rows, summary };
}


// ------------------------------------------------------------------ diverge
/** The sum of the sizes of the files under `dir` (what a server keeps on disk). */
function dirBytes(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

/** User + system CPU time of a process so far, in ms (Linux /proc). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
}

/**
 * Offline divergence: two replicas (two browser contexts, one page each) open
 * one document `{ text }` in each system, both go offline, each makes `edits`
 * changes (one keystroke of the automerge-paper trace each), both come back.
 * Measured per system: reconnect → both replicas hold the merged text (heads
 * checked equal), and the bytes through a counting TCP proxy in front of each
 * server, per page and direction, until the connections go quiet.
 *
 * The text: region A (the trace's text after `start` edits), a separator,
 * region B (its text after `start + edits`). A replays the trace's next
 * `edits` edits into region A, B the `edits` after those into region B, so
 * both sides make real consecutive keystrokes against their own state, and
 * the merged text is known: trace(start + edits) ‖ sep ‖ trace(start + 2·edits).
 */
async function diverge() {
  requireBuilt();
  const relayBin = resolve(flags.relay ?? join(targetDir, "release", "syncline-relay"));
  if (!existsSync(relayBin)) throw new Error(`missing ${relayBin}: run npm run build`);
  const trace = loadTrace();
  const n = num("edits", 10_000), start = num("start", 10_000), rounds = num("rounds", 3), settleMs = num("settle", 3000);
  const amServer = flags["am-server"] ?? "published";
  const pace = flags.pace ?? "task";
  const edits = trace.txns.map((p) => {
    if (p.length !== 1) throw new Error("expected one patch per transaction");
    return p[0];
  });
  if (trace.startContent !== "" || start + 2 * n > edits.length) throw new Error("the trace is too short for --start and --edits");
  const textAfter = (k) => {
    let t = "";
    for (const [pos, del, ins] of edits.slice(0, k)) t = t.slice(0, pos) + ins + t.slice(pos + del);
    return t;
  };
  const sep = "\n\n";
  const [t0, t1, t2] = [textAfter(start), textAfter(start + n), textAfter(start + 2 * n)];
  const base = t0 + sep + t1;
  const editsA = edits.slice(start, start + n), editsB = edits.slice(start + n, start + 2 * n);
  const localA = t1 + sep + t1, localB = t0 + sep + t2, merged = t1 + sep + t2;
  const offsetB = t0.length + sep.length;
  const kinds = (xs) => ({ inserts: xs.filter((e) => e[2].length > 0 && e[1] === 0).length, deletes: xs.filter((e) => e[1] > 0 && e[2].length === 0).length, replaces: xs.filter((e) => e[1] > 0 && e[2].length > 0).length });
  console.error(`text: base ${base.length} chars, merged ${merged.length}; A edits ${JSON.stringify(kinds(editsA))}, B edits ${JSON.stringify(kinds(editsB))}`);
  const systems = ["syncline", "automerge"];
  const samples = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    const dir = mkdtempSync(join(tmpdir(), "syncline-diverge-"));
    const relayDir = join(dir, "relay"), amDir = join(dir, "am");
    mkdirSync(amDir);
    const relay = await startProcess(relayBin, ["--listen", "127.0.0.1:0", "--data", relayDir], {
      name: "relay", ready: /syncline-relay listening on 127\.0\.0\.1:(\d+)/, env: { RUST_LOG: flags["relay-log"] ?? "warn" },
    });
    const amPort = await freePort();
    const am = await startProcess(process.execPath, [join(here, "am-sync-server.mjs")], {
      name: "am-sync-server", ready: /Listening on port/, env: { PORT: String(amPort), DATA_DIR: amDir, AM_SERVER: amServer, CWD: dir },
    });
    const relayTarget = { host: "127.0.0.1", port: Number(relay.match[1]) }, amTarget = { host: "127.0.0.1", port: amPort };
    // One proxy per page and system, so the bytes are known per page.
    const proxy = {
      syncline: { a: await startCountingProxy(relayTarget), b: await startCountingProxy(relayTarget) },
      automerge: { a: await startCountingProxy(amTarget), b: await startCountingProxy(amTarget) },
    };
    const ws = (p) => `ws://127.0.0.1:${p.port}`;
    const server = { syncline: { pid: relay.pid, dir: relayDir }, automerge: { pid: am.pid, dir: amDir } };
    const web = await startStatic();
    const browser = await launch();
    const sample = { round, order, loadStart: loadavg().map((x) => +x.toFixed(2)) };
    try {
      const A = (await openPage(browser, web.url, "A")).page;
      const B = (await openPage(browser, web.url, "B")).page;
      const urls = await A.evaluate((x) => window.bench.divergeSetup(x), { role: "a", relay: ws(proxy.syncline.a), amRelay: ws(proxy.automerge.a), base });
      await B.evaluate((x) => window.bench.divergeSetup(x), { role: "b", relay: ws(proxy.syncline.b), amRelay: ws(proxy.automerge.b), base, ...urls });
      await Promise.all([A, B].map((p) => p.evaluate((text) => window.bench.divergeWaitSynced({ text }), base)));
      await Promise.all([A, B].map((p) => p.evaluate(() => window.bench.divergeOffline())));
      sample.offline = {};
      for (const system of order) {
        const a = await A.evaluate((x) => window.bench.divergeEdit(x), { system, edits: editsA, offset: 0, text: localA, pace });
        const b = await B.evaluate((x) => window.bench.divergeEdit(x), { system, edits: editsB, offset: offsetB, text: localB, pace });
        if (!a.ok || !b.ok) throw new Error(`${system}: the offline edits did not give the expected local text (${a.length}, ${b.length})`);
        sample.offline[system] = { a, b };
        console.error(`round ${round} ${system}: offline ${n} changes A ${f(a.changesMs, 0)} ms + flush ${f(a.flushMs, 0)} ms, B ${f(b.changesMs, 0)} ms + flush ${f(b.flushMs, 0)} ms`);
      }
      // Background work after the edits (idle compaction, storage saves) is
      // left to finish, as for a user who reconnects some time later.
      await new Promise((d) => setTimeout(d, settleMs));
      for (const system of order) {
        const p = proxy[system];
        const before = { a: p.a.counts(), b: p.b.counts(), cpu: cpuMs(server[system].pid), stored: dirBytes(server[system].dir) };
        const phase = async () => {
          const [ta, tb] = await Promise.all([A, B].map((pg) => pg.evaluate((x) => window.bench.divergeOnline(x), { system, text: merged })));
          const tOnline = Math.min(ta, tb);
          const deadline = performance.now() + num("timeout", 3600) * 1000;
          let sa, sb, convergedAt, bytesAtConverged, ackedAt;
          for (;;) {
            [sa, sb] = await Promise.all([A, B].map((pg) => pg.evaluate((x) => window.bench.divergeState(x), { system })));
            if (convergedAt === undefined && sa.reachedAt !== null && sb.reachedAt !== null) {
              convergedAt = Math.max(sa.reachedAt, sb.reachedAt);
              bytesAtConverged = { a: p.a.counts(), b: p.b.counts() };
            }
            // Syncline: also until the relay acknowledged every change of both sides.
            if (system === "syncline" && ackedAt === undefined && sa.status.pending === 0 && sb.status.pending === 0 && sa.status.unsaved === 0 && sb.status.unsaved === 0) ackedAt = Date.now();
            const quiet = performance.now() - Math.max(p.a.counts().lastAt, p.b.counts().lastAt) > 1000;
            if (convergedAt !== undefined && (system !== "syncline" || ackedAt !== undefined) && quiet) break;
            if (performance.now() > deadline) throw new Error(`${system} did not converge: ${JSON.stringify({ a: { ...sa, heads: sa.heads.length }, b: { ...sb, heads: sb.heads.length } })}`);
            await new Promise((d) => setTimeout(d, 25));
          }
          return { tOnline, sa, sb, convergedAt, bytesAtConverged, ackedAt };
        };
        // --frames: what the messages carry (DevTools protocol; a diagnosis,
        // it slows the pages, so not for the timed runs).
        const portOf = (url) => Number(new URL(url).port);
        const classify = (url) => (Object.values(proxy.syncline).some((x) => x.port === portOf(url)) ? "syncline" : Object.values(proxy.automerge).some((x) => x.port === portOf(url)) ? "automerge" : undefined);
        const stops = flags.frames ? await Promise.all([A, B].map((pg) => recordFrames(pg, classify))) : [];
        const r = await (flags["profile-system"] === system ? (fn) => maybeTrace(browser, flags["profile-page"] === "a" ? A : B, fn) : (fn) => fn())(phase);
        const { sa, sb } = r;
        const frames = flags.frames ? summarizeFrames(system, (await Promise.all(stops.map((stop) => stop()))).flat()) : undefined;
        // Convergence, checked: both replicas hold the merged text and the same heads.
        if (!sa.ok || !sb.ok) throw new Error(`${system}: a replica does not hold the merged text (${sa.length}, ${sb.length}, want ${merged.length})`);
        if (JSON.stringify(sa.heads) !== JSON.stringify(sb.heads)) throw new Error(`${system}: heads differ: ${sa.heads} vs ${sb.heads}`);
        // The server may save after the wire went quiet (automerge-repo
        // saves in the background): wait until its directory stops changing.
        let stored = dirBytes(server[system].dir);
        for (let stableSince = performance.now(), until = performance.now() + 30_000; performance.now() - stableSince < 2000 && performance.now() < until; ) {
          await new Promise((d) => setTimeout(d, 250));
          const now = dirBytes(server[system].dir);
          if (now !== stored) [stored, stableSince] = [now, performance.now()];
        }
        const after = { a: p.a.counts(), b: p.b.counts(), cpu: cpuMs(server[system].pid), stored };
        const diff = (x, y) => ({ up: x.up - y.up, down: x.down - y.down, connections: x.connections - y.connections });
        const bytes = { a: diff(after.a, before.a), b: diff(after.b, before.b) };
        const atConverged = { a: diff(r.bytesAtConverged.a, before.a), b: diff(r.bytesAtConverged.b, before.b) };
        sample[system] = {
          convergeMs: r.convergedAt - r.tOnline,
          perPageMs: { a: sa.reachedAt - r.tOnline, b: sb.reachedAt - r.tOnline },
          ackedMs: r.ackedAt !== undefined ? r.ackedAt - r.tOnline : null,
          bytes,
          up: bytes.a.up + bytes.b.up,
          down: bytes.a.down + bytes.b.down,
          atConverged: { up: atConverged.a.up + atConverged.b.up, down: atConverged.a.down + atConverged.b.down },
          serverCpuMs: after.cpu - before.cpu,
          storedBefore: before.stored,
          storedAfter: after.stored,
          heads: sa.heads.length,
          notifications: { a: sa.notifications, b: sb.notifications },
          // Syncline: the connection errors each page saw (ms after reconnect), e.g. why a socket dropped.
          connectionErrors: system === "syncline" ? { a: sa.errors.map((e) => ({ ...e, at: e.at - r.tOnline })), b: sb.errors.map((e) => ({ ...e, at: e.at - r.tOnline })) } : undefined,
          frames,
        };
        const x = sample[system];
        console.error(`round ${round} ${system}: converged in ${f(x.convergeMs, 0)} ms (A ${f(x.perPageMs.a, 0)}, B ${f(x.perPageMs.b, 0)}${x.ackedMs !== null ? `; all acked ${f(x.ackedMs, 0)}` : ""}); up ${x.up} B, down ${x.down} B; server CPU ${f(x.serverCpuMs, 0)} ms; stored ${x.storedBefore} → ${x.storedAfter} B; heads ${x.heads}`);
      }
      await Promise.all([A, B].map((pg) => pg.evaluate(() => window.bench.divergeClose())));
      sample.relayCpuTotalMs = cpuMs(relay.pid);
    } finally {
      sample.loadEnd = loadavg().map((x) => +x.toFixed(2));
      await browser.close();
      await web.close();
      for (const s of systems) for (const side of ["a", "b"]) await proxy[s][side].close();
      await relay.stop();
      await am.stop();
      // At rest: the servers stopped (SQLite has checkpointed its WAL into
      // the database file). The relay's rows, read back with sqlite3 when
      // it is installed: one per delta (deduplicated by id) and snapshots.
      if (sample.syncline && sample.automerge) {
        sample.syncline.storedAtRest = dirBytes(relayDir);
        sample.automerge.storedAtRest = dirBytes(amDir);
        const q = spawnSync("sqlite3", ["-readonly", join(relayDir, "relay.sqlite3"), "SELECT count(*), sum(length(bytes)) FROM deltas; SELECT count(*), coalesce(sum(length(bytes)), 0) FROM snapshots;"], { encoding: "utf8" });
        if (q.status === 0) {
          const [[deltas, deltaBytes], [snapshots, snapshotBytes]] = q.stdout.trim().split("\n").map((l) => l.split("|").map(Number));
          sample.syncline.relayRows = { deltas, deltaBytes, snapshots, snapshotBytes };
        }
      }
      if (flags.keep) console.error(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
    samples.push(sample);
  }
  const med = (system, get) => median(samples.map((s) => get(s[system])));
  const kb = (x) => `${(x / 1024).toFixed(1)} KiB`;
  const row = (label, get, fmt) => {
    const s = med("syncline", get), a = med("automerge", get);
    const per = (system) => samples.map((x) => fmt(get(x[system]))).join(", ");
    return `| ${label} | **${fmt(s)}** (${per("syncline")}) | **${fmt(a)}** (${per("automerge")}) | ${ratio(s, a)} |`;
  };
  const ms = (x) => `${f(x, 0)} ms`;
  const summary = [
    `Offline divergence: ${n} changes on each side (automerge-paper keystrokes ${start}–${start + n - 1} on A, ${start + n}–${start + 2 * n - 1} on B, one splice per change, ${pace === "task" ? "each in a task of its own" : "all in one synchronous loop"}), then reconnect; base text ${base.length} chars, merged ${merged.length}; ${rounds} rounds, systems in alternating order; am server: ${amServer}. Medians, then each round in brackets.`,
    `| | Syncline (syncline-relay) | automerge-repo 2.5.6 (sync server) | ratio (ours ÷ theirs) |`,
    `| --- | --- | --- | --- |`,
    row("reconnect → both replicas hold the merged text (heads checked equal)", (x) => x.convergeMs, ms),
    row("bytes up (both pages → server), until quiet", (x) => x.up, kb),
    row("bytes down (server → both pages), until quiet", (x) => x.down, kb),
    row("bytes both ways, until quiet", (x) => x.up + x.down, kb),
    row("bytes both ways when convergence was seen", (x) => x.atConverged.up + x.atConverged.down, kb),
    row("server CPU from reconnect until its directory stopped changing", (x) => x.serverCpuMs, ms),
    row("server's data directory once it stopped changing, server running (base doc included)", (x) => x.storedAfter, kb),
    row("the same after the server stopped (SQLite's WAL checkpointed)", (x) => x.storedAtRest, kb),
  ];
  const offRow = (label, side, k) => {
    const s = median(samples.map((x) => x.offline.syncline[side][k])), a = median(samples.map((x) => x.offline.automerge[side][k]));
    return `| ${label} | ${ms(s)} | ${ms(a)} | ${ratio(s, a)} |`;
  };
  summary.push(
    offRow(`offline, page A: ${n} change() calls`, "a", "changesMs"),
    offRow(`offline, page A: then flush()`, "a", "flushMs"),
    offRow(`offline, page B: ${n} change() calls`, "b", "changesMs"),
    offRow(`offline, page B: then flush()`, "b", "flushMs"),
    `| Syncline: reconnect → every change acknowledged by the relay (median) | ${ms(median(samples.map((x) => x.syncline.ackedMs)))} | | |`,
    `| relay rows after the round, each: deltas (bytes they still hold: a snapshot empties those it covers); snapshots (bytes) | ${samples.map((x) => (x.syncline.relayRows ? `${x.syncline.relayRows.deltas} (${kb(x.syncline.relayRows.deltaBytes)}); ${x.syncline.relayRows.snapshots} (${kb(x.syncline.relayRows.snapshotBytes)})` : "n/a")).join(" · ")} | | |`,
    `| per page, median bytes up / down: A, B | A ${kb(med("syncline", (x) => x.bytes.a.up))} / ${kb(med("syncline", (x) => x.bytes.a.down))}, B ${kb(med("syncline", (x) => x.bytes.b.up))} / ${kb(med("syncline", (x) => x.bytes.b.down))} | A ${kb(med("automerge", (x) => x.bytes.a.up))} / ${kb(med("automerge", (x) => x.bytes.a.down))}, B ${kb(med("automerge", (x) => x.bytes.b.up))} / ${kb(med("automerge", (x) => x.bytes.b.down))} | |`,
    ...(flags.frames
      ? systems.flatMap((system) => [
          ``,
          `${system}: WebSocket messages of both pages, round 0 (payload bytes, without frame headers)`,
          `| direction | kind | messages | bytes | deltas / changes inside | their bytes |`,
          `| --- | --- | --- | --- | --- | --- |`,
          ...samples[0][system].frames.map((x) => `| ${x.dir} | ${x.kind} | ${x.frames} | ${x.bytes} | ${x.deltas} | ${x.deltaBytes} |`),
        ])
      : []),
    `load average (1 min) at each round's start / end: ${samples.map((x) => `${x.loadStart[0]} / ${x.loadEnd[0]}`).join("; ")}`,
  );
  return { args: { edits: n, start, rounds, settleMs, amServer, pace }, raw: samples, summary };
}

const scenarios = { "change-patch": changePatch, durable, latency, "cold-open": coldOpen, aes: aesScenario, size, diverge };
if (!scenarios[scenario]) {
  console.error(`usage: npm run bench -- <${Object.keys(scenarios).join("|")}> [--flag value ...]`);
  process.exit(2);
}
const before = machine();
const started = new Date().toISOString();
const result = await scenarios[scenario]();
const after = machine();
const report = { scenario, started, machine: before, loadAfter: after.load, flags, ...result };
mkdirSync(join(build, "results"), { recursive: true });
const out = join(build, "results", `${scenario}-${started.replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify(report, null, 1));
console.log(`\n## ${scenario} — ${started}`);
console.log(`commit ${before.commit}; machine: ${before.cpu}, ${before.memGiB} GiB, node ${before.node}; load avg before ${before.load.join(" ")}, after ${after.load.join(" ")}`);
console.log(`flags: ${JSON.stringify(flags)}\n`);
console.log(result.summary.join("\n"));
console.log(`\nraw samples: ${out}`);
