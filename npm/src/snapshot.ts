/**
 * Immutable snapshots: `doc.value` is deeply frozen, and a new value reuses
 * the previous value's subtrees wherever they are deeply equal, so UI code can
 * compare by identity (React memo, selectors) to skip unchanged parts.
 */

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

function deepFreeze(value: unknown): unknown {
  if (!isTree(value) || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
  return value;
}
