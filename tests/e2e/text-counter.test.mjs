// Collaborative text and counters through the real engine and relay: two
// browsers edit the same text and bump the same counter while offline, and
// both edits survive the merge (a plain string or number would keep one).
// Default mode (the engine in each browser's SharedWorker); "offline" is
// `repo.setOnline(false)`, which reaches the engine wherever it runs
// (Playwright's `context.setOffline` does not cut a SharedWorker's socket).
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { createRepoIn, openDocIn, waitForConnection, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();
const waitSynced = (page) => waitForConnection(page, "synced", TIMEOUT.sync);

test("concurrent text splices and counter increments from two offline browsers all apply", { timeout: 90_000 }, async () => {
  const a = await newPage(env.browser, "a");
  const b = await newPage(env.browser, "b");
  try {
    for (const { page } of [a, b]) {
      await page.goto(`${env.site.url}/`);
      await createRepoIn(page, relays.relay.wsUrl);
    }
    const url = await a.page.evaluate(async () => {
      const { Counter, Text } = await import("/dist/index.js");
      window.doc = await window.repo.create({ items: [] });
      window.doc.change((d) => {
        d.note = new Text("hello");
        d.likes = new Counter();
      });
      return window.doc.url;
    });
    await waitSynced(a.page);
    await openDocIn(b.page, url);
    await waitInPage(b.page, () => window.doc.value.note === "hello", undefined, TIMEOUT.sync, "the note at b");

    await a.page.evaluate(() => window.repo.setOnline(false));
    await b.page.evaluate(() => window.repo.setOnline(false));
    const edit = (page, at, text, by) =>
      page.evaluate(
        async ({ at, text, by }) => {
          const { increment, splice } = await import("/dist/index.js");
          window.doc.change((d) => {
            splice(d, "note", at === "end" ? d.note.length : 0, 0, text);
            increment(d, "likes", by);
          });
          await window.repo.flush();
          return window.doc.value;
        },
        { at, text, by },
      );
    assert.deepEqual(await edit(a.page, "end", " world", 1), { items: [], note: "hello world", likes: 1 });
    assert.deepEqual(await edit(b.page, "start", "Oh, ", 2), { items: [], note: "Oh, hello", likes: 2 });

    await a.page.evaluate(() => window.repo.setOnline(true));
    await b.page.evaluate(() => window.repo.setOnline(true));
    for (const { page } of [a, b]) {
      await waitInPage(
        page,
        () => window.doc.value.note === "Oh, hello world" && window.doc.value.likes === 3,
        undefined,
        TIMEOUT.sync,
        "both edits merged",
      );
    }
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
