// Packaging: the `npm pack` tarball of npm/ installed, by file path, into
// fresh apps with zero bundler configuration for syncline — Vite + React,
// Vite + Svelte 5 (syncline/svelte5's runes), Vite 5 + Svelte 4 (the store
// contract), webpack 5 — each built with its bundler, served as static
// files from 127.0.0.1 and checked in headless Chromium: the wasm loads,
// a document is created in IndexedDB, a change shows, and the value survives
// a reload. The same check for a Next.js app (App Router, no next.config),
// built with `next build` and served by `next start`, which server-renders
// the page in Node at each request with syncline and syncline/react
// imported. Also: the package's files served as they are (native ESM, no
// bundler), and importing every entry point in Node (server-side rendering)
// without a crash.
//
// The apps' own dependencies come from their lockfiles (`npm ci`, done by
// `cargo xtask install`); the tarball is installed with `--no-save`, so the
// lockfiles never change.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, createReadStream, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { freshDir, launchBrowser, newPage, removeDir, repoRoot } from "../e2e/harness.mjs";

const appsDir = join(repoRoot, "tests", "packaging", "apps");
const apps = [
  { name: "vite-react", dist: "dist", devtools: true },
  // Svelte 5: the runes of syncline/svelte5 and the store contract; Svelte 4: the store contract.
  // Both show whether there is something to undo (`undo`).
  // The Svelte 5 app also shows its history's length (`docState().history`).
  { name: "vite-svelte", dist: "dist", tabs: true, devtools: true, undo: true, history: true },
  { name: "vite-svelte4", dist: "dist", tabs: true, undo: true },
  // webpack's defaults: src/index.js -> dist/main.js; the page is plain HTML.
  { name: "webpack", dist: "dist", page: "public/index.html" },
];
// Built with `next build` and served by `next start` (not as static files).
const nextDir = join(appsDir, "next");
// Next.js sends anonymous telemetry unless told not to: no network beyond 127.0.0.1 here.
const nextEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: "1", NO_COLOR: "1" };

let packDir;
let tarball;
let browser;

/** Prints and runs a command, returning its stdout; throws with its output if it fails. */
function sh(cwd, program, args, env = process.env) {
  console.error(`$ (cd ${cwd} && ${program} ${args.join(" ")})`);
  try {
    return execFileSync(program, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (error) {
    throw new Error(`${program} ${args.join(" ")} failed in ${cwd}:\n${error.stdout}\n${error.stderr}`);
  }
}

before(async () => {
  if (!existsSync(join(repoRoot, "npm", "dist", "wasm", "syncline_wasm_bg.wasm"))) {
    throw new Error("npm/dist/ is not built: run `cargo xtask build` first (the wasm, then the npm package)");
  }
  packDir = freshDir("syncline-pack-");
  const [packed] = JSON.parse(sh(join(repoRoot, "npm"), "npm", ["pack", "--json", "--pack-destination", packDir]));
  tarball = join(packDir, packed.filename);
  const files = packed.files.map((f) => f.path);
  for (const file of ["dist/index.js", "dist/react.js", "dist/svelte.js", "dist/svelte5.svelte.js", "dist/svelte5.svelte.d.ts", "dist/devtools.js", "dist/devtools/panel.js", "dist/wasm/syncline_wasm.js", "dist/wasm/syncline_wasm_bg.wasm"]) {
    assert.ok(files.includes(file), `the tarball lacks ${file}`);
  }
  for (const dir of [...apps.map((app) => join(appsDir, app.name)), nextDir]) {
    if (!existsSync(join(dir, "node_modules"))) {
      throw new Error(`${dir}/node_modules is missing: run \`cargo xtask install\` (npm ci in each packaging app)`);
    }
    sh(dir, "npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefer-offline", tarball]);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  removeDir(packDir);
});

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
};

/** A static file server for `root` on 127.0.0.1 (a random port), as a CDN or `vite preview` would serve a build. */
function serve(root) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (path === "/favicon.ico") return res.writeHead(204).end();
    if (path === "/blank.html") return res.writeHead(200, { "content-type": MIME[".html"] }).end("<!doctype html><title>blank</title>");
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      return res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        close: () => new Promise((done) => (server.closeAllConnections(), server.close(() => done()))),
      }),
    );
  });
}

/** Opens `url` in a fresh context and collects page errors (uncaught exceptions, failed wasm loads). */
async function open(url, name) {
  const { context, page } = await newPage(browser, name);
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  return { context, page, errors };
}

/** Waits until `#value` shows `text` (or the app shows `#error`). */
async function valueIs(page, text) {
  await page.waitForSelector("#value, #error", { timeout: 60_000 });
  const error = await page.locator("#error").textContent({ timeout: 100 }).catch(() => null);
  assert.equal(error, null, `the app failed: ${error}`);
  await page.waitForFunction((want) => document.querySelector("#value")?.textContent === want, text, { timeout: 30_000 });
}

/**
 * The app's check: its document shows 41, +1 makes it 42, and once the app
 * says that change is durable (its `repo.flush()` resolved, marked on
 * `<html data-saved>`), a reload reopens 42 from IndexedDB.
 */
async function incrementSurvivesReload(page) {
  await valueIs(page, "41");
  await page.click("#inc");
  await valueIs(page, "42");
  await page.waitForFunction(() => document.documentElement.dataset.saved === "1", undefined, { timeout: 30_000 });
  await page.reload();
  await valueIs(page, "42");
}

/**
 * Undo state in the component (`docState(handle).canUndo`, or `$undo` of
 * `undoStore(doc)`): a reloaded page has nothing to undo; +1 makes
 * `canUndo` true, and undoing it takes the value back and `canUndo` to false.
 */
async function undoShows(page) {
  const canUndo = (want) => page.waitForFunction((want) => document.querySelector("#can-undo")?.textContent === want, want, { timeout: 30_000 });
  await canUndo("false");
  const before = await page.locator("#value").textContent();
  await page.click("#inc");
  await valueIs(page, String(Number(before) + 1));
  await canUndo("true");
  await page.click("#undo");
  await valueIs(page, before);
  await canUndo("false");
}

/**
 * The app runs in the default mode: the bundle shipped the worker script,
 * so the engine runs in a SharedWorker (`<html data-mode="worker">`), not
 * in the page (whose fallback would say "page").
 */
async function runsInTheWorker(page) {
  await page.waitForFunction(() => document.documentElement.dataset.mode !== undefined, undefined, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => document.documentElement.dataset.mode), "worker", "the engine runs in the worker");
}

/** The same check with the engine in the page (`?page`: the app passes `worker: false`). */
async function pageModeWorks(baseUrl, name) {
  const { context, page, errors } = await open(`${baseUrl}/?page`, `${name}-page`);
  try {
    await incrementSurvivesReload(page);
    assert.equal(await page.evaluate(() => document.documentElement.dataset.mode), "page", "the engine runs in the page");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
}

/**
 * The history in the component (`docState(handle).history`): +1 adds one
 * entry, shown once it is there (in worker mode a round trip after the value).
 */
async function historyGrows(page) {
  const length = async () => Number(await page.locator("#history").textContent());
  const before = await length();
  assert.ok(before >= 2, `the created document's changes are in its history (${before})`);
  await page.click("#inc");
  await page.waitForFunction((want) => document.querySelector("#history")?.textContent === want, String(before + 1), { timeout: 30_000 });
}

/**
 * The devtools in the app (`{ devtools: true }` apps have a button that
 * imports `syncline/devtools` on click and mounts it): the panel opens
 * beside the framework's own DOM and shows the document's value, which is
 * `want` on the page; a change made in the app shows in the panel.
 */
async function devtoolsShowTheValue(page, want) {
  const shadowText = () => page.evaluate(() => document.getElementById("syncline-devtools")?.shadowRoot?.textContent ?? "");
  await page.click("#devtools");
  // `count: 42`, not `count: 420`: no digit may follow.
  const shows = (n) => document.getElementById("syncline-devtools")?.shadowRoot?.textContent.match(new RegExp(`count: ${n}(?!\\d)`)) != null;
  await page.waitForFunction(shows, want, { timeout: 30_000 });
  await page.click("#inc");
  const next = String(Number(want) + 1);
  await valueIs(page, next);
  await page.waitForFunction(shows, next, { timeout: 30_000 });
  assert.ok((await shadowText()).includes("Event log"), "the whole panel is there");
}

/**
 * Another tab's change reaches the component: two tabs of the app in one
 * browser context (one IndexedDB, tabs linked by BroadcastChannel); +1 in
 * one shows in the other without a reload — through `docState().current`
 * (Svelte 5 runes) or `$doc` (the store contract, Svelte 4).
 */
async function otherTabsChangeShows(baseUrl, name) {
  const { context, page, errors } = await open(`${baseUrl}/`, `${name}-tab-a`);
  try {
    // The first tab made the document (and saved its URL) before the second opens it.
    await valueIs(page, "41");
    const other = await context.newPage();
    other.on("pageerror", (error) => errors.push(error.message));
    await other.goto(`${baseUrl}/`);
    await valueIs(other, "41");
    await other.click("#inc");
    await valueIs(other, "42");
    await valueIs(page, "42");
    await page.click("#inc");
    await valueIs(other, "43");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
}

for (const app of apps) {
  test(`${app.name}: the tarball builds with zero bundler configuration and runs in Chromium`, { timeout: 300_000 }, async () => {
    const dir = join(appsDir, app.name);
    const dist = join(dir, app.dist);
    removeDir(dist); // webpack does not clean its output by default
    sh(dir, "npm", ["run", "build"]);
    if (app.page) copyFileSync(join(dir, app.page), join(dist, "index.html"));
    const emitted = readdirSync(dist, { recursive: true }).filter((f) => String(f).endsWith(".wasm"));
    assert.equal(emitted.length, 1, `${app.name} should emit the .wasm as one asset, found: ${emitted.join(", ")}`);

    const site = await serve(dist);
    try {
      const { context, page, errors } = await open(`${site.url}/`, app.name);
      await incrementSurvivesReload(page);
      await runsInTheWorker(page);
      // Before the devtools' check: the undo check starts with nothing to undo, and leaves 42.
      if (app.undo) await undoShows(page);
      if (app.devtools) await devtoolsShowTheValue(page, "42");
      if (app.history) await historyGrows(page);
      assert.deepEqual(errors, []);
      await context.close();
      if (app.tabs) await otherTabsChangeShows(site.url, app.name);
      await pageModeWorks(site.url, app.name);
    } finally {
      await site.close();
    }
  });
}

/** A port free on 127.0.0.1 right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createTcpServer().once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** `vite` (the dev server) in `dir`, with a fresh dependency pre-bundle (`--force`); resolves once it listens. */
async function viteDev(dir) {
  const port = await freePort();
  const bin = join(dir, "node_modules", "vite", "bin", "vite.js");
  const child = spawn(process.execPath, [bin, "--host", "127.0.0.1", "--port", String(port), "--strictPort", "--force"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    // Vite colours its output when CI is set (as on CI), splitting the URL with escape codes.
    env: { ...process.env, NO_COLOR: "1" },
  });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  const stop = () => {
    if (child.exitCode === null) child.kill("SIGTERM");
  };
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => (stop(), reject(new Error(`vite did not start in 60 s:\n${log}`))), 60_000);
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`vite exited (${code}):\n${log}`))));
    const plain = () => log.replace(/\x1b\[[0-9;]*m/g, "");
    child.stdout.on("data", () => plain().includes(`127.0.0.1:${port}`) && (clearTimeout(timer), resolve()));
  });
  return { url: `http://127.0.0.1:${port}`, stop, log: () => log };
}

// Vite's dev server pre-bundles dependencies into node_modules/.vite/deps/,
// which used to break `new URL("x.wasm", import.meta.url)` in packages
// (vite#8427); the Vite 8 optimizer rewrites it. Checked, so a regression shows.
for (const name of ["vite-react", "vite-svelte"]) {
  test(`${name}: the Vite dev server (dependency pre-bundling) loads the wasm with zero configuration`, { timeout: 180_000 }, async () => {
    const dev = await viteDev(join(appsDir, name));
    try {
      const { context, page, errors } = await open(`${dev.url}/`, `${name}-dev`);
      await valueIs(page, "41");
      await page.click("#inc");
      await valueIs(page, "42");
      await runsInTheWorker(page);
      assert.deepEqual(errors, []);
      await context.close();
      await pageModeWorks(dev.url, `${name}-dev`);
    } catch (error) {
      throw new Error(`${error.message}\nvite's output:\n${dev.log()}`, { cause: error });
    } finally {
      dev.stop();
    }
  });
}

/** `next start` in `dir` on 127.0.0.1 (a free port): resolves once it prints that it is ready. */
async function nextStart(dir) {
  const port = await freePort();
  const bin = join(dir, "node_modules", "next", "dist", "bin", "next");
  const child = spawn(process.execPath, [bin, "start", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: nextEnv,
  });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  /** SIGTERM, then SIGKILL if it has not exited within 5 s; resolves once it has exited. */
  const stop = async () => {
    // No pid: it never started (a spawn error), so there is no exit to wait for.
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => stop().then(() => reject(new Error(`next start was not ready in 60 s:\n${log}`))), 60_000);
    child.once("error", (error) => (clearTimeout(timer), reject(error)));
    exited.then((code) => (clearTimeout(timer), reject(new Error(`next start exited (${code}):\n${log}`))));
    child.stdout.on("data", () => /\bReady in\b/.test(log) && (clearTimeout(timer), resolve()));
  });
  return { url: `http://127.0.0.1:${port}`, stop, log: () => log };
}

// Next.js bundles the page twice (server and browser): the server bundle
// imports syncline in Node, the browser bundle must emit the .wasm. The
// page is dynamic, so `next start` renders it in Node at each request.
// Next 16 builds with Turbopack by default and with webpack on `--webpack`
// (apps with a custom webpack config): both, one after the other in .next/.
for (const bundler of ["turbopack", "webpack"]) {
  test(`next (${bundler}): \`next build\` with zero configuration, \`next start\` server-renders the page, and it runs in Chromium`, { timeout: 300_000 }, async () => {
    removeDir(join(nextDir, ".next"));
    const started = performance.now();
    sh(nextDir, "npm", ["run", bundler === "webpack" ? "build:webpack" : "build"], nextEnv);
    console.log(`# next build (${bundler}): ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const emitted = readdirSync(join(nextDir, ".next", "static"), { recursive: true }).filter((f) => String(f).endsWith(".wasm"));
    assert.equal(emitted.length, 1, `next should emit the .wasm as one browser asset, found: ${emitted.join(", ")}`);

    const server = await nextStart(nextDir);
    try {
      // The server-rendered HTML, before any script runs: the server component
      // (which imports syncline) echoes a header of this request, so it was
      // rendered now, and the client component (syncline + syncline/react)
      // rendered its first state on the server.
      const nonce = `n${Math.random().toString(36).slice(2)}`;
      const response = await fetch(`${server.url}/`, { headers: { "x-packaging-nonce": nonce } });
      const html = await response.text();
      assert.equal(response.status, 200, html);
      assert.ok(html.includes(`<h1 id="ssr">server-rendered with syncline (function, function) for ${nonce}</h1>`), html);
      assert.ok(html.includes(`<p id="status">loading</p>`), html);

      const { context, page, errors } = await open(`${server.url}/`, `next-${bundler}`);
      // Hydration mismatches and failed loads are console errors, not page errors.
      const consoleErrors = [];
      page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
      await incrementSurvivesReload(page);
      await runsInTheWorker(page);
      assert.deepEqual(errors, []);
      assert.deepEqual(consoleErrors, []);
      await context.close();
      await pageModeWorks(server.url, `next-${bundler}`);
    } catch (error) {
      throw new Error(`${error.message}\nnext start's output:\n${server.log()}`, { cause: error });
    } finally {
      await server.stop();
    }
  });
}

test("the installed package works as native ESM in the browser, with no bundler", { timeout: 120_000 }, async () => {
  const site = await serve(join(appsDir, "webpack", "node_modules"));
  try {
    const { context, page, errors } = await open(`${site.url}/blank.html`, "native-esm");
    const result = await page.evaluate(async () => {
      const { createRepo } = await import("/syncline/dist/index.js");
      const repo = await createRepo({ name: "native" }); // the default: the engine in dist/worker.js, found next to dist/index.js
      const doc = await repo.create({ items: [] });
      doc.change((d) => {
        d.items.push("milk");
      });
      await repo.flush();
      const reopened = await repo.open(doc.url);
      // The devtools entry, as plain files too: the panel mounts and shows the value.
      const { mountDevtools } = await import("/syncline/dist/devtools.js");
      const devtools = await mountDevtools(repo);
      const panel = document.getElementById("syncline-devtools").shadowRoot;
      while (!panel.textContent.includes('"milk"')) await new Promise((resolve) => setTimeout(resolve, 50));
      devtools.unmount();
      return { mode: repo.status.mode, value: doc.value, again: reopened.value, unmounted: document.getElementById("syncline-devtools") === null };
    });
    assert.deepEqual(result, { mode: "worker", value: { items: ["milk"] }, again: { items: ["milk"] }, unmounted: true });
    assert.deepEqual(errors, []);
    await context.close();
    // The engine in the page from the same files.
    const inPage = await open(`${site.url}/blank.html`, "native-esm-page");
    const fromPage = await inPage.page.evaluate(async () => {
      const { createRepo } = await import("/syncline/dist/index.js");
      const repo = await createRepo({ name: "native", worker: false });
      const doc = await repo.create({ items: [] });
      doc.change((d) => {
        d.items.push("milk");
      });
      await repo.flush();
      return { mode: repo.status.mode, value: (await repo.open(doc.url)).value };
    });
    assert.deepEqual(fromPage, { mode: "page", value: { items: ["milk"] } });
    assert.deepEqual(inPage.errors, []);
    await inPage.context.close();
  } finally {
    await site.close();
  }
});

test("importing syncline, syncline/react and syncline/svelte in Node (SSR) does not crash or load the wasm", { timeout: 60_000 }, () => {
  // In the React app (React is an optional peer dependency): render through
  // RepoProvider on the server, as an SSR framework would, with no window,
  // document, indexedDB or fetch of the wasm.
  const script = `
    const syncline = await import("syncline");
    const react = await import("syncline/react");
    const svelte = await import("syncline/svelte");
    const devtools = await import("syncline/devtools");
    const { createElement } = await import("react");
    const { renderToString } = await import("react-dom/server");
    const html = renderToString(createElement(react.RepoProvider, { repo: null }, createElement("p", null, "ssr")));
    console.log(JSON.stringify({
      createRepo: typeof syncline.createRepo,
      SynclineError: typeof syncline.SynclineError,
      useDoc: typeof react.useDoc,
      statusStore: typeof svelte.statusStore,
      mountDevtools: typeof devtools.mountDevtools,
      html,
      window: typeof window,
    }));
  `;
  const out = sh(join(appsDir, "vite-react"), process.execPath, ["--input-type=module", "-e", script]);
  assert.deepEqual(JSON.parse(out.trim().split("\n").pop()), {
    createRepo: "function",
    SynclineError: "function",
    useDoc: "function",
    statusStore: "function",
    mountDevtools: "function",
    html: "<p>ssr</p>",
    window: "undefined",
  });
});

// The goal is 450 KB gzip (it was 581 KB by this measure — Node's gzip, a
// little larger than `gzip -9` — on 2026-11-23 with protocol v2 and fast
// open: Automerge is most of it). This bound only catches a regression such
// as the name section coming back (+100 KB gzip) while leaving room for
// features; lower it as the module shrinks. Raised from 600,000 to 615,000
// on 2026-12-04 for signed writes (issue 20): Ed25519 signing, without the
// precomputed tables, took the module from 581,647 to 596,014 B (`gzip -9`;
// 601,359 B by this measure); with the tables it was 630,383 B. Lowered to
// 600,000 on 2026-12-05 (issue 21): ops decoded by hand took it from
// 596,680 to 590,273 B (`gzip -9`; 601,880 to 595,322 B by this measure).
// 450 KB cannot be reached while shipping Automerge: Automerge alone, built
// the same way, is 422,114 B, and with the ciphers, hashes and Ed25519
// 444,134 B (bench/browser/size-floor; docs/benchmarks/size.md). Raised to
// 610,000 the same day when the connection policy moved into core and the
// host was split (issue 21 items 1 and 4: the Dialer, engine deadlines and
// the re-entrancy guards): 590,273 -> 599,771 B (`gzip -9`; 605,257 B by
// this measure). Cutting that back is open work. Raised to 612,000 by this
// measure the same day for worker mode (issue 16: `changeAt` with
// Automerge's isolation, `restoreLocalChange`): 606,164 B `gzip -9`, still
// under the 610,000 B `gzip -9` budget, but 611,290 B by this measure.
// Raised to 622,000 on 2026-12-05 when three branches met on main: one
// Automerge call per frame with its per-delta fallback (issue 21) and the
// `mark`/`unmark` ops, which link Automerge's mark code (issue 17):
// 615,240 B `gzip -9`, 619,884 B by this measure. Cutting back is open work.
// Raised to 625,000 the same day for export and import (issue 19 part 4:
// `exportDoc`/`importDoc` and the walk that checks an import's values):
// 620,250 -> 622,609 B by this measure, measured with and without the
// bindings on one tree; schema migrations (issue 19 part 3, `migrate`)
// took it to 624,453 B by this measure (619,775 B `gzip -9`).
// The devtools (issue 18: the frame log, frame outlines and
// `inspect`/`inspectDoc`) add about 2 KB more (617,405 B `gzip -9` on their
// own branch, 622,178 B by this measure).
// Raised to 652,000 the same day for the editing API (issue 17: undo and
// redo, cursors and marks exported from the wasm, which links Automerge's
// cursor, mark and isolation code and syncline-core's undo.rs, dead code
// before): with everything of 2026-12-05 merged, 649,075 B by this measure,
// 643,468 B `gzip -9`. Then to 656,000 for ephemeral messages and requests
// (issue 19 parts 1-2: the core's message path links in though the wasm
// host drops its outputs for now): 653,385 B by this measure. Then to
// 662,000 when the wasm exported them (`sendMessage`, `request`, `serve`,
// `reply`: the sealing, signing and envelope code of messages is no longer
// dead): 660,568 B by this measure, 654,714 B `gzip -9`. Then to 664,000
// for worker mode's `loadedHeads` and `historySince` (issue 16: the heads a
// fast-opened doc loaded with, the history since given heads): 662,259 B
// by this measure, 656,770 B `gzip -9`. Cutting back is open work
// (docs/benchmarks/size.md).
const WASM_GZIP_BUDGET = 664_000;

test(`the shipped wasm is at most ${WASM_GZIP_BUDGET} B gzipped`, () => {
  const wasm = readFileSync(join(appsDir, "webpack", "node_modules", "syncline", "dist", "wasm", "syncline_wasm_bg.wasm"));
  const gzip = gzipSync(wasm, { level: 9 }).length;
  console.log(`# syncline_wasm_bg.wasm: ${wasm.length} B raw, ${gzip} B gzip`);
  assert.ok(gzip <= WASM_GZIP_BUDGET, `syncline_wasm_bg.wasm is ${gzip} B gzipped (${wasm.length} B raw), over the ${WASM_GZIP_BUDGET} B budget`);
});

// Test hooks never ship: `crashForTesting` (a deliberate panic, behind
// syncline-wasm's `test-hooks` feature) would let any script on the page
// close every repo. Checked in the tarball itself: no file mentions it, and
// the wasm exports no such function.
const TEST_HOOKS = ["crashForTesting", "crash_for_testing"];

test("the tarball contains no test hook (crashForTesting), in its JS or its wasm", () => {
  const unpacked = freshDir("syncline-unpacked-");
  try {
    sh(unpacked, "tar", ["-xzf", tarball]);
    const files = [];
    const walk = (dir) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else files.push(path);
      }
    };
    walk(join(unpacked, "package"));
    const wasmFile = files.find((f) => f.endsWith(".wasm"));
    assert.ok(wasmFile && files.some((f) => f.endsWith(".js")), `the tarball has JS and wasm: ${files}`);
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const hook of TEST_HOOKS) assert.equal(bytes.indexOf(hook), -1, `${file} contains ${hook}`);
    }
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(wasmFile))).map((e) => e.name);
    assert.ok(exports.some((name) => name.startsWith("core_")), `the wasm exports the Core class: ${exports}`);
    for (const hook of TEST_HOOKS) assert.ok(!exports.some((name) => name.includes(hook)), `the wasm exports ${hook}`);
  } finally {
    removeDir(unpacked);
  }
});
