/**
 * `syncline/react`: React bindings, all on `useSyncExternalStore`, so a
 * component re-renders when — and only when — what it reads changed.
 *
 * ```tsx
 * <RepoProvider repo={repo}><TodoList url={url} /></RepoProvider>
 *
 * function TodoList({ url }: { url: string }) {
 *   const [items, change] = useDoc<Todos, Immutable<Todos>["items"]>(url, (d) => d.items);
 *   const status = useSyncStatus();
 *   ...
 * }
 * ```
 */
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import type { ChangeOptions, DocHandle } from "./doc-handle.js";
import { SynclineError } from "./errors.js";
import type { Repo } from "./repo.js";
import type { Draft, HistoryEntry, Immutable, JsonObject, JsonValue, Peer, Status } from "./types.js";

const RepoContext = createContext<Repo | null>(null);

/** Makes `repo` available to `useRepo`, `useDoc` and `useSyncStatus` below it. */
export function RepoProvider({ repo, children }: { repo: Repo; children?: ReactNode }): ReactNode {
  return createElement(RepoContext.Provider, { value: repo }, children);
}

/** The repo of the nearest `RepoProvider`. */
export function useRepo(): Repo {
  const repo = useContext(RepoContext);
  if (!repo) throw new SynclineError("NoRepo", "useRepo/useDoc/useSyncStatus need a <RepoProvider repo={…}> above them");
  return repo;
}

/** The repo's status (`connection`, `pending`, …); re-renders when it changes. */
export function useSyncStatus(): Status {
  const repo = useRepo();
  const subscribe = useCallback((onChange: () => void) => repo.on("status", () => onChange()), [repo]);
  return useSyncExternalStore(subscribe, () => repo.status, () => repo.status);
}

/** Changes the document (a no-op error before it has opened). */
export type Change<T extends object> = (fn: (draft: Draft<T>) => void, options?: ChangeOptions) => void;

/**
 * Opens the document at `url` and returns `[value, change]`; `value` is
 * `undefined` until it has opened. With a `selector`, the component
 * re-renders only when the selected part changes: unchanged parts of a
 * document keep their identity, and a selector is re-run only when the
 * document changed, so selectors that build new objects don't loop.
 */
export function useDoc<T extends object = JsonObject, S = Immutable<T>>(
  url: string | null | undefined,
  selector?: (value: Immutable<T>) => S,
): [S | undefined, Change<T>] {
  const handle = useHandle<T>(url);
  const subscribe = useCallback((onChange: () => void) => (handle ? handle.subscribe(() => onChange()) : () => {}), [handle]);
  const memo = useRef<{ value: unknown; selected: S } | null>(null);
  const snapshot = (): S | undefined => {
    if (!handle) return undefined;
    const value = handle.value as Immutable<T>;
    if (!selector) return value as unknown as S;
    if (memo.current?.value !== value) memo.current = { value, selected: selector(value) };
    return memo.current.selected;
  };
  const selected = useSyncExternalStore(subscribe, snapshot, snapshot);
  const change = useCallback<Change<T>>(
    (fn, options) => {
      if (!handle) throw new SynclineError("NotReady", "the document has not opened yet: wait until its value is defined");
      handle.change(fn, options);
    },
    [handle],
  );
  return [selected, change];
}

/** The open handle of `url` (undefined until it opened); an open failure is thrown to the error boundary. */
function useHandle<T extends object>(url: string | null | undefined): DocHandle<T> | undefined {
  const repo = useRepo();
  // Kept with the url it is for: the render right after `url` changes gets
  // nothing rather than the previous document's handle (or error).
  const [opened, setOpened] = useState<{ url: string; handle?: DocHandle<T>; error?: unknown }>();
  useEffect(() => {
    if (!url) return;
    let live = true;
    repo.open<T>(url).then(
      (handle) => live && setOpened({ url, handle }),
      (error: unknown) => live && setOpened({ url, error: error ?? new Error("open failed") }),
    );
    return () => {
      live = false;
    };
  }, [repo, url]);
  if (!url || opened?.url !== url) return undefined;
  if (opened.error !== undefined) throw opened.error;
  return opened.handle;
}

const NO_PEERS: readonly Peer[] = Object.freeze([]);

/**
 * The peers present on the document at `url`, and a function to share this
 * page's own presence state (any JSON value: a name, a colour, a cursor).
 */
export function usePresence<P extends JsonValue = JsonValue>(
  url: string | null | undefined,
): [readonly Peer<P>[], (state: P) => void] {
  const handle = useHandle<object>(url);
  const subscribe = useCallback(
    (onChange: () => void) => (handle ? handle.presence.subscribe(() => onChange()) : () => {}),
    [handle],
  );
  const snapshot = (): readonly Peer[] => handle?.presence.peers ?? NO_PEERS;
  const peers = useSyncExternalStore(subscribe, snapshot, snapshot) as readonly Peer<P>[];
  const set = useCallback(
    (state: P) => {
      if (!handle) throw new SynclineError("NotReady", "the document has not opened yet: wait until its value is defined");
      handle.presence.set(state);
    },
    [handle],
  );
  return [peers, set];
}

const NO_HISTORY: readonly HistoryEntry[] = Object.freeze([]);

/**
 * The history of the document at `url` (`doc.history()`: oldest first;
 * `[]` until it has opened). Re-renders when it grows (`doc.on("history")`):
 * in worker mode that is a round trip after the change shows in the value,
 * so a component that read `history()` on the value's re-render would miss
 * the newest entry.
 */
export function useHistory(url: string | null | undefined): readonly HistoryEntry[] {
  const handle = useHandle<object>(url);
  // history() builds a new array per call: read once per "history" event, and
  // the previous array kept when nothing was added (the event also fires for
  // a change whose entry is still on its way from the worker).
  const cache = useRef<{ handle: DocHandle<object>; entries: readonly HistoryEntry[]; stale: boolean } | null>(null);
  const subscribe = useCallback(
    (onChange: () => void) => {
      if (!handle) return () => {};
      if (cache.current) cache.current.stale = true; // what changed before this subscription is read afresh
      return handle.on("history", () => {
        if (cache.current) cache.current.stale = true;
        onChange();
      });
    },
    [handle],
  );
  const snapshot = (): readonly HistoryEntry[] => {
    if (!handle) return NO_HISTORY;
    const last = cache.current;
    if (last?.handle === handle && !last.stale) return last.entries;
    const entries = handle.history();
    const same = last?.handle === handle && last.entries.length === entries.length && last.entries.at(-1)?.hash === entries.at(-1)?.hash;
    cache.current = { handle, entries: same ? last.entries : entries, stale: false };
    return cache.current.entries;
  };
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

/** What `useUndo` returns: whether there is something to undo or redo, and the two actions. */
export interface UndoControls {
  readonly canUndo: boolean;
  readonly canRedo: boolean;
  /** `doc.undo()`: reverts this page's last undo step; `false` if there was none (or the doc has not opened). */
  undo(): boolean;
  /** `doc.redo()`: re-applies the last undone step; `false` if there was none (or the doc has not opened). */
  redo(): boolean;
}

/**
 * Undo and redo for the document at `url` (`canUndo`/`canRedo` both
 * `false` until it has opened). Re-renders only when `canUndo` or `canRedo`
 * changes (`doc.on("undoState")`), not on every edit.
 *
 * ```tsx
 * const { canUndo, undo } = useUndo(url);
 * <button disabled={!canUndo} onClick={undo}>Undo</button>
 * ```
 */
export function useUndo(url: string | null | undefined): UndoControls {
  const handle = useHandle<object>(url);
  const subscribe = useCallback((onChange: () => void) => (handle ? handle.on("undoState", () => onChange()) : () => {}), [handle]);
  // Two booleans as one number: a primitive snapshot, equal while neither changes.
  const snapshot = (): number => (handle ? (handle.canUndo ? 1 : 0) | (handle.canRedo ? 2 : 0) : 0);
  const bits = useSyncExternalStore(subscribe, snapshot, snapshot);
  return useMemo<UndoControls>(
    () => ({
      canUndo: (bits & 1) !== 0,
      canRedo: (bits & 2) !== 0,
      undo: () => handle?.undo() ?? false,
      redo: () => handle?.redo() ?? false,
    }),
    [bits, handle],
  );
}
