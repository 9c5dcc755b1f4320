/**
 * The worker side of worker mode: one engine per repo name, shared by every
 * tab of the origin that opens that repo, each tab on its own MessagePort
 * (messages in `worker-protocol.ts`). Runs in the SharedWorker
 * (`worker.ts`); takes the wasm `Core` as an argument, so it also runs
 * under Node with a stand-in core for the protocol's unit tests.
 *
 * - The engine, its IndexedDB log and its one WebSocket live here; the
 *   worker keeps each open document's value (patched, like a tab's) to
 *   hand to tabs that open it later without re-reading the engine.
 * - A tab's change arrives with the heads it was recorded against; it is
 *   applied as of those heads (`Core.changeAt`), so indices mean what they
 *   meant in that tab, and the resulting patches go to every tab showing
 *   the document, in the order the engine made them: they are what each
 *   tab's confirmed value is built from.
 * - After each applied change a flush is started; when it completes, the
 *   author hears which of its changes are durable (only then may it forget
 *   them, and only then does its `flush()` resolve).
 * - A change sent again after a handoff, whose hash the engine already has,
 *   is confirmed without being applied twice.
 * - Other tabs of the origin that run the engine in the page (not in worker
 *   mode) still meet this engine over the repo's BroadcastChannel.
 */
import { adaptCore, type CoreApi, type CoreEvent, type CoreStatic, type RawCore } from "./core.js";
import { fitOps } from "./rebase.js";
import { applyPatches, opsToPatches } from "./snapshot.js";
import { TabLink } from "./tabs.js";
import { MessageRouter } from "./worker-messages.js";
import { PresenceRouter } from "./worker-presence.js";
import { PACKAGE_VERSION } from "./version.js";
import type { CallRequest, ChangeMessage, FromWorker, TabStatus, ToWorker, WireError } from "./worker-protocol.js";
import { toWire } from "./worker-protocol.js";
import type { DocStatus, EngineStatus, HistoryEntry, Patch } from "./types.js";

/** What the worker needs of the glue's object beyond `RawCore`. */
export type WorkerRawCore = RawCore & {
  changeAt(
    url: string,
    heads: string[],
    opsJson: string,
    message?: string,
    undoable?: boolean,
  ): [string | null, Patch[] | null, Uint8Array | null];
  restoreLocalChange(url: string, bytes: Uint8Array): string;
  /** `false` while the document is shown from its stored value (fast open), its CRDT not loaded. */
  crdtLoaded?(url: string): boolean;
  /** The heads of the stored value a document was shown with, once its CRDT loaded (whatever was applied since). */
  loadedHeads?(url: string): string[] | undefined;
  /** The history entries `heads` do not cover (`[]`: all of them). */
  historySince(url: string, heads: string[]): HistoryEntry[];
};

export interface PortLike {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  start?(): void;
  close?(): void;
}

interface Tab {
  port: PortLike;
  repo: RepoEngine | null;
  docs: Set<string>;
  /** Hashes of this tab's applied changes, by seq, until the tab has seen them confirmed. */
  hashes: Map<number, { url: string; hash: string }>;
  /** Applied changes not yet covered by a completed flush. */
  undurable: number[];
  tokenFunction: boolean;
}

interface WorkerDoc {
  value: unknown;
  heads: string[];
  ready: Promise<void>;
  tabs: Set<Tab>;
  /** `[canUndo, canRedo]` as the tabs last heard it. */
  undoState?: [boolean, boolean];
  /**
   * Fast open: the document was handed out from its stored value before its
   * CRDT loaded, with heads `[]` (unknown); `openedHeads` are that value's
   * heads once the load told them (see `#openedHeads`).
   */
  fastOpened?: boolean;
  openedHeads?: string[];
}

/**
 * Serves the tabs of one origin. `connect` one port per tab; the first
 * `hello` for a repo name opens its engine with that tab's options (later
 * tabs share it; a tab with another storage key is refused with "WrongKey").
 */
export class WorkerHost {
  readonly #Core: CoreStatic;
  readonly #repos = new Map<string, Promise<RepoEngine>>();
  readonly #onCrash: () => void;
  readonly #idle: { onIdle: () => void; idleMs: number } | undefined;
  /** Tabs that said `hello` and have not left, welcomed or still opening. */
  #tabs = 0;
  /**
   * When a tab last said `hello`. A port that connects and says nothing
   * (a tab of another version refuses this worker at `alive`) does not keep
   * it alive: else reloading such a tab would keep an old worker for ever.
   */
  #lastArrival = Date.now();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #ending = false;

  /**
   * `onCrash` runs after the wasm module trapped and every tab heard it:
   * the SharedWorker ends itself there, so the next tab gets a fresh module.
   * `idle.onIdle` runs once no tab has used this host for `idle.idleMs`
   * (none joined meanwhile), after every engine flushed
   * and closed: the SharedWorker ends itself there. A worker whose tabs
   * all left would otherwise live on with its relay connection for as long
   * as any page that once started it (a tab that fell back to the page
   * still owns it), and keep an older version in the way of newer tabs.
   */
  constructor(Core: CoreStatic, onCrash: () => void = () => {}, idle?: { onIdle: () => void; idleMs: number }) {
    this.#Core = Core;
    this.#onCrash = onCrash;
    this.#idle = idle;
    this.#checkIdleLater();
  }

  /** Ends the engines and calls `onIdle` if nothing used this host for `idleMs`; else looks again later. */
  #checkIdleLater(): void {
    const idle = this.#idle;
    if (!idle || this.#ending) return;
    clearTimeout(this.#idleTimer);
    if (this.#tabs > 0) return;
    const wait = Math.max(0, this.#lastArrival + idle.idleMs - Date.now());
    this.#idleTimer = setTimeout(() => {
      if (this.#tabs > 0) return;
      if (Date.now() - this.#lastArrival < idle.idleMs) {
        this.#checkIdleLater();
        return;
      }
      this.#ending = true;
      void this.#end(idle.onIdle);
    }, wait);
  }

  /**
   * Makes every engine's writes durable, then closes them and calls
   * `onIdle`. If a write fails (storage full), nothing is closed: the
   * unsaved changes stay in memory, retried at the next idle check.
   */
  async #end(onIdle: () => void): Promise<void> {
    const engines = (await Promise.all([...this.#repos.values()].map((opening) => opening.catch(() => null)))).filter((e) => e !== null);
    try {
      await Promise.all(engines.map((engine) => engine.flush()));
    } catch {
      this.#ending = false;
      this.#lastArrival = Date.now();
      this.#checkIdleLater();
      return;
    }
    for (const engine of engines) engine.close();
    onIdle();
  }

  connect(port: PortLike): void {
    const tab: Tab = { port, repo: null, docs: new Set(), hashes: new Map(), undurable: [], tokenFunction: false };
    port.onmessage = (event) => this.#receive(tab, event.data);
    port.start?.();
    port.postMessage({ t: "alive", version: PACKAGE_VERSION });
  }

  #receive(tab: Tab, message: ToWorker): void {
    if (message.t === "hello") {
      void this.#hello(tab, message);
      return;
    }
    if (message.t === "bye") {
      this.#gone(tab);
      tab.port.close?.();
      return;
    }
    if (!tab.repo) return; // nothing before a welcome
    tab.repo.receive(tab, message);
  }

  async #hello(tab: Tab, hello: Extract<ToWorker, { t: "hello" }>): Promise<void> {
    this.#lastArrival = Date.now();
    if (this.#ending) {
      // Past the idle check: this worker is ending; a new one will serve the tab.
      tab.port.postMessage({ t: "refused", version: PACKAGE_VERSION, error: { code: "WorkerMismatch", message: "the syncline worker was ending; reload to use a new one" } });
      return;
    }
    this.#tabs += 1;
    let joined = false;
    try {
      joined = await this.#join(tab, hello);
    } finally {
      if (!joined) this.#tabs -= 1; // refused: it never joined
      this.#checkIdleLater();
    }
  }

  /** Opens (or reuses) the tab's repo engine and welcomes the tab; `false` if it was refused. */
  async #join(tab: Tab, hello: Extract<ToWorker, { t: "hello" }>): Promise<boolean> {
    if (hello.version !== PACKAGE_VERSION) {
      tab.port.postMessage({
        t: "refused",
        version: PACKAGE_VERSION,
        error: {
          code: "WorkerMismatch",
          message: `this page runs syncline ${String(hello.version)}, its shared worker runs ${PACKAGE_VERSION}: close the other tabs of this app (or reload them) so they all run one version`,
        },
      });
      return false;
    }
    let opening = this.#repos.get(hello.name);
    if (!opening) {
      opening = RepoEngine.open(this.#Core, hello, () => {
        this.#repos.delete(hello.name);
        this.#onCrash();
      });
      this.#repos.set(hello.name, opening);
      opening.catch(() => this.#repos.delete(hello.name));
    }
    let repo: RepoEngine;
    try {
      repo = await opening;
    } catch (error) {
      tab.port.postMessage({ t: "refused", version: PACKAGE_VERSION, error: toWire(error) });
      return false;
    }
    if (!sameBytes(repo.key, hello.key)) {
      tab.port.postMessage({
        t: "refused",
        version: PACKAGE_VERSION,
        error: { code: "WrongKey", message: "this repo is open in another tab with another storage key or passphrase" },
      });
      return false;
    }
    tab.tokenFunction = hello.tokenFunction;
    tab.repo = repo;
    repo.join(tab);
    // Free once the tab is gone, closed or crashed (no `bye` then).
    const locks = (globalThis as { navigator?: Navigator }).navigator?.locks;
    if (hello.tabLock && typeof locks?.request === "function") {
      void locks.request(hello.tabLock, () => this.#gone(tab)).catch(() => {});
    }
    return true;
  }

  /** `tab` said `bye`, or its lock came free: it has left its repo. */
  #gone(tab: Tab): void {
    if (!tab.repo) return;
    tab.repo.leave(tab);
    tab.repo = null;
    this.#tabs -= 1;
    this.#checkIdleLater();
  }
}

/** One repo's engine and the tabs that use it. */
class RepoEngine {
  readonly key: Uint8Array;
  readonly #core: CoreApi;
  readonly #raw: WorkerRawCore;
  readonly #tabs = new Set<Tab>();
  readonly #docs = new Map<string, WorkerDoc>();
  /** Opens waiting for their document's first data (from the relay or another tab). */
  readonly #waiting = new Map<string, { resolve: () => void; reject: (error: WireError) => void }>();
  readonly #link: TabLink;
  /** A change sent again after a handoff and applied anew: its old hash → its new one. */
  readonly #aliases = new Map<string, string>();
  #flushing = false;
  #flushAgain = false;
  #tokenRequests = new Map<number, { resolve: (token: string) => void; reject: (error: Error) => void }>();
  #nextTokenId = 1;
  #crashed = false;
  readonly #messages: MessageRouter<Tab>;
  readonly #presence: PresenceRouter<Tab>;

  readonly #onFatal: () => void;

  private constructor(raw: WorkerRawCore, key: Uint8Array, name: string, onCrash: () => void) {
    this.key = key;
    this.#raw = raw;
    this.#onFatal = onCrash;
    this.#core = adaptCore(raw, (error) => this.#crash(error, onCrash));
    this.#messages = new MessageRouter(this.#core, (url) => this.#docs.get(url)?.tabs ?? []);
    this.#presence = new PresenceRouter(this.#core, (url) => this.#docs.get(url)?.tabs ?? []);
    this.#link = new TabLink(name, {
      message: (bytes) => {
        try {
          this.#core.receivedFromTab(bytes);
        } catch (error) {
          this.#everyone({ t: "error", error: toWire(error) });
        }
      },
      deleted: (url) => this.#forget(url),
      leader: () => this.#core.setCompactionEnabled(true),
    });
    this.#core.setTabSync(this.#link.linked);
    if (this.#link.coordinated) this.#core.setCompactionEnabled(false);
  }

  static async open(Core: CoreStatic, hello: Extract<ToWorker, { t: "hello" }>, onCrash: () => void): Promise<RepoEngine> {
    let engine: RepoEngine | undefined;
    const early: CoreEvent[] = [];
    const onEvent = (event: CoreEvent): void => {
      if (engine) engine.#event(event);
      else early.push(event);
    };
    const options = { ...hello.options, token: hello.tokenFunction ? (docId: string) => engine!.#askToken(docId) : hello.options.token };
    const raw = (Core.openWith
      ? await Core.openWith(hello.name, hello.relay, onEvent, hello.key, options)
      : await Core.open(hello.name, hello.relay, onEvent, hello.key)) as WorkerRawCore;
    engine = new RepoEngine(raw, hello.key, hello.name, onCrash);
    for (const event of early) engine.#event(event);
    return engine;
  }

  join(tab: Tab): void {
    this.#tabs.add(tab);
    tab.port.postMessage({ t: "welcome", version: PACKAGE_VERSION, status: this.#core.status() });
  }

  /** Makes what was applied durable (rejects if storage refuses). */
  flush(): Promise<void> {
    return this.#core.flush();
  }

  /** The worker ends: no more connection, no more tab channel. */
  close(): void {
    this.#link.close();
    this.#core.close();
  }

  leave(tab: Tab): void {
    this.#tabs.delete(tab);
    this.#messages.leave(tab);
    this.#presence.leave(tab);
    for (const url of tab.docs) this.#docs.get(url)?.tabs.delete(tab);
    tab.docs.clear();
  }

  receive(tab: Tab, message: ToWorker): void {
    if (this.#crashed) return;
    switch (message.t) {
      case "change":
        this.#change(tab, message);
        break;
      case "call":
        void this.#call(tab, message.id, message);
        break;
      case "pageEvent":
        if (message.event === "online" || message.event === "offline" || message.event === "visible") this.#core.pageEvent?.(message.event);
        break;
      case "token": {
        const request = this.#tokenRequests.get(message.id);
        if (message.token !== undefined) {
          this.#tokenRequests.delete(message.id);
          request?.resolve(message.token);
        }
        else request?.reject(Object.assign(new Error(message.error?.message ?? "no token"), { code: "TokenProvider" }));
        break;
      }
      default:
        break;
    }
  }

  #change(tab: Tab, message: ChangeMessage): void {
    const doc = this.#docs.get(message.url);
    if (!doc) {
      tab.port.postMessage({ t: "rejected", seq: message.seq, url: message.url, error: { code: "DocNotFound", message: "the document is not open" } });
      return;
    }
    // A change sent while its doc is still opening here (after a handoff) waits for it, in order.
    void doc.ready.then(
      () => this.#apply(tab, doc, message),
      (error: unknown) => tab.port.postMessage({ t: "rejected", seq: message.seq, url: message.url, error: toWire(error) }),
    );
  }

  #apply(tab: Tab, doc: WorkerDoc, message: ChangeMessage): void {
    const { url, seq } = message;
    for (const [earlier, entry] of tab.hashes) {
      if (entry.url === url && !message.before.includes(earlier)) tab.hashes.delete(earlier);
    }
    let hash: string | null;
    let patches: Patch[];
    let bytes: Uint8Array | null = null;
    if (message.bytes !== undefined) {
      // Sent again after a handoff with the change itself: restored with its
      // own hash (a no-op if it is here already, from the disk or the relay);
      // its patches come as "changed".
      try {
        hash = this.#raw.restoreLocalChange(url, message.bytes);
      } catch (error) {
        tab.port.postMessage({ t: "rejected", seq, url, error: toWire(error) });
        return;
      }
      patches = [];
      bytes = message.bytes;
    } else {
      // Heads `[]` of a fast-opened document: its stored value's, once known.
      const base = message.heads.length === 0 && doc.fastOpened ? (this.#openedHeads(url, doc) ?? []) : message.heads;
      const heads = new Set(base.map((head) => this.#aliases.get(head) ?? head));
      // Unknown base (`[]`: fitted to now): the tab's earlier changes are in "now" already.
      for (const earlier of base.length > 0 ? message.before : []) {
        const entry = tab.hashes.get(earlier);
        if (entry?.url === url) heads.add(entry.hash);
      }
      try {
        [hash, patches, bytes] = this.#changeAt(url, doc, [...heads], message);
      } catch (error) {
        tab.port.postMessage({ t: "rejected", seq, url, error: toWire(error) });
        return;
      }
    }
    if (hash !== null) tab.hashes.set(seq, { url, hash });
    if (message.hash !== undefined && hash !== null && hash !== message.hash) this.#aliases.set(message.hash, hash);
    this.#publish(url, doc, patches, { tab, seq, hash, bytes });
    this.#tellUndoState(url, doc);
    tab.undurable.push(seq);
    this.#flushSoon();
  }

  /** Tells the doc's tabs its `[canUndo, canRedo]` if it changed since they last heard it. */
  #tellUndoState(url: string, doc: WorkerDoc, force = false): void {
    const state = this.#core.undoState(url);
    if (!force && doc.undoState?.[0] === state[0] && doc.undoState[1] === state[1]) return;
    doc.undoState = state;
    for (const tab of doc.tabs) tab.port.postMessage({ t: "undoState", url, state });
  }

  /**
   * Applies a tab's change as of its heads. Heads this engine does not have
   * (lost with a previous worker) mean "now", with the ops fitted to the
   * current value (`rebase.ts`).
   */
  #changeAt(url: string, doc: WorkerDoc, heads: string[], message: ChangeMessage): [string | null, Patch[], Uint8Array | null] {
    // No heads (a fast-opened document's, not known in time): now, fitted.
    let ops = heads.length === 0 ? fitOps(doc.value, message.ops) : message.ops;
    let result: [string | null, Patch[] | null, Uint8Array | null];
    try {
      result = this.#raw.changeAt(url, heads, JSON.stringify(ops), message.message, message.undoable);
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== "UnknownHeads") throw error;
      ops = fitOps(doc.value, ops);
      result = this.#raw.changeAt(url, [], JSON.stringify(ops), message.message, message.undoable);
    }
    return [result[0], result[1] ?? opsToPatches(ops), result[2] ?? null];
  }


  /** Patches of `url`, in the engine's order, to every tab showing it; the author also gets the change's hash and bytes. */
  #publish(url: string, doc: WorkerDoc, patches: Patch[], own?: { tab: Tab; seq: number; hash: string | null; bytes: Uint8Array | null }): void {
    doc.value = applyPatches(doc.value, patches);
    const before = doc.heads;
    doc.heads = this.#core.heads(url);
    let mine: { seq: number; hash: string | null; bytes?: Uint8Array } | undefined;
    if (own) {
      mine = { seq: own.seq, hash: own.hash };
      if (own.bytes) mine.bytes = own.bytes;
    }
    for (const tab of doc.tabs) {
      const message: FromWorker = { t: "patches", url, patches, heads: doc.heads };
      if (own?.tab === tab && mine) message.own = mine;
      tab.port.postMessage(message);
    }
    if (own && mine && !doc.tabs.has(own.tab)) {
      own.tab.port.postMessage({ t: "patches", url, patches, heads: doc.heads, own: mine });
    }
    // After the patches, so the history never delays them.
    this.#sendHistory(url, before, own && !doc.tabs.has(own.tab) ? [...doc.tabs, own.tab] : doc.tabs);
  }

  /**
   * The doc's history entries that `heads` do not cover, to `tabs`, which
   * keep a copy for their synchronous `history()` (`WorkerCore`; they drop
   * entries they have). Nothing while a fast-opened doc's CRDT has not
   * loaded (asking would load it): `#openedHeads` sends all of it then.
   */
  #sendHistory(url: string, heads: string[], tabs: Iterable<Tab>): void {
    if (this.#raw.crdtLoaded?.(url) === false) return;
    let entries: HistoryEntry[];
    try {
      entries = this.#raw.historySince(url, heads);
    } catch {
      return; // deleted meanwhile, or heads of a previous worker's: the next full send covers it
    }
    if (entries.length === 0) return;
    for (const tab of tabs) tab.port.postMessage({ t: "history", url, entries });
  }


  /** One flush at a time; each tells the tabs which of their changes it made durable. */
  #flushSoon(): void {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    const covered = [...this.#tabs].filter((tab) => tab.undurable.length > 0).map((tab) => {
      const seqs = tab.undurable;
      tab.undurable = [];
      return { tab, seqs };
    });
    this.#core.flush().then(
      () => {
        // With the status now, which counts them (as pending): the tab stops counting them itself.
        for (const { tab, seqs } of covered) tab.port.postMessage({ t: "durable", seqs, ...this.#statusFor(tab, this.#core.status()) });
      },
      (error: unknown) => {
        // Not durable: the seqs wait for the next flush that succeeds.
        for (const { tab, seqs } of covered) tab.undurable.unshift(...seqs);
        this.#everyone({ t: "error", error: toWire(error) });
      },
    ).finally(() => {
      this.#flushing = false;
      if (this.#flushAgain) {
        this.#flushAgain = false;
        this.#flushSoon();
      }
    });
  }

  /** `status`, and the status of each doc `tab` shows. */
  #statusFor(tab: Tab, status: EngineStatus): TabStatus {
    const docs: Record<string, DocStatus> = {};
    for (const url of tab.docs) {
      try {
        docs[url] = this.#core.docStatus(url);
      } catch {
        // deleted meanwhile
      }
    }
    return { status, docs };
  }

  async #call(tab: Tab, id: number, request: CallRequest): Promise<void> {
    try {
      const value = await this.#answer(tab, request);
      tab.port.postMessage({ t: "reply", id, value });
    } catch (error) {
      tab.port.postMessage({ t: "reply", id, error: toWire(error) });
    }
  }

  async #answer(tab: Tab, request: CallRequest): Promise<unknown> {
    const core = this.#core;
    switch (request.op) {
      case "create":
      case "import": {
        const url = (request.op === "create" ? core.create(request.initial) : core.importDoc(request.bytes)) as string;
        const doc: WorkerDoc = { value: core.value(url), heads: core.heads(url), ready: Promise.resolve(), tabs: new Set([tab]) };
        this.#docs.set(url, doc);
        tab.docs.add(url);
        this.#sendHistory(url, [], [tab]);
        // Durable before the tab hears of it: a handoff right after can't lose it.
        await core.flush();
        return { url, value: doc.value, heads: doc.heads };
      }
      case "open": {
        const doc = this.#open(request.url);
        await doc.ready;
        doc.tabs.add(tab);
        tab.docs.add(request.url);
        if (doc.undoState) tab.port.postMessage({ t: "undoState", url: request.url, state: doc.undoState });
        this.#presence.opened(tab, request.url);
        // Before the reply: `history()` is there when `open` resolves (a fast-opened doc's comes once its CRDT loads).
        this.#sendHistory(request.url, [], [tab]);
        return { url: request.url, value: doc.value, heads: doc.heads };
      }
      case "delete": {
        if (!this.#docs.has(request.url)) await core.openDoc(request.url);
        core.deleteDoc(request.url);
        await core.flush();
        this.#forget(request.url, tab);
        this.#link.postDeleted(request.url);
        return undefined;
      }
      case "flush":
        await core.flush();
        return undefined;
      case "history":
        return core.history(request.url);
      case "valueAt":
        return core.valueAt(request.url, request.heads);
      case "setPresence":
        this.#presence.set(tab, request.url, request.state ?? null);
        return undefined;
      case "setOnline":
        core.setOnline(request.online);
        return undefined;
      case "undo":
      case "redo": {
        const doc = this.#open(request.url);
        await doc.ready;
        const patches = request.op === "undo" ? core.undo(request.url) : core.redo(request.url);
        if (patches !== null) this.#publish(request.url, doc, patches);
        // The asking tab assumed there was something to do: it hears the truth even when unchanged.
        this.#tellUndoState(request.url, doc, true);
        return patches !== null;
      }
      case "setUndoCapture":
        core.setUndoCapture(request.ms);
        return undefined;
      case "cursor":
        return core.cursor(request.url, request.path, request.index);
      case "cursorPosition":
        return core.cursorPosition(request.url, request.path, request.cursor);
      case "marks":
        return core.marks(request.url, request.path);
      case "export":
        await this.#open(request.url).ready;
        return core.exportDoc(request.url);
      case "migrate": {
        const doc = this.#open(request.url);
        await doc.ready;
        this.#publish(request.url, doc, core.migrate?.(request.url, request.from, request.ops) ?? []);
        // Durable before the tab hears: a handoff right after can't lose it.
        await core.flush();
        return undefined;
      }
      case "sendMessage":
      case "request":
      case "serve":
      case "unserve":
      case "reply":
        return this.#messages.call(tab, request);
      case "inspect":
        return core.inspect?.(request.record, request.after) ?? null;
      case "inspectDoc":
        return core.inspectDoc?.(request.url) ?? null;
      case "barrier":
        // Changes queued behind their documents' opening run before this answers.
        await Promise.allSettled([...tab.docs].map((url) => this.#docs.get(url)?.ready));
        return undefined;
    }
  }

  /** The document, opening it in the engine on first use. */
  #open(url: string): WorkerDoc {
    const known = this.#docs.get(url);
    if (known) return known;
    const doc: WorkerDoc = { value: undefined, heads: [], ready: Promise.resolve(), tabs: new Set() };
    doc.ready = (async () => {
      const hasData = await this.#core.openDoc(url);
      if (!hasData) {
        // Until the relay (or another tab) sends it, or refuses it.
        await new Promise<void>((resolve, reject) => this.#waiting.set(url, { resolve, reject }));
      }
      doc.value = this.#core.value(url);
      if (this.#raw.crdtLoaded?.(url) === false) {
        // Fast open: the stored value goes to the tab now; the CRDT loads
        // in the next task (asking its heads loads it), not before the
        // answer — that load is most of a cold open.
        doc.fastOpened = true;
        setTimeout(() => this.#openedHeads(url, doc), 0);
      } else {
        doc.heads = this.#core.heads(url);
      }
    })();
    doc.ready.catch(() => {
      if (this.#docs.get(url) === doc) this.#docs.delete(url);
    });
    this.#docs.set(url, doc);
    return doc;
  }

  /**
   * The heads of a fast-opened document's stored value, read once its CRDT
   * loads (this loads it): the wasm keeps them from the moment of the load,
   * so they are right even when another tab's change was applied in the
   * call that loaded it. Sent to the doc's tabs (patches `[]`) unless they
   * already have later heads from published patches. `undefined` only when
   * the doc was deleted or closed meanwhile, or the engine crashed: a change
   * made against the stored value is then fitted to the current one
   * (`rebase.ts`: indices clamped, not rebased).
   */
  #openedHeads(url: string, doc: WorkerDoc): string[] | undefined {
    if (doc.openedHeads || this.#docs.get(url) !== doc || this.#crashed) return doc.openedHeads;
    try {
      const now = this.#core.heads(url);
      doc.openedHeads = this.#raw.loadedHeads?.(url) ?? (doc.heads.length === 0 ? now : undefined);
    } catch {
      return undefined; // deleted or closed meanwhile
    }
    if (doc.openedHeads && doc.heads.length === 0) {
      doc.heads = doc.openedHeads;
      for (const tab of doc.tabs) tab.port.postMessage({ t: "patches", url, patches: [], heads: doc.heads });
    }
    this.#sendHistory(url, [], doc.tabs);
    return doc.openedHeads;
  }

  /** A document deleted (here, or by another tab of the origin): every tab forgets it. */
  #forget(url: string, except?: Tab): void {
    const doc = this.#docs.get(url);
    this.#docs.delete(url);
    this.#presence.forget(url);
    if (except === undefined) {
      try {
        this.#core.deleteDoc(url);
      } catch {
        // Not open in this engine.
      }
    }
    for (const tab of doc?.tabs ?? []) {
      tab.docs.delete(url);
      if (tab !== except) tab.port.postMessage({ t: "deleted", url });
    }
  }

  #event(event: CoreEvent): void {
    switch (event.type) {
      case "changed": {
        const waiting = this.#waiting.get(event.url);
        if (waiting) {
          this.#waiting.delete(event.url);
          waiting.resolve();
          return;
        }
        const doc = this.#docs.get(event.url);
        // Patches of a doc still opening are in the value it reads once open.
        if (doc && doc.value !== undefined) this.#publish(event.url, doc, event.patches);
        return;
      }
      case "caughtUp": {
        const waiting = this.#waiting.get(event.url);
        this.#waiting.delete(event.url);
        waiting?.resolve();
        for (const tab of this.#docs.get(event.url)?.tabs ?? []) tab.port.postMessage({ t: "caughtUp", url: event.url });
        return;
      }
      case "status": {
        for (const tab of this.#tabs) tab.port.postMessage({ t: "status", ...this.#statusFor(tab, event.status) });
        return;
      }
      case "broadcast":
        this.#link.post(event.bytes);
        return;
      case "presence":
        for (const tab of this.#docs.get(event.url)?.tabs ?? []) {
          tab.port.postMessage({ t: "presence", url: event.url, peer: event.peer, state: event.state });
        }
        return;
      case "message":
      case "request":
      case "reply":
        this.#messages.event(event);
        return;
      case "error": {
        const error = toWire(event.error);
        if (event.url !== undefined) {
          const waiting = this.#waiting.get(event.url);
          if (waiting) {
            this.#waiting.delete(event.url);
            waiting.reject(error);
          }
        }
        this.#everyone(event.url === undefined ? { t: "error", error } : { t: "error", error, url: event.url });
        return;
      }
      case "crashed":
        this.#crash(event.error, this.#onFatal);
        return;
    }
  }

  #everyone(message: FromWorker): void {
    for (const tab of this.#tabs) tab.port.postMessage(message);
  }

  /**
   * Asks every tab that has the app's token function; the first answer
   * counts (a tab that closed without saying so never answers).
   */
  #askToken(docId: string): Promise<string> {
    const tabs = [...this.#tabs].filter((candidate) => candidate.tokenFunction);
    if (tabs.length === 0) return Promise.reject(new Error("no open tab can provide a token"));
    const id = this.#nextTokenId++;
    return new Promise<string>((resolve, reject) => {
      let refusals = 0;
      this.#tokenRequests.set(id, {
        resolve,
        reject: (error) => {
          if (++refusals === tabs.length) reject(error);
        },
      });
      for (const tab of tabs) tab.port.postMessage({ t: "token?", id, docId });
    });
  }

  #crash(error: unknown, onCrash: () => void): void {
    if (this.#crashed) return;
    this.#crashed = true;
    this.#link.close();
    this.#everyone({ t: "crashed", error: toWire(error) });
    onCrash();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
