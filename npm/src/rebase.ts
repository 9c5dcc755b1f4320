/**
 * Worker mode: a tab's change whose heads the engine does not have is
 * applied to the current document instead — after a handoff (they named
 * changes of other tabs that the dead worker never made durable; those
 * tabs send them again, as new changes), or when a fast-opened document's
 * stored-value heads are lost (it was deleted or the engine crashed). Its ops were recorded
 * against a value that had those changes, so an index can lie past the
 * end of a list or text now: `fitOps` clamps inserts and text splices to
 * (and marks) to the current length and drops edits of elements or paths that are not
 * there, checking each op against the value as the earlier ops leave it.
 */
import { applyPatches, opsToPatches } from "./snapshot.js";
import type { Op } from "./types.js";

export function fitOps(value: unknown, ops: readonly Op[]): Op[] {
  const fitted: Op[] = [];
  let current = value;
  for (const op of ops) {
    const fit = fitOp(resolve(current, op.obj), op);
    if (!fit) continue;
    fitted.push(fit);
    try {
      current = applyPatches(current, opsToPatches([fit]));
    } catch {
      // The next ops are checked against the value before this one.
    }
  }
  return fitted;
}

function resolve(value: unknown, path: readonly (string | number)[]): unknown {
  let at = value;
  for (const step of path) {
    if (typeof at !== "object" || at === null) return undefined;
    at = (at as Record<string | number, unknown>)[step];
  }
  return at;
}

function fitOp(target: unknown, op: Op): Op | null {
  if (typeof target === "string") {
    if (op.op === "mark" || op.op === "unmark") {
      const end = Math.min(op.end, target.length);
      return { ...op, start: Math.min(op.start, end), end };
    }
    if (op.op !== "splice_text") return null;
    const index = Math.min(op.index, target.length);
    return { ...op, index, delete: Math.min(op.delete, target.length - index) };
  }
  if (op.op === "mark" || op.op === "unmark") return null;
  if (Array.isArray(target)) {
    if (op.op === "insert") return { ...op, index: Math.min(op.index, target.length) };
    if (op.op === "splice_text" || typeof op.key !== "number" || op.key >= target.length) return null;
    if (op.op === "delete") return { ...op, count: Math.min(op.count ?? 1, target.length - op.key) };
    return op;
  }
  if (typeof target !== "object" || target === null) return null;
  if (op.op === "insert" || op.op === "splice_text") return null;
  if ((op.op === "delete" || op.op === "increment") && !Object.prototype.hasOwnProperty.call(target, op.key)) return null;
  return op;
}
