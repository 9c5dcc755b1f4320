// Where the storage key comes from: a device key kept by the browser (the
// default), a passphrase, or the app's own 32 bytes. Each must reopen its
// data after a reload, and a wrong passphrase or key must fail with WrongKey
// before anything is read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

/** Opens a repo with `options` in the page, makes or reopens a doc, returns its value or the error code. */
function session(page, options, url) {
  return page.evaluate(
    async ({ options, url }) => {
      const { createRepo } = await import("/dist/index.js");
      if (options.key) options.key = new Uint8Array(options.key);
      try {
        const repo = await createRepo(options);
        const doc = url ? await repo.open(url) : await repo.create({ note: "kept" });
        await repo.flush();
        const result = { url: doc.url, value: doc.value };
        repo.close();
        return result;
      } catch (error) {
        return { code: error.code, message: error.message };
      }
    },
    { options, url },
  );
}

test("each key source reopens its data after a reload; a wrong one fails with WrongKey", { timeout: 120_000 }, async () => {
  const { page } = await newPage(env.browser, "keys");
  await page.goto(`${env.site.url}/`);
  const cases = [
    { name: "device", good: { name: "device" }, bad: null },
    { name: "pass", good: { name: "pass", passphrase: "correct horse" }, bad: { name: "pass", passphrase: "wrong horse" } },
    { name: "app", good: { name: "app", key: Array(32).fill(3) }, bad: { name: "app", key: Array(32).fill(4) } },
  ];
  for (const c of cases) {
    const made = await session(page, c.good);
    assert.equal(made.code, undefined, `${c.name}: ${made.message}`);
    await page.reload();
    const reopened = await session(page, c.good, made.url);
    assert.deepEqual(reopened.value, { note: "kept" }, `${c.name} reopens its data`);
    if (c.bad) {
      const refused = await session(page, c.bad, made.url);
      assert.equal(refused.code, "WrongKey", `${c.name}: ${JSON.stringify(refused)}`);
    }
  }
  // The device key is not extractable: the page can't read the wrapping key out.
  const exportable = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const open = indexedDB.open("syncline-keys");
        open.onsuccess = () => {
          const get = open.result.transaction("keys").objectStore("keys").get("device:device");
          get.onsuccess = () => resolve(get.result.wrappingKey.extractable);
        };
      }),
  );
  assert.equal(exportable, false);
});

test("persistent storage is requested and the browser's answer is in repo.status", { timeout: 60_000 }, async () => {
  const { page } = await newPage(env.browser, "persist");
  await page.goto(`${env.site.url}/`);
  await page.evaluate(async () => {
    const { createRepo } = await import("/dist/index.js");
    window.repo = await createRepo({ name: "persist" });
  });
  await page.waitForFunction(() => window.repo.status.persisted !== undefined, null, { timeout: 10_000 });
  const [reported, actual] = await page.evaluate(async () => [window.repo.status.persisted, await navigator.storage.persisted()]);
  assert.equal(typeof reported, "boolean");
  assert.equal(reported, actual, "status.persisted is what the browser says");
});
