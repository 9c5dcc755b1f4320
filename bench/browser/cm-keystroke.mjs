// CodeMirror keystroke → visible in the other editor: Syncline
// (syncline/codemirror through syncline-relay) against Yjs (y-codemirror.next
// through a y-websocket server, @y/websocket-server), side by side in one
// run: four pages of one headless Chromium, an A → B pair per system; both
// A pages type at the same time, one character per keystroke at the end of
// the text, `--gap` ms apart (100 ms ≈ 120 words a minute), as CodeMirror
// input transactions; each B page timestamps the keystroke's arrival in its
// editor. Fresh documents, pages and servers' rooms per round; p50/p99 per
// round, then their medians over rounds.
//
//   npm run build:editor     # bundles site/editor.html (needs `cargo xtask build` first: npm/src/wasm)
//   node cm-keystroke.mjs [--keys 300] [--warmup 20] [--gap 100] [--rounds 3] [--relay PATH] [--worker]
//
// Syncline runs with the engine in each page (`worker: false`); `--worker`
// runs it in the pages' SharedWorker (the default mode), where the socket
// legs are not observable from the page.
//
// Prints a markdown summary; raw samples go to .build/results/cm-keystroke-<time>.json.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, launch, startProcess, startStatic } from "./serve.mjs";
import { median, parseFlags, pct } from "./stats.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const site = join(here, ".build", "editor-site");

const flags = parseFlags(process.argv.slice(2));
const num = (name, dflt) => (flags[name] === undefined ? dflt : Number(flags[name]));
const args = { keys: num("keys", 300), warmup: num("warmup", 20), gapMs: num("gap", 100), rounds: num("rounds", 3) };
// --only syncline|yjs: one system alone (to see what the other's pages cost it on a small machine); the default is both at once.
const systems = flags.only ? [flags.only] : ["syncline", "yjs"];
if (!systems.every((x) => x === "syncline" || x === "yjs")) throw new Error("--only syncline|yjs");
const worker = flags.worker !== undefined;
const relayBin = resolve(flags.relay ?? join(repoRoot, "target", "release", "syncline-relay"));
const yServer = join(here, "node_modules", "@y", "websocket-server", "src", "server.js");

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

// Prose to type: what a person writes in a note.
const PROSE =
  "Local-first software keeps the data on the device and syncs it when it can. Two people typing in the same note should each see the other's words appear as they type them, with nothing lost when both type at once, and undo should take back only your own typing. ";
const textOf = (n) => PROSE.repeat(Math.ceil(n / PROSE.length)).slice(0, n);

async function openPage(browser, url, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && console.error(`[${name}] console.error: ${m.text()}`));
  await page.goto(`${url}/editor.html`);
  await page.waitForFunction(() => window.benchReady === true);
  return { context, page };
}

/** One round: fresh pages and documents for both systems; both A pages type at once. */
async function round(browser, web, servers, index) {
  const pages = {};
  for (const system of systems) for (const role of ["a", "b"]) pages[`${system}-${role}`] = await openPage(browser, web.url, `${system}-${role}`);
  try {
    const room = `cm-bench-${Date.now()}-${index}`;
    if (systems.includes("syncline")) {
      const { url } = await pages["syncline-a"].page.evaluate((x) => window.bench.setup(x), { system: "syncline", role: "a", relay: servers.syncline, name: "A", worker });
      await pages["syncline-b"].page.evaluate((x) => window.bench.setup(x), { system: "syncline", role: "b", relay: servers.syncline, url, name: "B", worker });
    }
    if (systems.includes("yjs")) {
      for (const role of ["a", "b"]) {
        await pages[`yjs-${role}`].page.evaluate((x) => window.bench.setup(x), { system: "yjs", role, relay: servers.yjs, room, name: role.toUpperCase() });
      }
    }
    const text = textOf(args.warmup + args.keys);
    const result = {};
    // Warm-up keystrokes (connections settle, JIT), then the measured ones, both systems at the same time.
    for (const [from, to] of [[0, args.warmup], [args.warmup, text.length]]) {
      await Promise.all(
        systems.map(async (system) => {
          const typed = await pages[`${system}-a`].page.evaluate((x) => window.bench.type(x), { text: text.slice(from, to), gapMs: args.gapMs });
          if (!typed.hasFocus) throw new Error(`${system}: A's editor lost focus: its caret would not be shared as a person's is`);
          const got = await pages[`${system}-b`].page.evaluate((n) => window.bench.waitLength(n), to);
          if (got !== text.slice(0, to)) throw new Error(`${system}: B's editor holds ${JSON.stringify(got.slice(0, 80))}…, not the typed text`);
        }),
      );
    }
    for (const system of systems) {
      const typed = await pages[`${system}-a`].page.evaluate(() => window.bench.typed());
      const arrived = await pages[`${system}-b`].page.evaluate(() => window.bench.arrivals());
      result[system] = typed.slice(args.warmup).map((t0, i) => arrived[args.warmup + i] - t0);
      // Legs per keystroke: A's first socket send after it, B's first receive after that send (before the arrival).
      const sends = (await pages[`${system}-a`].page.evaluate(() => window.bench.sockets())).filter((e) => e.dir === "send");
      const recvs = (await pages[`${system}-b`].page.evaluate(() => window.bench.sockets())).filter((e) => e.dir === "recv");
      const dispatched = await pages[`${system}-a`].page.evaluate(() => window.bench.dispatched());
      const legs = { dispatch: typed.slice(args.warmup).map((t0, i) => dispatched[args.warmup + i] - t0), send: [], wire: [], apply: [], sendsPerKey: sends.length / typed.length };
      typed.forEach((t0, i) => {
        if (i < args.warmup) return;
        const t1 = arrived[i];
        const sent = sends.find((e) => e.at >= t0);
        const got = sent && recvs.find((e) => e.at >= sent.at);
        if (!got || got.at > t1) return;
        legs.send.push(sent.at - t0);
        legs.wire.push(got.at - sent.at);
        legs.apply.push(t1 - got.at);
      });
      result[`${system}Legs`] = legs;
    }
    return result;
  } finally {
    for (const { page, context } of Object.values(pages)) {
      await page.evaluate(() => window.bench.close()).catch(() => {});
      await context.close();
    }
  }
}

function gitHead() {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  return r.stdout.trim();
}

if (!existsSync(join(site, "editor.html"))) throw new Error("run `npm run build:editor` in bench/browser first");
if (!existsSync(relayBin)) throw new Error(`missing ${relayBin}: run \`cargo xtask build\` (or pass --relay PATH)`);
const dir = mkdtempSync(join(tmpdir(), "syncline-cm-bench-"));
const relay = await startProcess(relayBin, ["--listen", "127.0.0.1:0", "--data", join(dir, "relay")], {
  name: "syncline-relay",
  ready: /syncline-relay listening on 127\.0\.0\.1:(\d+)/,
  env: { RUST_LOG: "warn" },
});
const yPort = await freePort();
const yjs = await startProcess(process.execPath, [yServer], { name: "y-websocket server", ready: /running at/, env: { HOST: "127.0.0.1", PORT: String(yPort) } });
const web = await startStatic(site, { index: "editor.html" });
const browser = await launch();
const started = new Date().toISOString();
const loadBefore = loadavg().map((x) => +x.toFixed(2));
const rounds = [];
try {
  const servers = { syncline: `ws://127.0.0.1:${relay.match[1]}`, yjs: `ws://127.0.0.1:${yPort}` };
  for (let i = 0; i < args.rounds; i++) {
    const r = await round(browser, web, servers, i);
    rounds.push(r);
    console.error(`round ${i + 1}/${args.rounds}: ${systems.map((x) => `${x} p50 ${f(median(r[x]))} p99 ${f(pct(r[x], 99))} ms`).join("; ")}; load ${loadavg()[0].toFixed(2)}`);
  }
} finally {
  await browser.close();
  await web.close();
  await relay.stop();
  await yjs.stop();
  rmSync(dir, { recursive: true, force: true });
}
const loadAfter = loadavg().map((x) => +x.toFixed(2));
const per = (system, p) => rounds.map((r) => pct(r[system], p));
const row = (label, p) => {
  const s = median(per("syncline", p)), y = median(per("yjs", p));
  return `| ${label} | ${f(s)} ms (${per("syncline", p).map((x) => f(x)).join(", ")}) | ${f(y)} ms (${per("yjs", p).map((x) => f(x)).join(", ")}) | ${f(s / y)}× |`;
};
for (const r of rounds) for (const x of ["syncline", "yjs"]) if (!r[x]) (r[x] = []), (r[`${x}Legs`] = { dispatch: [], send: [], wire: [], apply: [], sendsPerKey: NaN });
const legs = (system, leg, p) => median(rounds.map((r) => pct(r[`${system}Legs`][leg], p)));
const legRow = (label, leg) =>
  `| legs, p50 / p99: ${label} | ${f(legs("syncline", leg, 50))} / ${f(legs("syncline", leg, 99))} ms | ${f(legs("yjs", leg, 50))} / ${f(legs("yjs", leg, 99))} ms | |`;
const summary = [
  `CodeMirror keystroke in A → visible in B's editor: ${args.keys} keystrokes (+${args.warmup} warm-up) per system per round, ${args.gapMs} ms apart, ${systems.length === 2 ? "both systems typing at once" : `${systems[0]} alone`}; ${args.rounds} rounds; median over rounds (each round in brackets)`,
  `| | Syncline (syncline/codemirror, syncline-relay; engine in ${worker ? "the SharedWorker" : "the page"}) | Yjs 13.6 (y-codemirror.next 0.3.6, y-websocket 3.1 + @y/websocket-server 0.1.1) | ratio (ours ÷ theirs) |`,
  `| --- | --- | --- | --- |`,
  row("p50", 50),
  row("p99", 99),
  row("max", 100),
  legRow("A: keystroke → its dispatch returned (editor update + binding, synchronous)", "dispatch"),
  legRow("A: keystroke → first socket send", "send"),
  legRow("socket send in A → socket receive in B (server included)", "wire"),
  legRow("B: socket receive → in the editor", "apply"),
  `| WebSocket messages A sends per keystroke (changes, presence/awareness, acks…) | ${f(median(rounds.map((r) => r.synclineLegs.sendsPerKey)))} | ${f(median(rounds.map((r) => r.yjsLegs.sendsPerKey)))} | |`,
  `| all rounds pooled: p50 / p99 | ${f(median(rounds.flatMap((r) => r.syncline)))} / ${f(pct(rounds.flatMap((r) => r.syncline), 99))} ms | ${f(median(rounds.flatMap((r) => r.yjs)))} / ${f(pct(rounds.flatMap((r) => r.yjs), 99))} ms | |`,
];
const c = cpus();
const machine = { commit: gitHead(), cpu: `${c.length} × ${c[0]?.model ?? "?"}`, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, loadBefore, loadAfter };
mkdirSync(join(here, ".build", "results"), { recursive: true });
const out = join(here, ".build", "results", `cm-keystroke-${started.replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ scenario: "cm-keystroke", started, machine, args, relay: relayBin, rounds }, null, 1));
console.log(`\n## cm-keystroke — ${started}`);
console.log(`commit ${machine.commit}; machine: ${machine.cpu}, ${machine.memGiB} GiB, node ${machine.node}; load avg before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}`);
console.log(`flags: ${JSON.stringify(flags)}\n`);
console.log(summary.join("\n"));
console.log(`\nraw samples: ${out}`);
