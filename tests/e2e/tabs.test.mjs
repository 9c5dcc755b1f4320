// Two tabs of one origin, with no relay at all: they share the encrypted
// IndexedDB log, see each other's changes over BroadcastChannel, converge,
// and only one of them at a time holds the compaction lock.
// The engine runs in each page (`worker: false`): this is how tabs meet without a worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();

async function openTab(context, name) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error.message}`));
  await page.goto(`${env.site.url}/`);
  await page.evaluate(async () => {
    const { createRepo } = await import("/dist/index.js");
    window.repo = await createRepo({ name: "tabs", worker: false }); // no relay
    window.errors = [];
    window.repo.on("error", (e) => window.errors.push(`${e.code}: ${e.message}`));
  });
  return page;
}

const push = (page, item) =>
  page.evaluate((item) => {
    window.doc.change((d) => {
      d.items.push(item);
    });
  }, item);

const itemsIn = (page) => page.evaluate(() => [...window.doc.value.items].sort());

const waitForItems = (page, expected, what) =>
  waitInPage(page, (expected) => JSON.stringify([...window.doc.value.items].sort()) === JSON.stringify(expected), [...expected].sort(), TIMEOUT.sync, what);

test("two tabs with no relay converge, and one tab at a time compacts", { timeout: 90_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const a = await openTab(context, "tab-a");
    const b = await openTab(context, "tab-b");
    // A makes the doc; B opens it from the shared log (it wasn't there when B loaded).
    const url = await a.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["first"] });
      await window.repo.flush();
      return window.doc.url;
    });
    await b.evaluate(async (url) => {
      window.doc = await window.repo.open(url);
    }, url);
    assert.deepEqual(await itemsIn(b), ["first"]);

    // Changes cross over BroadcastChannel, both ways, concurrently.
    await Promise.all([push(a, "from a"), push(b, "from b")]);
    const all = ["first", "from a", "from b"];
    await waitForItems(a, all, "b's change at a");
    await waitForItems(b, all, "a's change at b");
    await push(a, "later a");
    await waitForItems(b, [...all, "later a"], "a later change at b");

    for (const page of [a, b]) assert.deepEqual(await page.evaluate(() => window.errors), []);

    // Both tabs show the same version, and their heads say so: a view at a
    // tab's heads is exactly its value.
    const pinned = (page) =>
      page.evaluate(() => {
        const heads = window.doc.heads();
        return { heads: [...heads].sort(), same: JSON.stringify(window.doc.view(heads)) === JSON.stringify(window.doc.value) };
      });
    const [pinnedA, pinnedB] = [await pinned(a), await pinned(b)];
    assert.ok(pinnedA.same && pinnedB.same, "doc.view(doc.heads()) is doc.value");
    assert.ok(pinnedA.heads.length > 0);
    assert.deepEqual(pinnedA.heads, pinnedB.heads, "one version, the same heads");

    // After a reload, B loads everything from the shared log.
    await b.evaluate(() => window.repo.flush());
    await b.reload();
    await b.evaluate(async (url) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ name: "tabs", worker: false });
      window.doc = await window.repo.open(url);
    }, url);
    assert.deepEqual(await itemsIn(b), [...all, "later a"].sort());

    // One compaction lock for the repo, held by one tab; it passes on when that tab closes.
    const held = (page) => page.evaluate(async () => (await navigator.locks.query()).held.filter((l) => l.name === "syncline-compact:tabs").length);
    assert.equal(await held(b), 1, "exactly one tab holds the compaction lock");
    await a.close();
    await waitInPage(
      b,
      async () => (await navigator.locks.query()).held.some((l) => l.name === "syncline-compact:tabs"),
      undefined,
      TIMEOUT.sync,
      "the lock to pass to the remaining tab",
    );
  } finally {
    await context.close();
  }
});
