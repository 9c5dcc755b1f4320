// Collaborative text editing through the real engine and relay: undo and
// redo per document handle (only this page's changes, the remote ones
// stay), canUndo/canRedo and their event, stable cursors through remote
// edits, marks that survive a merge, typed errors for bad cursors and
// paths — in the page and in worker mode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { createRepoIn, waitForConnection, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();
const waitSynced = (page) => waitForConnection(page, "synced", TIMEOUT.sync);
const noteIs = (page, text, what) =>
  waitInPage(page, (text) => window.doc?.value?.note === text, text, TIMEOUT.sync, `${what}: note ${JSON.stringify(text)}`);

/**
 * Two browsers (separate storage) on one new doc whose note is `text`, the
 * engine in each page: these tests call the synchronous `cursor()` and
 * `marks()` and cut the network with `context.setOffline`, which does not
 * reach a SharedWorker's socket (worker mode is tested at the end).
 */
async function twoPages(text) {
  const a = await newPage(env.browser, "a");
  const b = await newPage(env.browser, "b");
  for (const { page } of [a, b]) {
    await page.goto(`${env.site.url}/`);
    await createRepoIn(page, relays.relay.wsUrl, { worker: false });
  }
  const url = await a.page.evaluate(async (text) => {
    const { Text } = await import("/dist/index.js");
    window.doc = await window.repo.create({ title: "t" });
    window.doc.change((d) => (d.note = new Text(text)), { undoable: false });
    return window.doc.url;
  }, text);
  await waitSynced(a.page);
  await b.page.evaluate(async (url) => {
    window.doc = await window.repo.open(url);
  }, url);
  await noteIs(b.page, text, "b opened the doc");
  return { a, b, url, close: () => Promise.all([a.context.close(), b.context.close()]) };
}

const type = (page, at, text, options) =>
  page.evaluate(
    async ({ at, text, options }) => {
      const { splice } = await import("/dist/index.js");
      window.doc.change((d) => splice(d, "note", at === "end" ? d.note.length : at, 0, text), options);
      await window.repo.flush();
      return window.doc.value.note;
    },
    { at, text, options },
  );

test("undo reverts only this page's changes; the other page's concurrent text stays, and both converge", { timeout: 90_000 }, async () => {
  const { a, b, close } = await twoPages("base");
  try {
    await a.context.setOffline(true);
    await b.context.setOffline(true);
    assert.equal(await type(a.page, "end", " from-a"), "base from-a");
    assert.equal(await type(b.page, 0, "from-b "), "from-b base");
    await a.context.setOffline(false);
    await b.context.setOffline(false);
    for (const page of [a.page, b.page]) await noteIs(page, "from-b base from-a", "merged");

    const undone = await a.page.evaluate(async () => {
      const before = { canUndo: window.doc.canUndo, canRedo: window.doc.canRedo };
      const heard = [];
      window.doc.on("undoState", (state) => heard.push({ ...state }));
      const did = window.doc.undo();
      await window.repo.flush();
      return { before, did, note: window.doc.value.note, after: { canUndo: window.doc.canUndo, canRedo: window.doc.canRedo }, heard };
    });
    assert.deepEqual(undone.before, { canUndo: true, canRedo: false });
    assert.equal(undone.did, true);
    assert.equal(undone.note, "from-b base", "a's text is gone, b's stays");
    assert.deepEqual(undone.after, { canUndo: false, canRedo: true });
    assert.deepEqual(undone.heard, [{ canUndo: false, canRedo: true }]);
    await noteIs(b.page, "from-b base", "the undo reached b like any change");

    // Nothing more to undo: a no-op that says so.
    assert.equal(await a.page.evaluate(() => window.doc.undo()), false);
    assert.equal(await a.page.evaluate(() => window.doc.redo()), true);
    for (const page of [a.page, b.page]) await noteIs(page, "from-b base from-a", "redo, everywhere");

    // The undo is a normal change: in history on the other page.
    const messages = await b.page.evaluate(() => window.doc.history().length);
    assert.ok(messages >= 5, `history has the undo and the redo (${messages} entries)`);
  } finally {
    await close();
  }
});

test("changes within the capture window are one step; undoable:false opts out; a new change clears redo", { timeout: 60_000 }, async () => {
  const a = await newPage(env.browser, "a");
  try {
    await a.page.goto(`${env.site.url}/`);
    const result = await a.page.evaluate(async () => {
      const { createRepo, splice, Text } = await import("/dist/index.js");
      const repo = await createRepo({ name: "capture", undoCaptureMs: 60_000, worker: false });
      const doc = await repo.create({ n: 0 });
      doc.change((d) => (d.note = new Text("")), { undoable: false });
      const typeAt = (text, options) => doc.change((d) => splice(d, "note", d.note.length, 0, text), options);
      typeAt("a");
      typeAt("b");
      typeAt("c"); // one step: within 60 s
      doc.change((d) => (d.n = 1), { undoable: false });
      const steps = [];
      steps.push(doc.undo(), doc.value.note, doc.value.n); // the one step; n stays
      steps.push(doc.undo());
      const redone = doc.redo();
      typeAt("x"); // clears redo
      const afterNew = { canRedo: doc.canRedo, redo: doc.redo(), note: doc.value.note };
      let bad;
      try {
        await createRepo({ name: "bad", undoCaptureMs: -1 });
      } catch (error) {
        bad = error.code;
      }
      return { steps, redone, afterNew, bad };
    });
    assert.deepEqual(result.steps, [true, "", 1, false]);
    assert.equal(result.redone, true);
    assert.deepEqual(result.afterNew, { canRedo: false, redo: false, note: "abcx" });
    assert.equal(result.bad, "BadOption");
  } finally {
    await a.context.close();
  }
});

test("a cursor stays before the same character through remote inserts and deletes; bad cursors and paths get typed errors", { timeout: 90_000 }, async () => {
  const { a, b, close } = await twoPages("hello world");
  try {
    const cursor = await a.page.evaluate(() => (window.cursor = window.doc.cursor(["note"], 6))); // before "w"
    assert.equal(typeof cursor, "string");
    await type(b.page, 0, ">>> ");
    await b.page.evaluate(async () => {
      const { splice } = await import("/dist/index.js");
      window.doc.change((d) => splice(d, "note", 4, 2, "")); // ">>> llo world"
      await window.repo.flush();
    });
    await noteIs(a.page, ">>> llo world", "b's edits at a");
    const at = await a.page.evaluate(() => window.doc.cursorPosition(["note"], window.cursor));
    assert.equal(at, 8);
    assert.equal((await a.page.evaluate(() => window.doc.value.note))[at], "w");
    // The same cursor string means the same place on the other page.
    assert.equal(await b.page.evaluate((c) => window.doc.cursorPosition(["note"], c), cursor), 8);

    const errors = await a.page.evaluate(async () => {
      const code = (f) => {
        try {
          f();
          return "no error";
        } catch (error) {
          return error.code;
        }
      };
      const other = await window.repo.create({ note: "" });
      const { Text } = await import("/dist/index.js");
      other.change((d) => (d.note = new Text("xyz")));
      const foreign = other.cursor(["note"], 1);
      return {
        malformed: code(() => window.doc.cursorPosition(["note"], "not a cursor")),
        foreign: code(() => window.doc.cursorPosition(["note"], foreign)),
        pastEnd: code(() => window.doc.cursor(["note"], 10_000)),
        notText: code(() => window.doc.cursor(["title"], 0)),
        noPath: code(() => window.doc.marks(["nothing", 3])),
      };
    });
    assert.deepEqual(errors, { malformed: "BadCursor", foreign: "BadCursor", pastEnd: "BadCursor", notText: "BadOp", noPath: "BadOp" });
  } finally {
    await close();
  }
});

test("marks survive a merge with concurrent inserts, and unmark removes them everywhere", { timeout: 90_000 }, async () => {
  const { a, b, close } = await twoPages("so hello my world");
  try {
    await a.context.setOffline(true);
    await b.context.setOffline(true);
    await a.page.evaluate(async () => {
      const { mark } = await import("/dist/index.js");
      window.doc.change((d) => mark(d, "note", { start: 12, end: 17 }, "bold", true)); // "world"
      window.doc.change((d) => mark(d, "note", { start: 3, end: 8 }, "link", "https://example.test/", { expand: "none" })); // "hello"
      await window.repo.flush();
    });
    // Inside "hello" and before everything: away from the marks' ends, where concurrent inserts' order is Automerge's to decide.
    await type(b.page, 5, "X");
    await type(b.page, 0, "Oh, ");
    await a.context.setOffline(false);
    await b.context.setOffline(false);
    const merged = "Oh, so heXllo my world";
    for (const page of [a.page, b.page]) await noteIs(page, merged, "merged");
    for (const page of [a.page, b.page]) {
      await waitInPage(page, () => window.doc.marks(["note"]).length === 2, undefined, TIMEOUT.sync, "both marks");
      const marks = await page.evaluate(() => window.doc.marks(["note"]).map((m) => ({ ...m, text: window.doc.value.note.slice(m.start, m.end) })));
      assert.deepEqual(
        marks.map(({ name, value, text }) => ({ name, value, text })),
        [
          { name: "link", value: "https://example.test/", text: "heXllo" },
          { name: "bold", value: true, text: "world" },
        ],
      );
    }
    await b.page.evaluate(async () => {
      const { unmark } = await import("/dist/index.js");
      const n = window.doc.value.note;
      window.doc.change((d) => unmark(d, "note", { start: n.indexOf("world"), end: n.length }, "bold"));
      await window.repo.flush();
    });
    await waitInPage(a.page, () => window.doc.marks(["note"]).length === 1, undefined, TIMEOUT.sync, "bold removed at a");
    const bad = await a.page.evaluate(async () => {
      const { mark } = await import("/dist/index.js");
      try {
        window.doc.change((d) => mark(d, "note", { start: 3, end: 1 }, "bold"));
        return "no error";
      } catch (error) {
        return error.code;
      }
    });
    assert.equal(bad, "BadOp");
  } finally {
    await close();
  }
});

test("worker mode: undo, canUndo and cursors work through the shared worker", { timeout: 90_000 }, async () => {
  const context = await env.browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${env.site.url}/`);
    const result = await page.evaluate(async (relay) => {
      const { createRepo, splice, Text } = await import("/dist/index.js");
      const repo = await createRepo({ relay, name: "edit-w", worker: true, undoCaptureMs: 0 });
      const doc = await repo.create({});
      doc.change((d) => (d.note = new Text("abc")), { undoable: false });
      const states = [];
      doc.on("undoState", (s) => states.push({ ...s }));
      doc.change((d) => splice(d, "note", 3, 0, "def"));
      const afterChange = doc.canUndo;
      let sync;
      try {
        doc.cursor(["note"], 1);
      } catch (error) {
        sync = error.code;
      }
      const cursor = await doc.cursorAsync(["note"], 4); // before "e"
      doc.change((d) => splice(d, "note", 0, 0, "123"));
      await repo.flush();
      const moved = await doc.cursorPositionAsync(["note"], cursor);
      const undone = new Promise((resolve) => doc.subscribe((value) => value.note === "abcdef" && resolve()));
      const did = doc.undo();
      await undone; // the worker answers with its patches
      await repo.flush();
      return { afterChange, sync, moved, did, note: doc.value.note, canRedo: doc.canRedo, states, status: repo.status.warning ?? null };
    }, relays.relay.wsUrl);
    assert.equal(result.status, null, "the worker ran");
    assert.equal(result.afterChange, true);
    assert.equal(result.sync, "Unsupported");
    assert.equal(result.moved, 7);
    assert.equal(result.did, true);
    assert.equal(result.note, "abcdef");
    assert.equal(result.canRedo, true);
    assert.deepEqual(result.states.at(-1), { canUndo: true, canRedo: true });
  } finally {
    await context.close();
  }
});
