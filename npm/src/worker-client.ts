/**
 * The tab side of worker mode (the default where the browser has SharedWorker): a `CoreApi`
 * whose engine runs in the origin's SharedWorker (`worker.ts`), reached over
 * one MessagePort (messages in `worker-protocol.ts`). No wasm, no Automerge
 * on this thread.
 *
 * The API stays synchronous: each open document's *confirmed* value (the
 * worker's, built from its patches in order) is kept here with the local
 * changes the worker has not confirmed yet. `change()` returns the patches
 * of its own ops at once (the handle applies them), and sends the ops with
 * the heads of the confirmed value. The worker's patches are authoritative:
 * when they differ from what the tab assumed (a concurrent change arrived
 * first), the handle's value is reset to the confirmed value with the
 * still-unconfirmed changes re-applied (a `reset` event).
 *
 * Handoff: the worker holds a Web Lock for its lifetime; this tab waits on
 * it, and obtaining it means the worker is gone. The tab then starts a new
 * SharedWorker, opens its documents again, re-sends every change not yet
 * reported durable (a change whose hash the new engine already has is not
 * applied twice) and the calls still in flight; `flush()` resolves only
 * once the worker reported every earlier change durable.
 */
import type { CoreApi, CoreEvent } from "./core.js";
import { SynclineError, toSynclineError } from "./errors.js";
import { applyPatches, opsToPatches } from "./snapshot.js";
import type { DocStatus, EngineStatus, HistoryEntry, JsonValue, Op, Patch, Path, TextMark } from "./types.js";
import { PACKAGE_VERSION } from "./version.js";
import {
  type CallRequest,
  type ChangeMessage,
  type FromWorker,
  type OpenedDoc,
  type PageEventName,
  type TabStatus,
  type ToWorker,
  WORKER_LOCK,
  serverKey,
  splitKey,
} from "./worker-protocol.js";

/** What the tab sends the worker to open (or join) its repo's engine. */
export type WorkerHello = Omit<Extract<ToWorker, { t: "hello" }>, "t" | "version">;

/** A started worker: a SharedWorker, or anything with its port and load-error event. */
export type StartedWorker = Pick<SharedWorker, "port" | "onerror">;

export interface WorkerCoreInit {
  hello: WorkerHello;
  /** Starts (or joins) the worker; default the origin's SharedWorker. */
  start?: () => StartedWorker;
  token?: (docId: string) => string | Promise<string>;
  onEvent: (event: CoreEvent) => void;
}

/** The worker could not be started (no SharedWorker, a missing script, a CSP refusal): fall back to the page. */
export class WorkerStartError extends Error {}

/** How long a started worker may take to run its script before the page gives up on it. */
const START_TIMEOUT_MS = 10_000;

/**
 * The origin's SharedWorker. Written literally, options included (Vite
 * refuses options that are not static): bundlers recognise
 * `new SharedWorker(new URL(..., import.meta.url))` and ship the script.
 */
function startWorker(): SharedWorker {
  return new SharedWorker(new URL("./worker.js", import.meta.url), { type: "module", name: "syncline" });
}

interface Sent extends ChangeMessage {
  /** The current worker applied it (its patches arrived). */
  confirmed: boolean;
  /** The number of the worker's status messages heard when it was confirmed: until the next one, that status does not count it. */
  confirmedAtStatus?: number;
}

interface TabDoc {
  confirmed: unknown;
  heads: string[];
  /** Local changes not yet confirmed, oldest first. */
  pending: Sent[];
  status: DocStatus;
}

interface Call {
  request: CallRequest;
  resolve: (value: unknown) => void;
  reject: (error: SynclineError) => void;
  /** Posted to a worker (not waiting for one after a handoff). */
  posted: boolean;
}

const CLEAN: DocStatus = { unsaved: 0, pending: 0 };

export class WorkerCore implements CoreApi {
  readonly #init: WorkerCoreInit;
  #port: MessagePort | null = null;
  #generation = 0;
  #closed = false;
  /** From the worker's death until the new one got everything again: sends wait for #resync. */
  #handingOff = false;
  /** Until the new worker answered everything re-sent: the handles keep what they show. */
  #resyncing = false;
  readonly #lockWatch = new AbortController();
  /** Removes this tab's `online`, `offline` and `visibilitychange` listeners. */
  readonly #pageEvents = new AbortController();
  readonly #calls = new Map<number, Call>();
  #nextCall = 1;
  readonly #docs = new Map<string, TabDoc>();
  /** The lock this tab holds while it lives (the worker waits on it), and how to let it go. */
  #tabLock: string | undefined;
  #releaseTabLock: (() => void) | undefined;
  /** Each open doc's history as the worker sent it (`history()` reads it synchronously); `hashes` drops repeats. */
  readonly #histories = new Map<string, { entries: HistoryEntry[]; hashes: Set<string> }>();
  /** Every change not yet reported durable, by seq. */
  readonly #outbox = new Map<number, Sent>();
  #seq = 0;
  #status: EngineStatus = { connection: "connecting", unsaved: 0, pending: 0, lastSyncedAt: null, buffered: 0 };
  #flushWaiters: { upTo: number; resolve: () => void }[] = [];
  /** The worker's statuses heard so far (see `#uncounted`). */
  #statuses = 0;
  /** `[canUndo, canRedo]` per doc: as the worker last said, or as this tab's last change implies. */
  readonly #undoStates = new Map<string, [boolean, boolean]>();
  /** Requests sent and not answered, id → url: a handoff fails them (their answers would reach the old worker). */
  readonly #requests = new Map<string, string>();
  /** The methods this tab serves, as `url method`: served again on a new worker. */
  readonly #served = new Set<string>();

  private constructor(init: WorkerCoreInit) {
    this.#init = init;
  }

  /** Starts (or joins) the worker; rejects with `WorkerStartError` if it can't run, or the worker's refusal. */
  static async open(init: WorkerCoreInit): Promise<WorkerCore> {
    const core = new WorkerCore(init);
    await core.#holdTabLock();
    try {
      await core.#connect();
    } catch (error) {
      core.#releaseTabLock?.(); // no worker to wait on it: the page engine takes over
      throw error;
    }
    core.#forwardPageEvents();
    return core;
  }

  /**
   * The worker has no window, so it hears neither the network come and go
   * nor a tab become visible: each tab tells it, and its engine reconnects
   * at once (or says offline at once) as it would in the page.
   */
  #forwardPageEvents(): void {
    const page = globalThis as { addEventListener?: Window["addEventListener"]; document?: Document };
    if (typeof page.addEventListener !== "function") return;
    const signal = this.#pageEvents.signal;
    const forward = (event: PageEventName) => this.#post({ t: "pageEvent", event });
    page.addEventListener("online", () => forward("online"), { signal });
    page.addEventListener("offline", () => forward("offline"), { signal });
    const document = page.document;
    document?.addEventListener(
      "visibilitychange",
      () => {
        if (document.visibilityState === "visible") forward("visible");
      },
      { signal },
    );
  }

  /** Takes the lock that tells the worker, once it is free, that this tab is gone (see `tabLock`). */
  async #holdTabLock(): Promise<void> {
    const locks = globalThis.navigator?.locks;
    if (typeof locks?.request !== "function" || typeof globalThis.crypto?.randomUUID !== "function") return;
    const name = `syncline-tab:${globalThis.crypto.randomUUID()}`;
    const held = await new Promise<boolean>((granted) => {
      locks
        .request(name, () => {
          granted(true);
          return new Promise<void>((release) => (this.#releaseTabLock = release));
        })
        .catch(() => granted(false));
    });
    if (held) this.#tabLock = name;
  }

  #connect(): Promise<void> {
    const generation = ++this.#generation;
    let worker: StartedWorker;
    try {
      if (this.#init.start) worker = this.#init.start();
      else if (typeof SharedWorker !== "function") throw new Error("this browser has no SharedWorker");
      else worker = startWorker();
    } catch (error) {
      return Promise.reject(new WorkerStartError(`could not start the syncline worker: ${String(error)}`, { cause: error }));
    }
    const port = worker.port;
    return new Promise<void>((resolve, reject) => {
      let alive = false;
      const timer = setTimeout(() => fail(new WorkerStartError(`the syncline worker did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        port.onmessage = null;
        port.close();
        reject(error);
      };
      worker.onerror = () => {
        if (!alive) fail(new WorkerStartError("the syncline worker script failed to load (missing file, or refused by a Content-Security-Policy)"));
      };
      port.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (generation !== this.#generation || this.#closed) return;
        if (!alive) {
          if (message?.t !== "alive") return;
          clearTimeout(timer);
          alive = true;
          if (message.version !== PACKAGE_VERSION) {
            fail(mismatch(message.version));
            return;
          }
          const hello: ToWorker = { t: "hello", version: PACKAGE_VERSION, ...this.#init.hello };
          if (this.#tabLock) hello.tabLock = this.#tabLock;
          port.postMessage(hello);
          return;
        }
        if (this.#port !== port) {
          if (message.t === "refused") fail(toSynclineError(message.error));
          if (message.t !== "welcome") return;
          this.#port = port;
          this.#status = message.status;
          this.#watchWorker(generation);
          resolve();
          return;
        }
        this.#receive(message);
      };
      port.start();
    });
  }

  /** Waits on the worker's lock: obtaining it means the worker ended. */
  #watchWorker(generation: number): void {
    const locks = globalThis.navigator?.locks;
    if (typeof locks?.request !== "function") return;
    locks
      .request(WORKER_LOCK, { signal: this.#lockWatch.signal }, () => {
        if (generation === this.#generation && !this.#closed) this.#handoff();
      })
      .catch(() => {});
  }

  /** The worker is gone: start another, open the docs there, send again what is not durable. */
  #handoff(): void {
    this.#port?.close();
    this.#port = null;
    this.#handingOff = true;
    this.#resyncing = true;
    for (const sent of this.#outbox.values()) sent.confirmed = false;
    for (const [url, doc] of this.#docs) doc.pending = [...this.#outbox.values()].filter((sent) => sent.url === url);
    for (const [id, url] of this.#requests) {
      const error = new SynclineError("Offline", "the syncline worker went away before an answer came: send the request again");
      this.#init.onEvent({ type: "reply", url, id, error });
    }
    this.#requests.clear();
    // No engine until the new worker answers: not connected, whatever the dead one last said.
    this.#status = { ...this.#status, connection: "connecting" };
    this.#init.onEvent({ type: "status", status: this.status() });
    this.#connect().then(
      () => this.#resync(),
      (error: unknown) => {
        this.#handingOff = false;
        this.#resyncing = false;
        this.#init.onEvent({ type: "crashed", error: new SynclineError("Crashed", `the syncline worker ended and could not be restarted: ${String((error as Error)?.message ?? error)}`) });
      },
    );
  }

  #resync(): void {
    this.#handingOff = false;
    // A page event heard while no worker was there: what holds now.
    if (globalThis.navigator?.onLine === false) this.#post({ t: "pageEvent", event: "offline" });
    const inFlight = [...this.#calls];
    for (const url of this.#docs.keys()) {
      void this.#call({ op: "open", url }).then(
        (opened) => this.#reopened(opened as OpenedDoc),
        (error: unknown) => this.#init.onEvent({ type: "error", error, url }),
      );
    }
    for (const sent of [...this.#outbox.values()].sort((a, b) => a.seq - b.seq)) this.#post(this.#wire(sent));
    for (const [id, call] of inFlight) {
      if (call.posted && (call.request.op === "sendMessage" || call.request.op === "request")) {
        // The dead worker may have sent it: sent at most once, never again.
        this.#calls.delete(id);
        call.reject(new SynclineError("Offline", "the engine's worker stopped before it confirmed sending this; it may not have reached anyone"));
        continue;
      }
      call.posted = true;
      this.#post({ t: "call", id, ...call.request });
    }
    for (const key of this.#served) {
      const [url, method] = splitKey(key);
      this.#call({ op: "serve", url, method }).catch((error: unknown) => {
        this.#served.delete(key);
        this.#init.onEvent({ type: "error", error });
      });
    }
    void this.#call({ op: "barrier" }).finally(() => {
      this.#resyncing = false;
      for (const url of this.#docs.keys()) this.#reset(url);
    });
  }

  #reopened(opened: OpenedDoc): void {
    const doc = this.#docs.get(opened.url);
    if (!doc) return;
    doc.confirmed = opened.value;
    doc.heads = opened.heads;
  }

  #post(message: ToWorker): void {
    this.#port?.postMessage(message);
  }

  #call(request: CallRequest): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError());
    const id = this.#nextCall++;
    return new Promise((resolve, reject) => {
      // While a new worker starts, calls wait; #resync sends them.
      const posted = !this.#handingOff;
      this.#calls.set(id, { request, resolve, reject, posted });
      if (posted) this.#post({ t: "call", id, ...request });
    });
  }

  #receive(message: FromWorker): void {
    switch (message.t) {
      case "reply": {
        const call = this.#calls.get(message.id);
        this.#calls.delete(message.id);
        if (message.error) call?.reject(toSynclineError(message.error));
        else call?.resolve(message.value);
        return;
      }
      case "patches":
        this.#patched(message.url, message.patches, message.heads, message.own);
        return;
      case "rejected": {
        const sent = this.#outbox.get(message.seq);
        this.#outbox.delete(message.seq);
        const doc = this.#docs.get(message.url);
        if (doc && sent) {
          doc.pending = doc.pending.filter((pending) => pending !== sent);
          if (!this.#resyncing) this.#reset(message.url);
        }
        this.#settleFlushes();
        this.#init.onEvent({ type: "error", error: message.error });
        return;
      }
      case "durable":
        for (const seq of message.seqs) this.#outbox.delete(seq);
        this.#tookStatus(message);
        this.#settleFlushes();
        this.#statusChanged();
        return;
      case "status":
        this.#tookStatus(message);
        this.#statusChanged();
        return;
      case "caughtUp":
        this.#init.onEvent({ type: "caughtUp", url: message.url });
        return;
      case "history": {
        let history = this.#histories.get(message.url);
        if (!history) this.#histories.set(message.url, (history = { entries: [], hashes: new Set() }));
        const before = history.entries.length;
        for (const entry of message.entries) {
          if (history.hashes.has(entry.hash)) continue;
          history.hashes.add(entry.hash);
          history.entries.push(entry);
        }
        if (history.entries.length > before) this.#init.onEvent({ type: "history", url: message.url });
        return;
      }
      case "undoState":
        this.#undoStates.set(message.url, message.state);
        this.#init.onEvent({ type: "undoState", url: message.url });
        return;
      case "presence":
        this.#init.onEvent({ type: "presence", url: message.url, peer: message.peer, state: message.state });
        return;
      case "message":
        this.#init.onEvent({ type: "message", url: message.url, from: message.from, bytes: message.bytes });
        return;
      case "request": {
        const { url, from, id, method, payload } = message;
        this.#init.onEvent({ type: "request", url, from, id, method, payload });
        return;
      }
      case "answer":
        this.#requests.delete(message.id);
        this.#init.onEvent(
          message.result !== undefined
            ? { type: "reply", url: message.url, id: message.id, result: message.result }
            : { type: "reply", url: message.url, id: message.id, error: toSynclineError(message.error) },
        );
        return;
      case "error":
        this.#init.onEvent(
          message.url === undefined
            ? { type: "error", error: message.error }
            : { type: "error", error: message.error, url: message.url },
        );
        return;
      case "deleted":
        this.#docs.delete(message.url);
        this.#histories.delete(message.url);
        this.#forgetServed(message.url);
        this.#init.onEvent({ type: "deleted", url: message.url });
        return;
      case "token?":
        void this.#answerToken(message.id, message.docId);
        return;
      case "crashed":
        // As in the page: the repo closes; this tab does not start another worker.
        this.close();
        this.#init.onEvent({ type: "crashed", error: toSynclineError(message.error) });
        return;
      default:
        return;
    }
  }

  /** The worker's patches of `url`: the confirmed value moves; the handle hears only what it did not assume. */
  #patched(url: string, patches: Patch[], heads: string[], own: { seq: number; hash: string | null; bytes?: Uint8Array } | undefined): void {
    const doc = this.#docs.get(url);
    const sent = own ? this.#outbox.get(own.seq) : undefined;
    if (sent && own) {
      sent.confirmed = true;
      sent.confirmedAtStatus = this.#statuses;
      if (own.hash !== null) sent.hash = own.hash;
      if (own.bytes) sent.bytes = own.bytes;
    }
    if (!doc) return;
    doc.confirmed = applyPatches(doc.confirmed, patches);
    doc.heads = heads;
    const first = doc.pending[0];
    if (sent) doc.pending = doc.pending.filter((pending) => pending !== sent);
    if (this.#resyncing) return; // the barrier resets every doc
    if (sent && first === sent && samePatches(patches, opsToPatches(sent.ops))) return; // as assumed
    if (!own && doc.pending.length === 0) {
      this.#init.onEvent({ type: "changed", url, patches });
      return;
    }
    this.#reset(url);
  }

  /** The handle's value becomes the confirmed value with the unconfirmed changes on top. */
  #reset(url: string): void {
    const doc = this.#docs.get(url);
    if (doc) this.#init.onEvent({ type: "reset", url, value: this.#shown(doc) });
  }

  #shown(doc: TabDoc): unknown {
    let value = doc.confirmed;
    for (const sent of doc.pending) {
      try {
        value = applyPatches(value, opsToPatches(sent.ops));
      } catch {
        // No longer applies to the confirmed value: the worker's answer will show what it did.
      }
    }
    return value;
  }

  #wire(sent: Sent): ChangeMessage {
    const { confirmed: _confirmed, ...message } = sent;
    return message;
  }

  async #answerToken(id: number, docId: string): Promise<void> {
    try {
      const token = await this.#init.token?.(docId);
      if (typeof token !== "string") throw new Error("the token function returned no string");
      this.#post({ t: "token", id, token });
    } catch (error) {
      this.#post({ t: "token", id, error: { code: "TokenProvider", message: String((error as Error)?.message ?? error) } });
    }
  }

  #statusChanged(): void {
    this.#init.onEvent({ type: "status", status: this.status() });
  }

  #settleFlushes(): void {
    const lowest = Math.min(...this.#outbox.keys());
    this.#flushWaiters = this.#flushWaiters.filter((waiter) => {
      if (waiter.upTo >= lowest) return true;
      waiter.resolve();
      return false;
    });
  }

  #require(url: string): TabDoc {
    const doc = this.#docs.get(url);
    if (!doc) throw new SynclineError("DocNotFound", "the document is not open in this repo");
    return doc;
  }

  #adopt(opened: OpenedDoc): void {
    const known = this.#docs.get(opened.url);
    if (known) return;
    this.#docs.set(opened.url, { confirmed: opened.value, heads: opened.heads, pending: [], status: CLEAN });
  }

  // CoreApi

  async create(initial: JsonValue | undefined): Promise<string> {
    const opened = (await this.#call({ op: "create", initial })) as OpenedDoc;
    this.#adopt(opened);
    return opened.url;
  }

  async openDoc(url: string): Promise<boolean> {
    const opened = (await this.#call({ op: "open", url })) as OpenedDoc;
    this.#adopt(opened);
    return true;
  }

  /** A schema migration step, made by the worker's engine; the new value comes as "patches" before this resolves. */
  async migrateAsync(url: string, from: number, ops: Op[]): Promise<null> {
    await this.#call({ op: "migrate", url, from, ops });
    return null;
  }

  exportDoc(url: string): Promise<Uint8Array> {
    return this.#call({ op: "export", url }) as Promise<Uint8Array>;
  }

  async importDoc(bytes: Uint8Array): Promise<string> {
    const opened = (await this.#call({ op: "import", bytes })) as OpenedDoc;
    this.#adopt(opened);
    return opened.url;
  }

  /** A deleted document's methods are served no more (not even after a handoff). */
  #forgetServed(url: string): void {
    for (const key of this.#served) if (splitKey(key)[0] === url) this.#served.delete(key);
  }

  deleteDoc(url: string): void {
    this.#docs.delete(url);
    this.#histories.delete(url);
    this.#forgetServed(url);
    for (const [seq, sent] of this.#outbox) if (sent.url === url) this.#outbox.delete(seq);
    this.#call({ op: "delete", url }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  /**
   * The worker's history of `url`, as it last sent it: after `open`
   * resolves it is all there (a fast-opened document's once its CRDT has
   * loaded in the worker, a task later); a change reaches it when the
   * worker's answer does, as `heads()`.
   */
  history(url: string): HistoryEntry[] {
    return [...(this.#histories.get(url)?.entries ?? [])];
  }

  historyAsync(url: string): Promise<HistoryEntry[]> {
    return this.#call({ op: "history", url }) as Promise<HistoryEntry[]>;
  }

  valueAt(): unknown {
    throw unsupported("view()", "viewAsync()");
  }

  valueAtAsync(url: string, heads: string[]): Promise<unknown> {
    return this.#call({ op: "valueAt", url, heads });
  }

  heads(url: string): string[] {
    return [...this.#require(url).heads];
  }

  setPresence(url: string, state: Uint8Array): void {
    this.#call({ op: "setPresence", url, state }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  clearPresence(url: string): void {
    this.#call({ op: "setPresence", url, state: null }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  sendMessage(url: string, bytes: Uint8Array): Promise<boolean> {
    return this.#call({ op: "sendMessage", url, bytes }) as Promise<boolean>;
  }

  async request(url: string, method: string, payload: Uint8Array, timeoutMs: number): Promise<string> {
    const id = (await this.#call({ op: "request", url, method, payload, timeoutMs })) as string;
    this.#requests.set(id, url);
    return id;
  }

  async serve(url: string, method: string): Promise<void> {
    const key = serverKey(url, method);
    this.#served.add(key);
    try {
      await this.#call({ op: "serve", url, method });
    } catch (error) {
      this.#served.delete(key);
      throw error;
    }
  }

  unserve(url: string, method: string): void {
    this.#served.delete(serverKey(url, method));
    this.#call({ op: "unserve", url, method }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  reply(url: string, to: string, id: string, result: Uint8Array | undefined, error: string | undefined): void {
    this.#call({ op: "reply", url, to, requestId: id, result, error }).catch((failure: unknown) => this.#init.onEvent({ type: "error", error: failure }));
  }

  inspectAsync(record: boolean, after: number): Promise<unknown> {
    return this.#call({ op: "inspect", record, after });
  }

  inspectDocAsync(url: string): Promise<unknown> {
    return this.#call({ op: "inspectDoc", url });
  }

  // The worker's engine meets in-page tabs and compacts; nothing of that happens here.
  setTabSync(): void {}
  receivedFromTab(): void {}
  setCompactionEnabled(): void {}

  value(url: string): unknown {
    return this.#shown(this.#require(url));
  }

  change(url: string, ops: Op[], message?: string, undoable?: boolean): Patch[] {
    if (this.#closed) throw closedError();
    const doc = this.#require(url);
    const sent: Sent = {
      t: "change",
      seq: ++this.#seq,
      url,
      ops,
      heads: doc.heads,
      before: doc.pending.map((pending) => pending.seq),
      confirmed: false,
    };
    if (message !== undefined) sent.message = message;
    if (undoable === false) sent.undoable = false;
    // What the worker will say once it applied it (an undoable change clears redo).
    else this.#undoStates.set(url, [true, false]);
    doc.pending.push(sent);
    this.#outbox.set(sent.seq, sent);
    // While a new worker starts, changes wait; #resync sends them in order.
    if (!this.#handingOff) this.#post(this.#wire(sent));
    this.#statusChanged();
    return opsToPatches(ops);
  }

  undo(url: string): Patch[] | null {
    return this.#revert(url, "undo");
  }

  redo(url: string): Patch[] | null {
    return this.#revert(url, "redo");
  }

  /** Asks the worker; its patches arrive as any other tab's would. */
  #revert(url: string, op: "undo" | "redo"): Patch[] | null {
    if (this.#closed) throw closedError();
    this.#require(url);
    const [canUndo, canRedo] = this.undoState(url);
    if (!(op === "undo" ? canUndo : canRedo)) return null;
    this.#call({ op, url }).catch((error: unknown) => this.#init.onEvent({ type: "error", error, url }));
    return [];
  }

  undoState(url: string): [boolean, boolean] {
    return this.#undoStates.get(url) ?? [false, false];
  }

  setUndoCapture(ms: number): void {
    this.#call({ op: "setUndoCapture", ms }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  cursor(): string {
    throw unsupported("cursor()", "cursorAsync()");
  }

  cursorPosition(): number {
    throw unsupported("cursorPosition()", "cursorPositionAsync()");
  }

  marks(): TextMark[] {
    throw unsupported("marks()", "marksAsync()");
  }

  cursorAsync(url: string, path: Path, index: number): Promise<string> {
    return this.#call({ op: "cursor", url, path, index }) as Promise<string>;
  }

  cursorPositionAsync(url: string, path: Path, cursor: string): Promise<number> {
    return this.#call({ op: "cursorPosition", url, path, cursor }) as Promise<number>;
  }

  marksAsync(url: string, path: Path): Promise<TextMark[]> {
    return this.#call({ op: "marks", url, path }) as Promise<TextMark[]>;
  }

  async flush(): Promise<void> {
    const upTo = this.#seq;
    await this.#call({ op: "flush" });
    if ([...this.#outbox.keys()].every((seq) => seq > upTo)) return;
    await new Promise<void>((resolve) => this.#flushWaiters.push({ upTo, resolve }));
  }

  /**
   * A status from the worker (alone, or with a durable report). It was
   * made after everything the worker sent before, so it counts those
   * changes itself.
   */
  #tookStatus({ status, docs }: TabStatus): void {
    this.#statuses += 1;
    this.#status = status;
    for (const [url, docStatus] of Object.entries(docs)) {
      const doc = this.#docs.get(url);
      if (doc) doc.status = docStatus;
    }
  }

  /**
   * This tab's changes not yet durable that the worker's last status does
   * not count (`url` undefined: all docs): those it has not applied, and
   * those it applied since that status. So a change is never missing from
   * `unsaved` + `pending` between the worker's answers; once durable, the
   * status that comes with the report counts it.
   */
  #uncounted(url?: string): number {
    let unsaved = 0;
    for (const sent of this.#outbox.values()) {
      if (url !== undefined && sent.url !== url) continue;
      if (!sent.confirmed || sent.confirmedAtStatus === this.#statuses) unsaved++;
    }
    return unsaved;
  }

  status(): EngineStatus {
    const unsaved = this.#uncounted();
    return unsaved === 0 ? this.#status : { ...this.#status, unsaved: this.#status.unsaved + unsaved };
  }

  docStatus(url: string): DocStatus {
    const doc = this.#require(url);
    const unsaved = this.#uncounted(url);
    return unsaved === 0 ? doc.status : { ...doc.status, unsaved: doc.status.unsaved + unsaved };
  }

  setOnline(online: boolean): void {
    this.#call({ op: "setOnline", online }).catch((error: unknown) => this.#init.onEvent({ type: "error", error }));
  }

  close(): void {
    if (this.#closed) return;
    this.#post({ t: "bye" });
    this.#closed = true;
    this.#releaseTabLock?.();
    this.#lockWatch.abort();
    this.#pageEvents.abort();
    this.#port?.close();
    this.#port = null;
    for (const call of this.#calls.values()) call.reject(closedError());
    this.#calls.clear();
  }
}

function samePatches(a: readonly Patch[], b: readonly Patch[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function unsupported(call: string, instead: string): SynclineError {
  return new SynclineError(
    "Unsupported",
    `${call} is synchronous and this repo's engine runs in a worker: use ${instead}, or createRepo({ worker: false }) to run the engine in the page`,
  );
}

function mismatch(version: unknown): SynclineError {
  return new SynclineError(
    "WorkerMismatch",
    `this page runs syncline ${PACKAGE_VERSION}, the shared worker of its origin runs ${String(version)}: close or reload the other tabs of this app so they all run one version`,
  );
}

function closedError(): SynclineError {
  return new SynclineError("Closed", "this repo is closed: create a new one with createRepo()");
}
