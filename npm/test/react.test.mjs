// The React hooks (syncline/react) under React 19's own renderer
// (react-test-renderer: the real reconciler, hooks and effects, no DOM):
// first render, re-render only when what a component reads changed, and
// unsubscribe on unmount. The documents are real `Handle`s (the class
// repo.create/open return) over an in-memory host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { act, createElement } from "react";
import TestRenderer from "react-test-renderer";
import { Handle } from "../.test-build/doc-handle.js";
import { RepoProvider, useDoc, useHistory, usePresence, useSyncStatus, useUndo } from "../.test-build/react.js";
import { undoHost } from "./undo-host.mjs";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
// react-test-renderer says once that it is deprecated; nothing else may reach console.error.
const errors = [];
console.error = (...args) => {
  if (!String(args[0]).includes("react-test-renderer is deprecated")) errors.push(args.map(String).join(" "));
};

/** A repo with one document, whose subscriptions are counted. */
function fakeRepo(initial) {
  const url = "syncline:doc1#key";
  const host = {
    ...undoHost(),
    setPresence: () => {},
    docStatus: () => ({ unsaved: 0, pending: 0 }),
    heads: () => [],
    entries: [],
    history: () => host.entries.map((entry) => ({ ...entry })),
  };
  const handle = new Handle(host, url, initial);
  const counts = { doc: 0, presence: 0, status: 0, opens: 0, undoState: 0 };
  const counted = (target, key, name) => {
    const subscribe = target[key].bind(target);
    target[key] = (fn) => {
      counts[name]++;
      const stop = subscribe(fn);
      return () => {
        counts[name]--;
        stop();
      };
    };
  };
  counted(handle, "subscribe", "doc");
  const on = handle.on.bind(handle);
  handle.on = (event, fn) => {
    if (event !== "undoState") return on(event, fn);
    counts.undoState++;
    const stop = on(event, fn);
    return () => {
      counts.undoState--;
      stop();
    };
  };
  counted(handle.presence, "subscribe", "presence");
  const statusListeners = new Set();
  const repo = {
    status: Object.freeze({ connection: "open", unsaved: 0, pending: 0, lastSyncedAt: null }),
    async open(asked) {
      assert.equal(asked, url);
      counts.opens++;
      return handle;
    },
    on(event, listener) {
      assert.equal(event, "status");
      counts.status++;
      statusListeners.add(listener);
      return () => {
        counts.status--;
        statusListeners.delete(listener);
      };
    },
    setStatus(status) {
      this.status = Object.freeze(status);
      for (const listener of statusListeners) listener(this.status);
    },
  };
  /** Another replica's change, as the repo delivers it: patches, then notify. */
  const remote = (patches) => act(() => {
    handle.apply(patches);
    handle.notify();
  });
  return { url, handle, host, repo, counts, remote };
}

/** Renders `component` under a RepoProvider; records every render's props. */
async function render(repo, component) {
  const renders = [];
  const Probe = (props) => {
    renders.push(component(props));
    return null;
  };
  let root;
  await act(async () => {
    root = TestRenderer.create(createElement(RepoProvider, { repo }, createElement(Probe)));
  });
  return { renders, root };
}

test("useDoc: undefined on the first render, the value once open, re-rendered on change, unsubscribed on unmount", async () => {
  const { url, repo, counts, remote, handle } = fakeRepo({ items: ["milk"], title: "list" });
  let change;
  const { renders, root } = await render(repo, () => {
    const [value, doChange] = useDoc(url);
    change = doChange;
    return value;
  });
  assert.equal(renders[0], undefined, "first render: not open yet");
  assert.deepEqual(renders.at(-1), { items: ["milk"], title: "list" });
  assert.equal(counts.doc, 1, "one subscription while mounted");
  assert.equal(counts.opens, 1);

  const before = renders.length;
  await remote([{ action: "insert", path: ["items"], index: 1, values: ["eggs"] }]);
  assert.equal(renders.length, before + 1, "one re-render per change");
  assert.deepEqual(renders.at(-1).items, ["milk", "eggs"]);

  await act(() => change((d) => void (d.title = "groceries")));
  assert.equal(renders.at(-1).title, "groceries", "a local change re-renders too");
  assert.equal(handle.value.title, "groceries");

  await act(() => root.unmount());
  assert.equal(counts.doc, 0, "unsubscribed on unmount");
  const after = renders.length;
  await remote([{ action: "put", path: [], key: "title", value: "after" }]);
  assert.equal(renders.length, after, "no render after unmount");
  assert.deepEqual(errors, []);
});

test("useDoc with a selector re-renders only when the selected part changed", async () => {
  const { url, repo, remote } = fakeRepo({ items: ["milk"], title: "list" });
  const { renders, root } = await render(repo, () => useDoc(url, (d) => d.items)[0]);
  const settled = renders.length;
  assert.deepEqual(renders.at(-1), ["milk"]);
  await remote([{ action: "put", path: [], key: "title", value: "other" }]);
  assert.equal(renders.length, settled, "another part changed: no re-render");
  await remote([{ action: "insert", path: ["items"], index: 1, values: ["eggs"] }]);
  assert.equal(renders.length, settled + 1);
  assert.deepEqual(renders.at(-1), ["milk", "eggs"]);
  await act(() => root.unmount());
  assert.deepEqual(errors, []);
});

test("useSyncStatus: first render has the status, re-renders only on a new status, unsubscribes on unmount", async () => {
  const { repo, counts } = fakeRepo({});
  const { renders, root } = await render(repo, () => useSyncStatus());
  assert.equal(renders[0].connection, "open", "the first render has it");
  assert.equal(counts.status, 1);
  const settled = renders.length;
  await act(() => repo.setStatus(repo.status)); // the same frozen object: nothing changed
  assert.equal(renders.length, settled, "same status: no re-render");
  await act(() => repo.setStatus({ ...repo.status, connection: "offline" }));
  assert.equal(renders.length, settled + 1);
  assert.equal(renders.at(-1).connection, "offline");
  await act(() => root.unmount());
  assert.equal(counts.status, 0, "unsubscribed on unmount");
  assert.deepEqual(errors, []);
});

test("usePresence: no peers at first, a peer re-renders, unsubscribed on unmount", async () => {
  const { url, repo, counts, handle } = fakeRepo({});
  const { renders, root } = await render(repo, () => usePresence(url)[0]);
  assert.deepEqual(renders[0], []);
  assert.equal(counts.presence, 1);
  const settled = renders.length;
  await act(() => handle.presenceChanged("peer-1", new TextEncoder().encode(JSON.stringify({ name: "ada" }))));
  assert.equal(renders.length, settled + 1);
  assert.deepEqual(renders.at(-1).map((p) => p.state), [{ name: "ada" }]);
  await act(() => root.unmount());
  assert.equal(counts.presence, 0, "unsubscribed on unmount");
  assert.deepEqual(errors, []);
});

test("useUndo: nothing to undo at first, re-renders only when canUndo/canRedo change, undo/redo through the handle, unsubscribed on unmount", async () => {
  const { url, repo, counts, handle } = fakeRepo({ title: "list" });
  const { renders, root } = await render(repo, () => useUndo(url));
  assert.equal(renders[0].canUndo, false, "first render: not open yet");
  assert.equal(renders[0].canRedo, false);
  assert.equal(renders[0].undo(), false, "undo before open does nothing");
  assert.equal(counts.undoState, 1, "one listener while mounted");
  const settled = renders.length;

  await act(() => void handle.change((d) => void (d.title = "a")));
  assert.equal(renders.length, settled + 1, "canUndo became true: one re-render");
  assert.deepEqual([renders.at(-1).canUndo, renders.at(-1).canRedo], [true, false]);
  await act(() => void handle.change((d) => void (d.title = "b")));
  assert.equal(renders.length, settled + 1, "another change, same canUndo/canRedo: no re-render");

  await act(() => assert.equal(renders.at(-1).undo(), true));
  assert.equal(handle.value.undone, 1, "the handle's undo ran");
  assert.deepEqual([renders.at(-1).canUndo, renders.at(-1).canRedo], [true, true], "one step left, one to redo");
  await act(() => assert.equal(renders.at(-1).undo(), true));
  assert.deepEqual([renders.at(-1).canUndo, renders.at(-1).canRedo], [false, true]);
  const afterUndo = renders.length;
  await act(() => assert.equal(renders.at(-1).undo(), false, "nothing left to undo"));
  assert.equal(renders.length, afterUndo, "a no-op undo: no re-render");
  await act(() => assert.equal(renders.at(-1).redo(), true));
  assert.deepEqual([renders.at(-1).canUndo, renders.at(-1).canRedo], [true, true]);

  await act(() => root.unmount());
  assert.equal(counts.undoState, 0, "unsubscribed on unmount");
  const after = renders.length;
  await act(() => void handle.change((d) => void (d.title = "c")));
  assert.equal(renders.length, after, "no render after unmount");
  assert.deepEqual(errors, []);
});

test("useHistory: the entries as they grow, including those that arrive after the value changed (worker mode), one array per change", async () => {
  const { url, repo, host, handle } = fakeRepo({ title: "list" });
  const entry = (n) => ({ hash: `h${n}`, actor: "a", seq: n, time: 0, message: `m${n}`, deps: [] });
  const { renders, root } = await render(repo, () => useHistory(url));
  assert.deepEqual(renders[0], [], "first render: not open yet");
  assert.deepEqual(renders.at(-1), [], "open, no change yet");

  // In the page the history grows with the change itself.
  await act(() => {
    host.entries.push(entry(1));
    handle.change((d) => void (d.title = "a"));
  });
  assert.deepEqual(renders.at(-1).map((e) => e.hash), ["h1"]);
  // In worker mode the entry arrives later, with no new value: "history" alone re-renders.
  const before = renders.length;
  await act(() => {
    host.entries.push(entry(2));
    handle.historyChanged();
  });
  assert.ok(renders.length > before, "re-rendered for the entry alone");
  assert.deepEqual(renders.at(-1).map((e) => e.hash), ["h1", "h2"]);
  assert.ok(Object.isFrozen(renders.at(-1)));
  // A "history" event with nothing added (worker mode: the change's entry still on its way): the same array, no re-render.
  const unchanged = renders.length;
  await act(() => handle.historyChanged());
  assert.equal(renders.length, unchanged, "nothing added: no re-render");

  await act(() => root.unmount());
  const after = renders.length;
  await act(() => {
    host.entries.push(entry(3));
    handle.historyChanged();
  });
  assert.equal(renders.length, after, "no render after unmount");
  assert.deepEqual(errors, []);
});

test("useDoc: once the url changes, no render shows the previous document, until the new one opens", async () => {
  const a = fakeRepo({ name: "a" });
  const b = fakeRepo({ name: "b" });
  let release;
  const repo = {
    ...a.repo,
    async open(asked) {
      if (asked === "syncline:a#k") return a.handle;
      await new Promise((resolve) => (release = resolve));
      return b.handle;
    },
  };
  const renders = [];
  const Probe = ({ url }) => {
    renders.push(useDoc(url)[0]);
    return null;
  };
  const tree = (url) => createElement(RepoProvider, { repo }, createElement(Probe, { url }));
  let root;
  await act(async () => {
    root = TestRenderer.create(tree("syncline:a#k"));
  });
  assert.deepEqual(renders.at(-1), { name: "a" });
  const changed = renders.length;
  await act(async () => root.update(tree("syncline:b#k")));
  assert.ok(renders.length > changed);
  assert.ok(renders.slice(changed).every((value) => value === undefined), "nothing of a while b opens");
  await act(async () => release());
  assert.deepEqual(renders.at(-1), { name: "b" });
  await act(() => root.unmount());
  assert.deepEqual(errors, []);
});
