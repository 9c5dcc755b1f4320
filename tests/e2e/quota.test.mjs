// Quota exhaustion: when IndexedDB refuses a write for lack of space, the
// repo reports code "QuotaExceeded" (on `flush()` and as an "error" event),
// keeps what was durable, and writes the refused changes once space is back.
// The origin's quota is shrunk through the DevTools protocol
// (`Storage.overrideQuotaForOrigin`), so the real IndexedDB refuses.
// The engine runs in the page (`worker: false`): the full disk is made by hooks on the page's IndexedDB.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, freshDir, newPage, removeDir, startRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

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
      const repo = await createRepo({ name: "quota", worker: false });
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
      const repo = await createRepo({ name: "quota", worker: false });
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
      const repo = await createRepo({ name: "quota", worker: false });
      const doc = await repo.open(localStorage.getItem("url"));
      return { kept: doc.value.kept, big: doc.value.big.length, after: doc.value.after };
    });
    assert.deepEqual(reloaded, { kept: "before the disk filled up", big: 4 << 20, after: "space came back" });
  } finally {
    await context.close();
  }
});

test("while IndexedDB refuses every write, unsaved changes stop at maxUnsavedBytes (BacklogFull), still reach the relay, and are written once space is back", { timeout: 120_000 }, async () => {
  const dataDir = freshDir("syncline-relay-backlog-");
  const relay = await startRelay({ dataDir });
  const { context, page } = await newPage(env.browser, "backlog");
  const reader = await newPage(env.browser, "backlog-reader");
  const cdp = await context.newCDPSession(page);
  const origin = env.site.url;
  try {
    // Room for the document and a few changes, not for all of them.
    await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 1 << 20 });
    await page.goto(`${origin}/`);
    await page.evaluate(async (relay) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ name: "backlog", worker: false, relay, maxUnsavedBytes: 512 << 10 });
      window.doc = await window.repo.create({});
      await window.repo.flush();
      localStorage.setItem("url", window.doc.url);
    }, relay.wsUrl);

    // 64 KB of random text per change (Automerge compresses repeats), each
    // followed by a flush, so every write has been tried (and failed, once
    // the quota is spent) before the next change.
    const run = await page.evaluate(async () => {
      const random = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48 << 10))));
      const accepted = [];
      const flushes = [];
      for (let i = 0; i < 100; i++) {
        try {
          window.doc.change((d) => {
            d[`k${i}`] = random();
          });
        } catch (error) {
          return { accepted, flushes, refused: error.code, message: error.message, has: `k${i}` in window.doc.value };
        }
        accepted.push(`k${i}`);
        flushes.push(await window.repo.flush().then(() => "ok", (e) => e.code));
      }
      return { accepted, flushes, refused: null };
    });
    assert.equal(run.refused, "BacklogFull", `a change is refused once the unsaved bytes reach the limit (${run.accepted.length} accepted)`);
    assert.match(run.message, /new changes are refused/);
    assert.equal(run.has, false, "the refused change changed nothing");
    assert.ok(run.flushes.includes("QuotaExceeded"), `storage was full: ${run.flushes}`);
    const failed = run.flushes.length - run.flushes.indexOf("QuotaExceeded");
    // 512 KiB of 64 KiB changes: at most 8 held in memory. Fewer when the
    // backlog also holds other writes of the same bytes: a compaction's
    // snapshot, or the relay's acknowledgements of earlier changes, which
    // rewrite their entries (relay_seq) — when the relay acks several at
    // once on a busy machine, one failed change can be all it takes.
    assert.ok(failed >= 1 && failed <= 9, `${failed} changes held in memory while writes failed (flushes: ${run.flushes})`);
    // What the limit means: the refusal comes once the bytes storage has
    // not taken reach it, not before.
    const [, unsaved, limit] = run.message.match(/last (\d+) bytes of changes \(limit (\d+)\)/).map(Number);
    assert.equal(limit, 512 << 10);
    assert.ok(unsaved >= limit, `refused at ${unsaved} unsaved bytes, under the limit ${limit}`);

    // Every accepted change left for the relay though none of the last ones was written here.
    const url = await page.evaluate(() => localStorage.getItem("url"));
    await reader.page.goto(`${origin}/`);
    await reader.page.evaluate(
      async ([relay, url]) => {
        const { createRepo } = await import("/dist/index.js");
        const repo = await createRepo({ name: "backlog-reader", worker: false, relay });
        window.doc = await repo.open(url);
      },
      [relay.wsUrl, url],
    );
    await waitInPage(
      reader.page,
      (keys) => keys.every((k) => typeof window.doc.value[k] === "string"),
      run.accepted,
      TIMEOUT.sync,
      "every accepted change at another browser",
    );

    // Space is back: flush() writes the backlog, and changes are taken again.
    await cdp.send("Storage.overrideQuotaForOrigin", { origin });
    const after = await page.evaluate(async () => {
      await window.repo.flush();
      window.doc.change((d) => {
        d.after = "space came back";
      });
      await window.repo.flush();
      const keys = Object.keys(window.doc.value).length;
      window.repo.close();
      return keys;
    });
    assert.equal(after, run.accepted.length + 1);
    await page.reload();
    const reloaded = await page.evaluate(async () => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ name: "backlog", worker: false });
      const doc = await repo.open(localStorage.getItem("url"));
      return Object.keys(doc.value).sort();
    });
    assert.deepEqual(reloaded, [...run.accepted, "after"].sort(), "everything accepted is durable after the reload");
  } finally {
    await context.close();
    await reader.context.close();
    await relay.kill();
    removeDir(dataDir);
  }
});
