// The required scenario: two replicas, the relay crashes, both edit offline,
// one reloads from IndexedDB, the relay comes back, both converge, and a third
// fresh replica gets the whole doc from the relay alone.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  TIMEOUT,
  freshDir,
  newPage,
  removeDir,
  startRelay,
  useSiteAndBrowser,
} from "./harness.mjs";
import {
  createDocIn,
  createRepoIn,
  items,
  openDocIn,
  pushItem,
  status,
  waitForConnection,
  waitForItemSet,
  waitInPage,
} from "./pages.mjs";

let relay;
const env = useSiteAndBrowser();
let dataDir;

before(async () => {
  dataDir = freshDir("syncline-relay-");
  relay = await startRelay({ dataDir });
});

after(async () => {
  await relay?.kill();
  removeDir(dataDir);
});

test("offline edits survive a relay crash and a reload, then converge", { timeout: 240_000 }, async () => {
  // A creates the doc and pushes "a".
  const a = await newPage(env.browser, "A");
  await a.page.goto(`${env.site.url}/`);
  await createRepoIn(a.page, relay.wsUrl);
  const url = await createDocIn(a.page, { items: [] });
  assert.match(url, /^syncline:[1-9A-HJ-NP-Za-km-z]+#[1-9A-HJ-NP-Za-km-z]+$/, "a doc URL is syncline:<base58 id>#<base58 key>");
  assert.deepEqual(await pushItem(a.page, "a"), ["a"]);
  await waitForConnection(a.page, "synced", TIMEOUT.sync);

  // B (its own IndexedDB) opens the URL and gets it through the relay.
  const b = await newPage(env.browser, "B");
  await b.page.goto(`${env.site.url}/`);
  await createRepoIn(b.page, relay.wsUrl);
  await openDocIn(b.page, url);
  await waitForItemSet(b.page, ["a"]);

  // The relay crashes.
  await relay.kill();
  await waitForConnection(a.page, "notOpen", TIMEOUT.offline);
  await waitForConnection(b.page, "notOpen", TIMEOUT.offline);

  // Both edit offline; each sees its own edit at once and counts it as not
  // acknowledged (unsaved until it is durable, then pending). With the engine
  // in a worker the durable report comes a round trip later: waited for.
  assert.deepEqual((await pushItem(a.page, "from-a")).sort(), ["a", "from-a"]);
  assert.deepEqual((await pushItem(b.page, "from-b")).sort(), ["a", "from-b"]);
  for (const [name, page] of [["A", a.page], ["B", b.page]]) {
    const now = await status(page);
    assert.ok(now.unsaved + now.pending > 0, `${name}'s offline edit is counted at once`);
    await waitInPage(page, () => window.repo.status.pending > 0, undefined, TIMEOUT.sync, `${name}'s offline edit pending`);
  }

  // B makes its edit durable, reloads, and still has it (from IndexedDB; the relay is down).
  await b.page.evaluate(() => window.repo.flush());
  await b.page.reload();
  assert.equal(await b.page.evaluate(() => typeof window.repo), "undefined", "the reload started a fresh page");
  await createRepoIn(b.page, relay.wsUrl);
  const afterReload = await openDocIn(b.page, url, TIMEOUT.start);
  assert.deepEqual([...afterReload].sort(), ["a", "from-b"], "B's offline edit survived the reload");
  assert.ok((await status(b.page)).pending > 0, "B's edit is still pending after the reload");

  // The relay restarts on the same port and data; both converge.
  relay = await startRelay({ dataDir, port: relay.port });
  const all = ["a", "from-a", "from-b"];
  await waitForItemSet(a.page, all);
  await waitForItemSet(b.page, all);
  assert.deepEqual(await items(a.page), await items(b.page), "A and B agree on the order too");
  await waitForConnection(a.page, "synced", TIMEOUT.sync);
  await waitForConnection(b.page, "synced", TIMEOUT.sync);

  // A third, fresh replica gets the whole doc from the relay alone (A and B are gone).
  const expected = await items(a.page);
  await a.context.close();
  await b.context.close();
  const c = await newPage(env.browser, "C");
  await c.page.goto(`${env.site.url}/`);
  await createRepoIn(c.page, relay.wsUrl);
  await openDocIn(c.page, url);
  await waitForItemSet(c.page, all);
  assert.deepEqual(await items(c.page), expected);
});
