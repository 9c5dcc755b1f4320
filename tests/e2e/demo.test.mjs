// The demo app as a new user tries it, served by the relay itself
// (`--serve demo-app/dist`): two windows on one address share the todo list
// and the note; "work offline" holds changes back until it is switched off
// (observed in each page: its WebSockets are closed and no frame is sent
// nor socket opened while it works offline).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
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

/**
 * Counts, inside the page and as it happens, the WebSockets it opens and the
 * frames it sends on them (`window.sockets`). Installed before the app loads.
 */
function countSockets(page) {
  return page.addInitScript(() => {
    const Native = window.WebSocket;
    const seen = { opened: 0, sent: 0, all: [] };
    window.sockets = seen;
    const send = Native.prototype.send;
    Native.prototype.send = function (data) {
      seen.sent += 1;
      return send.call(this, data);
    };
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        seen.opened += 1;
        seen.all.push(this);
      }
    };
  });
}

/** The page's socket counts, and how many of its sockets are not closed. */
function sockets(page) {
  return page.evaluate(() => ({
    opened: window.sockets.opened,
    sent: window.sockets.sent,
    notClosed: window.sockets.all.filter((s) => s.readyState !== WebSocket.CLOSED).length,
  }));
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

  // Presence: each window shows the other's avatar.
  for (const { page } of [one, two]) {
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="peer"]').length === 1, undefined, { timeout: TIMEOUT.sync });
  }
  // History: the changes with their messages; viewing one shows the list just after it.
  await one.page.getByTestId("history").locator("summary").click();
  const messages = await one.page.getByTestId("history-entry").locator("button").allTextContents();
  assert.deepEqual(messages.slice(0, 3), ["todo.toggled", "todo.added", "todo.added"]);
  await one.page.getByTestId("history-entry").nth(2).locator("button").click();
  assert.equal(await one.page.getByTestId("history-view").textContent(), "Just after that change the list was: milk");
});

test("the shared note merges two people typing; 'work offline' holds changes until switched off", { timeout: 120_000 }, async () => {
  const one = await newPage(browser, "demo-note-1");
  await countSockets(one.page);
  await one.page.goto(`${relay.httpUrl}/`);
  await one.page.waitForFunction(() => location.hash.startsWith("#syncline:"), undefined, { timeout: TIMEOUT.start });
  const two = await newPage(browser, "demo-note-2");
  await countSockets(two.page);
  await two.page.goto(one.page.url());
  const note = (page) => page.getByTestId("note");
  await note(two.page).waitFor({ timeout: TIMEOUT.sync });

  await note(one.page).click();
  await one.page.keyboard.type("Hello");
  await two.page.waitForFunction(() => document.querySelector('[data-testid="note"]').value === "Hello", undefined, { timeout: TIMEOUT.sync });

  // Both go offline: each page's sockets close (bounded wait), and from
  // then on none opens and no frame is sent until the switch is off.
  for (const { page } of [one, two]) await page.getByTestId("work-offline").check();
  await one.page.getByTestId("connection").filter({ hasText: "offline" }).waitFor({ timeout: TIMEOUT.sync });
  const offline = [];
  for (const { page } of [one, two]) {
    assert.ok((await sockets(page)).opened >= 1, "the page was connected before");
    await page.waitForFunction(() => window.sockets.all.every((s) => s.readyState === WebSocket.CLOSED), undefined, {
      timeout: TIMEOUT.sync,
      polling: 50,
    });
    offline.push(await sockets(page));
  }
  // They type at either end of the same note, and one adds an item.
  await note(one.page).press("End");
  await one.page.keyboard.type(" world");
  await note(two.page).click();
  await note(two.page).press("Home");
  await two.page.keyboard.type("Oh, ");
  await addItem(one.page, "tea");
  // Saved locally and waiting for the relay, in both windows.
  for (const { page } of [one, two]) {
    await page.getByTestId("pending").filter({ hasText: "pending" }).waitFor({ timeout: TIMEOUT.sync });
  }
  for (const [i, { page }] of [one, two].entries()) {
    assert.deepEqual(await sockets(page), offline[i], `nothing leaves window ${i + 1} while it works offline`);
  }
  assert.equal(await itemTitle(two.page, "tea").count(), 0);

  for (const { page } of [one, two]) await page.getByTestId("work-offline").uncheck();
  for (const { page } of [one, two]) {
    await page.waitForFunction(
      () => document.querySelector('[data-testid="note"]').value === "Oh, Hello world",
      undefined,
      { timeout: TIMEOUT.sync },
    );
  }
  await itemTitle(two.page, "tea").waitFor({ timeout: TIMEOUT.sync });
  await one.page.getByTestId("pending").filter({ hasText: "all changes synced" }).waitFor({ timeout: TIMEOUT.sync });

  const artifacts = join(repoRoot, "tests", "artifacts");
  mkdirSync(artifacts, { recursive: true });
  await one.page.screenshot({ path: join(artifacts, "demo-window-1.png"), fullPage: true });
  await two.page.screenshot({ path: join(artifacts, "demo-window-2.png"), fullPage: true });
});
