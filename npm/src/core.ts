/**
 * The narrow interface between the TypeScript layer and the wasm engine
 * (the `Core` class that wasm-bindgen generates). Everything above this file
 * talks to the engine only through `CoreApi`, so the engine can move into a
 * worker without changing the public API: in worker mode the same interface
 * is implemented over a MessagePort by `worker-client.ts`.
 */
import { opsToPatches } from "./snapshot.js";
import type { DocStatus, EngineStatus, HistoryEntry, JsonValue, Op, Patch, Path, TextMark, TransportOptions } from "./types.js";

export type CoreEvent =
  /**
   * A remote change (or another tab's) updated this doc: the patches since the
   * last `value()`, `change()` or "changed" of this doc, to apply in order.
   */
  | { type: "changed"; url: string; patches: Patch[] }
  /**
   * Worker mode: the doc's value is now `value` (the worker's answer differed
   * from what the tab assumed); replaces the handle's value.
   */
  | { type: "reset"; url: string; value: unknown }
  /** Worker mode: the worker's history entries for the doc arrived (read them with `history`). */
  | { type: "history"; url: string }
  /** Worker mode: the doc's `canUndo`/`canRedo` changed (read them with `undoState`). */
  | { type: "undoState"; url: string }
  /** Worker mode: another tab deleted this doc. */
  | { type: "deleted"; url: string }
  /** The relay sent everything it had for this doc. */
  | { type: "caughtUp"; url: string }
  | { type: "status"; status: EngineStatus }
  /** Bytes for the other tabs of this origin (posted on the repo's BroadcastChannel). */
  | { type: "broadcast"; bytes: Uint8Array }
  /** A peer's presence on a doc; `state` null once it is gone. */
  | { type: "presence"; url: string; peer: string; state: Uint8Array | null }
  /** A peer's ephemeral message on a doc (`doc.broadcast`): JSON text as bytes; `from` is its replica id. */
  | { type: "message"; url: string; from: string; bytes: Uint8Array }
  /** A peer asks for `method`, which this page serves on the doc: answer with `reply`. */
  | { type: "request"; url: string; from: string; id: string; method: string; payload: Uint8Array }
  /** Our request `id` settled: its result (JSON text as bytes), or why not. */
  | { type: "reply"; url: string; id: string; result?: Uint8Array; error?: unknown }
  /**
   * Something failed outside any call (a corrupt record skipped at load, a
   * relay rejection...); `url` when it concerns one document.
   */
  | { type: "error"; error: unknown; url?: string }
  /**
   * The wasm module trapped (a panic, or a trap seen by a call): no further call
   * into it can be trusted. Sent synchronously, possibly from inside a call.
   */
  | { type: "crashed"; error: unknown };

export interface CoreApi {
  /** A string in the page; a promise when the engine runs in a worker. */
  create(initial: JsonValue | undefined): string | Promise<string>;
  /** Starts tracking a doc by URL (reading it from the log if another tab made it); true if it has local data. */
  openDoc(url: string): Promise<boolean>;
  /** Forgets the doc on this device (log records included). */
  deleteDoc(url: string): void;
  history(url: string): HistoryEntry[];
  valueAt(url: string, heads: string[]): unknown;
  /** Where the engine is not in this thread (worker mode), `history` and `valueAt` throw "Unsupported" and these answer. */
  historyAsync?(url: string): Promise<HistoryEntry[]>;
  valueAtAsync?(url: string, heads: string[]): Promise<unknown>;
  /** The heads of the value handed out: the last `value()`, plus every patch since. */
  heads(url: string): string[];
  setPresence(url: string, state: Uint8Array): void;
  clearPresence(url: string): void;
  /**
   * Seals `bytes` for the doc's peers online now; whether they left (in
   * worker mode the worker answers, so: a promise).
   */
  sendMessage(url: string, bytes: Uint8Array): boolean | Promise<boolean>;
  /** Sends a request; its id. The result comes as a "reply" event with that id. */
  request(url: string, method: string, payload: Uint8Array, timeoutMs: number): string | Promise<string>;
  /** Requests for `method` on the doc come as "request" events (until `unserve`). */
  serve(url: string, method: string): void | Promise<void>;
  unserve(url: string, method: string): void;
  /** Answers a "request" event: with `result`, or (`result` undefined) with the handler's error message. */
  reply(url: string, to: string, id: string, result: Uint8Array | undefined, error: string | undefined): void;
  setTabSync(enabled: boolean): void;
  receivedFromTab(bytes: Uint8Array): void;
  setCompactionEnabled(enabled: boolean): void;
  /** The whole value; later patches of this doc are relative to it. */
  value(url: string): unknown;
  /** Applies `ops` as one change; returns the patches since the last value/change/"changed". */
  change(url: string, ops: Op[], message?: string, undoable?: boolean): Patch[];
  /**
   * Undoes (`redo`: redoes) this replica's last step of the doc: the patches
   * since the last value/change/"changed", or `null` if there was nothing
   * to undo. In worker mode it only asks (the patches arrive as "changed"):
   * the answer is whether there was a step to undo, as last heard.
   */
  undo(url: string): Patch[] | null;
  redo(url: string): Patch[] | null;
  /** `[canUndo, canRedo]` (in worker mode: as the worker last said, or as this tab's last change implies). */
  undoState(url: string): [boolean, boolean];
  setUndoCapture(ms: number): void;
  /** Stable cursors and marks of the text at `path`: synchronous in the page; "Unsupported" in worker mode, where the async ones answer. */
  cursor(url: string, path: Path, index: number): string;
  cursorPosition(url: string, path: Path, cursor: string): number;
  marks(url: string, path: Path): TextMark[];
  cursorAsync?(url: string, path: Path, index: number): Promise<string>;
  cursorPositionAsync?(url: string, path: Path, cursor: string): Promise<number>;
  marksAsync?(url: string, path: Path): Promise<TextMark[]>;
  flush(): Promise<void>;
  status(): EngineStatus;
  /** One document's unsaved and pending changes, and the relay's last refusal of it. */
  docStatus(url: string): DocStatus;
  /** `false`: disconnect and stay offline until `true`. */
  setOnline(online: boolean): void;
  /** A tab heard the network come or go, or became visible (the engine in a worker has no window to hear it). */
  pageEvent?(event: "online" | "offline" | "visible"): void;
  close(): void;
  /**
   * One schema migration step from version `from` (see `schema.ts`): the
   * patches since the handle's value, where the engine is in this page.
   */
  migrate?(url: string, from: number, ops: Op[]): Patch[];
  /** `migrate` where the engine is in a worker: the patches arrive as a "changed" event first (`null`). */
  migrateAsync?(url: string, from: number, ops: Op[]): Promise<Patch[] | null>;
  /** The document as standard Automerge bytes (Automerge's `save()`). */
  exportDoc(url: string): Uint8Array | Promise<Uint8Array>;
  /** A new document from Automerge bytes; its URL ("BadImport" for bytes it can't take). */
  importDoc(bytes: Uint8Array): string | Promise<string>;
  /** The devtools' reads (`npm/src/inspect.ts`): synchronous in the page... */
  inspect?(record: boolean, after: number): unknown;
  inspectDoc?(url: string): unknown;
  /** ...and asked of the worker in worker mode. */
  inspectAsync?(record: boolean, after: number): Promise<unknown>;
  inspectDocAsync?(url: string): Promise<unknown>;
}

/** The glue's object: `CoreApi`, except that ops and paths cross as JSON text. */
export type RawCore = Omit<CoreApi, "change" | "create" | "undoState" | "cursor" | "cursorPosition" | "marks" | "exportDoc" | "importDoc" | "migrate" | "sendMessage" | "request" | "serve"> & {
  sendMessage(url: string, bytes: Uint8Array): boolean;
  request(url: string, method: string, payload: Uint8Array, timeoutMs: number): string;
  serve(url: string, method: string): void;
  migrate(url: string, from: number, opsJson: string): Patch[] | null;
  create(initial: JsonValue | undefined): string;
  exportDoc(url: string): Uint8Array;
  importDoc(bytes: Uint8Array): string;
  /** `null`: only local changes happened since the last patches; the ops are the patches. */
  change(url: string, opsJson: string, message?: string, undoable?: boolean): Patch[] | null;
  undoState(url: string): Uint8Array;
  cursor(url: string, pathJson: string, index: number): string;
  cursorPosition(url: string, pathJson: string, cursor: string): number;
  marks(url: string, pathJson: string): TextMark[];
};

export interface CoreStatic {
  /** Opens the local database `name`, encrypted with the 32-byte `key`. */
  open(name: string, relay: string[] | undefined, onEvent: (event: CoreEvent) => void, key: Uint8Array): Promise<RawCore>;
  /** `open` with transport options (connect timeout, heartbeat, backoff, token). */
  openWith?(
    name: string,
    relay: string[] | undefined,
    onEvent: (event: CoreEvent) => void,
    key: Uint8Array,
    options: TransportOptions,
  ): Promise<RawCore>;
}

/** Whether `error` is a wasm trap (`WebAssembly.RuntimeError`), not an error the core returned. */
export function isTrap(error: unknown): boolean {
  const RuntimeError = (globalThis as { WebAssembly?: { RuntimeError?: new () => Error } }).WebAssembly?.RuntimeError;
  return RuntimeError !== undefined && error instanceof RuntimeError;
}

/**
 * A delegate over the glue's object, so the rest of the code sees exactly
 * `CoreApi`. A call that traps reports it through `onTrap` before rethrowing.
 */
export function adaptCore(raw: RawCore, onTrap: (error: unknown) => void): CoreApi {
  const guard = <R>(call: () => R): R => {
    try {
      return call();
    } catch (error) {
      if (isTrap(error)) onTrap(error);
      throw error;
    }
  };
  const guardAsync = async <R>(call: () => Promise<R> | R): Promise<R> => {
    try {
      return await call();
    } catch (error) {
      if (isTrap(error)) onTrap(error);
      throw error;
    }
  };
  return {
    create: (initial) => guard(() => raw.create(initial)),
    openDoc: (url) => guardAsync(() => raw.openDoc(url)),
    deleteDoc: (url) => guard(() => raw.deleteDoc(url)),
    history: (url) => guard(() => raw.history(url)),
    valueAt: (url, heads) => guard(() => raw.valueAt(url, heads)),
    heads: (url) => guard(() => raw.heads(url)),
    setPresence: (url, state) => guard(() => raw.setPresence(url, state)),
    clearPresence: (url) => guard(() => raw.clearPresence(url)),
    sendMessage: (url, bytes) => guard(() => raw.sendMessage(url, bytes)),
    request: (url, method, payload, timeoutMs) => guard(() => raw.request(url, method, payload, timeoutMs)),
    serve: (url, method) => guard(() => raw.serve(url, method)),
    unserve: (url, method) => guard(() => raw.unserve(url, method)),
    reply: (url, to, id, result, error) => guard(() => raw.reply(url, to, id, result, error)),
    setTabSync: (enabled) => guard(() => raw.setTabSync(enabled)),
    receivedFromTab: (bytes) => guard(() => raw.receivedFromTab(bytes)),
    setCompactionEnabled: (enabled) => guard(() => raw.setCompactionEnabled(enabled)),
    value: (url) => guard(() => raw.value(url)),
    change: (url, ops, message, undoable) =>
      guard(() => {
        // One string crosses into wasm faster than an array walked field by field.
        const json = JSON.stringify(ops);
        const patches = raw.change(url, json, message, undoable);
        return patches ?? opsToPatches(ops);
      }),
    undo: (url) => guard(() => raw.undo(url)),
    redo: (url) => guard(() => raw.redo(url)),
    undoState: (url) => guard(() => {
      const [canUndo, canRedo] = raw.undoState(url);
      return [canUndo === 1, canRedo === 1];
    }),
    setUndoCapture: (ms) => guard(() => raw.setUndoCapture(ms)),
    cursor: (url, path, index) => guard(() => raw.cursor(url, JSON.stringify(path), index)),
    cursorPosition: (url, path, cursor) => guard(() => raw.cursorPosition(url, JSON.stringify(path), cursor)),
    marks: (url, path) => guard(() => raw.marks(url, JSON.stringify(path))),
    flush: () => guardAsync(() => raw.flush()),
    status: () => guard(() => raw.status()),
    docStatus: (url) => guard(() => raw.docStatus(url)),
    setOnline: (online) => guard(() => raw.setOnline(online)),
    pageEvent: (event) => guard(() => raw.pageEvent?.(event)),
    close: () => guard(() => raw.close()),
    exportDoc: (url) => guard(() => raw.exportDoc(url)),
    importDoc: (bytes) => guard(() => raw.importDoc(bytes)),
    // Patches always come from the engine's diff: they hold the version key.
    migrate: (url, from, ops) => guard(() => raw.migrate(url, from, JSON.stringify(ops)) ?? []),
    inspect: (record, after) => guard(() => raw.inspect?.(record, after)),
    inspectDoc: (url) => guard(() => raw.inspectDoc?.(url)),
  };
}
