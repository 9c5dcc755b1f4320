// The devtools panel (syncline/devtools) in the demo, against the real
// relay: opened with the demo's button, it shows an edit made in another
// window in the value tree, in the history and in the event log (the
// frames that carried it); choosing an older history entry shows the older
// value and what changed since; the export downloads a report; and the
// document key appears nowhere in the panel's DOM nor in the export.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TIMEOUT, freshDir, launchBrowser, newPage, removeDir, repoRoot, requireBuilt, startRelay, startStaticServer } from "./harness.mjs";

let relay;
let browser;
let dataDir;
let site;

before(async () => {
  requireBuilt({ demo: true });
  dataDir = freshDir("syncline-devtools-relay-");
  relay = await startRelay({ dataDir, serve: join(repoRoot, "demo-app", "dist") });
  browser = await launchBrowser();
  site = await startStaticServer();
});

after(async () => {
  await browser?.close().catch(() => {});
  await site?.close();
  await relay?.kill();
  removeDir(dataDir);
});

async function addItem(page, title) {
  await page.getByTestId("new-item").fill(title);
  await page.getByTestId("add-item").click();
}

test("the panel shows a remote edit in the tree, the history and the event log, and never the key", { timeout: 180_000 }, async () => {
  const one = await newPage(browser, "devtools-1");
  await one.page.goto(`${relay.httpUrl}/`);
  await one.page.waitForFunction(() => location.hash.startsWith("#syncline:"), undefined, { timeout: TIMEOUT.start });
  const url = decodeURIComponent(new URL(one.page.url()).hash.slice(1));
  const key = url.split("#")[1];
  assert.ok(key && key.length > 20, "the demo's URL carries a key");
  await addItem(one.page, "milk");

  const two = await newPage(browser, "devtools-2");
  await two.page.goto(one.page.url());
  await two.page.getByTestId("item-title").filter({ hasText: "milk" }).waitFor({ timeout: TIMEOUT.sync });

  // Not loaded before the button is pressed.
  assert.equal(await one.page.locator("#syncline-devtools").count(), 0);
  await one.page.getByTestId("open-devtools").click();
  const panel = one.page.locator("#syncline-devtools");
  await panel.locator('[data-section="docs"]').waitFor({ timeout: TIMEOUT.start });
  await panel.locator('[data-section="docs"] .leaf').filter({ hasText: '"milk"' }).first().waitFor({ state: "attached", timeout: TIMEOUT.sync });
  await panel.locator('[data-section="sync"]').filter({ hasText: "open" }).waitFor({ timeout: TIMEOUT.sync });

  // An edit in the other window: in the tree, the history and the event log.
  await addItem(two.page, "bread");
  await panel.locator('[data-section="docs"] .leaf').filter({ hasText: '"bread"' }).first().waitFor({ state: "attached", timeout: TIMEOUT.sync });
  const entries = panel.getByTestId("history-entry");
  // Newest first: bread, milk, the note's text made with the list, the creation.
  await entries.nth(3).waitFor({ timeout: TIMEOUT.sync });
  assert.deepEqual(await entries.allTextContents(), ["todo.added", "todo.added", "note.created", "(no message)"]);
  // The frames that carried it in: a Tentative (or Deltas) for this document, with its size.
  const docId = url.split("#")[0].slice("syncline:".length, "syncline:".length + 8);
  const incoming = panel.locator('[data-testid="event-log"] tr[data-dir="in"]').filter({ hasText: docId });
  await incoming.filter({ hasText: /Tentative|Deltas/ }).first().waitFor({ timeout: TIMEOUT.sync });
  assert.match(await incoming.filter({ hasText: /Tentative|Deltas/ }).first().textContent(), /\d+ B/);

  // The entry before "bread": the older value, read-only, and what changed since.
  await entries.nth(1).click();
  const asOf = panel.getByTestId("as-of");
  await asOf.waitFor({ timeout: TIMEOUT.start });
  const older = await asOf.textContent();
  assert.ok(older.includes('"milk"') && !older.includes('"bread"'), older);
  assert.match(await panel.getByTestId("changed-since").textContent(), /added \/items\/1/);

  // Pause stops the log; clear empties it.
  await panel.getByTestId("log-pause").click();
  await panel.getByTestId("log-clear").click();
  await addItem(two.page, "eggs");
  await panel.locator('[data-section="docs"] .leaf').filter({ hasText: '"eggs"' }).first().waitFor({ state: "attached", timeout: TIMEOUT.sync });
  assert.equal(await panel.locator('[data-testid="event-log"] tr[data-dir]').count(), 0, "paused: nothing logged");
  await panel.getByTestId("log-pause").click();

  // The export: a file, with the document's id and no key.
  const download = one.page.waitForEvent("download");
  await panel.getByTestId("log-export").click();
  const report = readFileSync(await (await download).path(), "utf8");
  const parsed = JSON.parse(report);
  assert.equal(parsed.docs[0].id, url.split("#")[0]);
  assert.ok(!report.includes(key), "the key is not in the export");

  const dom = await one.page.evaluate(() => {
    const root = document.getElementById("syncline-devtools").shadowRoot;
    return root.innerHTML + root.textContent;
  });
  assert.ok(dom.includes(url.split("#")[0]), "the panel names the document by its id");
  assert.ok(!dom.includes(key), "the key is not in the panel's DOM");

  // The shortcut toggles it.
  await one.page.keyboard.press("Alt+Shift+KeyD");
  await panel.locator(".panel").waitFor({ state: "hidden", timeout: TIMEOUT.start });
  await one.page.keyboard.press("Alt+Shift+KeyD");
  await panel.locator(".panel").waitFor({ state: "visible", timeout: TIMEOUT.start });
  if (process.env.SYNCLINE_DEVTOOLS_SCREENSHOT) {
    await panel.locator(".panel").evaluate((node) => (node.scrollTop = 0));
    await panel.locator(".panel").screenshot({ path: process.env.SYNCLINE_DEVTOOLS_SCREENSHOT });
  }
});

test("in worker mode the panel shows values, history, the worker's frames, dial state and log sizes", { timeout: 120_000 }, async () => {
  const { context, page } = await newPage(browser, "devtools-worker");
  await page.goto(`${site.url}/`);
  const url = await page.evaluate(async (relay) => {
    const { createRepo } = await import("/dist/index.js");
    const repo = await createRepo({ relay, name: "devtools-worker", worker: true });
    if (repo.status.mode !== "worker") throw new Error(`not in a worker: ${repo.status.warning}`);
    const doc = await repo.create({ items: [] });
    doc.change((d) => void d.items.push("tea"), { message: "tea.added" });
    await repo.flush();
    const { mountDevtools } = await import("/dist/devtools.js");
    await mountDevtools(repo);
    window.doc = doc;
    return doc.url;
  }, relay.wsUrl);
  const panel = page.locator("#syncline-devtools");
  await panel.locator('[data-section="docs"] .leaf').filter({ hasText: '"tea"' }).first().waitFor({ state: "attached", timeout: TIMEOUT.sync });
  await panel.getByTestId("history-entry").filter({ hasText: "tea.added" }).waitFor({ timeout: TIMEOUT.sync });
  await panel.locator('[data-section="log"]').filter({ hasText: "shared worker's connection" }).waitFor({ timeout: TIMEOUT.start });
  // The worker's engine answers the panel: its dial state and the document's log figures...
  await panel.locator('[data-section="sync"]').filter({ hasText: /dial\s*open/ }).waitFor({ timeout: TIMEOUT.sync });
  await panel.locator('[data-section="docs"]').filter({ hasText: /log: \d+ entries/ }).waitFor({ timeout: TIMEOUT.sync });
  // ...and the frames that carry a change made now (recording began when the panel opened).
  await page.evaluate(() => window.doc.change((d) => void d.items.push("milk")));
  const docId = url.split("#")[0].slice("syncline:".length, "syncline:".length + 8);
  // The change's own push (signed), not just any frame of the document.
  const outgoing = panel.locator('[data-testid="event-log"] tr[data-dir="out"][data-kind$="Push"]').filter({ hasText: docId });
  await outgoing.first().waitFor({ timeout: TIMEOUT.sync });
  assert.match(await outgoing.first().textContent(), /\d+ B/);
  const key = url.split("#")[1];
  const dom = await page.evaluate(() => document.getElementById("syncline-devtools").shadowRoot.innerHTML);
  assert.ok(!dom.includes(key), "the key is not in the panel's DOM");
  const download = page.waitForEvent("download");
  await panel.getByTestId("log-export").click();
  const report = readFileSync(await (await download).path(), "utf8");
  assert.ok(report.includes(docId), "the export names the document");
  assert.ok(!report.includes(key), "the key is not in the export");
  await context.close();
});
