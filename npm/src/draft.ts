/**
 * The change recorder behind `doc.change(d => ...)`.
 *
 * The callback gets a Proxy over a copy-on-access working copy of the current
 * value. Every write through the draft is recorded as an `Op` (this records
 * intent, it does not diff), and applied to the working copy so that later
 * reads in the same callback see it. Containers reachable through the draft
 * are drafts themselves; their path is computed when an op is recorded (list
 * indices by identity), so a draft held across an `unshift` still addresses
 * the right element.
 *
 * Bulk edits stay linear: a list element's draft remembers its last index,
 * checked by identity in O(1); only when that misses (the list moved under
 * it) is the whole list scanned once, re-indexing every element's draft.
 */
import { Counter, Text } from "./crdt-values.js";
import { SynclineError } from "./errors.js";
import type { Expand, JsonObject, JsonValue, MarkValue, Op, Path } from "./types.js";

type Container = JsonValue[] | JsonObject;

interface Node {
  /** Mutable shallow copy of the container; also the Proxy target. */
  copy: Container;
  parent: Node | null;
  /** Key in the parent when the parent is a map. */
  key: string;
  /**
   * Index in the parent when the parent is a list, as last seen: a hint,
   * valid only while `parent.copy[index] === copy` (see `Recorder.indexIn`).
   */
  index: number;
  proxy: Container;
  methods: Map<string, (...args: unknown[]) => unknown> | undefined;
}

const hasOwn = (obj: object, key: PropertyKey): boolean => Object.prototype.hasOwnProperty.call(obj, key);

function isContainer(value: unknown): value is Container {
  return typeof value === "object" && value !== null;
}

/** Own data property, safe for keys such as "__proto__". */
function setOwn(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

function arrayIndex(prop: string): number | undefined {
  if (!/^(?:0|[1-9][0-9]*)$/.test(prop)) return undefined;
  const n = Number(prop);
  return n < 2 ** 32 - 1 ? n : undefined;
}

function badOp(message: string): SynclineError {
  return new SynclineError("BadOp", message);
}

function badValue(message: string): SynclineError {
  return new SynclineError("BadValue", message);
}

/** The recorder and container behind each draft proxy, for `splice` and `increment`. */
const owners = new WeakMap<object, { recorder: Recorder; node: Node }>();

/**
 * How many list elements path lookups have visited to re-find drafts whose
 * index hint missed, since the module loaded. Not API: the unit test reads
 * it to check that bulk edits cost linear, not quadratic, work.
 */
export const pathScans = { elements: 0 };

const MUTATORS = ["push", "pop", "shift", "unshift", "splice", "reverse", "sort", "fill", "copyWithin"];

class Recorder {
  readonly ops: Op[] = [];
  private readonly nodeOfCopy = new WeakMap<object, Node>();
  private readonly nodeOfProxy = new WeakMap<object, Node>();
  private readonly revokers: (() => void)[] = [];
  readonly root: Node;

  private readonly handler: ProxyHandler<Container> = {
    get: (target, prop, receiver) => {
      if (typeof prop === "symbol") return Reflect.get(target, prop, receiver);
      const node = this.nodeOf(target);
      if (Array.isArray(target)) {
        if (prop === "length") return target.length;
        if (MUTATORS.includes(prop)) return this.method(node, prop);
      }
      if (!hasOwn(target, prop)) return Reflect.get(target, prop, receiver);
      return this.child(node, prop);
    },
    set: (target, prop, value) => {
      if (typeof prop === "symbol") throw badOp("documents have no symbol keys");
      const node = this.nodeOf(target);
      if (Array.isArray(target)) this.setInList(node, target, prop, value);
      else if (value === undefined) this.deleteKey(node, target, prop);
      else if (value instanceof Text || value instanceof Counter) this.putMergeable(node, target, prop, value);
      else {
        const plain = this.toPlain(value);
        this.record({ op: "put", obj: this.path(node), key: prop, value: plain });
        setOwn(target, prop, plain);
      }
      return true;
    },
    deleteProperty: (target, prop) => {
      if (typeof prop === "symbol") throw badOp("documents have no symbol keys");
      if (Array.isArray(target)) {
        throw badOp(`\`delete list[${prop}]\` would leave a hole: use splice(${prop}, 1)`);
      }
      this.deleteKey(this.nodeOf(target), target, prop);
      return true;
    },
    defineProperty: () => {
      throw badOp("defineProperty is not supported on a draft: assign instead");
    },
    setPrototypeOf: () => {
      throw badOp("a draft's prototype cannot be changed");
    },
    preventExtensions: () => {
      throw badOp("a draft cannot be frozen or sealed");
    },
  };

  constructor(base: unknown) {
    if (!isContainer(base) || Array.isArray(base)) {
      throw badOp("the document root must be an object");
    }
    this.root = this.makeNode(base, null, "", -1);
  }

  /** Set once the change callback returned: its drafts are dead. */
  finished = false;

  revokeAll(): void {
    this.finished = true;
    for (const revoke of this.revokers) revoke();
  }

  private record(op: Op): void {
    this.ops.push(op);
  }

  private nodeOf(copy: object): Node {
    const node = this.nodeOfCopy.get(copy);
    if (!node) throw new SynclineError("Internal", "draft bookkeeping lost a container");
    return node;
  }

  private makeNode(source: Container, parent: Node | null, key: string, index: number): Node {
    let copy: Container;
    // Spread, not slice(): V8 slices a frozen array element by element, ~50x slower.
    if (Array.isArray(source)) copy = [...source];
    else {
      copy = {};
      for (const k of Object.keys(source)) setOwn(copy, k, source[k]);
    }
    const { proxy, revoke } = Proxy.revocable(copy, this.handler);
    this.revokers.push(revoke);
    const node: Node = { copy, parent, key, index, proxy, methods: undefined };
    this.nodeOfCopy.set(copy, node);
    this.nodeOfProxy.set(proxy, node);
    owners.set(proxy, { recorder: this, node });
    return node;
  }

  /** The draft of the container at `parent.copy[prop]`, or the scalar there. */
  private child(parent: Node, prop: string): unknown {
    const target = parent.copy as Record<string, unknown>;
    const value = target[prop];
    if (!isContainer(value)) return value;
    const existing = this.nodeOfCopy.get(value);
    if (existing) return existing.proxy;
    if (Array.isArray(target)) {
      const index = Number(prop);
      const node = this.makeNode(value, parent, "", index);
      target[index] = node.copy;
      return node.proxy;
    }
    const node = this.makeNode(value, parent, prop, -1);
    setOwn(target, prop, node.copy);
    return node.proxy;
  }

  /** Path from the root to `node`, as of now. */
  path(node: Node): Path {
    const steps: Path = [];
    for (let n = node; n.parent; n = n.parent) {
      const parent = n.parent.copy;
      if (Array.isArray(parent)) {
        steps.push(this.indexIn(n, n.parent, parent));
      } else {
        if (!hasOwn(parent, n.key) || parent[n.key] !== n.copy) throw detached();
        steps.push(n.key);
      }
    }
    return steps.reverse();
  }

  /**
   * `node`'s index in its parent `list`: its hint when that still holds,
   * else after one pass over the list that re-indexes every element's
   * draft (so the next lookups hit). A draft's working copy is in at most
   * one place (assigned values are fresh copies), so identity decides.
   */
  private indexIn(node: Node, parent: Node, list: JsonValue[]): number {
    if (list[node.index] === node.copy) return node.index;
    pathScans.elements += list.length;
    for (let i = 0; i < list.length; i++) {
      const value = list[i];
      if (!isContainer(value)) continue;
      const child = this.nodeOfCopy.get(value);
      if (child?.parent === parent) child.index = i;
    }
    if (list[node.index] !== node.copy) throw detached();
    return node.index;
  }

  private deleteKey(node: Node, target: JsonObject, prop: string): void {
    if (!hasOwn(target, prop)) return;
    this.record({ op: "delete", obj: this.path(node), key: prop });
    delete target[prop];
  }

  private deleteRange(node: Node, list: JsonValue[], start: number, count: number): void {
    if (count <= 0) return;
    const op: Op = { op: "delete", obj: this.path(node), key: start };
    if (count !== 1) op.count = count;
    this.record(op);
    list.splice(start, count);
  }

  private insert(node: Node, list: JsonValue[], index: number, items: unknown[]): void {
    if (items.length === 0) return;
    const mergeable = (item: unknown): item is Text | Counter => item instanceof Text || item instanceof Counter;
    // A text or counter goes in as a placeholder, then is put in its place.
    const values = items.map((item) => (mergeable(item) ? null : this.toPlain(item, true)));
    this.record({ op: "insert", obj: this.path(node), index, values });
    list.splice(index, 0, ...values);
    items.forEach((item, i) => {
      if (mergeable(item)) this.putMergeable(node, list, index + i, item);
    });
  }

  /** Puts a new text or counter at `key` of the container. */
  private putMergeable(node: Node, container: Container, key: string | number, value: Text | Counter): void {
    const obj = this.path(node);
    if (value instanceof Text) this.record({ op: "put_text", obj, key, value: value.value });
    else this.record({ op: "put_counter", obj, key, value: value.value });
    if (Array.isArray(container)) container[Number(key)] = value.value;
    else setOwn(container, String(key), value.value);
  }

  /** The value at `key` of `node`'s container, checking the key's kind. */
  private current(node: Node, key: string | number, what: string): unknown {
    const container = node.copy;
    if (Array.isArray(container)) {
      if (typeof key !== "number" || !Number.isInteger(key) || key < 0 || key >= container.length) {
        throw badOp(`${what}: ${String(key)} is not an index of this list (length ${container.length})`);
      }
      return container[key];
    }
    if (typeof key !== "string" || !hasOwn(container, key)) throw badOp(`${what}: this object has no key "${String(key)}"`);
    return container[key];
  }

  spliceText(node: Node, key: string | number, index: number, deleteCount: number, insert: string): void {
    const text = this.current(node, key, "splice()");
    if (typeof text !== "string") throw badOp(`splice(): "${String(key)}" holds a ${typeof text}, not a text`);
    if (!Number.isInteger(index) || !Number.isInteger(deleteCount) || index < 0 || deleteCount < 0) {
      throw badOp("splice(): index and deleteCount must be whole numbers ≥ 0");
    }
    if (index + deleteCount > text.length) {
      throw badOp(`splice(): ${index}+${deleteCount} is past the end of a text of length ${text.length}`);
    }
    if (typeof insert !== "string") throw badOp("splice(): the inserted value must be a string");
    if (deleteCount === 0 && insert === "") return;
    this.record({ op: "splice_text", obj: [...this.path(node), key], index, delete: deleteCount, insert });
    const next = text.slice(0, index) + insert + text.slice(index + deleteCount);
    if (Array.isArray(node.copy)) node.copy[key as number] = next;
    else setOwn(node.copy, key as string, next);
  }

  /** Records a mark (or with `value` undefined, an unmark) on a range of the text at `node[key]`. */
  markText(node: Node, key: string | number, range: MarkRange, name: string, value: MarkValue | undefined, expand: Expand): void {
    const what = value === undefined ? "unmark()" : "mark()";
    const text = this.current(node, key, what);
    if (typeof text !== "string") throw badOp(`${what}: "${String(key)}" holds a ${typeof text}, not a text`);
    const { start, end } = range ?? {};
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > text.length) {
      throw badOp(`${what}: { start, end } must be whole numbers with 0 ≤ start ≤ end ≤ ${text.length} (the text's length)`);
    }
    if (typeof name !== "string" || name === "") throw badOp(`${what}: the mark's name must be a non-empty string`);
    if (!EXPANDS.includes(expand)) throw badOp(`${what}: expand must be one of ${EXPANDS.join(", ")}`);
    const obj = [...this.path(node), key];
    if (value === undefined) {
      this.record({ op: "unmark", obj, start, end, name, expand });
      return;
    }
    const kind = value === null ? "null" : typeof value;
    if (!["string", "number", "boolean", "null"].includes(kind) || (kind === "number" && !Number.isFinite(value))) {
      throw badOp("mark(): the value must be a string, a finite number, a boolean or null");
    }
    this.record({ op: "mark", obj, start, end, name, value, expand });
  }

  increment(node: Node, key: string | number, by: number): void {
    const count = this.current(node, key, "increment()");
    if (typeof count !== "number") throw badOp(`increment(): "${String(key)}" holds a ${typeof count}, not a counter`);
    if (!Number.isSafeInteger(by)) throw badOp("increment(): `by` must be a whole number");
    this.record({ op: "increment", obj: this.path(node), key, by });
    if (Array.isArray(node.copy)) node.copy[key as number] = count + by;
    else setOwn(node.copy, key as string, count + by);
  }

  private setInList(node: Node, list: JsonValue[], prop: string, value: unknown): void {
    if (prop === "length") {
      const length = typeof value === "number" ? value : Number(value);
      if (!Number.isInteger(length) || length < 0) throw badOp(`invalid list length ${String(value)}`);
      if (length > list.length) {
        throw badOp(`cannot grow a list by setting length (${list.length} → ${length}): push values instead`);
      }
      this.deleteRange(node, list, length, list.length - length);
      return;
    }
    const index = arrayIndex(prop);
    if (index === undefined) throw badOp(`lists only take numeric indices, not "${prop}"`);
    if (index > list.length) {
      throw badOp(`index ${index} is past the end of a list of length ${list.length}: lists have no holes`);
    }
    if (index === list.length) {
      this.insert(node, list, index, [value]);
      return;
    }
    if (value instanceof Text || value instanceof Counter) {
      this.putMergeable(node, list, index, value);
      return;
    }
    const plain = this.toPlain(value, true);
    this.record({ op: "put", obj: this.path(node), key: index, value: plain });
    list[index] = plain;
  }

  /** The list methods that mutate, recorded as inserts, deletes and puts. */
  private method(node: Node, name: string): (...args: unknown[]) => unknown {
    node.methods ??= new Map();
    let fn = node.methods.get(name);
    if (fn) return fn;
    const list = node.copy as JsonValue[];
    const read = (i: number): unknown => this.child(node, String(i));
    const plainAt = (i: number): JsonValue => this.toPlain(read(i), true);
    switch (name) {
      case "push":
        fn = (...items) => {
          this.insert(node, list, list.length, items);
          return list.length;
        };
        break;
      case "unshift":
        fn = (...items) => {
          this.insert(node, list, 0, items);
          return list.length;
        };
        break;
      case "pop":
        fn = () => {
          if (list.length === 0) return undefined;
          const removed = plainAt(list.length - 1);
          this.deleteRange(node, list, list.length - 1, 1);
          return removed;
        };
        break;
      case "shift":
        fn = () => {
          if (list.length === 0) return undefined;
          const removed = plainAt(0);
          this.deleteRange(node, list, 0, 1);
          return removed;
        };
        break;
      case "splice":
        fn = (...args) => {
          const length = list.length;
          const start = relativeIndex(args[0], length, 0);
          let count: number;
          if (args.length === 0) count = 0;
          else if (args.length === 1) count = length - start;
          else count = Math.min(Math.max(toInteger(args[1]), 0), length - start);
          const removed: JsonValue[] = [];
          for (let i = start; i < start + count; i++) removed.push(plainAt(i));
          this.deleteRange(node, list, start, count);
          this.insert(node, list, start, args.slice(2));
          return removed;
        };
        break;
      default:
        // reverse, sort, fill, copyWithin: run the native method on the
        // elements as the callback sees them, then put what moved.
        fn = (...args) => {
          const before = Array.from({ length: list.length }, (_, i) => read(i));
          const after = before.slice();
          const native = Array.prototype[name as "reverse"] as (this: unknown[], ...a: unknown[]) => unknown;
          native.apply(after, args);
          const changed: [number, JsonValue][] = [];
          after.forEach((value, i) => {
            if (value !== before[i]) changed.push([i, this.toPlain(value, true)]);
          });
          const obj = this.path(node);
          for (const [i, value] of changed) {
            this.record({ op: "put", obj, key: i, value });
            list[i] = value;
          }
          return node.proxy;
        };
    }
    node.methods.set(name, fn);
    return fn;
  }

  /**
   * A fresh plain JSON copy of `value` (drafts unwrapped), validated.
   * In objects, `undefined` properties are left out, as JSON.stringify does.
   */
  toPlain(value: unknown, inList = false, seen: Set<object> = new Set()): JsonValue {
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        if (!Number.isFinite(value)) throw badValue(`${value} is not a JSON number`);
        return value;
      case "undefined":
        throw badValue(
          inList ? "lists cannot hold undefined: use null" : "undefined is not a JSON value: use delete or null",
        );
      case "object":
        break;
      default:
        throw badValue(`a ${typeof value} cannot be stored in a document`);
    }
    if (value === null) return null;
    if (value instanceof Text || value instanceof Counter) {
      throw badValue(
        `a new ${value.constructor.name} must be assigned straight to a key or list index of the draft ` +
          `(d.x = new ${value.constructor.name}(…)), not nested in a new object or list: assign the container first`,
      );
    }
    const source: object = this.nodeOfProxy.get(value)?.copy ?? value;
    if (seen.has(source)) throw badValue("a value cannot contain itself");
    seen.add(source);
    let out: JsonValue;
    if (Array.isArray(source)) {
      const list: JsonValue[] = [];
      for (let i = 0; i < source.length; i++) {
        if (!(i in source)) throw badValue("sparse arrays cannot be stored: lists have no holes");
        list.push(this.toPlain(source[i], true, seen));
      }
      out = list;
    } else {
      const proto: unknown = Object.getPrototypeOf(source);
      if (proto !== Object.prototype && proto !== null) {
        const name = (source as { constructor?: { name?: string } }).constructor?.name ?? "object";
        throw badValue(`a ${name} cannot be stored in a document: use plain objects, arrays and scalars`);
      }
      const map: JsonObject = {};
      for (const key of Object.keys(source)) {
        const v = (source as Record<string, unknown>)[key];
        if (v !== undefined) setOwn(map, key, this.toPlain(v, false, seen));
      }
      out = map;
    }
    seen.delete(source);
    return out;
  }
}

function detached(): SynclineError {
  return badOp(
    "this draft object was removed or replaced earlier in the same change: read it again from the draft",
  );
}

function toInteger(value: unknown): number {
  const n = Number(value);
  if (Number.isNaN(n)) return 0;
  return Math.trunc(n);
}

function relativeIndex(value: unknown, length: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = toInteger(value);
  return n < 0 ? Math.max(length + n, 0) : Math.min(n, length);
}

/**
 * Runs `fn` on a draft of `base` and returns the ops it recorded, in order.
 * Throws (recording nothing) if `fn` throws; the draft is unusable afterwards.
 */
export function recordChange<T>(base: unknown, fn: (draft: T) => void): Op[] {
  const recorder = new Recorder(base);
  try {
    const result: unknown = fn(recorder.root.proxy as T);
    if (typeof (result as { then?: unknown } | null)?.then === "function") {
      throw badOp("a change callback must be synchronous: await first, then call change()");
    }
  } finally {
    recorder.revokeAll();
  }
  return recorder.ops;
}

/** A validated, fresh plain-JSON copy of `value` (what `repo.create` stores). */
export function toJson(value: unknown): JsonValue {
  return new Recorder({}).toPlain(value);
}

function ownerOf(draft: unknown, what: string): { recorder: Recorder; node: Node } {
  const owner = typeof draft === "object" && draft !== null ? owners.get(draft) : undefined;
  if (!owner || owner.recorder.finished) {
    throw badOp(`${what} takes a draft object or list from inside doc.change(), and a key in it`);
  }
  return owner;
}

/**
 * Edits the text at `draft[key]` inside `doc.change`: deletes `deleteCount`
 * UTF-16 units at `index`, then inserts `insert` there (the same units as
 * JavaScript string indices). Concurrent edits of one text all apply.
 */
export function splice(draft: object, key: string | number, index: number, deleteCount: number, insert = ""): void {
  const { recorder, node } = ownerOf(draft, "splice()");
  recorder.spliceText(node, key, index, deleteCount, insert);
}

/** A range of a text in UTF-16 units: `start` included, `end` excluded. */
export interface MarkRange {
  start: number;
  end: number;
}

const EXPANDS: readonly Expand[] = ["before", "after", "both", "none"];

/**
 * Marks `range` of the text at `draft[key]` with `name` = `value` inside
 * `doc.change` (Peritext, as Automerge does it: marks survive concurrent
 * edits and merge). `expand` says whether text typed at its ends gets the
 * mark too (default "after"). Read them back with `doc.marks(path)`.
 */
export function mark(
  draft: object,
  key: string | number,
  range: MarkRange,
  name: string,
  value: MarkValue = true,
  options: { expand?: Expand } = {},
): void {
  const { recorder, node } = ownerOf(draft, "mark()");
  recorder.markText(node, key, range, name, value, options.expand ?? "after");
}

/** Removes the mark `name` from `range` of the text at `draft[key]` inside `doc.change`. */
export function unmark(draft: object, key: string | number, range: MarkRange, name: string, options: { expand?: Expand } = {}): void {
  const { recorder, node } = ownerOf(draft, "unmark()");
  recorder.markText(node, key, range, name, undefined, options.expand ?? "after");
}

/** Adds `by` (default 1, may be negative) to the counter at `draft[key]` inside `doc.change`. */
export function increment(draft: object, key: string | number, by = 1): void {
  const { recorder, node } = ownerOf(draft, "increment()");
  recorder.increment(node, key, by);
}
