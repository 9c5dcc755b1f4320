// Runs one browser benchmark scenario: `npm run bench -- <scenario> [flags]`.
// Scenarios: change-patch, durable, latency, cold-open, aes, size.
// Needs `npm run build` first. Prints a markdown summary and writes the raw
// samples to .build/results/<scenario>-<time>.json.
import { spawn, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { WebSocketServer } from "ws";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const build = join(here, ".build");
// --site DIR serves another bundle (compare.mjs runs two builds side by side).
const siteFlag = process.argv.indexOf("--site");
const site = siteFlag > 0 ? resolve(process.argv[siteFlag + 1]) : join(build, "site");
const targetDir = resolve(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target", "bench"));

// ------------------------------------------------------------------ flags
const [scenario, ...rest] = process.argv.slice(2);
const flags = {};
for (let i = 0; i < rest.length; i++) {
  const m = /^--([^=]+)(?:=(.*))?$/.exec(rest[i]);
  if (!m) throw new Error(`unexpected argument ${rest[i]}`);
  flags[m[1]] = m[2] ?? (rest[i + 1] && !rest[i + 1].startsWith("--") ? rest[++i] : "true");
}
const num = (name, dflt) => (flags[name] === undefined ? dflt : Number(flags[name]));

// ------------------------------------------------------------------ stats
const sorted = (xs) => [...xs].sort((a, b) => a - b);
function pct(xs, p) {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const median = (xs) => pct(xs, 50);
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
const MIME = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm", ".json": "application/json" };

/** Serves .build/site at / and `extra` files by exact path. Cross-origin isolated, so performance.now() has 5 µs resolution. */
function startStatic(extra = {}) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = extra[path] ?? normalize(join(site, path.slice(1) || "index.html"));
    if (!(extra[path] || file.startsWith(site + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": MIME[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-store",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) =>
    server.listen(0, "127.0.0.1", () =>
      ok({ url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((d) => (server.closeAllConnections(), server.close(() => d()))) }),
    ),
  );
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Spawns a process and resolves when a stdout line matches `ready`. */
function startProcess(cmd, args, { env = {}, ready, name }) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env }, cwd: env.CWD ?? here });
  const log = [];
  const keep = (l) => {
    log.push(l);
    if (log.length > 100) log.shift();
    if (flags.verbose) console.error(`[${name}] ${l}`);
  };
  createInterface({ input: child.stderr }).on("line", keep);
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start:\n${log.join("\n")}`)), 30_000);
    child.once("exit", (code) => fail(new Error(`${name} exited (${code}):\n${log.join("\n")}`)));
    createInterface({ input: child.stdout }).on("line", (l) => {
      keep(l);
      const m = ready.exec(l);
      if (m) {
        clearTimeout(timer);
        ok({ match: m, pid: child.pid, stop: () => new Promise((d) => (child.exitCode !== null ? d() : (child.once("exit", d), child.kill("SIGTERM")))) });
      }
    });
  });
}

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.SYNCLINE_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    ],
  });
  return browser;
}

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
function loadTrace() {
  const dir = resolve(flags.traces ?? process.env.SYNCLINE_TRACES ?? join(repoRoot, "bench", "traces"));
  const file = join(dir, "automerge-paper.json.gz");
  if (!existsSync(file)) throw new Error(`no trace at ${file}: pass --traces DIR`);
  const trace = JSON.parse(gunzipSync(readFileSync(file)).toString("utf8"));
  const txns = trace.txns.map((t) => t.patches.map(([pos, del, ins]) => [pos, del, ins]));
  return { txns, endContent: trace.endContent, startContent: trace.startContent };
}

/**
 * The same trace as an Automerge 3.5 doc, `batch` edits per change (the same
 * grouping as the Syncline side), saved; cached in .build/traces.
 */
async function automergeBytes(trace, batch) {
  const out = join(build, "traces", `automerge-paper-${batch}.automerge`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  console.error("building the Automerge doc of the trace (once, cached)...");
  const A = await import("@automerge/automerge");
  let doc = A.from({ text: trace.startContent });
  const edits = trace.txns.flat();
  for (let i = 0; i < edits.length; i += batch) {
    doc = A.change(doc, (d) => {
      for (const [pos, del, ins] of edits.slice(i, i + batch)) A.splice(d, ["text"], pos, del, ins);
    });
  }
  if (doc.text !== trace.endContent) throw new Error("Automerge replay did not reach endContent");
  writeFileSync(out, A.save(doc));
  return out;
}

async function coldOpen() {
  requireBuilt();
  const trace = loadTrace();
  const batch = num("batch", 100);
  const bytesFile = await automergeBytes(trace, batch);
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

const scenarios = { "change-patch": changePatch, durable, latency, "cold-open": coldOpen, aes: aesScenario, size };
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
