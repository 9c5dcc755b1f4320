// Smoke test of the demo app, served by the relay itself (`--serve demo-app/dist`):
// an item added in one window appears in another.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TIMEOUT, freshDir, launchBrowser, newPage, removeDir, repoRoot, requireBuilt, startRelay } from "./harness.mjs";

let relay;
let browser;
let dataDir;

before(async () => {
  requireBuilt({ demo: true });
  dataDir = freshDir("syncline-demo-relay-");
  relay = await startRelay({ dataDir, serve: join(repoRoot, "demo-app", "dist") });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await relay?.kill();
  removeDir(dataDir);
});

async function addItem(page, title) {
  await page.getByTestId("new-item").fill(title);
  await page.getByTestId("add-item").click();
}

function itemTitle(page, title) {
  return page.getByTestId("item-title").filter({ hasText: title });
}

test("an item added in one window appears in the other", { timeout: 120_000 }, async () => {
  const one = await newPage(browser, "demo-1");
  await one.page.goto(`${relay.httpUrl}/`);
  await one.page.waitForFunction(() => location.hash.startsWith("#syncline:"), undefined, { timeout: TIMEOUT.start });
  const address = one.page.url();
  assert.equal(await one.page.getByTestId("doc-url").textContent(), decodeURIComponent(new URL(address).hash.slice(1)));

  const two = await newPage(browser, "demo-2");
  await two.page.goto(address);
  await two.page.getByTestId("new-item").waitFor({ timeout: TIMEOUT.sync });

  await addItem(one.page, "milk");
  await itemTitle(one.page, "milk").waitFor({ timeout: TIMEOUT.start });
  await itemTitle(two.page, "milk").waitFor({ timeout: TIMEOUT.sync });

  await addItem(two.page, "bread");
  await itemTitle(one.page, "bread").waitFor({ timeout: TIMEOUT.sync });

  // Toggling done in one window shows in the other.
  await one.page.getByTestId("item").filter({ hasText: "milk" }).getByTestId("toggle-item").check();
  await two.page.waitForFunction(
    () => [...document.querySelectorAll('[data-testid="item"]')].some((li) => li.textContent.includes("milk") && li.querySelector("input").checked),
    undefined,
    { timeout: TIMEOUT.sync },
  );
  await one.page.getByTestId("connection").filter({ hasText: "open" }).waitFor({ timeout: TIMEOUT.sync });
  assert.deepEqual(await two.page.getByTestId("item-title").allTextContents(), ["milk", "bread"]);
});
