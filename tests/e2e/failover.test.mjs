// `createRepo({ relay: [a, b, …] })`: a refused connection moves to the
// next relay at once (no backoff), a lost one moves on after the backoff.
// The relays here are two independent processes (the cluster tests in
// crates/syncline-relay/tests/cluster cover relays sharing one log).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { TIMEOUT, freshDir, newPage, removeDir, startRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const dirs = [];
after(() => dirs.forEach(removeDir));

/** A ws:// URL nothing listens on (a port that was free a moment ago). */
function deadUrl() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(`ws://127.0.0.1:${port}`));
    });
  });
}

async function repoPage(name, relay, options = {}) {
  const { context, page } = await newPage(env.browser, name);
  await page.goto(`${env.site.url}/`);
  await page.evaluate(
    async ([relay, options]) => {
      const { createRepo } = await import("/dist/index.js");
      window.started = performance.now();
      window.repo = await createRepo({ relay, name: "failover", ...options });
      window.opened = new Promise((resolve) => {
        const check = () => window.repo.status.connection === "open" && resolve(performance.now() - window.started);
        window.repo.on("status", check);
        check();
      });
    },
    [relay, options],
  );
  return { context, page };
}

test("a refused relay is skipped at once; a lost one is left for the next after the backoff", { timeout: 90_000 }, async () => {
  const [dirA, dirB] = [freshDir("syncline-relay-"), freshDir("syncline-relay-")];
  dirs.push(dirA, dirB);
  const a = await startRelay({ dataDir: dirA });
  const b = await startRelay({ dataDir: dirB });
  const dead = await deadUrl();
  const pages = [];
  try {
    // Backoff of 5-10 s: only an immediate move to the next URL opens fast.
    const writer = await repoPage("writer", [dead, a.wsUrl, b.wsUrl], { backoffBaseMs: 5_000, backoffCapMs: 10_000 });
    pages.push(writer);
    const openedAfter = await writer.page.evaluate(() => window.opened);
    assert.ok(openedAfter < 3_000, `opened on the second relay after ${openedAfter} ms`);
    const url = await writer.page.evaluate(async () => {
      window.doc = await window.repo.create({ items: ["on a"] });
      return window.doc.url;
    });
    await waitInPage(writer.page, () => window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "acked by a");

    // A reader on b only. When a dies, the writer moves on to b (after its
    // backoff) and b gets the document and later changes.
    const reader = await repoPage("reader", b.wsUrl);
    pages.push(reader);
    await a.kill();
    await writer.page.evaluate(() => window.doc.change((d) => d.items.push("after a died")));
    await reader.page.evaluate((url) => {
      window.repo.open(url).then((doc) => (window.doc = doc));
    }, url);
    await waitInPage(
      reader.page,
      () => JSON.stringify(window.doc?.value.items) === JSON.stringify(["on a", "after a died"]),
      undefined,
      TIMEOUT.sync,
      "the writer's document through b",
    );
    assert.equal(await writer.page.evaluate(() => window.repo.status.connection), "open");
  } finally {
    for (const { context } of pages) await context.close();
    await a.kill();
    await b.kill();
  }
});
