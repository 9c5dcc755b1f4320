// applyPatches: the engine's patches applied to a frozen value, copying only
// the containers on each patch's path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyPatches, shareAndFreeze } from "../.test-build/snapshot.js";

const frozen = (value) => shareAndFreeze(undefined, structuredClone(value));

test("only the path is copied: untouched subtrees keep their identity; the result is frozen", () => {
  const base = frozen({ a: { x: [1, 2] }, b: { y: { z: 1 } }, list: [{ t: "one" }, { t: "two" }] });
  const next = applyPatches(base, [
    { action: "put", path: ["list", 1], key: "done", value: true },
    { action: "insert", path: ["a", "x"], index: 2, values: [3, { deep: [4] }] },
  ]);
  assert.deepEqual(next, { a: { x: [1, 2, 3, { deep: [4] }] }, b: { y: { z: 1 } }, list: [{ t: "one" }, { t: "two", done: true }] });
  assert.equal(next.b, base.b, "untouched map shared");
  assert.equal(next.list[0], base.list[0], "untouched list item shared");
  assert.notEqual(next.list, base.list);
  assert.deepEqual(base.list[1], { t: "two" }, "the old value is unchanged");
  for (const v of [next, next.a, next.a.x, next.a.x[3], next.a.x[3].deep, next.list, next.list[1]]) assert.ok(Object.isFrozen(v));
  assert.equal(applyPatches(base, []), base, "no patches: the same value");
});

test("deletes, counters, text splices and deletes, and a new container filled by later patches", () => {
  const base = frozen({ gone: 1, n: 5, note: "héllo", list: ["a", "b", "c", "d"] });
  const next = applyPatches(base, [
    { action: "del", path: [], key: "gone", length: 1 },
    { action: "inc", path: [], key: "n", value: -2 },
    { action: "del", path: ["note"], key: 1, length: 1 },
    { action: "splice", path: ["note"], index: 1, value: "e🌍" },
    { action: "del", path: ["list"], key: 1, length: 2 },
    { action: "put", path: [], key: "child", value: {} },
    { action: "put", path: ["child"], key: "items", value: [] },
    { action: "insert", path: ["child", "items"], index: 0, values: ["x"] },
  ]);
  assert.deepEqual(next, { n: 3, note: "he🌍llo", list: ["a", "d"], child: { items: ["x"] } });
  assert.ok(Object.isFrozen(next.child.items));
});

test("a map key named __proto__ is an ordinary key", () => {
  const next = applyPatches(frozen({}), [{ action: "put", path: [], key: "__proto__", value: { polluted: true } }]);
  assert.equal(Object.getPrototypeOf(next), Object.prototype);
  assert.deepEqual(Object.keys(next), ["__proto__"]);
  assert.equal({}.polluted, undefined);
});

test("a local change's ops, as patches, give the value the draft showed", async () => {
  const { opsToPatches } = await import("../.test-build/snapshot.js");
  const { recordChange, splice, increment } = await import("../.test-build/draft.js");
  const { Counter, Text } = await import("../.test-build/crdt-values.js");
  const base = frozen({ title: "t", gone: true, n: 2, note: "hello", list: [1, 2, 3, 4, 5], nested: { keep: { x: 1 }, edit: { y: 1 } } });
  const ops = recordChange(base, (d) => {
    d.title = "renamed";
    delete d.gone;
    increment(d, "n", 3);
    splice(d, "note", 1, 3, "ipp");
    d.list.push(6, { deep: [7] });
    d.list.splice(1, 2, "two", "three", "more");
    d.list.shift();
    d.list[0] = "first";
    d.nested.edit.y = 2;
    d.nested.added = { z: [1] };
    d.fresh = new Text("new text");
    d.likes = new Counter(10);
  });
  const next = applyPatches(base, opsToPatches(ops));
  assert.deepEqual(next, {
    title: "renamed",
    n: 5,
    note: "hippo",
    list: ["first", "three", "more", 4, 5, 6, { deep: [7] }],
    nested: { keep: { x: 1 }, edit: { y: 2 }, added: { z: [1] } },
    fresh: "new text",
    likes: 10,
  });
  assert.equal(next.nested.keep, base.nested.keep, "untouched subtree shared");
  assert.ok(Object.isFrozen(next.list[6]));
});
