// What the benchmark runners (run.mjs, cm-keystroke.mjs) share: a static
// server for a built site, a free port, a server process started until it
// says it is ready, and the system Chromium.
import { spawn } from "node:child_process";
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const MIME = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };

/**
 * Serves `site` at / (`index` for /) and `extra` files by exact path.
 * Cross-origin isolated, so performance.now() has 5 µs resolution.
 */
export function startStatic(site, { extra = {}, index = "index.html" } = {}) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = extra[path] ?? normalize(join(site, path.slice(1) || index));
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

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Spawns a process (in `cwd`) and resolves when a stdout line matches `ready`; `verbose` echoes its output. */
export function startProcess(cmd, args, { env = {}, ready, name, cwd, verbose = false }) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env }, cwd });
  const log = [];
  const keep = (l) => {
    log.push(l);
    if (log.length > 100) log.shift();
    if (verbose) console.error(`[${name}] ${l}`);
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

/** Headless system Chromium (`SYNCLINE_CHROMIUM` overrides the path), with the flags that keep it off the network. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.SYNCLINE_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    ],
  });
}
