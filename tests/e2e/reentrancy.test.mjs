// Calls that re-enter the repo from the app's own callbacks — a subscriber
// that changes the document it was told about, a token function that
// writes to a document and closes another repo, a subscriber that closes
// the repo — work, and never take the page's repos down (no "Crashed":
// every repo of the page shares one wasm module).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { TIMEOUT, freshDir, newPage, removeDir, startRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";
import { createHmac } from "node:crypto";

const env = useSiteAndBrowser();
const SECRET = "an-e2e-secret-of-at-least-32-bytes-0123456789";
const dirs = [];
after(() => dirs.forEach(removeDir));

function mint(docId) {
  const id = docId.replace(/^syncline:/, "");
  const signed = `sl1.${id}.write.${Math.floor(Date.now() / 1000) + 3600}`;
  return `${signed}.${createHmac("sha256", SECRET).update(signed).digest("base64url")}`;
}

test("re-entrant calls from subscribers and the token function work and crash nothing", { timeout: 90_000 }, async () => {
  const dataDir = freshDir("syncline-relay-");
  dirs.push(dataDir);
  const relay = await startRelay({ dataDir, authSecret: SECRET });
  const { context, page } = await newPage(env.browser, "reentrancy");
  await page.exposeFunction("mint", mint);
  try {
    await page.goto(`${env.site.url}/`);
    const result = await page.evaluate(async (relay) => {
      const { createRepo } = await import("/dist/index.js");
      const errors = [];
      // A bystander repo on the same page (and the same wasm module).
      const bystander = await createRepo({ name: "bystander" });
      const kept = await bystander.create({ n: 1 });
      bystander.on("error", (e) => errors.push(`bystander: ${e.code}`));

      // 1. A subscriber that changes the document it was just told about,
      // both when its own change notifies it and when an event does.
      const repo = await createRepo({
        relay,
        name: "reentrant",
        // The token function writes into another repo and closes a third,
        // synchronously, while the repo waits for its answer.
        token: async (docId) => {
          window.tokenCalls = (window.tokenCalls ?? 0) + 1;
          kept.change((d) => {
            d.n += 1;
          });
          window.third?.close();
          return window.mint(docId);
        },
      });
      repo.on("error", (e) => errors.push(`repo: ${e.code}`));
      window.third = await createRepo({ name: "third" });
      const doc = await repo.create({ log: [] });
      doc.subscribe((value) => {
        if (value.log.length > 0 && value.log.length < 3 && value.log.at(-1) !== "echo") {
          doc.change((d) => d.log.push("echo"));
        }
      });
      doc.change((d) => d.log.push("first"));
      await repo.flush();

      // 2. A subscriber that closes its repo.
      const closing = await createRepo({ name: "closing" });
      const other = await closing.create({ n: 0 });
      let closedInside = false;
      other.subscribe((value) => {
        if (value.n === 1) {
          closing.close();
          closedInside = true;
        }
      });
      other.change((d) => {
        d.n = 1;
      });
      let afterClose;
      try {
        other.change((d) => {
          d.n = 2;
        });
      } catch (e) {
        afterClose = e.code;
      }
      return {
        log: doc.value.log,
        closedInside,
        afterClose,
        closingStatus: closing.status.connection,
        thirdStatus: window.third.status.connection,
        errors,
      };
    }, relay.wsUrl);
    assert.deepEqual(result.log, ["first", "echo"]);
    assert.equal(result.closedInside, true);
    assert.equal(result.afterClose, "Closed");
    assert.equal(result.closingStatus, "closed");

    // The token function ran (the relay wants tokens) and its re-entrant
    // calls took effect: the bystander's document changed, the third repo
    // closed, the document reached the relay.
    await waitInPage(page, () => (window.tokenCalls ?? 0) > 0, undefined, TIMEOUT.sync, "the token function");
    await waitInPage(page, () => window.third.status.connection === "closed", undefined, TIMEOUT.sync, "the third repo closed");
    const after = await page.evaluate(async () => {
      const repos = await import("/dist/index.js");
      const check = await repos.createRepo({ name: "after" });
      const doc = await check.create({ ok: true });
      return { ok: doc.value.ok };
    });
    assert.equal(after.ok, true, "the module still works");
    assert.deepEqual(result.errors, [], "no error, and no Crashed");
  } finally {
    await context.close();
    await relay.kill();
  }
});
