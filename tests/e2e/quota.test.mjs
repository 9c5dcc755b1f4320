// Quota exhaustion: when IndexedDB refuses a write for lack of space, the
// repo reports code "QuotaExceeded" (on `flush()` and as an "error" event),
// keeps what was durable, and writes the refused changes once space is back.
// The origin's quota is shrunk through the DevTools protocol
// (`Storage.overrideQuotaForOrigin`), so the real IndexedDB refuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

test("a full disk gives QuotaExceeded, loses nothing durable, and the refused change is written once space is back", { timeout: 60_000 }, async () => {
  const { context, page } = await newPage(env.browser, "quota");
  const cdp = await context.newCDPSession(page);
  const origin = env.site.url;
  try {
    // Room for small writes, not for a 4 MB one. (Set before the database
    // opens: Chromium checks an open connection's writes against the quota
    // it had when it opened.)
    await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 2 << 20 });
    await page.goto(`${origin}/`);
    await page.evaluate(async () => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ name: "quota" });
      window.repo = repo;
      window.errors = [];
      repo.on("error", (e) => window.errors.push(e.code));
      const doc = await repo.create({ kept: "before the disk filled up", big: "" });
      await repo.flush();
      window.doc = doc;
      localStorage.setItem("url", doc.url);
    });

    const refused = await page.evaluate(async () => {
      // Random text: Automerge compresses a change, so a repeated one would be tiny.
      let big = "";
      for (let i = 0; i < 48; i++) big += String.fromCharCode(...crypto.getRandomValues(new Uint8Array(0x10000)));
      window.doc.change((d) => {
        d.big = btoa(big); // 4 MB
      });
      const code = await window.repo.flush().then(
        () => "resolved",
        (error) => (console.log("FLUSHERR", error.code, error.message), error.code),
      );
      await new Promise((r) => setTimeout(r, 0)); // events are delivered from a task
      return { code, errors: [...window.errors], inMemory: window.doc.value.big.length };
    });
    assert.equal(refused.code, "QuotaExceeded", "flush() says why");
    assert.ok(refused.errors.includes("QuotaExceeded"), `the repo reports it: ${refused.errors}`);
    assert.equal(refused.inMemory, 4 << 20, "the change stays in memory");

    // Nothing durable was damaged: another page of the same origin reads it.
    const other = await context.newPage();
    await other.goto(`${origin}/`);
    const durable = await other.evaluate(async () => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ name: "quota" });
      const doc = await repo.open(localStorage.getItem("url"));
      const value = { kept: doc.value.kept, big: doc.value.big.length };
      repo.close();
      return value;
    });
    await other.close();
    assert.deepEqual(durable, { kept: "before the disk filled up", big: 0 });

    // Space is back: the next change writes the refused one too.
    await cdp.send("Storage.overrideQuotaForOrigin", { origin });
    await page.evaluate(async () => {
      window.doc.change((d) => {
        d.after = "space came back";
      });
      await window.repo.flush();
      window.repo.close();
    });
    await page.reload();
    const reloaded = await page.evaluate(async () => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ name: "quota" });
      const doc = await repo.open(localStorage.getItem("url"));
      return { kept: doc.value.kept, big: doc.value.big.length, after: doc.value.after };
    });
    assert.deepEqual(reloaded, { kept: "before the disk filled up", big: 4 << 20, after: "space came back" });
  } finally {
    await context.close();
  }
});
