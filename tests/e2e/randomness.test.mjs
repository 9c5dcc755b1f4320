// The browser's CSPRNG failing (`crypto.getRandomValues` throwing): storage
// writes need fresh nonces, so they fail with a typed `NoRandomness` error
// and write nothing, instead of sealing with made-up bytes; once randomness
// is back the same changes are written, and survive a reload.
// The engine runs in the page (`worker: false`): the page's crypto is what the test takes away.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

test("no randomness: flush() rejects with NoRandomness, nothing is written, then everything is", { timeout: 60_000 }, async () => {
  const { page } = await newPage(env.browser, "randomness");
  await page.goto(`${env.site.url}/`);
  const failed = await page.evaluate(async () => {
    const { createRepo } = await import("/dist/index.js");
    window.repo = await createRepo({ name: "randomness", worker: false });
    window.doc = await window.repo.create({ items: [] });
    await window.repo.flush();
    window.url = window.doc.url;
    const native = Crypto.prototype.getRandomValues;
    let calls = 0;
    crypto.getRandomValues = () => {
      calls++;
      throw new Error("the CSPRNG is unavailable");
    };
    window.doc.change((d) => d.items.push("while broken"));
    const outcome = await window.repo.flush().then(
      () => "resolved",
      (e) => e.code,
    );
    const unsaved = window.repo.status.unsaved;
    delete crypto.getRandomValues; // the prototype's, native, again
    if (crypto.getRandomValues !== native) throw new Error("could not restore getRandomValues");
    window.doc.change((d) => d.items.push("after"));
    await window.repo.flush();
    return { outcome, calls, unsaved, after: window.repo.status.unsaved, url: window.url };
  });
  assert.equal(failed.outcome, "NoRandomness");
  assert.ok(failed.calls > 0, "the failing CSPRNG was asked");
  assert.equal(failed.unsaved, 1, "the change is still unsaved, not claimed durable");
  assert.equal(failed.after, 0);

  await page.reload();
  const items = await page.evaluate(async (url) => {
    const { createRepo } = await import("/dist/index.js");
    const repo = await createRepo({ name: "randomness", worker: false });
    const doc = await repo.open(url);
    return [...doc.value.items];
  }, failed.url);
  assert.deepEqual(items, ["while broken", "after"]);
});
