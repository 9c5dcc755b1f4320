// Schema versions (`repo.open(url, { schema: { version, migrations } })`)
// in Chromium against the real relay: two browsers migrate the same old
// document at the same time while offline, then sync, and each migration
// happened once (one list push per step, one change per step in history,
// at a third browser too); a stale copy opened online waits for the relay
// rather than migrate again what another browser migrated; a document newer than the app's schema opens
// read-only with "SchemaTooNew"; a created document records its version
// and a reload does not migrate it again. The offline test runs in the
// page and in worker mode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, newPage, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relayEnv = useRelay();

async function repoPage(name, { worker = false } = {}) {
  const { context, page } = await newPage(env.browser, name);
  await page.goto(`${env.site.url}/`);
  await openRepo(page, worker);
  return { context, page };
}

function openRepo(page, worker = false) {
  return page.evaluate(
    async ({ relay, worker }) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name: "schema", worker });
      window.errors = [];
      window.repo.on("error", (error) => window.errors.push(error.code));
      // The app's schema, version 2: each step pushes its name (so a step run twice shows twice).
      window.schema = (version) => ({
        version,
        migrations: [(d) => void d.items.push("to-1"), (d) => void d.items.push("to-2")].slice(0, version),
      });
    },
    { relay: relayEnv.relay.wsUrl, worker },
  );
}

const synced = (page) =>
  waitInPage(page, () => window.repo.status.connection === "open" && window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "every change acknowledged");

for (const worker of [false, true]) {
  test(`two browsers migrating the same old document offline at the same time apply each step once (${worker ? "worker mode" : "in the page"})`, { timeout: 180_000 }, async () => {
    const a = await repoPage(worker ? "a-worker" : "a", { worker });
    const b = await repoPage(worker ? "b-worker" : "b", { worker });
    const c = await repoPage("c");
    try {
      for (const { page } of [a, b]) assert.equal(await page.evaluate(() => window.repo.status.mode ?? "page"), worker ? "worker" : "page");
      // An old document (version 0: no schema recorded), on both.
      const url = await a.page.evaluate(async () => (window.doc = await window.repo.create({ items: ["old"] })).url);
      await synced(a.page);
      await b.page.evaluate(async (url) => void (window.doc = await window.repo.open(url)), url);
      for (const { page } of [a, b]) await page.evaluate(() => window.repo.setOnline(false));

      // Both open it with the app's schema at the same moment, offline.
      const migrated = await Promise.all(
        [a, b].map(({ page }) =>
          page.evaluate(async (url) => {
            const doc = await window.repo.open(url, { schema: window.schema(2) });
            await window.repo.flush();
            return doc.value;
          }, url),
        ),
      );
      for (const value of migrated) assert.deepEqual(value, { items: ["old", "to-1", "to-2"], "syncline:schema": 2 });

      for (const { page } of [a, b]) await page.evaluate(() => window.repo.setOnline(true));
      await Promise.all([synced(a.page), synced(b.page)]);
      const seen = await c.page.evaluate(async (url) => {
        const doc = await window.repo.open(url);
        return { value: doc.value, messages: doc.history().map((e) => e.message) };
      }, url);
      const expected = { items: ["old", "to-1", "to-2"], "syncline:schema": 2 };
      assert.deepEqual(seen.value, expected, "each step once, at the relay");
      assert.deepEqual(seen.messages.filter((m) => m?.startsWith("syncline.schema")), ["syncline.schema 0->1", "syncline.schema 1->2"]);
      for (const { page } of [a, b]) {
        await waitInPage(page, (want) => JSON.stringify(window.doc.value) === want, JSON.stringify(expected), TIMEOUT.sync, "the merged value");
        assert.equal(await page.evaluate(async () => (await window.doc.historyAsync()).length), seen.messages.length, "no duplicate change here either");
      }
    } finally {
      await Promise.all([a, b, c].map(({ context }) => context.close()));
    }
  });
}

test("a stale copy opened online waits for the relay and does not migrate again what another browser migrated", { timeout: 120_000 }, async () => {
  const a = await repoPage("migrator");
  const b = await repoPage("stale");
  try {
    const url = await a.page.evaluate(async () => (window.doc = await window.repo.create({ items: ["old"] })).url);
    await synced(a.page);
    await b.page.evaluate(async (url) => {
      await window.repo.open(url);
      await window.repo.flush();
      window.repo.setOnline(false);
    }, url);
    // Meanwhile A edits, then migrates (from heads B's copy lacks).
    await a.page.evaluate(async (url) => {
      window.doc.change((d) => void d.items.push("a-edit"));
      await window.repo.open(url, { schema: window.schema(2) });
    }, url);
    await synced(a.page);
    // B comes back with its stale copy in IndexedDB and opens it with the schema at once.
    await b.page.reload();
    await openRepo(b.page);
    const value = await b.page.evaluate(async (url) => {
      const doc = await window.repo.open(url, { schema: window.schema(2) });
      return doc.value;
    }, url);
    assert.deepEqual(value, { items: ["old", "a-edit", "to-1", "to-2"], "syncline:schema": 2 }, "A's migration, once");
    await synced(b.page);
  } finally {
    await Promise.all([a, b].map(({ context }) => context.close()));
  }
});

test("a newer document opens read-only with SchemaTooNew; a created one records its version and is not migrated again after a reload", { timeout: 120_000 }, async () => {
  const a = await repoPage("creator");
  const old = await repoPage("old-app");
  try {
    const url = await a.page.evaluate(async () => {
      window.doc = await window.repo.create({ items: [] }, { schema: window.schema(2) });
      return window.doc.url;
    });
    assert.deepEqual(await a.page.evaluate(() => window.doc.value), { items: [], "syncline:schema": 2 }, "created at the app's version");
    await synced(a.page);

    // An app of schema version 1 meets it.
    const result = await old.page.evaluate(async (url) => {
      const doc = await window.repo.open(url, { schema: window.schema(1) });
      let code;
      try {
        doc.change((d) => void d.items.push("from the old app"));
      } catch (error) {
        code = error.code;
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
      return { code, value: doc.value, errors: window.errors, status: { ...window.repo.status } };
    }, url);
    assert.equal(result.code, "SchemaTooNew");
    assert.deepEqual(result.value, { items: [], "syncline:schema": 2 }, "readable, unchanged");
    assert.deepEqual(result.errors, ["SchemaTooNew"], "the repo's error listeners heard it");
    assert.equal(result.status.unsaved + result.status.pending, 0, "nothing written");

    // The creator reloads and opens with the same schema: nothing to migrate.
    await a.page.reload();
    await openRepo(a.page);
    const after = await a.page.evaluate(async (url) => {
      const doc = await window.repo.open(url, { schema: window.schema(2) });
      return { value: doc.value, changes: doc.history().length, status: { ...window.repo.status } };
    }, url);
    assert.deepEqual(after.value, { items: [], "syncline:schema": 2 });
    assert.equal(after.changes, 1, "only the create");
    assert.equal(after.status.unsaved + after.status.pending, 0);
  } finally {
    await Promise.all([a, old].map(({ context }) => context.close()));
  }
});

test("a bad schema is BadOption", { timeout: 60_000 }, async () => {
  const page = await repoPage("bad-schema");
  try {
    const codes = await page.page.evaluate(async () => {
      const doc = await window.repo.create({ items: [] });
      const out = [];
      for (const schema of [{ version: -1, migrations: [] }, { version: 2, migrations: [() => {}] }, null]) {
        try {
          await window.repo.open(doc.url, { schema });
          out.push("opened");
        } catch (error) {
          out.push(error.code);
        }
      }
      return out;
    });
    assert.deepEqual(codes, ["BadOption", "BadOption", "BadOption"]);
  } finally {
    await page.context.close();
  }
});
