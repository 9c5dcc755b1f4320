// The demo app as a new user tries it, served by the relay itself
// (`--serve demo-app/dist`): two windows on one address share the todo list
// and the note (a CodeMirror editor: each shows the other's named cursor,
// and Undo in one leaves the other's typing); "work offline" holds changes
// back until it is switched off (observed at the relay, wherever the engine
// runs — the demo uses the default, a SharedWorker: its connections drop to
// zero, and no connection is opened nor frame received while it works
// offline).
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

/**
 * Gives the page `window.noteText()`: the note as its editor shows it (lines
 * joined by newlines; other users' caret labels and the placeholder left out).
 */
function readableNote(page) {
  return page.addInitScript(() => {
    window.noteText = () => {
      const content = document.querySelector('[data-testid="note"] .cm-content');
      if (!content) return null;
      const copy = content.cloneNode(true);
      for (const widget of copy.querySelectorAll(".cm-syncline-caret, .cm-placeholder")) widget.remove();
      return [...copy.querySelectorAll(".cm-line")].map((line) => line.textContent).join("\n");
    };
  });
}

/** Waits until the page's note editor shows `want`. */
async function noteShows(page, want) {
  try {
    await page.waitForFunction((want) => window.noteText() === want, want, { timeout: TIMEOUT.sync });
  } catch (error) {
    const shown = await page.evaluate(() => window.noteText()).catch(() => "(page gone)");
    throw new Error(`the note shows ${JSON.stringify(shown)}, not ${JSON.stringify(want)}`, { cause: error });
  }
}

/** The note's editable area (CodeMirror's content element). */
function noteEditor(page) {
  return page.locator('[data-testid="note"] .cm-content');
}

async function addItem(page, title) {
  await page.getByTestId("new-item").fill(title);
  await page.getByTestId("add-item").click();
}

function itemTitle(page, title) {
  return page.getByTestId("item-title").filter({ hasText: title });
}

/** The relay's connection and frame counts (`/metrics`). */
async function relayTraffic() {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
  const read = (name) => Number(text.split("\n").find((line) => line.startsWith(`${name} `))?.split(" ")[1]);
  return {
    connections: read("syncline_connections"),
    opened: read("syncline_connections_total"),
    framesIn: read("syncline_frames_in_total"),
  };
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
  // The newest entry shows once the engine has made it (in its worker, a round trip after the value).
  await one.page.getByTestId("history-entry").first().filter({ hasText: "todo.toggled" }).waitFor({ timeout: TIMEOUT.sync });
  const messages = await one.page.getByTestId("history-entry").locator("button").allTextContents();
  assert.deepEqual(messages.slice(0, 3), ["todo.toggled", "todo.added", "todo.added"]);
  await one.page.getByTestId("history-entry").nth(2).locator("button").click();
  assert.equal(await one.page.getByTestId("history-view").textContent(), "Just after that change the list was: milk");
  // Closed, so no window of this test is still connected (the last test counts the relay's connections).
  await Promise.all([one.context.close(), two.context.close()]);
});

test("the note is a shared editor: typing shows in the other window with the typist's name on the cursor; Undo leaves the other's text", { timeout: 120_000 }, async () => {
  const one = await newPage(browser, "demo-editor-1");
  await readableNote(one.page);
  await one.page.goto(`${relay.httpUrl}/`);
  await one.page.waitForFunction(() => location.hash.startsWith("#syncline:"), undefined, { timeout: TIMEOUT.start });
  const two = await newPage(browser, "demo-editor-2");
  await readableNote(two.page);
  await two.page.goto(one.page.url());
  await noteEditor(two.page).waitFor({ timeout: TIMEOUT.sync });

  // Each names itself; the name is kept (for this tab, and in localStorage as new tabs' name) and shown on the other's avatar.
  await one.page.getByTestId("my-name").fill("Ada");
  await two.page.getByTestId("my-name").fill("Bob");
  await two.page.getByTestId("peer").filter({ hasText: "Ada" }).waitFor({ timeout: TIMEOUT.sync });
  await one.page.getByTestId("peer").filter({ hasText: "Bob" }).waitFor({ timeout: TIMEOUT.sync });
  assert.equal(JSON.parse(await one.page.evaluate(() => localStorage.getItem("syncline-demo-me"))).name, "Ada");

  // One types: the other's editor shows it, with Ada's named caret.
  assert.equal(await one.page.getByTestId("undo").isDisabled(), true, "nothing to undo yet");
  await noteEditor(one.page).click();
  await one.page.keyboard.type("Hello");
  await noteShows(two.page, "Hello");
  await two.page.waitForFunction(() => document.querySelector('[data-testid="note"] .cm-syncline-name')?.textContent === "Ada", undefined, {
    timeout: TIMEOUT.sync,
  });

  // The other types after it; then the first undoes its own typing (one
  // step: it typed without remote edits in between, within the capture window).
  await noteEditor(two.page).click();
  await two.page.keyboard.press("Control+End");
  await two.page.keyboard.type(" world");
  for (const { page } of [one, two]) await noteShows(page, "Hello world");
  await one.page.getByTestId("undo").click();
  for (const { page } of [one, two]) await noteShows(page, " world");
  await one.page.getByTestId("undo").and(one.page.locator(":disabled")).waitFor({ timeout: TIMEOUT.sync });
  assert.equal(await two.page.getByTestId("undo").isEnabled(), true, "Bob's own typing is still his to undo");

  // Redo brings it back for both.
  await one.page.getByTestId("redo").click();
  for (const { page } of [one, two]) await noteShows(page, "Hello world");

  // The name survives a reload.
  await two.page.reload();
  await noteEditor(two.page).waitFor({ timeout: TIMEOUT.sync });
  assert.equal(await two.page.getByTestId("my-name").inputValue(), "Bob");
  await noteShows(two.page, "Hello world");
  // Closed, so no window of this test is still connected (the last test counts the relay's connections).
  await Promise.all([one.context.close(), two.context.close()]);
});

test("the shared note merges two people typing; 'work offline' holds changes until switched off", { timeout: 120_000 }, async () => {
  const one = await newPage(browser, "demo-note-1");
  await readableNote(one.page);
  await one.page.goto(`${relay.httpUrl}/`);
  await one.page.waitForFunction(() => location.hash.startsWith("#syncline:"), undefined, { timeout: TIMEOUT.start });
  const two = await newPage(browser, "demo-note-2");
  await readableNote(two.page);
  await two.page.goto(one.page.url());
  const note = noteEditor;
  await note(two.page).waitFor({ timeout: TIMEOUT.sync });

  await note(one.page).click();
  await one.page.keyboard.type("Hello");
  await noteShows(two.page, "Hello");

  // Both go offline: their connections close (bounded wait), and from
  // then on none opens and no frame reaches the relay until the switch is off.
  assert.equal((await relayTraffic()).connections, 2, "both windows were connected");
  for (const { page } of [one, two]) await page.getByTestId("work-offline").check();
  for (const { page } of [one, two]) await page.getByTestId("connection").filter({ hasText: "offline" }).waitFor({ timeout: TIMEOUT.sync });
  const deadline = Date.now() + TIMEOUT.sync;
  while ((await relayTraffic()).connections !== 0) {
    assert.ok(Date.now() < deadline, "both connections closed at the relay");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const offline = await relayTraffic();
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
  assert.deepEqual(await relayTraffic(), offline, "no connection and no frame while both work offline");
  assert.equal(await itemTitle(two.page, "tea").count(), 0);

  for (const { page } of [one, two]) await page.getByTestId("work-offline").uncheck();
  for (const { page } of [one, two]) await noteShows(page, "Oh, Hello world");
  await itemTitle(two.page, "tea").waitFor({ timeout: TIMEOUT.sync });
  await one.page.getByTestId("pending").filter({ hasText: "all changes synced" }).waitFor({ timeout: TIMEOUT.sync });

  const artifacts = join(repoRoot, "tests", "artifacts");
  mkdirSync(artifacts, { recursive: true });
  await one.page.screenshot({ path: join(artifacts, "demo-window-1.png"), fullPage: true });
  await two.page.screenshot({ path: join(artifacts, "demo-window-2.png"), fullPage: true });
  await Promise.all([one.context.close(), two.context.close()]);
});
