import { adaptCore, type CoreApi, type CoreEvent, type CoreStatic } from "./core.js";
import { type KeyOptions, storageKey } from "./keys.js";
import { TabLink } from "./tabs.js";
import { WorkerCore, WorkerStartError } from "./worker-client.js";
import { Handle, type ChangeOptions, type DocHandle, type DocHost, type Unsubscribe } from "./doc-handle.js";
import { toJson } from "./draft.js";
import { SynclineError, toSynclineError } from "./errors.js";
import { StatusAndErrorListeners, callSafely } from "./listeners.js";
import { CatchUps, SCHEMA_KEY, applySchema, checkSchema, type OpenOptions, type Schema } from "./schema.js";
import { INSPECT, type Inspector, makeInspector, rememberRelays, tapError } from "./inspect.js";
import type { DocStatus, EngineStatus, HistoryEntry, JsonObject, Op, Patch, Status, TransportOptions } from "./types.js";

export interface RepoOptions extends KeyOptions, TransportOptions {
  /**
   * WebSocket URL of the relay (`ws://…` or `wss://…`), or the URLs of the
   * relays of one cluster: a refused connection moves to the next at once,
   * a lost one after the backoff. Without it the repo works offline, and
   * between tabs.
   */
  relay?: string | readonly string[];
  /** Name of the local database; repos with different names keep separate data. Default "default". */
  name?: string;
  /**
   * How IndexedDB commits the log's writes, i.e. what `flush()` waits for.
   * "default" (the browser's choice, relaxed in current browsers) and
   * "relaxed": once the data is handed to the operating system — it
   * survives a tab or browser crash, not necessarily a power cut. "strict":
   * once it is on the disk, at the cost of a disk sync per write.
   */
  durability?: "default" | "relaxed" | "strict";
  /**
   * While IndexedDB fails to write (quota exhausted, storage broken), what it
   * has not taken stays in memory, up to this many bytes. Past it, changes
   * are refused with code "BacklogFull" (nothing changes) and deltas from
   * the relay and other tabs wait at their source, until a write succeeds;
   * writes are retried at the next change attempt and at `flush()`. Changes
   * made before keep leaving for the relay. Default 32 MiB.
   */
  maxUnsavedBytes?: number;
  /**
   * Where the engine (Automerge, IndexedDB, the WebSocket) runs. `true`, the
   * default where the browser has SharedWorker: in one SharedWorker for
   * every tab of this origin that opens this repo name, so one connection
   * to the relay whatever the number of tabs, and no CRDT work on the
   * page's main thread. `doc.view()`, `doc.cursor()`,
   * `doc.cursorPosition()` and `doc.marks()` then throw "Unsupported": use
   * their `…Async()` forms, which work in both modes. Where the worker
   * can't start (a missing script, a Content-Security-Policy, another
   * package version in the origin's worker), the repo runs in the page and
   * `status.warning` says why. `false`, and the default where there is no
   * SharedWorker (Chrome on Android, server-side rendering): the engine
   * runs in each page. `status.mode` says which one runs.
   */
  worker?: boolean;
  /**
   * Local changes of a document closer together than this (milliseconds)
   * form one undo step (`doc.undo()`); 0: every change is a step. Default
   * 500. In worker mode the worker's engine takes the last tab's setting.
   */
  undoCaptureMs?: number;
}

/** Where a repo's engine runs; `warning` says why in the page when the worker was wanted but could not run. */
interface EngineMode {
  mode: "worker" | "page";
  warning?: string;
}

export interface RepoEvents {
  /** The connection state or the pending count changed. */
  status: (status: Status) => void;
  /**
   * Something failed in the background (a corrupt record skipped at load, the
   * relay refusing a request...). Without a listener these go to console.warn.
   */
  error: (error: SynclineError) => void;
}

/** A set of documents stored on this device and synced through the relay. */
export interface Repo {
  /**
   * Creates a document with the given initial value (default `{}`); with
   * `{ schema }`, it records `schema.version` (under "syncline:schema").
   */
  create<T extends object = JsonObject>(initial?: T, options?: OpenOptions): Promise<DocHandle<T>>;
  /**
   * Opens a document by URL. Resolves once it has local data, or the relay
   * has sent all it has for it (or another tab sent it). Rejects with code
   * "BadUrl" for a malformed URL, and with the relay's refusal
   * ("Unauthorized", "TokenExpired", "TokenProvider") if it refuses a
   * document this device has no data of.
   *
   * With `{ schema: { version, migrations } }` (online: once the relay has
   * caught the document up): a document at an older schema version is
   * migrated (`migrations[i]` takes it from version i to
   * i + 1, each as one change, applied once when replicas migrate the same
   * state); one at a newer version opens read-only (its changes throw
   * "SchemaTooNew", and the repo's `error` listeners hear it). Works in
   * worker mode too (the worker's engine makes each step).
   */
  open<T extends object = JsonObject>(url: string, options?: OpenOptions): Promise<DocHandle<T>>;
  /**
   * The document at `url` (opened first, as `open` does) as standard
   * Automerge bytes (Automerge's `save()`: its whole history), which
   * `@automerge/automerge`'s `load()` reads. No key, id or Syncline state
   * is in them.
   */
  export(url: string): Promise<Uint8Array>;
  /**
   * A new document (new URL, new key, as `create` makes) from Automerge
   * bytes — a saved document or saved changes — keeping their history; it
   * syncs like any other. Rejects with code "BadImport" (creating nothing)
   * for bytes Automerge can't load, or a document holding values Syncline
   * does not support (dates, bytes, uints, tables).
   */
  import<T extends object = JsonObject>(bytes: Uint8Array): Promise<DocHandle<T>>;
  /** Resolves when every change made so far is durable on this device. */
  flush(): Promise<void>;
  /**
   * Forgets a document on this device: stops syncing it and deletes its local
   * records (durably, when this resolves). The relay's copy and other devices
   * keep theirs; opening the URL again fetches it anew.
   */
  delete(url: string): Promise<void>;
  /**
   * Connection state, changes not yet durable on this device (`unsaved`: not
   * safe to close) and durable but not acknowledged by the relay (`pending`),
   * last sync time. Per document: `doc.status`.
   */
  readonly status: Status;
  /**
   * `setOnline(false)` disconnects from the relay and stays offline, whatever
   * the network does, until `setOnline(true)`. Changes are still saved on this
   * device meanwhile, and pushed once back online. (A "work offline" switch.)
   */
  setOnline(online: boolean): void;
  /** Listens to an event; returns the unsubscribe function. */
  on<K extends keyof RepoEvents>(event: K, listener: RepoEvents[K]): Unsubscribe;
  /** Closes the connection and the database. Handles stop updating; changes throw "Closed". */
  close(): void;
}

interface PendingOpen {
  promise: Promise<Handle<object>>;
  resolve: (handle: Handle<object>) => void;
  reject: (error: SynclineError) => void;
}

interface QueuedEvent {
  event: CoreEvent;
}

const CLOSED: EngineStatus = Object.freeze({ connection: "closed", unsaved: 0, pending: 0, lastSyncedAt: null, buffered: 0 });

export class RepoImpl implements Repo, DocHost {
  #core: CoreApi | null;
  #lastStatus: Status;
  #persisted: boolean | undefined;
  readonly #handles = new Map<string, Handle<object>>();
  readonly #opening = new Map<string, PendingOpen>();
  readonly #listeners = new StatusAndErrorListeners<Status>();
  #queue: QueuedEvent[] = [];
  #draining = false;
  /** What the relay caught up on: a migration waits for it (see `schema.ts`). */
  readonly #catchUps = new CatchUps();
  /** Set once the wasm module trapped: every later call fails with it. */
  #crashed: SynclineError | null = null;

  /** The other tabs, when the engine is in this page (in worker mode the worker meets them). */
  readonly #tabs: TabLink | null;
  /** Where the engine runs, and why in the page if a worker was wanted. */
  readonly #mode: EngineMode;

  constructor(core: CoreApi, name: string, mode: EngineMode) {
    this.#core = core;
    this.#mode = mode;
    this.#lastStatus = Object.freeze({ ...CLOSED, mode: mode.mode });
    void this.status;
    if (mode.mode === "worker") {
      this.#tabs = null;
      return;
    }
    this.#tabs = new TabLink(name, {
      message: (bytes) => this.#fromTab(bytes),
      deleted: (url) => this.#forget(url),
      leader: () => this.#core?.setCompactionEnabled(true),
    });
    core.setTabSync(this.#tabs.linked);
    if (this.#tabs.coordinated) core.setCompactionEnabled(false);
  }

  /** Another tab deleted `url`: forget it here too. */
  #forget(url: string): void {
    this.#dropHandle(url);
    try {
      this.#core?.deleteDoc(url);
    } catch {
      // Not open in this tab: nothing of it in this engine to forget.
    }
  }

  /** Another tab's change: applied (and logged) like one from the relay. */
  #fromTab(bytes: Uint8Array): void {
    if (!this.#core) return;
    try {
      this.#core.receivedFromTab(bytes);
    } catch (error) {
      this.#reportError(this.#failure(error));
    }
  }

  /**
   * Receives the core's events. They are queued and handled in a microtask,
   * so no app code (subscribers, listeners) ever runs while the engine is on
   * the stack, and app code may call back into the engine freely.
   */
  receive(event: CoreEvent): void {
    if (!this.#core) return;
    if (event.type === "crashed") {
      this.#crash(event.error);
      return;
    }
    if (event.type === "broadcast") {
      this.#tabs?.post(event.bytes);
      return;
    }
    if (event.type === "deleted") {
      this.#forget(event.url);
      return;
    }
    // Patches apply at once, in the order the engine produced them (a local
    // change may follow before the queue drains); subscribers hear later.
    if (event.type === "changed") this.#handles.get(event.url)?.apply(event.patches);
    if (event.type === "reset") this.#handles.get(event.url)?.replace(event.value);
    this.#queue.push({ event });
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(() => this.#drain());
    }
  }

  #drain(): void {
    try {
      // Events queued while draining are handled in this same loop.
      for (let item = this.#queue.shift(); item && this.#core; item = this.#queue.shift()) {
        try {
          this.#handle(item);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    } finally {
      this.#draining = false;
      this.#queue = this.#core ? this.#queue : [];
    }
  }

  #handle({ event }: QueuedEvent): void {
    switch (event.type) {
      case "changed": {
        const handle = this.#handles.get(event.url);
        if (handle) {
          handle.notify();
          handle.historyChanged();
        } else this.#settleOpen(event.url, () => this.#requireCore().value(event.url));
        break;
      }
      case "reset":
        this.#handles.get(event.url)?.notify();
        break;
      case "undoState":
        this.#handles.get(event.url)?.refreshUndoState();
        break;
      case "history":
        this.#handles.get(event.url)?.historyChanged();
        break;
      case "caughtUp":
        this.#catchUps.caughtUp(event.url);
        if (!this.#handles.has(event.url)) this.#settleOpen(event.url, () => this.#requireCore().value(event.url));
        break;
      case "status":
        this.#catchUps.connection(event.status.connection);
        this.#setStatus(event.status);
        for (const handle of this.#handles.values()) handle.refreshStatus();
        break;
      case "error": {
        const error = toSynclineError(event.error);
        if (event.url === undefined) {
          this.#reportError(error);
          break;
        }
        // A refusal of one document: its handle hears it, and so does the repo.
        this.#catchUps.refused(event.url);
        const docId = event.url.split("#")[0];
        const scoped = new SynclineError(error.code, error.message, { cause: error.cause, docId });
        const handle = this.#handles.get(event.url);
        handle?.refreshStatus();
        // An open waiting for the relay's copy would wait for a retry that
        // may never be granted: it fails with the refusal (open it again
        // to retry at once).
        const opening = this.#opening.get(event.url);
        if (opening) {
          this.#opening.delete(event.url);
          opening.reject(scoped);
        }
        const heard = (handle?.failed(scoped) ?? false) || opening !== undefined;
        if (this.#listeners.error.size > 0 || !heard) this.#reportError(scoped);
        break;
      }
      case "presence":
        this.#handles.get(event.url)?.presenceChanged(event.peer, event.state);
        break;
      case "message":
        this.#handles.get(event.url)?.messages.received(event.from, event.bytes);
        break;
      case "request":
        this.#handles.get(event.url)?.messages.requested(event.from, event.id, event.method, event.payload);
        break;
      case "reply":
        this.#handles.get(event.url)?.messages.replied(event.id, event.result, event.error);
        break;
      case "crashed":
      case "broadcast":
      case "deleted":
        break; // handled at once in receive()
    }
  }

  #settleOpen(url: string, value: () => unknown): void {
    const pending = this.#opening.get(url);
    if (!pending) return;
    this.#opening.delete(url);
    try {
      pending.resolve(this.#adopt(url, value()));
    } catch (error) {
      pending.reject(toSynclineError(error));
    }
  }

  #adopt(url: string, value: unknown): Handle<object> {
    const handle = new Handle<object>(this, url, value);
    this.#handles.set(url, handle);
    handle.refreshStatus();
    return handle;
  }

  #requireCore(): CoreApi {
    if (this.#crashed) throw this.#crashed;
    if (!this.#core) throw new SynclineError("Closed", "this repo is closed: create a new one with createRepo()");
    return this.#core;
  }

  /** What a failed call throws: the crash if the module trapped, else the call's own error. */
  #failure(error: unknown): SynclineError {
    return this.#crashed ?? toSynclineError(error);
  }

  /**
   * The wasm module trapped. It can't be called again (not even to close it),
   * so the repo closes itself: opens in progress reject, status says "closed",
   * error listeners hear code "Crashed", and every later call throws it. What
   * was durable in IndexedDB is intact and loads again after a page reload.
   */
  #crash(cause: unknown): void {
    if (!this.#core) return;
    const error =
      (cause as { code?: unknown } | null)?.code === "Crashed"
        ? toSynclineError(cause)
        : new SynclineError(
            "Crashed",
            `the syncline wasm module crashed (${cause instanceof Error ? cause.message : String(cause)}); reload the page: everything saved locally is intact`,
            { cause },
          );
    const last = this.#lastStatus;
    this.#crashed = error;
    this.#core = null;
    this.#tabs?.close();
    this.#queue = [];
    for (const pending of this.#opening.values()) pending.reject(error);
    this.#opening.clear();
    this.#endMessages(error);
    // Listeners run after the current call unwinds, never inside the trap.
    queueMicrotask(() => {
      this.#setStatus({ ...last, connection: "closed", buffered: 0, lastError: { code: "Crashed", message: error.message } });
      this.#reportError(error);
    });
  }

  #setStatus(next: EngineStatus): void {
    const status = this.#remember(next);
    for (const listener of [...this.#listeners.status]) callSafely(listener, status);
  }

  #reportError(error: SynclineError): void {
    tapError(this, error);
    if (this.#listeners.error.size === 0) {
      console.warn("syncline:", error);
      return;
    }
    for (const listener of [...this.#listeners.error]) callSafely(listener, error);
  }

  reportError(error: SynclineError): void {
    this.#reportError(error);
  }

  connected(): boolean {
    return this.status.connection === "open";
  }

  /** Every handle's waiting requests fail with `error`; nothing is served any more. */
  #endMessages(error: SynclineError): void {
    for (const handle of this.#handles.values()) handle.messages.closed(error);
  }

  setPresence(url: string, state: Uint8Array | null): void {
    this.withCore((core) => (state ? core.setPresence(url, state) : core.clearPresence(url)));
  }

  history(url: string): HistoryEntry[] {
    return this.withCore((core) => core.history(url));
  }

  historyAsync(url: string): Promise<HistoryEntry[]> {
    return this.withCore(async (core) => (core.historyAsync ? await core.historyAsync(url) : core.history(url)));
  }

  valueAtAsync(url: string, heads: readonly string[]): Promise<unknown> {
    return this.withCore(async (core) => (core.valueAtAsync ? await core.valueAtAsync(url, [...heads]) : core.valueAt(url, [...heads])));
  }

  docStatus(url: string): DocStatus {
    return this.withCore((core) => core.docStatus(url));
  }

  valueAt(url: string, heads: readonly string[]): unknown {
    return this.withCore((core) => core.valueAt(url, [...heads]));
  }

  heads(url: string): string[] {
    return this.withCore((core) => core.heads(url));
  }

  async delete(url: string): Promise<void> {
    const core = this.#requireCore();
    url = typeof url === "string" ? url.trim() : url;
    try {
      if (!this.#handles.has(url)) await core.openDoc(url);
      core.deleteDoc(url);
      await core.flush();
    } catch (error) {
      throw this.#failure(error);
    }
    this.#dropHandle(url);
    this.#tabs?.postDeleted(url);
  }

  /** A deleted document's handle: its waiting requests fail, its methods are no longer served. */
  #dropHandle(url: string): void {
    this.#handles.get(url)?.messages.closed(new SynclineError("DocNotFound", "the document was deleted before the answer came"));
    this.#handles.delete(url);
  }

  applyChange(url: string, ops: Op[], options: ChangeOptions): Patch[] {
    return this.withCore((core) => core.change(url, ops, options.message, options.undoable));
  }

  withCore<R>(call: (core: CoreApi) => R): R {
    const core = this.#requireCore();
    try {
      const result = call(core);
      if (result instanceof Promise) {
        return result.catch((error: unknown) => {
          throw this.#failure(error);
        }) as R;
      }
      return result;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  async create<T extends object = JsonObject>(initial?: T, options?: OpenOptions): Promise<DocHandle<T>> {
    const core = this.#requireCore();
    let json = initial === undefined ? undefined : toJson(initial);
    if (options?.schema !== undefined && (json === undefined || (json !== null && typeof json === "object" && !Array.isArray(json)))) {
      json = { ...(json ?? {}), [SCHEMA_KEY]: checkSchema(options.schema).version };
    }
    if (json !== undefined && (json === null || typeof json !== "object" || Array.isArray(json))) {
      throw new SynclineError("BadValue", "a document's initial value must be an object");
    }
    try {
      const created = core.create(json);
      const url = typeof created === "string" ? created : await created;
      return this.#adopt(url, core.value(url)) as Handle<object> as unknown as DocHandle<T>;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  async open<T extends object = JsonObject>(url: string, options?: OpenOptions): Promise<DocHandle<T>> {
    if (options?.schema === undefined) return this.#open<T>(url);
    const schema = checkSchema(options.schema);
    const handle = await this.#open<T>(url);
    // Online, the relay's copy first: others may have migrated it already.
    this.#catchUps.connection(this.status.connection);
    await this.#catchUps.wait(handle.url);
    await this.#migrate(handle as unknown as Handle<object>, schema);
    return handle;
  }

  /** Brings an open document to `schema` (see `schema.ts`), in the page or in the worker. */
  async #migrate(handle: Handle<object>, schema: Schema): Promise<void> {
    const tooNew = await applySchema(handle, schema, async (url, from, ops) => {
      const core = this.#requireCore();
      try {
        return core.migrate ? core.migrate(url, from, ops) : ((await core.migrateAsync?.(url, from, ops)) ?? null);
      } catch (error) {
        throw this.#failure(error);
      }
    });
    if (tooNew) this.#reportError(tooNew);
  }

  async #open<T extends object = JsonObject>(url: string): Promise<DocHandle<T>> {
    const core = this.#requireCore();
    if (typeof url !== "string") throw new SynclineError("BadUrl", "a document URL must be a string");
    // `syncline:<id>#<key>`: the key travels in the URL's fragment; the engine
    // rejects a URL without it (code "BadUrl").
    url = url.trim();
    const existing = this.#handles.get(url);
    if (existing) return existing as unknown as DocHandle<T>;
    const opening = this.#opening.get(url);
    if (opening) return (await opening.promise) as unknown as DocHandle<T>;
    let resolve!: (handle: Handle<object>) => void;
    let reject!: (error: SynclineError) => void;
    const promise = new Promise<Handle<object>>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A refusal can reject it while the engine's openDoc is still awaited
    // below (in worker mode, an answer away): not an unhandled rejection.
    promise.catch(() => {});
    this.#opening.set(url, { promise, resolve, reject });
    try {
      // Resolves at once with local data; otherwise on caughtUp or a change.
      if (await core.openDoc(url)) this.#settleOpen(url, () => this.#requireCore().value(url));
    } catch (error) {
      if (this.#opening.get(url)?.promise === promise) {
        this.#opening.delete(url);
        reject(this.#failure(error));
      }
    }
    return (await promise) as unknown as DocHandle<T>;
  }

  // Export and import (see `Repo.export`, `Repo.import`).

  async export(url: string): Promise<Uint8Array> {
    const handle = await this.open(url);
    try {
      return await this.#requireCore().exportDoc(handle.url);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  async import<T extends object = JsonObject>(bytes: Uint8Array): Promise<DocHandle<T>> {
    const core = this.#requireCore();
    if (!(bytes instanceof Uint8Array)) throw new SynclineError("BadImport", "import() takes the document's bytes as a Uint8Array");
    try {
      const url = await core.importDoc(bytes);
      return this.#adopt(url, core.value(url)) as Handle<object> as unknown as DocHandle<T>;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  async flush(): Promise<void> {
    const core = this.#requireCore();
    try {
      await core.flush();
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Records the browser's answer to the persistent-storage request, and tells status listeners. */
  setPersisted(persisted: boolean): void {
    this.#persisted = persisted;
    const status = this.status;
    for (const listener of [...this.#listeners.status]) callSafely(listener, status);
  }

  /** A frozen object, the same one for as long as nothing changes (fit for `useSyncExternalStore`). */
  get status(): Status {
    if (!this.#core) return this.#remember({ ...this.#lastStatus, connection: "closed", buffered: 0 });
    try {
      return this.#remember(this.#core.status());
    } catch {
      return this.#lastStatus;
    }
  }

  #remember(status: EngineStatus): Status {
    const last = this.#lastStatus;
    if (
      status.connection === last.connection &&
      status.unsaved === last.unsaved &&
      status.pending === last.pending &&
      status.lastSyncedAt === last.lastSyncedAt &&
      (status.buffered ?? 0) === last.buffered &&
      status.attempt === last.attempt &&
      status.lastError?.code === last.lastError?.code &&
      status.lastError?.message === last.lastError?.message &&
      this.#persisted === last.persisted &&
      this.#mode.mode === last.mode
    ) {
      return last;
    }
    const next: Status = {
      connection: status.connection,
      unsaved: status.unsaved,
      pending: status.pending,
      lastSyncedAt: status.lastSyncedAt ?? null,
      buffered: status.buffered ?? 0,
      mode: this.#mode.mode,
    };
    if (status.attempt !== undefined) next.attempt = status.attempt;
    if (status.lastError) next.lastError = Object.freeze({ code: status.lastError.code, message: status.lastError.message });
    if (this.#persisted !== undefined) next.persisted = this.#persisted;
    if (this.#mode.warning !== undefined) next.warning = this.#mode.warning;
    this.#lastStatus = Object.freeze(next);
    return this.#lastStatus;
  }

  setOnline(online: boolean): void {
    if (typeof online !== "boolean") throw new SynclineError("BadOption", "setOnline() takes true or false");
    const core = this.#requireCore();
    try {
      core.setOnline(online);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  on<K extends keyof RepoEvents>(event: K, listener: RepoEvents[K]): Unsubscribe {
    return this.#listeners.on(event, listener as (value: never) => void);
  }

  /** The devtools' read-only view (`npm/src/inspect.ts`, `syncline/devtools`). */
  [INSPECT](): Inspector {
    return makeInspector(this, {
      core: () => this.#core,
      handles: () => [...this.#handles.values()],
      mode: this.#mode.mode,
      status: () => this.status,
      onStatus: (fn) => this.#listeners.on("status", fn as (value: never) => void),
    });
  }

  close(): void {
    const core = this.#core;
    if (!core) return;
    const last = this.status;
    this.#core = null;
    this.#queue = [];
    this.#tabs?.close();
    try {
      core.close();
    } finally {
      const closed = new SynclineError("Closed", "the repo was closed before the document arrived");
      for (const pending of this.#opening.values()) pending.reject(closed);
      this.#opening.clear();
      this.#endMessages(new SynclineError("Closed", "the repo was closed before an answer came"));
      this.#setStatus({ ...last, connection: "closed" });
    }
  }
}

/**
 * Opens the engine and wraps it in a Repo. Events the engine sends before the
 * Repo exists (e.g. errors found while loading) are kept and delivered to it.
 * `loadWasm` runs before the engine opens in this page (never in worker
 * mode, where the worker loads it).
 */
export async function openRepo(Core: CoreStatic, options: RepoOptions = {}, loadWasm?: () => Promise<void>): Promise<Repo> {
  const name = options.name ?? "default";
  if (typeof name !== "string" || name === "") throw new SynclineError("BadOption", "`name` must be a non-empty string");
  const relays = options.relay === undefined ? [] : typeof options.relay === "string" ? [options.relay] : options.relay;
  if (!Array.isArray(relays) || (options.relay !== undefined && relays.length === 0)) {
    throw new SynclineError("BadOption", "`relay` must be a ws:// or wss:// URL or a non-empty array of them");
  }
  for (const relay of relays) {
    if (typeof relay !== "string" || !/^wss?:\/\//i.test(relay)) {
      throw new SynclineError("BadOption", `\`relay\` must be a ws:// or wss:// URL, not "${String(relay)}"`);
    }
  }
  const token = options.token;
  if (token !== undefined && typeof token !== "string" && typeof token !== "function") {
    throw new SynclineError("BadOption", "`token` must be a string or a function returning one");
  }
  for (const key of ["connectTimeoutMs", "heartbeatMs", "pongTimeoutMs", "backoffBaseMs", "backoffCapMs"] as const) {
    const value = options[key];
    if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
      throw new SynclineError("BadOption", `\`${key}\` must be a non-negative number of milliseconds`);
    }
  }
  const sendBufferBytes = options.sendBufferBytes;
  if (sendBufferBytes !== undefined && !(Number.isSafeInteger(sendBufferBytes) && sendBufferBytes > 0)) {
    throw new SynclineError("BadOption", "`sendBufferBytes` must be a positive whole number of bytes");
  }
  const maxUnsavedBytes = options.maxUnsavedBytes;
  if (maxUnsavedBytes !== undefined && !(Number.isSafeInteger(maxUnsavedBytes) && maxUnsavedBytes > 0)) {
    throw new SynclineError("BadOption", "`maxUnsavedBytes` must be a positive whole number of bytes");
  }
  const durability = options.durability ?? "default";
  if (!["default", "relaxed", "strict"].includes(durability)) {
    throw new SynclineError("BadOption", '`durability` must be "default", "relaxed" or "strict"');
  }
  const transport: TransportOptions & { durability: string; maxUnsavedBytes?: number } = {
    connectTimeoutMs: options.connectTimeoutMs,
    heartbeatMs: options.heartbeatMs,
    pongTimeoutMs: options.pongTimeoutMs,
    backoffBaseMs: options.backoffBaseMs,
    backoffCapMs: options.backoffCapMs,
    sendBufferBytes,
    token,
    durability,
    maxUnsavedBytes,
  };
  if (options.worker !== undefined && typeof options.worker !== "boolean") {
    throw new SynclineError("BadOption", "`worker` must be true or false");
  }
  const { undoCaptureMs } = options;
  if (undoCaptureMs !== undefined && !(typeof undoCaptureMs === "number" && undoCaptureMs >= 0 && Number.isFinite(undoCaptureMs))) {
    throw new SynclineError("BadOption", "`undoCaptureMs` must be a number of milliseconds ≥ 0");
  }
  let repo: RepoImpl | undefined;
  const early: CoreEvent[] = [];
  let core: CoreApi | undefined;
  let mode: EngineMode = { mode: "page" };
  try {
    // Worker mode unless the app said no or the browser has no SharedWorker (then silently the page).
    const wantWorker = options.worker ?? typeof SharedWorker === "function";
    // In the page the wasm loads first, as it always did; in worker mode only if the worker can't start.
    if (!wantWorker) await loadWasm?.();
    const key = await storageKey(name, options);
    const onEvent = (event: CoreEvent): void => {
      if (repo) repo.receive(event);
      else early.push(event);
    };
    const relay = relays.length === 0 ? undefined : [...relays];
    if (wantWorker) {
      try {
        const { token: _token, ...plain } = transport;
        core = await WorkerCore.open({
          hello: {
            name,
            relay,
            options: typeof token === "string" ? { ...plain, token } : plain,
            tokenFunction: typeof token === "function",
            key,
          },
          ...(typeof token === "function" ? { token } : {}),
          onEvent,
        });
        mode = { mode: "worker" };
      } catch (error) {
        // Another version in the origin's worker (a tab not reloaded since a deploy): this tab keeps working in the page.
        const otherVersion = error instanceof SynclineError && error.code === "WorkerMismatch";
        if (!(error instanceof WorkerStartError) && !otherVersion) throw error;
        mode = { mode: "page", warning: `${error.message}; the engine runs in this page instead` };
        console.warn("syncline:", mode.warning);
        await loadWasm?.();
      }
    }
    if (!core) {
      const raw = Core.openWith
        ? await Core.openWith(name, relay, onEvent, key, transport)
        : await Core.open(name, relay, onEvent, key);
      core = adaptCore(raw, (error) => onEvent({ type: "crashed", error }));
    }
    if (undoCaptureMs !== undefined) core.setUndoCapture(undoCaptureMs);
  } catch (error) {
    throw toSynclineError(error);
  }
  const created = new RepoImpl(core, name, mode);
  rememberRelays(created, relays);
  void requestPersistentStorage().then((granted) => created.setPersisted(granted));
  repo = created;
  // After a macrotask, so listeners attached right after `await createRepo()` hear them.
  if (early.length > 0) setTimeout(() => early.forEach((event) => created.receive(event)), 0);
  return created;
}

/** Asks the browser not to evict this origin's storage; false where it can't be asked. */
async function requestPersistentStorage(): Promise<boolean> {
  try {
    const storage = globalThis.navigator?.storage;
    return typeof storage?.persist === "function" ? await storage.persist() : false;
  } catch {
    return false;
  }
}
