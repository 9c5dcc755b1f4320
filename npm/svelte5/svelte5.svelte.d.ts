/** Types of `syncline/svelte5` (see `svelte5.svelte.js`). */
import type { ChangeOptions, DocHandle } from "./doc-handle.js";
import type { Repo } from "./repo.js";
import type { DocStatus, Draft, HistoryEntry, Immutable, JsonObject, Patch, Peer, Status } from "./types.js";

/** A document handle as runes. */
export interface DocState<T extends object = JsonObject> {
  readonly handle: DocHandle<T>;
  /** The document's value (deeply frozen); re-read by whatever reads it when it changes. */
  readonly current: Immutable<T>;
  /** Its unsaved and pending changes, and the relay's last refusal of it. */
  readonly status: DocStatus;
  /** Who else is on it. */
  readonly peers: readonly Peer[];
  /** Whether `undo()` has something to do (`handle.canUndo`, kept up to date by `handle.on("undoState")`). */
  readonly canUndo: boolean;
  /** Whether `redo()` has something to do. */
  readonly canRedo: boolean;
  /** `handle.history()`, a new array when entries were added (`handle.on("history")`: in worker mode a round trip after the value). */
  readonly history: readonly HistoryEntry[];
  /** `handle.change(fn, options)`. */
  change(fn: (draft: Draft<T>) => void, options?: ChangeOptions): readonly Patch[];
  /** `handle.undo()`: `false` if there was nothing to undo. */
  undo(): boolean;
  /** `handle.redo()`: `false` if there was nothing to redo. */
  redo(): boolean;
}

/** The repo's status as a rune. */
export interface StatusState {
  readonly current: Status;
}

export declare function docState<T extends object = JsonObject>(handle: DocHandle<T>): DocState<T>;
export declare function statusState(repo: Repo): StatusState;
