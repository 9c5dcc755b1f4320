// Test harness: the real relay binary as a child process, a static server for
// the test page and the built npm package, and headless Chromium.
import { spawn } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const siteDir = join(repoRoot, "tests", "e2e", "site");
const npmDist = join(repoRoot, "npm", "dist");
const npmModules = join(repoRoot, "npm", "node_modules");
/**
 * The same package with a wasm built with the `test-hooks` feature
 * (`crashForTesting`), left by `cargo xtask build`; served at
 * `/test-hooks/` for the tests that need it. `/dist/` is what ships.
 */
const testHooksDist = resolve(repoRoot, process.env.CARGO_TARGET_DIR ?? "target", "test-hooks", "dist");

/** Bounded waits used by the tests (ms). Generous: CI machines are small. */
export const TIMEOUT = { start: 30_000, sync: 60_000, offline: 30_000 };

export const relayBin = resolve(repoRoot, process.env.SYNCLINE_RELAY_BIN ?? join("target", "release", "syncline-relay"));

/** Fails with what to do when the built artifacts are missing. */
export function requireBuilt({ demo = false } = {}) {
  const missing = [];
  const hooks = join(testHooksDist, "wasm", "syncline_wasm_bg.wasm");
  if (!existsSync(join(testHooksDist, "index.js")) || !existsSync(hooks)) missing.push(join(testHooksDist, "index.js"), hooks);
  if (!existsSync(relayBin)) missing.push(relayBin);
  const wasm = join(npmDist, "wasm", "syncline_wasm_bg.wasm");
  if (!existsSync(join(npmDist, "index.js")) || !existsSync(wasm)) missing.push(join(npmDist, "index.js"), wasm);
  if (demo && !existsSync(join(repoRoot, "demo-app", "dist", "index.html"))) {
    missing.push(join(repoRoot, "demo-app", "dist", "index.html"));
  }
  if (missing.length > 0) {
    throw new Error(
      `end-to-end tests need built artifacts, missing:\n  ${missing.join("\n  ")}\n` +
        "Run `cargo xtask build` (relay, wasm, npm package, its test-hooks build" + (demo ? ", demo" : "") + ") first.",
    );
  }
}

export function freshDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts the relay: `--listen 127.0.0.1:<port|0> --data <dir> [--serve <dir>]`,
 * with `SYNCLINE_AUTH_SECRET` set to `authSecret` if given.
 * Resolves once it printed `syncline-relay listening on 127.0.0.1:PORT`.
 */
export function startRelay({ dataDir, port = 0, serve, authSecret } = {}) {
  const args = ["--listen", `127.0.0.1:${port}`, "--data", dataDir];
  if (serve) args.push("--serve", serve);
  const env = { RUST_LOG: "info", ...process.env };
  if (authSecret) env.SYNCLINE_AUTH_SECRET = authSecret;
  const child = spawn(relayBin, args, { stdio: ["ignore", "pipe", "pipe"], env });
  const log = [];
  const keep = (line) => {
    log.push(line);
    if (log.length > 200) log.shift();
    if (process.env.SYNCLINE_E2E_VERBOSE) console.error(`[relay] ${line}`);
  };
  createInterface({ input: child.stderr }).on("line", keep);
  const exited = new Promise((resolveExit) => child.once("exit", (code, signal) => resolveExit({ code, signal })));

  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rejectStart(new Error(`relay did not report its port within ${TIMEOUT.start} ms\n${log.join("\n")}`));
    }, TIMEOUT.start);
    child.once("error", (error) => {
      clearTimeout(timer);
      rejectStart(new Error(`could not start ${relayBin}: ${error.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rejectStart(new Error(`relay exited early (code ${code}, signal ${signal}):\n${log.join("\n")}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      keep(line);
      const match = /syncline-relay listening on 127\.0\.0\.1:(\d+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      const actualPort = Number(match[1]);
      resolveStart({
        port: actualPort,
        dataDir,
        httpUrl: `http://127.0.0.1:${actualPort}`,
        wsUrl: `ws://127.0.0.1:${actualPort}`,
        log,
        get running() {
          return child.exitCode === null && child.signalCode === null;
        },
        /** SIGKILL: no graceful shutdown, like a crash. Resolves once the process is gone. */
        async kill() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
          await exited;
        },
      });
    });
  });
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".map": "application/json",
  ".css": "text/css; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

/**
 * Serves tests/e2e/site/ at `/`, npm/dist/ at `/dist/`, the test-hooks
 * build of the package at `/test-hooks/`, and npm/dist/ without its worker
 * script at `/no-worker/` (a deployment that lost the file), npm/dist/ at
 * `/deploy/` with the version `setDeployedVersion` names (a deployment
 * updated in place while an older tab is open), and npm/node_modules/ at
 * `/node_modules/`.
 */
export function startStaticServer() {
  let deployedVersion;
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (path === "/deploy/version.js" && deployedVersion !== undefined) {
      const real = readFileSync(join(npmDist, "version.js"), "utf8");
      const text = real.replace(/PACKAGE_VERSION = "[^"]*"/, `PACKAGE_VERSION = ${JSON.stringify(deployedVersion)}`);
      res.writeHead(200, { "content-type": "text/javascript", "cache-control": "no-store" }).end(text);
      return;
    }
    const mounts = [
      ["/dist/", npmDist],
      ["/test-hooks/", testHooksDist],
      ["/no-worker/", npmDist],
      ["/deploy/", npmDist],
      // The package's dev dependencies (CodeMirror) as ES modules, for editor.html's import map.
      ["/node_modules/", npmModules],
    ];
    const mount = mounts.find(([prefix]) => path.startsWith(prefix));
    if (path === "/no-worker/worker.js") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const [base, rel] = mount ? [mount[1], path.slice(mount[0].length)] : [siteDir, path.slice(1) || "index.html"];
    const file = normalize(join(base, rel));
    if (!file.startsWith(base + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": MIME[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-store",
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolveListen, rejectListen) => {
    server.once("error", rejectListen);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolveListen({
        url: `http://127.0.0.1:${port}`,
        /** The version `/deploy/` serves from now on; `undefined`: the package's own. */
        setDeployedVersion: (version) => (deployedVersion = version),
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** How every test starts Chromium: the executable and its flags. */
export const CHROMIUM = {
  executablePath: process.env.SYNCLINE_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
  ],
};

export function launchBrowser() {
  return chromium.launch(CHROMIUM);
}

/**
 * A page in a fresh browser context (its own IndexedDB). Page errors and
 * console errors are echoed, prefixed with `name`.
 */
export async function newPage(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error.message}`));
  page.on("console", (message) => {
    // Failed reconnects while a test holds the relay down are expected noise.
    const expected = /^WebSocket connection to .* failed/.test(message.text());
    if ((message.type() === "error" && !expected) || process.env.SYNCLINE_E2E_VERBOSE) {
      console.error(`[${name}] console.${message.type()}: ${message.text()}`);
    }
  });
  return { context, page };
}

export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/**
 * Registers `before`/`after` hooks that start the static test site and one
 * Chromium for the calling test file. Use the returned object's `site` and
 * `browser` inside tests (they exist once the hooks ran).
 */
export function useSiteAndBrowser() {
  const shared = { site: undefined, browser: undefined };
  before(async () => {
    requireBuilt();
    shared.site = await startStaticServer();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close().catch(() => {});
    await shared.site?.close();
  });
  return shared;
}

/** One relay process on a fresh data directory for a whole test file. */
export function useRelay() {
  const shared = { relay: undefined };
  const dataDir = freshDir("syncline-relay-");
  before(async () => {
    shared.relay = await startRelay({ dataDir });
  });
  after(async () => {
    await shared.relay?.kill();
    removeDir(dataDir);
  });
  return shared;
}
