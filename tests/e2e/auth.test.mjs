// Per-document access tokens, end to end: a relay started with a secret,
// an app token endpoint (here: the test process, minting with the HMAC
// scheme of docs/relay.md) reached through each page's token function, and
// several documents in one repo, each authorized, refused and renewed on
// its own while the connection and the other documents keep syncing.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { TIMEOUT, freshDir, newPage, removeDir, startRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const SECRET = "an-e2e-secret-of-at-least-32-bytes-0123456789";
const dirs = [];
after(() => dirs.forEach(removeDir));

/** A token as any backend can mint it (docs/relay.md). */
function mint(docId, rights, ttlSeconds) {
  const id = docId.replace(/^syncline:/, "");
  const signed = `sl1.${id}.${rights}.${Math.floor(Date.now() / 1000) + ttlSeconds}`;
  return `${signed}.${createHmac("sha256", SECRET).update(signed).digest("base64url")}`;
}

/**
 * A page whose repo gets its tokens from `endpoint(docId)` (run in Node, as
 * a fetch to the app's server would be); every call is recorded in `calls`.
 */
async function pageWithTokens(name, relay, endpoint) {
  const { context, page } = await newPage(env.browser, name);
  const calls = [];
  // Uncaught errors in the page (a refusal must reach the app as a rejection or an event, never unhandled).
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.exposeFunction("tokenEndpoint", (docId) => {
    calls.push(docId);
    return endpoint(docId);
  });
  await page.goto(`${env.site.url}/`);
  await page.evaluate(async (relay) => {
    const { createRepo } = await import("/dist/index.js");
    window.repo = await createRepo({ relay, name: "auth", token: (docId) => window.tokenEndpoint(docId) });
    window.docs = {};
    window.errors = [];
  }, relay);
  return { context, page, calls, pageErrors };
}

/** Opens `url` as `window.docs[name]`, recording its error events. */
function openAs(page, name, url) {
  return page.evaluate(
    async ([name, url]) => {
      const doc = await window.repo.open(url);
      window.docs[name] = doc;
      doc.on("error", (e) => window.errors.push({ doc: name, code: e.code, docId: e.docId }));
    },
    [name, url],
  );
}

const push = (page, name, item) =>
  page.evaluate(([name, item]) => window.docs[name].change((d) => d.items.push(item)), [name, item]);

const waitItem = (page, name, item, what) =>
  waitInPage(page, ([name, item]) => window.docs[name]?.value.items?.includes(item), [name, item], TIMEOUT.sync, what);

const docStatus = (page, name) => page.evaluate((name) => ({ ...window.docs[name].status }), name);

test("one repo, three documents through a token function: two write, one read, refusals stay per document", { timeout: 120_000 }, async () => {
  const dataDir = freshDir("syncline-relay-");
  dirs.push(dataDir);
  let relay = await startRelay({ dataDir, authSecret: SECRET });
  const pages = [];
  try {
    // A writes everything.
    const a = await pageWithTokens("a", relay.wsUrl, (docId) => mint(docId, "write", 3600));
    pages.push(a);
    const urls = await a.page.evaluate(async () => {
      const urls = [];
      for (const name of ["one", "two", "three", "four"]) {
        const doc = await window.repo.create({ items: [] });
        window.docs[name] = doc;
        urls.push(doc.url);
      }
      await window.repo.flush();
      return urls;
    });
    const [one, two, three, four] = urls;
    const id = (url) => url.split("#")[0];
    await waitInPage(a.page, () => window.repo.status.pending === 0 && window.repo.status.unsaved === 0, undefined, TIMEOUT.sync, "A's documents on the relay");

    // B: write on one and two (one's tokens live 2 s), read on three, and
    // for four the endpoint hands out one's token.
    const b = await pageWithTokens("b", relay.wsUrl, (docId) => {
      if (docId === id(one)) return mint(docId, "write", 2);
      if (docId === id(two)) return mint(docId, "write", 3600);
      if (docId === id(three)) return mint(docId, "read", 3600);
      return mint(id(one), "write", 3600);
    });
    pages.push(b);
    for (const [name, url] of [["one", one], ["two", two], ["three", three]]) await openAs(b.page, name, url);
    assert.deepEqual(new Set(b.calls), new Set([id(one), id(two), id(three)]), "asked once per document");
    assert.ok(b.calls.every((docId) => !docId.includes("#")), "the key never goes to the token endpoint");

    // All three receive A's edits.
    for (const name of ["one", "two", "three"]) {
      await push(a.page, name, `a-${name}`);
      await waitItem(b.page, name, `a-${name}`, `A's edit of ${name} at B`);
    }

    // B's pushes on the writable ones are acknowledged and reach A.
    for (const name of ["one", "two"]) {
      await push(b.page, name, `b-${name}`);
      await waitItem(a.page, name, `b-${name}`, `B's edit of ${name} at A`);
    }
    await waitInPage(b.page, () => ["one", "two"].every((n) => window.docs[n].status.pending === 0 && window.docs[n].status.unsaved === 0), undefined, TIMEOUT.sync, "B's edits acknowledged");

    // A push on the read-only one is refused with ReadOnly: the change stays
    // here (durable, pending), the connection stays open, the others sync.
    await push(b.page, "three", "b-three");
    await waitInPage(b.page, () => window.docs.three.status.lastError?.code === "ReadOnly", undefined, TIMEOUT.sync, "ReadOnly on three");
    await b.page.evaluate(() => window.repo.flush());
    const refused = await docStatus(b.page, "three");
    assert.equal(refused.pending, 1, `the refused change is kept: ${JSON.stringify(refused)}`);
    assert.deepEqual(await b.page.evaluate(() => window.errors), [{ doc: "three", code: "ReadOnly", docId: id(three) }]);
    assert.equal(await b.page.evaluate(() => window.repo.status.connection), "open");
    await push(a.page, "three", "a-three-later");
    await waitItem(b.page, "three", "a-three-later", "remote changes keep arriving on the read-only document");
    await push(a.page, "two", "a-two-later");
    await waitItem(b.page, "two", "a-two-later", "two keeps syncing");
    assert.equal(await a.page.evaluate(() => window.docs.three.value.items.includes("b-three")), false);

    // one's token has expired by now: a push is refused with TokenExpired,
    // the function is asked again, and the push goes through unprompted.
    const before = b.calls.filter((d) => d === id(one)).length;
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await push(b.page, "one", "b-one-after-expiry");
    await waitItem(a.page, "one", "b-one-after-expiry", "B's edit after its token expired");
    assert.ok(b.calls.filter((d) => d === id(one)).length > before, "a fresh token was asked for");
    assert.equal((await docStatus(b.page, "one")).lastError, undefined);

    // A token for another document is refused, for that document only: its
    // open rejects (B has none of it), the repo and the others go on.
    const openFour = await b.page.evaluate((url) => window.repo.open(url).then(() => "opened", (e) => e.code), four);
    assert.equal(openFour, "Unauthorized");
    assert.ok(b.calls.includes(id(four)));
    await push(a.page, "two", "a-two-while-four-refused");
    await waitItem(b.page, "two", "a-two-while-four-refused", "two syncs while four is refused");
    const status = await b.page.evaluate(() => ({ ...window.repo.status }));
    assert.equal(status.connection, "open");
    assert.equal(status.lastError, undefined, "the repo itself has no error");

    // After a relay restart every open document is authorized again.
    const counts = () => [one, two, three].map((url) => b.calls.filter((d) => d === id(url)).length);
    const beforeRestart = counts();
    const port = relay.port;
    await relay.kill();
    relay = await startRelay({ dataDir, port, authSecret: SECRET });
    await waitInPage(b.page, () => window.repo.status.connection === "open", undefined, TIMEOUT.sync, "B reconnected");
    await push(a.page, "two", "a-two-after-restart");
    await waitItem(b.page, "two", "a-two-after-restart", "two after the restart");
    await push(a.page, "three", "a-three-after-restart");
    await waitItem(b.page, "three", "a-three-after-restart", "three after the restart");
    const afterRestart = counts();
    afterRestart.forEach((n, i) => assert.ok(n > beforeRestart[i], `document ${i + 1} asked again: ${beforeRestart} → ${afterRestart}`));
    assert.equal((await docStatus(b.page, "three")).pending, 1, "the read-only change is still kept");
    for (const page of pages) assert.deepEqual(page.pageErrors, [], "no uncaught error in the page");
  } finally {
    for (const { context } of pages) await context.close();
    await relay.kill();
  }
});

test("a token function that throws gives that document TokenProvider, and it is retried", { timeout: 60_000 }, async () => {
  const dataDir = freshDir("syncline-relay-");
  dirs.push(dataDir);
  const relay = await startRelay({ dataDir, authSecret: SECRET });
  let failing = true;
  const page = await pageWithTokens("flaky", relay.wsUrl, (docId) => {
    if (failing) throw new Error("the token server is down");
    return mint(docId, "write", 3600);
  });
  try {
    await page.page.evaluate(async () => {
      window.docs.one = await window.repo.create({ items: ["kept"] });
      await window.repo.flush();
    });
    await waitInPage(page.page, () => window.docs.one.status.lastError?.code === "TokenProvider", undefined, TIMEOUT.sync, "TokenProvider");
    assert.equal((await docStatus(page.page, "one")).pending, 1);
    failing = false;
    await waitInPage(page.page, () => window.docs.one.status.pending === 0 && !window.docs.one.status.lastError, undefined, TIMEOUT.sync, "retried and synced");
  } finally {
    await page.context.close();
    await relay.kill();
  }
});
