/**
 * The read-only inspection surface the devtools (`syncline/devtools`) read,
 * under a symbol-keyed method of the repo, so they never reach into private
 * fields. It hands out no document key: documents are named by their id
 * (`syncline:<id>`, the part of the URL the relay sees too), and what it
 * reads of each goes through closures over the handle.
 */
import type { CoreApi } from "./core.js";
import type { Handle } from "./doc-handle.js";
import type { SynclineError } from "./errors.js";
import type { DocStatus, HistoryEntry, Peer, Status } from "./types.js";

/** `repo[INSPECT]()` returns an {@link Inspector}. A global symbol: the devtools need not import the main entry. */
export const INSPECT: unique symbol = Symbol.for("syncline.inspect") as never;

/** One frame that went out or came in: its outline and size, never its bytes. */
export interface FrameRecord {
  seq: number;
  at: number;
  dir: "in" | "out";
  kind: string;
  bytes: number;
  doc?: string;
  items: number;
  /** The relay's error code, for `Error` and `DocError`. */
  code?: string;
}

export interface LinkInspection {
  dial: "noRelay" | "waiting" | "connecting" | "open" | "paused" | "closed";
  relay: number;
  retryInMs?: number;
  backoffBoundMs: number;
}

/** One document's log, snapshot and relay position (in worker mode, as the worker's engine last answered). */
export interface DocFigures {
  logEntries: number;
  logBytes: number;
  freshChanges: number;
  relayHeldChanges: number;
  snapshotBytes: number | null;
  relaySeq: number;
  caughtUp: boolean;
  compactionEnabled: boolean;
}

export interface InspectedDoc {
  /** `syncline:<id>`: the URL without its key. */
  readonly id: string;
  value(): unknown;
  heads(): readonly string[];
  subscribe(fn: () => void): () => void;
  status(): DocStatus;
  history(): Promise<readonly HistoryEntry[]>;
  valueAt(heads: readonly string[]): Promise<unknown>;
  /** `null` while its CRDT loads; `undefined` until a worker first answered (worker mode). */
  figures(): DocFigures | null | undefined;
  peers(): readonly Peer[];
  onPeers(fn: () => void): () => void;
}

export interface Inspector {
  readonly mode: "page" | "worker";
  /** The relay URLs, without user info, query or fragment. */
  readonly relays: readonly string[];
  status(): Status;
  onStatus(fn: (status: Status) => void): () => void;
  /** Hears background errors without taking them from the app's own listeners (nor from console.warn). */
  onError(fn: (error: SynclineError) => void): () => void;
  docs(): InspectedDoc[];
  /** Frames recorded after `after`, and the dial state (in worker mode: as of the previous call; `null` until the worker first answered). Recording starts with the first call. */
  frames(record: boolean, after: number): { frames: FrameRecord[]; link: LinkInspection } | null;
}

type Frames = { frames: FrameRecord[]; link: LinkInspection };

/** The engine calls the inspector needs beyond `CoreApi`: synchronous in the page, asked of the worker in worker mode. */
interface InspectableCore {
  inspect?(record: boolean, after: number): Frames;
  inspectDoc?(url: string): DocFigures | null;
  inspectAsync?(record: boolean, after: number): Promise<Frames | null>;
  inspectDocAsync?(url: string): Promise<DocFigures | null>;
}

/**
 * A worker's answer, read synchronously: each read returns the last answer
 * and asks again (one question at a time), so a panel that polls sees the
 * worker's state one poll late. `undefined` until the first answer.
 */
class Echo<T> {
  #last: T | undefined;
  #asking = false;

  read(ask: () => Promise<T>): T | undefined {
    if (!this.#asking) {
      this.#asking = true;
      ask().then(
        (answer) => {
          this.#last = answer;
          this.#asking = false;
        },
        () => {
          this.#asking = false;
        },
      );
    }
    return this.#last;
  }
}

const relaysOf = new WeakMap<object, readonly string[]>();
const errorTaps = new WeakMap<object, Set<(error: SynclineError) => void>>();

/** Strips what may carry a secret from a relay URL (user info, query, fragment). */
export function safeRelayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

export function rememberRelays(repo: object, relays: readonly string[]): void {
  relaysOf.set(repo, Object.freeze(relays.map(safeRelayUrl)));
}

/** Hands a background error to the devtools' taps (called by the repo before its own listeners). */
export function tapError(repo: object, error: SynclineError): void {
  for (const tap of errorTaps.get(repo) ?? []) {
    try {
      tap(error);
    } catch {
      // A devtools bug must not break error delivery.
    }
  }
}

export interface RepoInternals {
  core(): CoreApi | null;
  handles(): Handle<object>[];
  mode: "page" | "worker";
  status(): Status;
  onStatus(fn: (status: Status) => void): () => void;
}

export function makeInspector(repo: object, internals: RepoInternals): Inspector {
  const raw = (): InspectableCore | null => internals.core() as InspectableCore | null;
  const workerFrames = new Echo<Frames | null>();
  const workerFigures = new Map<string, Echo<DocFigures | null>>();
  const figures = (url: string): DocFigures | null | undefined => {
    const core = raw();
    if (core?.inspectDoc) return core.inspectDoc(url);
    if (!core?.inspectDocAsync) return undefined;
    let echo = workerFigures.get(url);
    if (!echo) {
      // One per open document: those closed since are dropped.
      const open = new Set(internals.handles().map((handle) => handle.url));
      for (const known of workerFigures.keys()) if (!open.has(known)) workerFigures.delete(known);
      workerFigures.set(url, (echo = new Echo()));
    }
    return echo.read(() => core.inspectDocAsync!(url));
  };
  return {
    mode: internals.mode,
    relays: relaysOf.get(repo) ?? [],
    status: internals.status,
    onStatus: internals.onStatus,
    onError(fn) {
      let taps = errorTaps.get(repo);
      if (!taps) errorTaps.set(repo, (taps = new Set()));
      const tap = (error: SynclineError): void => fn(error);
      taps.add(tap);
      return () => void taps.delete(tap);
    },
    docs: () =>
      internals.handles().map((handle) => ({
        id: handle.url.split("#")[0] ?? "",
        value: () => handle.value,
        heads: () => handle.heads(),
        subscribe: (fn) => handle.subscribe(() => fn()),
        status: () => handle.status,
        history: () => handle.historyAsync(),
        valueAt: (heads) => handle.viewAsync(heads),
        figures: () => figures(handle.url),
        peers: () => handle.presence.peers,
        onPeers: (fn) => handle.presence.subscribe(() => fn()),
      })),
    frames(record, after) {
      const core = raw();
      if (core?.inspect) return core.inspect(record, after);
      if (!core?.inspectAsync) return null;
      if (!record) {
        // Stopping is never skipped for a question still in flight: the worker stops recording now.
        core.inspectAsync(false, after).catch(() => {});
        return null;
      }
      const answer = workerFrames.read(() => core.inspectAsync!(record, after));
      // Frames the caller has seen (it asked from `after`) are not repeated.
      return answer ? { frames: answer.frames.filter((frame) => frame.seq > after), link: answer.link } : null;
    },
  };
}
