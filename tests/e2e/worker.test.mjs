// Worker mode, the default where the browser has SharedWorker: the engine
// of every tab of an origin runs in one SharedWorker. Three tabs make one
// relay connection; edits cross between them and to another browser context
// (`worker: false`: the engine in its page); the worker can be killed while
// a tab types and nothing is lost; offline and back; a worker script that
// can't load, a CSP that refuses workers, or an older version still running
// in the origin's worker makes the repo run in the page, and status says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { killSharedWorkers, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();

/** A tab with a repo; `worker` undefined: the package's default. */
async function openTab(context, name, { worker, pkg = "/dist/index.js", repoName = "w" } = {}) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/^WebSocket connection to .* failed/.test(message.text())) {
      console.error(`[${name}] console.error: ${message.text()}`);
    }
  });
  await page.goto(`${env.site.url}/`);
  await page.evaluate(
    async ({ relay, worker, pkg, repoName }) => {
      const { createRepo } = await import(pkg);
      window.errors = [];
      window.repo = await createRepo({ relay, name: repoName, worker });
      window.repo.on("error", (e) => window.errors.push(`${e.code}: ${e.message}`));
    },
    { relay: relays.relay.wsUrl, worker, pkg, repoName },
  );
  return page;
}

const metric = async (name) => {
  const text = await (await fetch(`${relays.relay.httpUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
};

async function waitFor(check, what, timeout = TIMEOUT.sync) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const openDoc = (page, url) =>
  page.evaluate(async (url) => {
    window.doc = await window.repo.open(url);
  }, url);

const push = (page, item) =>
  page.evaluate((item) => {
    window.doc.change((d) => {
      d.items.push(item);
    });
  }, item);

const waitForItems = (page, expected, what) =>
  waitInPage(
    page,
    (expected) => window.doc && JSON.stringify([...window.doc.value.items].sort()) === JSON.stringify(expected),
    [...expected].sort(),
    TIMEOUT.sync,
    what,
  );

/** Three worker-mode tabs of `repoName` in `context`; the first creates a doc the others open. Returns the tabs and its URL. */
async function threeTabsOnOneDoc(context, repoName, initial) {
  const tabs = [];
  for (const name of ["a", "b", "c"]) tabs.push(await openTab(context, `${repoName}-${name}`, { repoName }));
  const url = await tabs[0].evaluate(async (initial) => {
    window.doc = await window.repo.create(initial);
    return window.doc.url;
  }, initial);
  await openDoc(tabs[1], url);
  await openDoc(tabs[2], url);
  return { tabs, url };
}

test("three tabs in worker mode share one relay connection; edits reach every tab and another browser", { timeout: 120_000 }, async () => {
  const context = await env.browser.newContext();
  const other = await env.browser.newContext();
  try {
    assert.equal(await metric("syncline_connections"), 0);
    const tabs = [await openTab(context, "tab-a"), await openTab(context, "tab-b"), await openTab(context, "tab-c")];
    for (const tab of tabs) assert.equal(await tab.evaluate(() => window.repo.status.mode), "worker");
    await waitFor(async () => (await metric("syncline_connections")) === 1, "one connection");
    const [a, b, c] = tabs;
    const url = await a.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["first"] });
      return window.doc.url;
    });
    await openDoc(b, url);
    await openDoc(c, url);
    for (const tab of tabs) await waitForItems(tab, ["first"], "the created doc in every tab");

    await Promise.all([push(a, "from a"), push(b, "from b"), push(c, "from c")]);
    const all = ["first", "from a", "from b", "from c"];
    for (const tab of tabs) await waitForItems(tab, all, "every tab's edit in every tab");
    assert.equal(await metric("syncline_connections"), 1, "still one connection for three tabs");
    // No wasm in the pages: the engine is the worker's.
    for (const tab of tabs) {
      assert.equal(await tab.evaluate(() => performance.getEntriesByType("resource").some((r) => r.name.endsWith(".wasm"))), false);
    }

    // Another browser (its own storage, in-page mode) gets everything through the relay, and its edits come back.
    const d = await openTab(other, "other", { worker: false });
    await openDoc(d, url);
    await waitForItems(d, all, "the edits in another browser");
    await push(d, "from d");
    for (const tab of tabs) await waitForItems(tab, [...all, "from d"], "another browser's edit in every tab");
    assert.equal(await metric("syncline_connections"), 2);

    // history(): synchronous in worker mode too, from the copy of the
    // history the worker keeps in each tab; view() needs the CRDT (async only).
    for (const tab of tabs) {
      await waitInPage(tab, () => window.doc.history().length === 5, undefined, TIMEOUT.sync, "the five changes in every tab's history()");
    }
    const seen = await b.evaluate(async () => {
      let code;
      try {
        window.doc.view(window.doc.heads());
      } catch (error) {
        code = error.code;
      }
      const sync = window.doc.history();
      const hashes = (entries) => entries.map((e) => e.hash).sort().join();
      const earlier = new Set();
      const causal = sync.every((e) => e.deps.every((dep) => earlier.has(dep)) && earlier.add(e.hash));
      const view = await window.doc.viewAsync(window.doc.heads());
      return {
        code,
        sameAsTheWorkers: hashes(sync) === hashes(await window.doc.historyAsync()),
        causal,
        view: JSON.stringify(view) === JSON.stringify(window.doc.value),
      };
    });
    assert.deepEqual(seen, { code: "Unsupported", sameAsTheWorkers: true, causal: true, view: true });
    // A tab that opens the doc has its whole history when open() resolves,
    // and a change made anywhere reaches it.
    const e = await openTab(context, "tab-e");
    assert.equal(await e.evaluate(async (url) => (window.doc = await window.repo.open(url)).history().length, url), 5);
    await c.evaluate(() => window.doc.change((d) => void d.items.push("from c again"), { message: "again" }));
    for (const tab of [...tabs, e]) {
      await waitInPage(tab, () => window.doc.history().at(-1)?.message === "again", undefined, TIMEOUT.sync, "the new change last in every tab's history()");
    }
    for (const tab of [...tabs, d, e]) assert.deepEqual(await tab.evaluate(() => window.errors), []);
  } finally {
    await context.close();
    await other.close();
  }
});

test("the worker killed while a tab types: another starts within 1 s and nothing is lost", { timeout: 180_000 }, async () => {
  const context = await env.browser.newContext();
  const other = await env.browser.newContext();
  try {
    const {
      tabs: [a, b, c],
      url,
    } = await threeTabsOnOneDoc(context, "kill", { items: [] });
    const COUNT = 300;
    // B types one item every 2 ms; every 25th change it awaits flush() and records what it covered.
    await b.evaluate((count) => {
      window.flushed = [];
      window.typing = (async () => {
        for (let i = 0; i < count; i++) {
          window.doc.change((d) => {
            d.items.push(`b${i}`);
          });
          if (i % 25 === 24) {
            await window.repo.flush();
            window.flushed.push(i);
          } else await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
    }, COUNT);
    await waitInPage(b, () => window.doc.value.items.length >= 60, undefined, TIMEOUT.sync, "typing under way");
    const killedAt = Date.now();
    assert.ok((await killSharedWorkers(env.browser)) >= 1, "a shared worker to kill");
    // A changes during the handoff too.
    await push(a, "a during handoff");
    await a.evaluate(() => window.repo.flush());
    const handoffMs = Date.now() - killedAt;
    await b.evaluate(() => window.typing);
    await b.evaluate(() => window.repo.flush());
    const expected = ["a during handoff", ...Array.from({ length: COUNT }, (_, i) => `b${i}`)];
    for (const tab of [a, b, c]) await waitForItems(tab, expected, "every change after the handoff");
    // Exactly once each.
    assert.equal(await c.evaluate(() => window.doc.value.items.length), expected.length);
    // The relay has them all: a fresh browser sees them.
    const d = await openTab(other, "k-d", { worker: false, repoName: "kill" });
    await openDoc(d, url);
    await waitForItems(d, expected, "everything at the relay");
    await waitFor(async () => (await metric("syncline_connections")) === 2, "one connection for the three tabs again, one for the other browser");
    console.log(`handoff: flush() across the worker's death resolved ${handoffMs} ms after the kill`);
    assert.ok(handoffMs < 1000, `the new worker took over within 1 s (took ${handoffMs} ms)`);
    for (const tab of [a, b, c, d]) assert.deepEqual(await tab.evaluate(() => window.errors), []);
  } finally {
    await context.close();
    await other.close();
  }
});

test("offline and back with three tabs in worker mode", { timeout: 120_000 }, async () => {
  const context = await env.browser.newContext();
  const other = await env.browser.newContext();
  try {
    const { tabs, url } = await threeTabsOnOneDoc(context, "off", { items: [] });
    const [a, b, c] = tabs;
    const d = await openTab(other, "o-d", { worker: false, repoName: "off" });
    await openDoc(d, url);
    // One switch: the tabs share one connection.
    await b.evaluate(() => window.repo.setOnline(false));
    for (const tab of tabs) await waitInPage(tab, () => window.repo.status.connection === "offline", undefined, TIMEOUT.offline, "offline in every tab");
    await Promise.all([push(a, "a offline"), push(b, "b offline"), push(c, "c offline"), push(d, "d online")]);
    for (const tab of tabs) await waitForItems(tab, ["a offline", "b offline", "c offline"], "offline edits between the tabs");
    await waitForItems(d, ["d online"], "the other browser alone");
    await b.evaluate(() => window.repo.setOnline(true));
    const all = ["a offline", "b offline", "c offline", "d online"];
    for (const tab of [...tabs, d]) await waitForItems(tab, all, "everything once back online");
    await waitInPage(a, () => window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "nothing pending");
  } finally {
    await context.close();
    await other.close();
  }
});

test("presence in worker mode: the app's tabs see each other; another browser sees the tab that set it last, then the one before", { timeout: 120_000 }, async () => {
  const context = await env.browser.newContext();
  const other = await env.browser.newContext();
  try {
    const a = await openTab(context, "pres-a", { repoName: "pres" });
    const b = await openTab(context, "pres-b", { repoName: "pres" });
    const url = await a.evaluate(async () => {
      window.doc = await window.repo.create({ items: [] });
      return window.doc.url;
    });
    await openDoc(b, url);
    const d = await openTab(other, "pres-d", { worker: false, repoName: "pres" });
    await openDoc(d, url);
    const states = (page) => page.evaluate(() => window.doc.presence.peers.map((p) => p.state.who).sort().join());
    const waitStates = (page, expected, what) =>
      waitInPage(page, (expected) => window.doc.presence.peers.map((p) => p.state.who).sort().join() === expected, expected, TIMEOUT.sync, what);

    await a.evaluate(() => window.doc.presence.set({ who: "a" }));
    await waitStates(b, "a", "b sees its sibling tab a");
    await waitStates(d, "a", "the other browser sees the app as a");
    await b.evaluate(() => window.doc.presence.set({ who: "b" }));
    await waitStates(a, "b", "a sees its sibling tab b");
    await waitStates(d, "b", "the other browser sees one peer for the app: the tab that set it last");
    assert.equal(await states(d), "b");
    // The tab the others see closes: they see the one set before it; its sibling sees it gone.
    await b.close();
    await waitStates(a, "", "b's presence gone from a");
    await waitStates(d, "a", "the other browser sees a again");
    for (const page of [a, d]) assert.deepEqual(await page.evaluate(() => window.errors), []);
  } finally {
    await context.close();
    await other.close();
  }
});

test("a Content-Security-Policy that refuses workers: the repo runs in the page and status says why", { timeout: 60_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${env.site.url}/csp.html`);
    const seen = await page.evaluate(async (relay) => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ relay, name: "csp" });
      const doc = await repo.create({ items: ["works"] });
      doc.change((d) => void d.items.push("still"));
      await repo.flush();
      return { status: repo.status, value: doc.value, history: doc.history().length };
    }, relays.relay.wsUrl);
    assert.equal(seen.status.mode, "page");
    assert.match(seen.status.warning, /worker/);
    assert.deepEqual(seen.value, { items: ["works", "still"] });
    assert.equal(seen.history, 2, "the in-page engine, with its synchronous CRDT calls");
  } finally {
    await context.close();
  }
});

test("a worker script that can't load: the repo runs in the page and status says why", { timeout: 60_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const page = await openTab(context, "fallback", { pkg: "/no-worker/index.js", repoName: "fallback" });
    const status = await page.evaluate(() => window.repo.status);
    assert.equal(status.mode, "page");
    assert.match(status.warning, /worker/);
    const value = await page.evaluate(async () => {
      const doc = await window.repo.create({ items: ["works"] });
      return doc.value;
    });
    assert.deepEqual(value, { items: ["works"] });
  } finally {
    await context.close();
  }
});

test("a tab of a newer deployment while an older one runs the origin's worker: it runs in the page, says why, and both tabs sync", { timeout: 60_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    env.site.setDeployedVersion("0.0.9");
    const old = await openTab(context, "old", { pkg: "/deploy/index.js", repoName: "deploy" });
    assert.equal(await old.evaluate(() => window.repo.status.mode), "worker");
    env.site.setDeployedVersion(undefined); // the files are updated in place; the old tab stays open
    const fresh = await openTab(context, "new", { pkg: "/deploy/index.js", repoName: "deploy" });
    const status = await fresh.evaluate(() => window.repo.status);
    assert.equal(status.mode, "page");
    assert.match(status.warning, /shared worker of its origin runs 0\.0\.9.*runs in this page instead/);
    const url = await fresh.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["new"] });
      return window.doc.url;
    });
    await openDoc(old, url);
    await waitForItems(old, ["new"], "the new tab's doc in the old tab");
    await push(old, "old");
    await waitForItems(fresh, ["new", "old"], "the old tab's edit in the new tab");
    for (const page of [old, fresh]) assert.deepEqual(await page.evaluate(() => window.errors), []);

    // The old tab closes. The new tab still owns the old worker (it started
    // it), but with no tab of its own the old worker ends itself after its
    // idle time (5 s), and the new tab, reloaded, gets a worker of its version.
    await old.close();
    const closedAt = Date.now();
    let mode;
    do {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await fresh.reload();
      mode = await fresh.evaluate(async () => {
        const { createRepo } = await import("/deploy/index.js");
        const repo = await createRepo({ name: "deploy" });
        const mode = repo.status.mode;
        repo.close();
        return mode;
      });
    } while (mode !== "worker" && Date.now() - closedAt < 20_000);
    assert.equal(mode, "worker", "the old worker ended; the reloaded tab runs the engine in a new one");
  } finally {
    env.site.setDeployedVersion(undefined);
    await context.close();
  }
});

test("an older build's worker (another script URL) still running: a new tab runs in its page within seconds, and in a worker once the old tab closed", { timeout: 60_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const old = await openTab(context, "old-build", { pkg: "/deploy/index.js", repoName: "builds" });
    assert.equal(await old.evaluate(() => window.repo.status.mode), "worker");
    // /dist/worker.js is another SharedWorker than /deploy/worker.js: it finds the engine lock held and refuses.
    const started = Date.now();
    const fresh = await openTab(context, "new-build", { repoName: "builds" });
    const status = await fresh.evaluate(() => window.repo.status);
    assert.equal(status.mode, "page");
    assert.match(status.warning, /another syncline worker of this origin is running.*runs in this page instead/);
    assert.ok(Date.now() - started < 10_000, `the fallback took ${Date.now() - started} ms`);
    const url = await fresh.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["new"] });
      return window.doc.url;
    });
    await openDoc(old, url);
    await waitForItems(old, ["new"], "the new tab's doc in the old build's tab");
    // The old build's tab closes: its worker has no owner left and ends; the next tab gets the new worker.
    await old.close();
    const later = await openTab(context, "new-build-2", { repoName: "builds" });
    assert.equal(await later.evaluate(() => window.repo.status.mode), "worker");
    await openDoc(later, url);
    await waitForItems(later, ["new"], "the doc in the new worker");
    for (const page of [fresh, later]) assert.deepEqual(await page.evaluate(() => window.errors), []);
  } finally {
    await context.close();
  }
});
