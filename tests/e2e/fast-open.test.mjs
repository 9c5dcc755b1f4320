// Fast open through the real engine, relay and browser: a compacted
// document opens from its stored value (text and counter included, the
// same value a full load gives), then its CRDT loads and nothing that
// arrives meanwhile is lost — a relay change made while this replica was
// away, another tab's change, a change made right after open.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { createRepoIn, openDocIn, waitForConnection, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();
const waitSynced = (page) => waitForConnection(page, "synced", TIMEOUT.sync);

/** Makes a doc with a map, list, text and counter, big enough (> 1,024 operations) to be compacted at once. */
const createCompacted = (page) =>
  page.evaluate(async () => {
    const { Counter, Text } = await import("/dist/index.js");
    window.doc = await window.repo.create({ items: ["first"], meta: { n: 1.5, ok: true } });
    window.doc.change((d) => {
      d.note = new Text("hé🌍 " + "x".repeat(1_100));
      d.likes = new Counter(40);
      d.items.push({ nested: [null, "y"] });
    });
    await window.repo.flush();
    return { url: window.doc.url, value: window.doc.value };
  });

test("a compacted doc opens with its full value; a relay change made meanwhile still arrives; edits go on", { timeout: 120_000 }, async () => {
  const a = await newPage(env.browser, "a");
  const b = await newPage(env.browser, "b");
  try {
    await a.page.goto(`${env.site.url}/`);
    await createRepoIn(a.page, relays.relay.wsUrl);
    const { url, value } = await createCompacted(a.page);
    assert.equal(value.likes, 40);
    await waitSynced(a.page);

    // While a is away, b changes the doc through the relay.
    await a.page.goto("about:blank");
    await b.page.goto(`${env.site.url}/`);
    await createRepoIn(b.page, relays.relay.wsUrl);
    await openDocIn(b.page, url);
    await b.page.evaluate(async () => {
      const { increment } = await import("/dist/index.js");
      window.doc.change((d) => {
        d.items.push("from b");
        increment(d, "likes", 2);
      });
    });
    await waitSynced(b.page);

    // a reopens: the value it had (b's change comes through the relay once
    // the CRDT is loaded and subscribed), then b's change, then its own.
    await a.page.goto(`${env.site.url}/`);
    const opened = await a.page.evaluate(async ({ url, relay }) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name: "e2e" });
      window.doc = await window.repo.open(url);
      window.seen = [];
      window.doc.subscribe((v) => window.seen.push(v.items.length));
      return window.doc.value;
    }, { url, relay: relays.relay.wsUrl });
    assert.deepEqual(opened, value, "the stored value: text as a string, counter as a number");
    await waitInPage(a.page, () => window.doc.value.items.includes("from b") && window.doc.value.likes === 42, undefined, TIMEOUT.sync, "b's change at a");
    await a.page.evaluate(() =>
      window.doc.change((d) => {
        d.items.push("from a");
      }),
    );
    await waitInPage(b.page, () => window.doc.value.items.includes("from a"), undefined, TIMEOUT.sync, "a's change at b");
    assert.deepEqual(await a.page.evaluate(() => window.doc.value), await b.page.evaluate(() => window.doc.value));
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test("tabs: a change made right after open survives a reload, and another tab's change during the load arrives", { timeout: 120_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const openTab = async () => {
      const page = await context.newPage();
      await page.goto(`${env.site.url}/`);
      await page.evaluate(async () => {
        const { createRepo } = await import("/dist/index.js");
        window.repo = await createRepo({ name: "fast-tabs" });
        window.errors = [];
        window.repo.on("error", (e) => window.errors.push(`${e.code}: ${e.message}`));
      });
      return page;
    };
    const a = await openTab();
    const { url } = await createCompacted(a);

    // b starts with the doc deferred; a's change reaches it before b opens it.
    const b = await openTab();
    await a.evaluate(() =>
      window.doc.change((d) => {
        d.items.push("from a");
      }),
    );
    await b.evaluate(async (url) => {
      window.doc = await window.repo.open(url);
    }, url);
    await waitInPage(b, () => window.doc.value.items.includes("from a"), undefined, TIMEOUT.sync, "a's change at b");

    // A change right after open (before the CRDT loads) is applied at once
    // and durable by flush().
    await a.evaluate(() => window.repo.flush());
    await a.reload();
    const after = await a.evaluate(async (url) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ name: "fast-tabs" });
      window.doc = await window.repo.open(url);
      const calls = [];
      window.doc.subscribe((v) => calls.push(v.items.length));
      const patches = window.doc.change((d) => {
        d.items.push("right after open");
      });
      const now = window.doc.value.items.at(-1);
      await window.repo.flush();
      return { now, calls, patches: patches.length };
    }, url);
    assert.equal(after.now, "right after open", "applied at once");
    assert.equal(after.calls.length, 2, "subscribe: the value, then one call for the change");
    assert.equal(after.patches, 1);
    await waitInPage(b, () => window.doc.value.items.includes("right after open"), undefined, TIMEOUT.sync, "the change at b");
    await a.reload();
    const reloaded = await a.evaluate(async (url) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ name: "fast-tabs" });
      return (await window.repo.open(url)).value.items;
    }, url);
    assert.deepEqual(reloaded.slice(-2), ["from a", "right after open"]);
    for (const page of [a, b]) assert.deepEqual(await page.evaluate(() => window.errors ?? []), []);
  } finally {
    await context.close();
  }
});

test("worker mode: a fresh worker hands out the stored value before loading the CRDT; a change made at once and a relay change made meanwhile both land", { timeout: 120_000 }, async () => {
  const a = await newPage(env.browser, "fast-worker-a");
  const b = await newPage(env.browser, "fast-worker-b");
  try {
    // Made in the page (no worker runs in this context afterwards).
    await a.page.goto(`${env.site.url}/`);
    await createRepoIn(a.page, relays.relay.wsUrl);
    const { url, value } = await createCompacted(a.page);
    await waitSynced(a.page);
    await a.page.goto("about:blank");
    await b.page.goto(`${env.site.url}/`);
    await createRepoIn(b.page, relays.relay.wsUrl);
    await openDocIn(b.page, url);
    await b.page.evaluate(() => window.doc.change((d) => void d.items.push("from b")));
    await waitSynced(b.page);

    await a.page.goto(`${env.site.url}/`);
    const opened = await a.page.evaluate(async ({ url, relay }) => {
      const { createRepo, splice } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name: "e2e", worker: true });
      if (window.repo.status.mode !== "worker") throw new Error(`not in a worker: ${window.repo.status.warning}`);
      window.doc = await window.repo.open(url);
      const value = window.doc.value;
      const heads = window.doc.heads();
      // An index-sensitive edit against the stored value, before the load.
      window.doc.change((d) => {
        splice(d, "note", 1, 0, "ABC");
        d.items.push("from a");
      });
      return { value, heads };
    }, { url, relay: relays.relay.wsUrl });
    assert.deepEqual(opened.value, value, "the stored value");
    assert.deepEqual(opened.heads, [], "handed out before the worker loaded the CRDT (heads not known yet)");
    await waitInPage(a.page, () => window.doc.heads().length > 0, undefined, TIMEOUT.sync, "the heads once loaded");
    for (const page of [a.page, b.page]) {
      await waitInPage(page, () => ["from b", "from a"].every((x) => window.doc.value.items.includes(x)), undefined, TIMEOUT.sync, "both changes");
    }
    const [va, vb] = await Promise.all([a.page.evaluate(() => window.doc.value), b.page.evaluate(() => window.doc.value)]);
    assert.deepEqual(va, vb);
    assert.ok(va.note.startsWith("hABCé🌍 x"), va.note.slice(0, 12));
    // The tab's history() (the worker's copy, sent once the CRDT loaded) is the page-mode tab's.
    const hashes = (page) => page.evaluate(() => window.doc.history().map((e) => e.hash).sort().join());
    await waitInPage(a.page, (n) => window.doc.history().length === n, await b.page.evaluate(() => window.doc.history().length), TIMEOUT.sync, "a's history");
    assert.equal(await hashes(a.page), await hashes(b.page));
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
