// `repo.delete(url)` on the real IndexedDB, with two tabs of one origin and a
// relay: after the delete resolves the document's records are gone from the
// repo's database (read from the page with the IndexedDB API, every object
// store, by record key), another document's are not; the other tab, which
// had the document open, forgets it too (its handle answers DocNotFound)
// and does not write it back; opening the URL again fetches it from the
// relay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relayEnv = useRelay();
const NAME = "delete";

async function openTab(context, name) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error.message}`));
  await page.goto(`${env.site.url}/`);
  await page.evaluate(
    async ({ relay, name }) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name });
    },
    { relay: relayEnv.relay.wsUrl, name: NAME },
  );
  return page;
}

/** The document id of a `syncline:<id>#<key>` URL. */
const docId = (url) => url.slice("syncline:".length, url.indexOf("#"));

/**
 * Every record key of the repo's IndexedDB database that contains `id`,
 * as "store/key", read in the page straight from IndexedDB.
 */
function recordsOf(page, id) {
  return page.evaluate(
    async ({ name, id }) => {
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open(`syncline:${name}`);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      try {
        const found = [];
        for (const store of db.objectStoreNames) {
          const keys = await new Promise((resolve, reject) => {
            const request = db.transaction(store, "readonly").objectStore(store).getAllKeys();
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          for (const key of keys) if (String(key).includes(id)) found.push(`${store}/${key}`);
        }
        return found;
      } finally {
        db.close();
      }
    },
    { name: NAME, id },
  );
}

const waitSynced = (page) =>
  waitInPage(page, () => window.repo.status.connection === "open" && window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "all changes acknowledged");

test("repo.delete removes the records from IndexedDB, the other tab forgets the doc, reopening fetches it from the relay", { timeout: 120_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const a = await openTab(context, "tab-a");
    const b = await openTab(context, "tab-b");
    const { url, otherUrl } = await a.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["on the relay"] });
      window.other = await window.repo.create({ items: ["kept"] });
      await window.repo.flush();
      return { url: window.doc.url, otherUrl: window.other.url };
    });
    await waitSynced(a);
    await b.evaluate(async (url) => {
      window.doc = await window.repo.open(url);
    }, url);
    await waitInPage(b, () => window.doc.value.items?.[0] === "on the relay", undefined, TIMEOUT.sync, "tab B to show the document");

    const before = await recordsOf(a, docId(url));
    assert.ok(before.some((k) => k.startsWith("entries/")) && before.some((k) => k.startsWith("docs/")), `records before: ${before}`);
    const otherBefore = await recordsOf(a, docId(otherUrl));
    assert.ok(otherBefore.length > 0);

    await a.evaluate((url) => window.repo.delete(url), url);
    assert.deepEqual(await recordsOf(a, docId(url)), [], "no record of the deleted document is left in IndexedDB");
    const otherDoc = otherBefore.find((k) => k.startsWith("docs/"));
    assert.ok((await recordsOf(a, docId(otherUrl))).includes(otherDoc), "the other document is still stored");

    // Tab B forgets it: its handle no longer reaches the engine.
    await waitInPage(
      b,
      () => {
        try {
          window.doc.heads();
          return false;
        } catch (error) {
          return error.code === "DocNotFound";
        }
      },
      undefined,
      TIMEOUT.sync,
      "tab B to forget the deleted document",
    );
    // B keeps writing (another document): it never writes the deleted one back.
    await b.evaluate(async (otherUrl) => {
      const other = await window.repo.open(otherUrl);
      other.change((d) => {
        d.items.push("from B");
      });
      await window.repo.flush();
    }, otherUrl);
    assert.deepEqual(await recordsOf(b, docId(url)), [], "tab B wrote nothing of it back");

    // Opening the URL again: nothing local, so the value comes from the relay.
    const reopened = await a.evaluate(async (url) => {
      const doc = await window.repo.open(url);
      return [...doc.value.items];
    }, url);
    assert.deepEqual(reopened, ["on the relay"]);
    await a.evaluate(() => window.repo.flush());
    assert.ok((await recordsOf(a, docId(url))).length > 0, "fetched again, it is stored again");
  } finally {
    await context.close();
  }
});
