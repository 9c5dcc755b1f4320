/**
 * Immutable snapshots: `doc.value` is deeply frozen, and a new value reuses
 * the previous value's subtrees wherever they are unchanged, so UI code can
 * compare by identity (React memo, selectors) to skip unchanged parts.
 *
 * A change arrives as the engine's patches ([`applyPatches`]): only the
 * containers on a patch's path are copied. [`shareAndFreeze`] shares what is
 * deeply equal between two whole values.
 */

import type { Op, Patch } from "./types.js";

type Tree = Record<string, unknown> | unknown[];

function isTree(value: unknown): value is Tree {
  return typeof value === "object" && value !== null;
}

/** Deep-freezes `next`, sharing every subtree of `prev` that is deeply equal. */
export function shareAndFreeze(prev: unknown, next: unknown): unknown {
  if (prev === next) return deepFreeze(next);
  if (!isTree(next) || Object.isFrozen(next)) return next;
  if (Array.isArray(next)) {
    const old = Array.isArray(prev) ? prev : undefined;
    let same = old !== undefined && old.length === next.length;
    for (let i = 0; i < next.length; i++) {
      next[i] = shareAndFreeze(old?.[i], next[i]);
      if (same && next[i] !== old?.[i]) same = false;
    }
    return same ? old : Object.freeze(next);
  }
  const old = isTree(prev) && !Array.isArray(prev) ? prev : undefined;
  const keys = Object.keys(next);
  let same = old !== undefined && Object.keys(old).length === keys.length;
  for (const key of keys) {
    const shared = shareAndFreeze(old && Object.prototype.hasOwnProperty.call(old, key) ? old[key] : undefined, next[key]);
    if (shared !== next[key]) {
      Object.defineProperty(next, key, { value: shared, writable: true, enumerable: true, configurable: true });
    }
    if (same && (!old || !Object.prototype.hasOwnProperty.call(old, key) || old[key] !== shared)) same = false;
  }
  return same ? old : Object.freeze(next);
}

export function deepFreeze(value: unknown): unknown {
  if (!isTree(value) || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
  return value;
}

/**
 * Applies the engine's patches to a frozen value: the containers on each
 * patch's path are copied (once per call), everything else is shared, and
 * the result is frozen. Returns `root` itself when nothing changed.
 */
export function applyPatches(root: unknown, patches: readonly Patch[]): unknown {
  if (patches.length === 0 || !isTree(root)) return root;
  const fresh = new Set<Tree>();
  const own = (tree: Tree): Tree => {
    if (fresh.has(tree)) return tree;
    // Spread, not slice(): V8 slices a frozen array element by element, ~50x slower.
    const copy: Tree = Array.isArray(tree) ? [...tree] : { ...tree };
    fresh.add(copy);
    return copy;
  };
  const top = own(root);
  for (const patch of patches) {
    // Copy the way down to the patched container; a text is edited in its parent.
    let container: Tree | null = top;
    const steps = patch.path;
    for (let i = 0; container && i < steps.length; i++) {
      const step = steps[i]!;
      const child = read(container, step);
      if (typeof child === "string" && i === steps.length - 1) {
        write(container, step, editText(child, patch));
        container = null;
      } else if (isTree(child)) {
        const copy = own(child);
        write(container, step, copy);
        container = copy;
      } else {
        throw new Error(`syncline: the patch path ${JSON.stringify(steps)} runs through a scalar`);
      }
    }
    if (container) applyToContainer(container, patch);
  }
  for (const tree of fresh) Object.freeze(tree);
  return top;
}

/**
 * The patches a local change's ops make when nothing else changed the
 * document since its value was read (the engine says so): each op is
 * exactly one edit of that value, in order.
 */
export function opsToPatches(ops: readonly Op[]): Patch[] {
  const patches: Patch[] = [];
  for (const op of ops) {
    switch (op.op) {
      case "put":
      case "put_text":
      case "put_counter":
        patches.push({ action: "put", path: op.obj, key: op.key, value: op.value });
        break;
      case "delete":
        patches.push({ action: "del", path: op.obj, key: op.key, length: op.count ?? 1 });
        break;
      case "insert":
        patches.push({ action: "insert", path: op.obj, index: op.index, values: op.values });
        break;
      case "splice_text":
        if (op.delete > 0) patches.push({ action: "del", path: op.obj, key: op.index, length: op.delete });
        if (op.insert.length > 0) patches.push({ action: "splice", path: op.obj, index: op.index, value: op.insert });
        break;
      case "increment":
        patches.push({ action: "inc", path: op.obj, key: op.key, value: op.by });
        break;
    }
  }
  return patches;
}

function read(tree: Tree, step: string | number): unknown {
  return Array.isArray(tree) ? tree[step as number] : (tree as Record<string, unknown>)[step];
}

function write(tree: Tree, step: string | number, value: unknown): void {
  if (Array.isArray(tree)) tree[step as number] = value;
  else Object.defineProperty(tree, step, { value, writable: true, enumerable: true, configurable: true });
}

function applyToContainer(tree: Tree, patch: Patch): void {
  switch (patch.action) {
    case "put":
      write(tree, patch.key, deepFreeze(patch.value));
      break;
    case "insert":
      (tree as unknown[]).splice(patch.index, 0, ...patch.values.map(deepFreeze));
      break;
    case "del":
      if (Array.isArray(tree)) tree.splice(patch.key as number, patch.length);
      else delete (tree as Record<string, unknown>)[patch.key];
      break;
    case "inc":
      write(tree, patch.key, (read(tree, patch.key) as number) + patch.value);
      break;
    case "splice":
      throw new Error("syncline: a text splice addressed a container");
  }
}

/** A text edit: `splice` inserts at `index`; `del` removes `length` UTF-16 units at `key`. */
function editText(text: string, patch: Patch): string {
  if (patch.action === "splice") return text.slice(0, patch.index) + patch.value + text.slice(patch.index);
  if (patch.action === "del") {
    const at = patch.key as number;
    return text.slice(0, at) + text.slice(at + patch.length);
  }
  throw new Error(`syncline: a "${patch.action}" patch addressed a text`);
}
