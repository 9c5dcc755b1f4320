// syncline/codemirror in real CodeMirror 6 editors (tests/e2e/site/editor.html),
// two browsers on one relay: both type at once and end with identical text
// holding both; each shows the other's caret with its name; Mod-z in one
// removes only its own typing; Mod-y and Mod-Shift-z redo it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();

async function editorPage(name, color, url) {
  const { page, context } = await newPage(env.browser, name);
  page.on("pageerror", (error) => errors.push(`${name}: ${error.message}`));
  await page.goto(`${env.site.url}/editor.html`);
  await page.waitForFunction(() => window.ready === true, undefined, { timeout: TIMEOUT.start });
  const docUrl = await page.evaluate((args) => window.mountEditor(args), { relay: relays.relay.wsUrl, url, name, color });
  return { page, context, url: docUrl };
}

const errors = [];
const editorText = (page) => page.evaluate(() => window.view.state.doc.toString());

test("two editors typing at once converge on identical text; remote carets show; undo removes only one's own typing", { timeout: 120_000 }, async () => {
  const a = await editorPage("Ada", "#c0392b");
  await waitInPage(a.page, () => window.repo.status.pending === 0 && window.repo.status.unsaved === 0 && window.repo.status.connection === "open", undefined, TIMEOUT.sync, "a synced");
  const b = await editorPage("Bob", "#2980b9", a.url);
  try {
    await a.page.locator(".cm-content").click();
    await a.page.keyboard.type("alpha ");
    await waitInPage(b.page, () => window.view.state.doc.toString() === "alpha ", undefined, TIMEOUT.sync, "a's text in b's editor");
    await b.page.locator(".cm-content").click();
    await b.page.keyboard.press("End");

    // Both type at the same time, each at its own end of the text.
    await a.page.keyboard.press("Home");
    await Promise.all([a.page.keyboard.type("AAAA", { delay: 15 }), b.page.keyboard.type("bbbb", { delay: 15 })]);
    const want = "AAAAalpha bbbb";
    for (const { page } of [a, b]) {
      await waitInPage(page, (want) => window.view.state.doc.toString() === want && window.doc.value.note === want, want, TIMEOUT.sync, "both texts");
    }
    assert.equal(await editorText(a.page), await editorText(b.page));

    // Each editor shows the other's caret, named.
    await waitInPage(a.page, () => document.querySelector(".cm-syncline-name")?.textContent === "Bob", undefined, TIMEOUT.sync, "Bob's caret at a");
    await waitInPage(b.page, () => document.querySelector(".cm-syncline-name")?.textContent === "Ada", undefined, TIMEOUT.sync, "Ada's caret at b");

    // b types on its own, then undoes: its typing goes (one step, within the
    // capture window), everything else stays, in both editors. (Typing
    // interleaved with remote changes makes one step per keystroke: see
    // docs/architecture.md.)
    await b.page.keyboard.type("!!");
    const typed = `${want}!!`;
    for (const { page } of [a, b]) await waitInPage(page, (t) => window.view.state.doc.toString() === t, typed, TIMEOUT.sync, "b's !!");
    await b.page.keyboard.press("Control+z");
    for (const { page } of [a, b]) {
      await waitInPage(page, (want) => window.view.state.doc.toString() === want, want, TIMEOUT.sync, "b's typing undone everywhere");
    }
    assert.equal(await b.page.evaluate(() => window.doc.canRedo), true, "something to redo");
    await b.page.keyboard.press("Control+y");
    for (const { page } of [a, b]) {
      await waitInPage(page, (t) => window.view.state.doc.toString() === t, typed, TIMEOUT.sync, "redone everywhere");
    }
    // Mod-Shift-z redoes too. (With Shift held a keyboard sends key "Z";
    // Playwright's "Control+Shift+z" would send "z", which CodeMirror reads as Mod-z.)
    await b.page.keyboard.press("Control+z");
    for (const { page } of [a, b]) {
      await waitInPage(page, (want) => window.view.state.doc.toString() === want, want, TIMEOUT.sync, "undone again everywhere");
    }
    await b.page.keyboard.press("Control+Shift+Z");
    for (const { page } of [a, b]) {
      await waitInPage(page, (t) => window.view.state.doc.toString() === t, typed, TIMEOUT.sync, "redone by Mod-Shift-z everywhere");
    }
    assert.equal(await b.page.evaluate(() => window.doc.canRedo), false, "nothing left to redo");
    assert.deepEqual(errors, [], "no page errors");
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
