// `createRepo({ durability })`: the log's IndexedDB write transactions are
// opened with that durability hint, as the browser itself reports it on
// each transaction (`IDBTransaction.durability`). The page records every
// read-write transaction its repos open before the repo is created.
// The engine runs in the page (`worker: false`): the hooks are on the page's IndexedDB.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

test("durability: strict, relaxed and the default reach IndexedDB's write transactions", { timeout: 60_000 }, async () => {
  const { page } = await newPage(env.browser, "durability");
  await page.goto(`${env.site.url}/`);
  const seen = await page.evaluate(async () => {
    const opened = [];
    const native = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (...args) {
      const tx = native.apply(this, args);
      if (tx.mode === "readwrite") opened.push({ db: this.name, durability: tx.durability });
      return tx;
    };
    const { createRepo } = await import("/dist/index.js");
    const seen = {};
    for (const durability of ["strict", "relaxed", undefined]) {
      const name = `durability-${durability ?? "unset"}`;
      const repo = await createRepo({ name, durability, worker: false });
      const doc = await repo.create({ n: 0 });
      doc.change((d) => {
        d.n = 1;
      });
      await repo.flush();
      repo.close();
      seen[name] = [...new Set(opened.filter((o) => o.db === `syncline:${name}`).map((o) => o.durability))];
    }
    let refused;
    try {
      await createRepo({ name: "durability-bad", durability: "sometimes" });
    } catch (error) {
      refused = error.code;
    }
    return { seen, refused };
  });
  assert.deepEqual(seen.seen["durability-strict"], ["strict"]);
  assert.deepEqual(seen.seen["durability-relaxed"], ["relaxed"]);
  assert.deepEqual(seen.seen["durability-unset"], ["default"]);
  assert.equal(seen.refused, "BadOption");
});
