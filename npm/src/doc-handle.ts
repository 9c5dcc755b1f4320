import { recordChange, toJson } from "./draft.js";
import { applyPatches, deepFreeze, shareAndFreeze } from "./snapshot.js";
import type { CoreApi } from "./core.js";
import type { SynclineError } from "./errors.js";
import { DocMessages, type MessageListener, type RequestHandler, type RequestOptions } from "./messages.js";
import { StatusAndErrorListeners, type Unsubscribe, callSafely } from "./listeners.js";
import type { DocStatus, Draft, HistoryEntry, Immutable, JsonObject, JsonValue, Op, Patch, Path, Peer, TextMark } from "./types.js";

export interface ChangeOptions {
  /** An app-level name for the change (the domain event, e.g. "todo.added"), kept in the log. */
  message?: string;
  /**
   * `false`: `undo()` never reverts this change (a change the app made on
   * its own, a migration, a remote cursor's bookkeeping). It also ends the
   * undo step before it. Default `true`.
   */
  undoable?: boolean;
}

/** Whether `doc.undo()` and `doc.redo()` have something to do. */
export interface UndoState {
  readonly canUndo: boolean;
  readonly canRedo: boolean;
}

export type { Unsubscribe } from "./listeners.js";

/** A live document. Get one from `repo.create()` or `repo.open()`. */
export interface DocHandle<T extends object = JsonObject> {
  /** The shareable URL of the document, `syncline:<id>#<key>`: whoever has it can read and write the document. */
  readonly url: string;
  /** The current value: a deeply frozen plain snapshot; unchanged subtrees keep their identity. */
  readonly value: Immutable<T>;
  /**
   * Changes the document: `fn` mutates a draft of the current value, and what
   * it does is applied as one change. Subscribers are notified after it is
   * applied. Returns the change's patches (none if `fn` changed nothing).
   */
  change(fn: (draft: Draft<T>) => void, options?: ChangeOptions): readonly Patch[];
  /** Calls `fn` at once with the current value, then on every change. Returns the unsubscribe function. */
  subscribe(fn: (value: Immutable<T>) => void): Unsubscribe;
  /**
   * Calls `fn` with the patches of each change to `value` (local, remote,
   * an undo) as soon as it is applied, before subscribers hear of it; with
   * `null` when the value was replaced whole (worker mode, reconciling with
   * the worker's answer). For bindings that update a view in place, like
   * `syncline/codemirror`. Returns the unsubscribe function.
   */
  onPatches(fn: (patches: readonly Patch[] | null) => void): Unsubscribe;
  /** Who else has this document open, and what they share (a cursor, a name...). Never stored. */
  readonly presence: Presence;
  /** Every change of the document, oldest first: when, by whom, and the app's message. */
  history(): readonly HistoryEntry[];
  /** The document as it was at `heads` (hashes from `history()` or `heads()`), deeply frozen. */
  view(heads: readonly string[]): Immutable<T>;
  /**
   * `history()`, asynchronously: works in both modes. In worker mode
   * (the default where the browser has SharedWorker) this asks the worker; `history()`
   * reads the copy the worker keeps in each tab, `[]` right after a fast
   * open until the worker has loaded the CRDT.
   */
  historyAsync(): Promise<readonly HistoryEntry[]>;
  /** `view()`, asynchronously: works in both modes (see `historyAsync`). */
  viewAsync(heads: readonly string[]): Promise<Immutable<T>>;
  /**
   * This document's changes not yet durable here (`unsaved`), durable but not
   * acknowledged by the relay (`pending`), and the relay's last refusal of it
   * (`lastError`), until it serves the document again. A frozen object, the
   * same one for as long as nothing changes.
   */
  readonly status: DocStatus;
  /**
   * Listens to this document's `status` changes, or its `error`s (the relay
   * refusing it: `err.code` is "Unauthorized", "ReadOnly", "TokenExpired" or
   * "TokenProvider"). Returns the unsubscribe function.
   */
  on<K extends keyof DocEvents>(event: K, listener: DocEvents[K]): Unsubscribe;
  /**
   * The heads of `value`: the hashes (hex, as history's `hash`) of the
   * latest changes it reflects, a new frozen array each call. Keep them to
   * pin a view (`doc.view(doc.heads())` is `doc.value`) or to tell versions
   * apart: equal heads, equal documents. Changes that arrived but were not
   * yet applied to `value` are not in them.
   */
  heads(): readonly string[];

  /**
   * Reverts this page's last undo step of the document (its own changes
   * within the capture window, `createRepo({ undoCaptureMs })`, default
   * 500 ms) as a new change: durable, synced and in history like any
   * other. Changes made elsewhere since stay. Returns whether there was a
   * step to undo. In worker mode the engine's answer arrives a moment
   * later (the value updates then), and the tabs of one app share the
   * worker's undo history.
   */
  undo(): boolean;
  /** Re-applies the last undone step, as a new change; a new undoable change clears what there is to redo. */
  redo(): boolean;
  readonly canUndo: boolean;
  readonly canRedo: boolean;
  /**
   * A stable cursor: the position before character `index` of the text at
   * `path` (the path leads to the text itself; `index` = its length: the
   * end), as an opaque string to keep or share in presence. Worker mode:
   * "Unsupported", use `cursorAsync`.
   */
  cursor(path: Path, index: number): string;
  /** Where `cursor` (from `cursor()` on this document and text) is now, after every local and remote edit since. */
  cursorPosition(path: Path, cursor: string): number;
  /** The marks of the text at `path`, in order of `start` (from `mark()` in a change). */
  marks(path: Path): readonly TextMark[];
  /** `cursor`, `cursorPosition` and `marks`, asynchronously: they work in both modes. */
  cursorAsync(path: Path, index: number): Promise<string>;
  cursorPositionAsync(path: Path, cursor: string): Promise<number>;
  marksAsync(path: Path): Promise<readonly TextMark[]>;

  /**
   * Sends `message` (any JSON value) to the peers that have this document
   * open and are connected now: sealed with the document key, never
   * stored, not queued. Returns whether it left (`false`: offline). Over
   * `MAX_MESSAGE_JSON_BYTES` of JSON it throws "MessageTooLarge". See
   * `messages.ts` for where the guarantees stop.
   */
  broadcast(message: JsonValue): boolean;
  /** Calls `fn(message, from)` for each peer's message; `from` is its peer id. Returns the unsubscribe function. */
  onMessage(fn: MessageListener): Unsubscribe;
  /**
   * Asks the peers of this document that serve `method` (`serve()` in JS,
   * `Client::serve` in Rust); resolves with the first answer. Rejects with
   * "NoServer" when none answers within `timeoutMs` (default 10 s),
   * "RemoteError" (the handler's error message) when the handler failed,
   * "Offline" when not connected.
   */
  request(method: string, payload?: JsonValue, options?: RequestOptions): Promise<JsonValue>;
  /**
   * Answers this document's requests for `method` with `handler(payload,
   * from)` (its result or a promise of it; a throw sends its message
   * back). One handler per method per handle. Returns the function that
   * stops serving.
   */
  serve(method: string, handler: RequestHandler): Unsubscribe;
}

export interface DocEvents {
  status: (status: DocStatus) => void;
  error: (error: SynclineError) => void;
  /** `canUndo` or `canRedo` changed. */
  undoState: (state: UndoState) => void;
  /**
   * `history()` may have grown: in the page with each change, local or
   * remote; in worker mode when the worker's entries arrive, a round trip
   * after the change shows in `value`. Read `history()` again.
   */
  history: () => void;
}

/** This page's presence on a document, and its peers'. */
export interface Presence<P extends JsonValue = JsonValue> {
  /** Shares `state` (any JSON value) with the document's other viewers, until `clear()` or this page closes. */
  set(state: P): void;
  clear(): void;
  /** The peers present now (a frozen array, a new one on each change). */
  readonly peers: readonly Peer<P>[];
  /** Calls `fn` at once with the peers, then on every change. Returns the unsubscribe function. */
  subscribe(fn: (peers: readonly Peer<P>[]) => void): Unsubscribe;
}

/** What a handle needs from its repo. */
export interface DocHost {
  /** Applies `ops` as one change; returns the patches since the handle's value. */
  applyChange(url: string, ops: Op[], options: ChangeOptions): Patch[];
  /** Calls the engine, with the repo's error handling (a closed or crashed repo throws its error). */
  withCore<R>(call: (core: CoreApi) => R): R;
  /** Shares (or with `null` clears) this page's presence bytes. */
  setPresence(url: string, state: Uint8Array | null): void;
  /** Reports an error that belongs to no call (to the repo's error listeners). */
  reportError(error: SynclineError): void;
  /** Whether the connection to the relay is open now. */
  connected(): boolean;
  history(url: string): HistoryEntry[];
  valueAt(url: string, heads: readonly string[]): unknown;
  historyAsync(url: string): Promise<HistoryEntry[]>;
  valueAtAsync(url: string, heads: readonly string[]): Promise<unknown>;
  docStatus(url: string): DocStatus;
  /** The heads of the value the handle holds (it applies every patch at once). */
  heads(url: string): string[];
}

export class Handle<T extends object = JsonObject> implements DocHandle<T> {
  readonly url: string;
  #value: Immutable<T>;
  /** Bumped per new value; subscribers have seen `#notified`. */
  #version = 0;
  #notified = 0;
  readonly #host: DocHost;
  readonly #subscribers = new Set<(value: Immutable<T>) => void>();
  readonly #patchListeners = new Set<(patches: readonly Patch[] | null) => void>();
  #status: DocStatus = CLEAN;
  #undoState: UndoState = NOTHING_TO_UNDO;
  readonly #listeners = new StatusAndErrorListeners<DocStatus, UndoState>(true);

  readonly presence: PresenceImpl;

  /** Set when writes are refused (a schema newer than the app's: see `schema.ts`). */
  #blocked: SynclineError | null = null;

  /** Refuses every later change with `error` (the value still updates). */
  blockWrites(error: SynclineError): void {
    this.#blocked = error;
  }

  constructor(host: DocHost, url: string, value: unknown) {
    this.#host = host;
    this.url = url;
    this.#value = shareAndFreeze(undefined, value) as Immutable<T>;
    this.presence = new PresenceImpl((state) => host.setPresence(url, state));
    this.messages = new DocMessages(host, url);
  }

  /** This handle's messages and requests; the repo hands it their events. */
  readonly messages: DocMessages;

  broadcast(message: JsonValue): boolean {
    return this.messages.broadcast(message);
  }

  onMessage(fn: MessageListener): Unsubscribe {
    return this.messages.onMessage(fn);
  }

  request(method: string, payload?: JsonValue, options?: RequestOptions): Promise<JsonValue> {
    return this.messages.request(method, payload, options);
  }

  serve(method: string, handler: RequestHandler): Unsubscribe {
    return this.messages.serve(method, handler);
  }

  history(): readonly HistoryEntry[] {
    return Object.freeze(this.#host.history(this.url).map((entry) => Object.freeze(entry)));
  }

  view(heads: readonly string[]): Immutable<T> {
    return deepFreeze(this.#host.valueAt(this.url, heads)) as Immutable<T>;
  }

  async historyAsync(): Promise<readonly HistoryEntry[]> {
    const entries = await this.#host.historyAsync(this.url);
    return Object.freeze(entries.map((entry) => Object.freeze(entry)));
  }

  async viewAsync(heads: readonly string[]): Promise<Immutable<T>> {
    return deepFreeze(await this.#host.valueAtAsync(this.url, heads)) as Immutable<T>;
  }

  get status(): DocStatus {
    return this.#status;
  }

  on<K extends keyof DocEvents>(event: K, listener: DocEvents[K]): Unsubscribe {
    return this.#listeners.on(event, listener as (value: never) => void);
  }

  /** `history()` may have grown: tells its listeners. */
  historyChanged(): void {
    for (const listener of [...this.#listeners.history]) callSafely(listener, undefined);
  }

  /** Re-reads the status from the repo; tells listeners if it changed. */
  refreshStatus(): void {
    let next: DocStatus;
    try {
      next = this.#host.docStatus(this.url);
    } catch {
      return; // closed or deleted: the last status stands
    }
    const last = this.#status;
    if (
      next.unsaved === last.unsaved &&
      next.pending === last.pending &&
      next.lastError?.code === last.lastError?.code &&
      next.lastError?.message === last.lastError?.message
    ) {
      return;
    }
    const status: DocStatus = { unsaved: next.unsaved, pending: next.pending };
    if (next.lastError) status.lastError = Object.freeze({ code: next.lastError.code, message: next.lastError.message });
    this.#status = Object.freeze(status);
    for (const listener of [...this.#listeners.status]) callSafely(listener, this.#status);
  }

  /** The relay refused this document; returns whether anyone listened. */
  failed(error: SynclineError): boolean {
    for (const listener of [...this.#listeners.error]) callSafely(listener, error);
    return this.#listeners.error.size > 0;
  }

  heads(): readonly string[] {
    return Object.freeze([...this.#host.heads(this.url)]);
  }

  /** A peer's presence arrived (bytes), or it left (`null`). */
  presenceChanged(peer: string, state: Uint8Array | null): void {
    this.presence.peerChanged(peer, state);
  }

  get value(): Immutable<T> {
    return this.#value;
  }

  change(fn: (draft: Draft<T>) => void, options: ChangeOptions = {}): readonly Patch[] {
    if (this.#blocked) throw this.#blocked;
    const ops = recordChange<Draft<T>>(this.#value, fn);
    if (ops.length === 0) return [];
    const patches = this.#host.applyChange(this.url, ops, options);
    this.apply(patches);
    this.notify();
    this.historyChanged();
    this.refreshUndoState();
    return patches;
  }

  undo(): boolean {
    return this.#revert((core) => core.undo(this.url));
  }

  redo(): boolean {
    return this.#revert((core) => core.redo(this.url));
  }

  #revert(call: (core: CoreApi) => Patch[] | null): boolean {
    const patches = this.#host.withCore(call);
    if (patches !== null) {
      this.apply(patches);
      this.notify();
      this.historyChanged();
    }
    this.refreshUndoState();
    return patches !== null;
  }

  get canUndo(): boolean {
    return this.#undoState.canUndo;
  }

  get canRedo(): boolean {
    return this.#undoState.canRedo;
  }

  /** Re-reads `canUndo`/`canRedo` from the engine; tells listeners if they changed. */
  refreshUndoState(): void {
    let canUndo: boolean, canRedo: boolean;
    try {
      [canUndo, canRedo] = this.#host.withCore((core) => core.undoState(this.url));
    } catch {
      return; // closed or deleted: the last state stands
    }
    if (canUndo === this.#undoState.canUndo && canRedo === this.#undoState.canRedo) return;
    this.#undoState = Object.freeze({ canUndo, canRedo });
    for (const listener of [...this.#listeners.undoState]) callSafely(listener, this.#undoState);
  }

  cursor(path: Path, index: number): string {
    return this.#host.withCore((core) => core.cursor(this.url, [...path], index));
  }

  cursorPosition(path: Path, cursor: string): number {
    return this.#host.withCore((core) => core.cursorPosition(this.url, [...path], cursor));
  }

  marks(path: Path): readonly TextMark[] {
    return freezeMarks(this.#host.withCore((core) => core.marks(this.url, [...path])));
  }

  cursorAsync(path: Path, index: number): Promise<string> {
    return this.#host.withCore(async (core) => await (core.cursorAsync?.(this.url, [...path], index) ?? core.cursor(this.url, [...path], index)));
  }

  cursorPositionAsync(path: Path, cursor: string): Promise<number> {
    return this.#host.withCore(
      async (core) => await (core.cursorPositionAsync?.(this.url, [...path], cursor) ?? core.cursorPosition(this.url, [...path], cursor)),
    );
  }

  async marksAsync(path: Path): Promise<readonly TextMark[]> {
    return freezeMarks(await this.#host.withCore(async (core) => await (core.marksAsync?.(this.url, [...path]) ?? core.marks(this.url, [...path]))));
  }

  subscribe(fn: (value: Immutable<T>) => void): Unsubscribe {
    // A wrapper, so the same function subscribed twice gets two subscriptions.
    const subscriber = (value: Immutable<T>): void => fn(value);
    this.#subscribers.add(subscriber);
    fn(this.#value);
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /**
   * Applies patches to the value, without notifying. Patches must be applied
   * in the order the engine produced them (each batch is relative to the last).
   */
  apply(patches: readonly Patch[]): void {
    const next = applyPatches(this.#value, patches) as Immutable<T>;
    if (next === this.#value) return;
    this.#value = next;
    this.#version++;
    this.#tellPatches(patches);
  }

  /** Replaces the value (worker mode: the worker's answer differed from what this tab assumed), without notifying. */
  replace(value: unknown): void {
    if (value === this.#value) return;
    this.#value = deepFreeze(value) as Immutable<T>;
    this.#version++;
    this.#tellPatches(null);
  }

  onPatches(fn: (patches: readonly Patch[] | null) => void): Unsubscribe {
    const listener = (patches: readonly Patch[] | null): void => fn(patches);
    this.#patchListeners.add(listener);
    return () => {
      this.#patchListeners.delete(listener);
    };
  }

  #tellPatches(patches: readonly Patch[] | null): void {
    for (const listener of [...this.#patchListeners]) callSafely(listener, patches);
  }

  /** Tells subscribers about the current value, unless they have seen it. */
  notify(): void {
    if (this.#notified === this.#version) return;
    const version = (this.#notified = this.#version);
    const value = this.#value;
    for (const subscriber of [...this.#subscribers]) {
      // A subscriber that changed the doc already notified everyone with a newer value.
      if (version !== this.#version) return;
      if (!this.#subscribers.has(subscriber)) continue;
      try {
        subscriber(value);
      } catch (error) {
        // One broken subscriber must not starve the others or fail the change.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const CLEAN: DocStatus = Object.freeze({ unsaved: 0, pending: 0 });
const NOTHING_TO_UNDO: UndoState = Object.freeze({ canUndo: false, canRedo: false });

function freezeMarks(marks: TextMark[]): readonly TextMark[] {
  return Object.freeze(marks.map((m) => Object.freeze(m)));
}

const utf8 = { encoder: new TextEncoder(), decoder: new TextDecoder() };

class PresenceImpl implements Presence {
  readonly #send: (state: Uint8Array | null) => void;
  readonly #states = new Map<string, JsonValue>();
  readonly #subscribers = new Set<(peers: readonly Peer[]) => void>();
  #peers: readonly Peer[] = Object.freeze([]);

  constructor(send: (state: Uint8Array | null) => void) {
    this.#send = send;
  }

  set(state: JsonValue): void {
    this.#send(utf8.encoder.encode(JSON.stringify(toJson(state))));
  }

  clear(): void {
    this.#send(null);
  }

  get peers(): readonly Peer[] {
    return this.#peers;
  }

  subscribe(fn: (peers: readonly Peer[]) => void): Unsubscribe {
    const subscriber = (peers: readonly Peer[]): void => fn(peers);
    this.#subscribers.add(subscriber);
    fn(this.#peers);
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  peerChanged(peer: string, bytes: Uint8Array | null): void {
    if (bytes === null) {
      if (!this.#states.delete(peer)) return;
    } else {
      let state: JsonValue;
      try {
        state = JSON.parse(utf8.decoder.decode(bytes)) as JsonValue;
      } catch {
        return; // not from a syncline page: nothing to show
      }
      this.#states.set(peer, deepFreeze(state) as JsonValue);
    }
    this.#peers = Object.freeze([...this.#states].map(([id, state]) => Object.freeze({ id, state })));
    for (const subscriber of [...this.#subscribers]) {
      try {
        subscriber(this.#peers);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
