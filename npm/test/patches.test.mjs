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
