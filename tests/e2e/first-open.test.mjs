// Two tabs opening a repo for the very first time at the same moment must
// end with one storage key: one device key (or one passphrase salt) and one
// key check. Otherwise each tab encrypts with its own key and the other
// can't read what it wrote (or is refused with WrongKey).
import { test } from "node:test";
import assert from "node:assert/strict";
import { useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

/** A tab of `context` with the package loaded and the wasm initialised. */
async function openTab(context, name) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error.message}`));
  await page.goto(`${env.site.url}/`);
  await page.evaluate(async (name) => {
    const { createRepo } = await import("/dist/index.js");
    window.createRepo = createRepo;
    window.tabName = name;
    // Loads the wasm and creates the key database, so the race below is
    // only the first-time set-up of the repo itself.
    (await createRepo({ name: "warm-up" })).close();
  }, name);
  return page;
}

/**
 * Arms the tab: on `go()`, it opens repo `options` for the first time,
 * creates a document and waits until it is durable. Resolves with its URL,
 * or the error's code.
 */
function arm(page, options) {
  return page.evaluate((options) => {
    window.result = new Promise((resolve) => {
      window.go = async () => {
        try {
          window.repo = await window.createRepo(options);
          window.errors = [];
          window.repo.on("error", (e) => window.errors.push(e.code));
          const doc = await window.repo.create({ by: window.tabName });
          await window.repo.flush();
          resolve({ url: doc.url, value: doc.value });
        } catch (error) {
          resolve({ code: error.code, message: error.message });
        }
      };
    });
  }, options);
}

/** Opens `url` from the shared log (no relay); `{ code: "NotFound" }` if it never loads. */
function openFromLog(page, url) {
  return page.evaluate(async (url) => {
    // Without a relay, a document whose records this tab can't decrypt never
    // loads: give up after a bound instead of hanging the test.
    const bound = new Promise((resolve) => setTimeout(() => resolve({ code: "NotFound" }), 10_000));
    const opened = window.repo.open(url).then(
      (doc) => ({ value: doc.value }),
      (error) => ({ code: error.code, message: error.message }),
    );
    const result = await Promise.race([opened, bound]);
    return { ...result, errors: window.errors };
  }, url);
}

for (const [kind, extra] of [
  ["device key", {}],
  ["passphrase", { passphrase: "correct horse battery staple" }],
]) {
  test(`two tabs setting up a repo at once (${kind}) end with one key and read each other's data`, { timeout: 180_000 }, async () => {
    const context = await env.browser.newContext();
    try {
      const a = await openTab(context, "tab-a");
      const b = await openTab(context, "tab-b");
      // Several rounds, each a new repo: each is a fresh first-time set-up.
      for (let round = 0; round < 3; round++) {
        const options = { name: `race-${kind.replace(" ", "-")}-${round}`, ...extra };
        await Promise.all([arm(a, options), arm(b, options)]);
        // Both start in the same instant (as near as two pages allow).
        await Promise.all([a.evaluate(() => void window.go()), b.evaluate(() => void window.go())]);
        const [made, other] = await Promise.all([a.evaluate(() => window.result), b.evaluate(() => window.result)]);
        assert.equal(made.code, undefined, `round ${round}, tab a: ${made.message}`);
        assert.equal(other.code, undefined, `round ${round}, tab b: ${other.message}`);
        const [atA, atB] = await Promise.all([openFromLog(a, other.url), openFromLog(b, made.url)]);
        assert.deepEqual(atA, { value: other.value, errors: [] }, `round ${round}: tab a reads tab b's document`);
        assert.deepEqual(atB, { value: made.value, errors: [] }, `round ${round}: tab b reads tab a's document`);
        await Promise.all([a.evaluate(() => window.repo.close()), b.evaluate(() => window.repo.close())]);
      }
    } finally {
      await context.close();
    }
  });
}
