// Unit tests of the change recorder: exact op lists, and reads of own writes.
// Runs on the compiled JS (`npm test` compiles first); needs no wasm.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as draft from "../.test-build/draft.js";

const { increment, recordChange, splice } = draft;
import { Counter, Text } from "../.test-build/crdt-values.js";
import { SynclineError } from "../.test-build/errors.js";

const deepFreeze = (v) => {
  if (v && typeof v === "object") {
    Object.freeze(v);
    Object.values(v).forEach(deepFreeze);
  }
  return v;
};
const record = (base, fn) => recordChange(deepFreeze(structuredClone(base)), fn);

test("map put and delete", () => {
  const ops = record({ title: "x", gone: 1 }, (d) => {
    d.title = "y";
    d.n = 3;
    delete d.gone;
    delete d.missing; // nothing to delete: no op
  });
  assert.deepEqual(ops, [
    { op: "put", obj: [], key: "title", value: "y" },
    { op: "put", obj: [], key: "n", value: 3 },
    { op: "delete", obj: [], key: "gone" },
  ]);
});

test("push inserts at the end, several values in one op", () => {
  const ops = record({ items: ["a"] }, (d) => {
    assert.equal(d.items.push("b"), 2);
    assert.equal(d.items.push("c", "d"), 4);
  });
  assert.deepEqual(ops, [
    { op: "insert", obj: ["items"], index: 1, values: ["b"] },
    { op: "insert", obj: ["items"], index: 2, values: ["c", "d"] },
  ]);
});

test("unshift, pop, shift", () => {
  const ops = record({ l: [1, 2, 3] }, (d) => {
    assert.equal(d.l.unshift(0), 4);
    assert.equal(d.l.pop(), 3);
    assert.equal(d.l.shift(), 0);
    assert.deepEqual([...d.l], [1, 2]);
  });
  assert.deepEqual(ops, [
    { op: "insert", obj: ["l"], index: 0, values: [0] },
    { op: "delete", obj: ["l"], key: 3 },
    { op: "delete", obj: ["l"], key: 0 },
  ]);
});

test("pop and shift on an empty list record nothing", () => {
  const ops = record({ l: [] }, (d) => {
    assert.equal(d.l.pop(), undefined);
    assert.equal(d.l.shift(), undefined);
  });
  assert.deepEqual(ops, []);
});

test("splice: delete then insert, negative start, count clamping, return value", () => {
  const ops = record({ l: ["a", "b", "c", "d", "e"] }, (d) => {
    assert.deepEqual(d.l.splice(1, 2, "x", "y", "z"), ["b", "c"]);
    assert.deepEqual(d.l.splice(-1), ["e"]);
    assert.deepEqual(d.l.splice(0, 1), ["a"]);
    assert.deepEqual(d.l.splice(1, 0, "w"), []);
    assert.deepEqual(d.l.splice(3, 100), ["z", "d"]);
    assert.deepEqual([...d.l], ["x", "w", "y"]);
  });
  assert.deepEqual(ops, [
    { op: "delete", obj: ["l"], key: 1, count: 2 },
    { op: "insert", obj: ["l"], index: 1, values: ["x", "y", "z"] },
    { op: "delete", obj: ["l"], key: 5 },
    { op: "delete", obj: ["l"], key: 0 },
    { op: "insert", obj: ["l"], index: 1, values: ["w"] },
    { op: "delete", obj: ["l"], key: 3, count: 2 },
  ]);
});

test("index assignment is a put; assigning at length appends", () => {
  const ops = record({ l: ["a", "b"] }, (d) => {
    d.l[0] = "A";
    d.l[2] = "c";
  });
  assert.deepEqual(ops, [
    { op: "put", obj: ["l"], key: 0, value: "A" },
    { op: "insert", obj: ["l"], index: 2, values: ["c"] },
  ]);
});

test("length truncation deletes the tail", () => {
  const ops = record({ l: [1, 2, 3, 4] }, (d) => {
    d.l.length = 1;
    d.l.length = 1; // no-op
    d.l.length = 0;
  });
  assert.deepEqual(ops, [
    { op: "delete", obj: ["l"], key: 1, count: 3 },
    { op: "delete", obj: ["l"], key: 0 },
  ]);
});

test("nested drafts carry their paths", () => {
  const base = { todos: [{ title: "a", done: false, tags: [] }, { title: "b", done: false, tags: ["x"] }], meta: { owner: { name: "n" } } };
  const ops = record(base, (d) => {
    d.todos[1].done = true;
    d.todos[0].tags.push("urgent");
    d.meta.owner.name = "m";
    delete d.todos[1].tags;
    d.todos.push({ title: "c", done: false });
    d.todos[2].done = true;
  });
  assert.deepEqual(ops, [
    { op: "put", obj: ["todos", 1], key: "done", value: true },
    { op: "insert", obj: ["todos", 0, "tags"], index: 0, values: ["urgent"] },
    { op: "put", obj: ["meta", "owner"], key: "name", value: "m" },
    { op: "delete", obj: ["todos", 1], key: "tags" },
    { op: "insert", obj: ["todos"], index: 2, values: [{ title: "c", done: false }] },
    { op: "put", obj: ["todos", 2], key: "done", value: true },
  ]);
});

test("a held nested draft follows its element when the list shifts", () => {
  const ops = record({ todos: [{ t: "a" }, { t: "b" }] }, (d) => {
    const b = d.todos[1];
    d.todos.unshift({ t: "z" });
    b.t = "B";
    d.todos.splice(0, 2);
    b.t = "BB";
  });
  assert.deepEqual(ops, [
    { op: "insert", obj: ["todos"], index: 0, values: [{ t: "z" }] },
    { op: "put", obj: ["todos", 2], key: "t", value: "B" },
    { op: "delete", obj: ["todos"], key: 0, count: 2 },
    { op: "put", obj: ["todos", 0], key: "t", value: "BB" },
  ]);
});

test("writing through a removed draft throws BadOp", () => {
  assert.throws(
    () =>
      record({ todos: [{ t: "a" }] }, (d) => {
        const a = d.todos[0];
        d.todos.pop();
        a.t = "x";
      }),
    (e) => e instanceof SynclineError && e.code === "BadOp",
  );
});

test("the draft reads its own writes", () => {
  record({ items: ["a"], m: { k: 1 } }, (d) => {
    d.items.push("b");
    assert.equal(d.items.length, 2);
    assert.equal(d.items[1], "b");
    assert.deepEqual(d.items.map((x) => x.toUpperCase()), ["A", "B"]);
    d.m.k = 2;
    assert.equal(d.m.k, 2);
    d.m.nested = { list: [1] };
    d.m.nested.list.push(2);
    assert.deepEqual(JSON.parse(JSON.stringify(d.m)), { k: 2, nested: { list: [1, 2] } });
    delete d.m.k;
    assert.equal("k" in d.m, false);
    assert.deepEqual(Object.keys(d.m), ["nested"]);
    d.items.splice(0, 1);
    assert.deepEqual([...d.items], ["b"]);
    assert.equal(Array.isArray(d.items), true);
  });
});

test("values written after a nested write are recorded with the nested path", () => {
  const ops = record({}, (d) => {
    d.m = { list: [1] };
    d.m.list.push(2);
  });
  assert.deepEqual(ops, [
    { op: "put", obj: [], key: "m", value: { list: [1] } },
    { op: "insert", obj: ["m", "list"], index: 1, values: [2] },
  ]);
});

test("assigning a draft stores a plain copy of its current value", () => {
  const ops = record({ a: { x: [1] } }, (d) => {
    d.a.x.push(2);
    d.b = d.a;
    d.b.x.push(3);
  });
  assert.deepEqual(ops, [
    { op: "insert", obj: ["a", "x"], index: 1, values: [2] },
    { op: "put", obj: [], key: "b", value: { x: [1, 2] } },
    { op: "insert", obj: ["b", "x"], index: 2, values: [3] },
  ]);
  // The op's value is a snapshot: the later push did not change it.
  assert.deepEqual(ops[1].value, { x: [1, 2] });
});

test("reverse and sort put the elements that moved", () => {
  const ops = record({ l: ["c", "a", "b"] }, (d) => {
    d.l.sort();
    assert.deepEqual([...d.l], ["a", "b", "c"]);
    d.l.reverse();
  });
  assert.deepEqual(ops, [
    { op: "put", obj: ["l"], key: 0, value: "a" },
    { op: "put", obj: ["l"], key: 1, value: "b" },
    { op: "put", obj: ["l"], key: 2, value: "c" },
    { op: "put", obj: ["l"], key: 0, value: "c" },
    { op: "put", obj: ["l"], key: 2, value: "a" },
  ]);
});

test("setting a property to undefined deletes it", () => {
  const ops = record({ a: 1 }, (d) => {
    d.a = undefined;
  });
  assert.deepEqual(ops, [{ op: "delete", obj: [], key: "a" }]);
});

test("non-JSON values are rejected with BadValue", () => {
  const isBadValue = (e) => e instanceof SynclineError && e.code === "BadValue";
  assert.throws(() => record({}, (d) => { d.x = new Date(); }), isBadValue);
  assert.throws(() => record({}, (d) => { d.x = NaN; }), isBadValue);
  assert.throws(() => record({}, (d) => { d.x = () => 1; }), isBadValue);
  assert.throws(() => record({ l: [] }, (d) => { d.l.push(undefined); }), isBadValue);
  assert.throws(() => record({}, (d) => { const c = {}; c.c = c; d.x = c; }), isBadValue);
});

test("list misuse is rejected with BadOp", () => {
  const isBadOp = (e) => e instanceof SynclineError && e.code === "BadOp";
  assert.throws(() => record({ l: [] }, (d) => { d.l[5] = 1; }), isBadOp);
  assert.throws(() => record({ l: [1] }, (d) => { delete d.l[0]; }), isBadOp);
  assert.throws(() => record({ l: [1] }, (d) => { d.l.length = 3; }), isBadOp);
  assert.throws(() => record({}, async () => {}), isBadOp);
});

test("the draft is unusable after the change", () => {
  let kept;
  record({ l: [] }, (d) => {
    kept = d;
  });
  assert.throws(() => kept.l.push(1), TypeError);
});

test("the base value is never mutated", () => {
  const base = deepFreeze({ l: [{ a: 1 }], m: { k: "v" } });
  recordChange(base, (d) => {
    d.l[0].a = 2;
    d.l.push(3);
    d.m.k = "w";
    delete d.m.k;
  });
  assert.deepEqual(base, { l: [{ a: 1 }], m: { k: "v" } });
});

test("text: new Text puts a text; splice records UTF-16 edits and reads back", () => {
  let seen;
  const ops = record({ notes: [], n: "x" }, (d) => {
    d.title = new Text("héllo");
    splice(d, "title", 5, 0, " 🌍");
    splice(d, "title", 0, 1, "H");
    d.notes.push("plain", new Text("b"));
    splice(d.notes, 1, 1, 0, "c");
    seen = [d.title, d.notes[1]];
  });
  assert.deepEqual(seen, ["Héllo 🌍", "bc"]);
  assert.deepEqual(ops, [
    { op: "put_text", obj: [], key: "title", value: "héllo" },
    { op: "splice_text", obj: ["title"], index: 5, delete: 0, insert: " 🌍" },
    { op: "splice_text", obj: ["title"], index: 0, delete: 1, insert: "H" },
    { op: "insert", obj: ["notes"], index: 0, values: ["plain", null] },
    { op: "put_text", obj: ["notes"], key: 1, value: "b" },
    { op: "splice_text", obj: ["notes", 1], index: 1, delete: 0, insert: "c" },
  ]);
});

test("counter: new Counter puts a counter; increment records and reads back", () => {
  let seen;
  const ops = record({ c: 5, list: [1] }, (d) => {
    d.likes = new Counter();
    increment(d, "likes");
    increment(d, "likes", -3);
    d.list[0] = new Counter(7);
    increment(d.list, 0, 2);
    seen = [d.likes, d.list[0]];
  });
  assert.deepEqual(seen, [-2, 9]);
  assert.deepEqual(ops, [
    { op: "put_counter", obj: [], key: "likes", value: 0 },
    { op: "increment", obj: [], key: "likes", by: 1 },
    { op: "increment", obj: [], key: "likes", by: -3 },
    { op: "put_counter", obj: ["list"], key: 0, value: 7 },
    { op: "increment", obj: ["list"], key: 0, by: 2 },
  ]);
});

test("text and counter misuse fails with BadOp or BadValue, recording nothing", () => {
  const bad = (fn, code) =>
    assert.throws(() => record({ t: "abc", n: 1, list: [] }, fn), (e) => e instanceof SynclineError && e.code === code);
  bad((d) => splice(d, "t", 2, 5, ""), "BadOp"); // past the end
  bad((d) => splice(d, "n", 0, 0, "x"), "BadOp"); // not a text
  bad((d) => splice(d, "missing", 0, 0, "x"), "BadOp");
  bad((d) => splice(d.list, "0", 0, 0, "x"), "BadOp"); // lists take numeric indices
  bad((d) => increment(d, "t"), "BadOp"); // not a counter
  bad((d) => increment(d, "n", 0.5), "BadOp");
  bad((d) => { d.x = { nested: new Text("a") }; }, "BadValue");
  bad(() => splice({ t: "abc" }, "t", 0, 0, "x"), "BadOp"); // not a draft
  let kept;
  record({ t: "abc" }, (d) => (kept = d));
  assert.throws(() => splice(kept, "t", 0, 0, "x"), (e) => e.code === "BadOp", "a draft is dead after its change");
});

// Bulk edits stay linear (issue 21): counted, not timed, so a busy machine
// cannot make it flaky. Every list element visited to find a draft's index
// is counted, whether by Array.prototype.indexOf (how paths were found
// before: ~n²/2 visits here, 50 million for n = 10,000) or by the draft's
// own re-indexing pass (`pathScans`).
test("bulk edits in one change visit each list element a bounded number of times", () => {
  const n = 10_000;
  const base = { items: Array.from({ length: n }, (_, i) => ({ id: i, done: false })), map: {} };
  const indexOf = Array.prototype.indexOf;
  let visited = 0;
  Array.prototype.indexOf = function (...args) {
    const at = indexOf.apply(this, args);
    visited += at < 0 ? this.length : at + 1;
    return at;
  };
  const scans = () => draft.pathScans?.elements ?? 0; // absent before the fix
  const scansBefore = scans();
  let ops;
  try {
    ops = record(base, (d) => {
      for (let i = 0; i < n; i++) d.items[i].done = true;
      d.items.unshift({ id: -1, done: false }); // every held index is now off by one
      for (let i = 1; i <= n; i++) d.items[i].id = i;
      for (let i = 0; i < n; i++) d.items.push({ id: n + i, done: false });
      for (let i = 0; i < n; i++) d.items[n + 1 + i].done = true;
      for (let i = 0; i < n; i++) d.map[`k${i}`] = i;
    });
  } finally {
    Array.prototype.indexOf = indexOf;
  }
  visited += scans() - scansBefore;
  assert.equal(ops.length, 5 * n + 1);
  assert.deepEqual(ops[n + 1], { op: "put", obj: ["items", 1], key: "id", value: 1 });
  assert.deepEqual(ops.at(-1), { op: "put", obj: ["map"], key: `k${n - 1}`, value: n - 1 });
  // One re-indexing pass after the unshift (n + 1 elements); a few more are allowed.
  assert.ok(visited <= 4 * n, `path lookups visited ${visited} list elements for ${5 * n + 1} ops on lists of ≤ ${2 * n + 1}`);
});
