// Export and import, with no lock-in: a document made in Chromium is
// exported (`repo.export`), loaded in Node by `@automerge/automerge` 3.x,
// changed there and saved, then imported (`repo.import`) into another
// browser — in worker mode — as a new document that syncs through the real
// relay to a third browser with its whole history; exporting that one and
// loading it in Node gives the same change hashes. Bad bytes and values
// Syncline does not support are rejected with code "BadImport", in both
// modes, and create nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as Automerge from "@automerge/automerge";
import { TIMEOUT, newPage, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relayEnv = useRelay();

async function repoPage(name, worker) {
  const { page } = await newPage(env.browser, name);
  await page.goto(`${env.site.url}/`);
  await page.evaluate(
    async ({ relay, worker }) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name: "export-import", worker });
    },
    { relay: relayEnv.relay.wsUrl, worker },
  );
  assert.equal((await page.evaluate(() => window.repo.status.mode)) ?? "page", worker ? "worker" : "page");
  return page;
}

const synced = (page) =>
  waitInPage(page, () => window.repo.status.connection === "open" && window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "every change acknowledged");

/** `repo.export(url)` in the page, as bytes in Node. */
async function exportFrom(page, url) {
  return Uint8Array.from(await page.evaluate(async (url) => Array.from(await window.repo.export(url)), url));
}

/**
 * `Automerge.toJS`, with scalar strings as strings: Syncline writes a plain
 * string as an Automerge scalar string, which `@automerge/automerge` 3
 * shows as an `ImmutableString` (its `Text`, an Automerge text, is a string).
 */
function plain(value) {
  if (Automerge.isImmutableString(value)) return value.toString();
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

const sortedHashes = (doc) => Automerge.getAllChanges(doc).map((c) => Automerge.decodeChange(c).hash).sort();

test("an export loads in @automerge/automerge, changed there it imports back (worker mode) and syncs with its history", { timeout: 180_000 }, async () => {
  const a = await repoPage("a", false);
  const b = await repoPage("b-worker", true);
  const c = await repoPage("c", false);
  try {
    const url = await a.evaluate(async () => {
      const doc = await window.repo.create({ items: ["milk"], title: "groceries" });
      doc.change((d) => d.items.push("bread"), { message: "todo.added" });
      return doc.url;
    });
    await synced(a);

    // Out: standard Automerge bytes, read by Automerge itself.
    let outside = Automerge.load(await exportFrom(a, url));
    assert.deepEqual(plain(Automerge.toJS(outside)), { items: ["milk", "bread"], title: "groceries" });
    const exportedChanges = Automerge.getAllChanges(outside).length;
    assert.ok(exportedChanges >= 2, "the history came along");
    assert.ok(
      Automerge.getHistory(outside).some(({ change }) => change.message === "todo.added"),
      "messages are Automerge change messages",
    );

    // Changed outside Syncline (a counter and a text, too), saved, imported back in worker mode.
    outside = Automerge.change(outside, "outside", (d) => {
      d.items.push("eggs");
      d.likes = new Automerge.Counter(2);
      d.note = "written in node";
    });
    const saved = Automerge.save(outside);
    const imported = await b.evaluate(async (bytes) => {
      const doc = await window.repo.import(new Uint8Array(bytes));
      const value = doc.value;
      doc.change((d) => d.items.push("after import"));
      return { url: doc.url, value };
    }, Array.from(saved));
    assert.notEqual(imported.url, url, "an import is a new document");
    assert.deepEqual(imported.value, { items: ["milk", "bread", "eggs"], title: "groceries", likes: 2, note: "written in node" });
    await synced(b);

    // A third browser gets it from the relay, history and all.
    const seen = await c.evaluate(async (url) => {
      const doc = await window.repo.open(url);
      return { value: doc.value, history: doc.history().map((e) => e.message) };
    }, imported.url);
    assert.deepEqual(seen.value.items, ["milk", "bread", "eggs", "after import"]);
    assert.equal(seen.history.length, exportedChanges + 2, "every imported change, then the new one");
    assert.ok(seen.history.includes("todo.added") && seen.history.includes("outside"));

    // And out again, from worker mode: the same changes, by hash, as Automerge made them.
    const again = Automerge.load(await exportFrom(b, imported.url));
    const outsideHashes = sortedHashes(outside);
    const againHashes = sortedHashes(again);
    assert.equal(againHashes.length, outsideHashes.length + 1);
    for (const hash of outsideHashes) assert.ok(againHashes.includes(hash), `change ${hash} kept its hash`);
    assert.deepEqual(plain(Automerge.toJS(again)).items, ["milk", "bread", "eggs", "after import"]);
  } finally {
    await Promise.all([a, b, c].map((page) => page.context().close()));
  }
});

test("bad bytes and unsupported values are rejected with BadImport and create nothing, in both modes", { timeout: 120_000 }, async () => {
  const withDate = Automerge.save(Automerge.from({ when: new Date(0) }));
  const withBytes = Automerge.save(Automerge.from({ blob: new Uint8Array([1, 2]) }));
  for (const worker of [false, true]) {
    const page = await repoPage(worker ? "bad-worker" : "bad-page", worker);
    try {
      const results = await page.evaluate(
        async (inputs) => {
          const out = [];
          for (const bytes of inputs) {
            try {
              await window.repo.import(bytes === null ? "not bytes" : new Uint8Array(bytes));
              out.push("imported");
            } catch (error) {
              out.push(`${error.code}: ${error.message}`);
            }
          }
          await window.repo.flush();
          const db = await new Promise((resolve, reject) => {
            const request = indexedDB.open("syncline:export-import");
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          const docs = await new Promise((resolve, reject) => {
            const request = db.transaction("docs", "readonly").objectStore("docs").count();
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          db.close();
          out.push(docs);
          return out;
        },
        [[1, 2, 3], Array.from(withDate), Array.from(withBytes), null],
      );
      assert.match(results[0], /^BadImport: .*not an Automerge document/);
      assert.match(results[1], /^BadImport: .*`\/when`.*timestamp/);
      assert.match(results[2], /^BadImport: .*`\/blob`.*bytes/);
      assert.match(results[3], /^BadImport: .*Uint8Array/);
      assert.equal(results[4], 0, "no document record in IndexedDB");
    } finally {
      await page.context().close();
    }
  }
});
