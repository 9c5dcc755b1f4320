/**
 * `syncline/svelte`: documents and status as Svelte stores (the store
 * contract: `subscribe(run)` calls `run` at once and on every change and
 * returns an unsubscribe function — Svelte 4, and Svelte 5 with `$store`).
 *
 * A `DocHandle` already is a store of its value (`$doc` in a component), and
 * `doc.presence` a store of the peers on it.
 *
 * ```svelte
 * <script>
 *   import { statusStore } from "syncline/svelte";
 *   export let repo; export let doc;
 *   const status = statusStore(repo);
 * </script>
 * {$status.connection}: {$doc.items.length} items
 * ```
 *
 * `undoStore(doc)` is `{ canUndo, canRedo }` for undo/redo buttons:
 * `<button disabled={!$undo.canUndo} on:click={() => doc.undo()}>Undo</button>`.
 * `historyStore(doc)` is `doc.history()`, a new array when it grew.
 */
import type { DocHandle, UndoState } from "./doc-handle.js";
import type { HistoryEntry, Peer } from "./types.js";
import type { Repo } from "./repo.js";
import type { Immutable, Status } from "./types.js";

export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
}

/** The repo's status as a store. */
export function statusStore(repo: Repo): Readable<Status> {
  return {
    subscribe(run) {
      run(repo.status);
      return repo.on("status", run);
    },
  };
}

/** A document's value as a store (the handle itself; typed for Svelte). */
export function docStore<T extends object>(doc: DocHandle<T>): Readable<Immutable<T>> {
  return { subscribe: (run) => doc.subscribe(run) };
}

/** Who else is on a document, as a store (the handle's `presence`, typed for Svelte). */
export function presenceStore(doc: DocHandle<object>): Readable<readonly Peer[]> {
  return { subscribe: (run) => doc.presence.subscribe(run) };
}

/** Whether `doc.undo()`/`doc.redo()` have something to do, as a store (`doc.on("undoState")`): a new value only when one of them changes. */
export function undoStore(doc: DocHandle<object>): Readable<UndoState> {
  return {
    subscribe(run) {
      run(Object.freeze({ canUndo: doc.canUndo, canRedo: doc.canRedo }));
      return doc.on("undoState", run);
    },
  };
}

/**
 * A document's history (`doc.history()`, oldest first) as a store: a new
 * array when entries were added (`doc.on("history")`; in worker mode a
 * round trip after the change shows in the value), none for an event that
 * added nothing.
 */
export function historyStore(doc: DocHandle<object>): Readable<readonly HistoryEntry[]> {
  return {
    subscribe(run) {
      let last = doc.history();
      run(last);
      return doc.on("history", () => {
        const entries = doc.history();
        if (entries.length === last.length && entries.at(-1)?.hash === last.at(-1)?.hash) return;
        last = entries;
        run(entries);
      });
    },
  };
}
