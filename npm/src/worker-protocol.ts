/**
 * The messages between a tab and the shared worker that runs the engine
 * (worker mode, the default of `createRepo()`), over one MessagePort per
 * tab and repo. Plain structured-clone data only: no functions, no class
 * instances (errors cross as `{ code, message }`).
 *
 * The first message each way names the package version; a peer of another
 * version is refused with code "WorkerMismatch" before anything else is
 * read (see `worker-host.ts` and `worker-client.ts`).
 *
 * Changes are numbered per tab (`seq`, from 1). The worker answers each
 * applied change with the patches it made (to every tab showing the doc;
 * to the author with `own: { seq, hash }`), and later lists the seqs that
 * storage has made durable. A tab keeps each change until it is durable
 * and sends it again to a new worker after a handoff; `hash`, once known,
 * lets the new worker skip a change it already has.
 */
import type { DocStatus, EngineStatus, HistoryEntry, JsonValue, Op, Patch, Path, TransportOptions } from "./types.js";

/** Held by the worker for as long as it lives; a tab that obtains it knows the worker is gone. */
export const WORKER_LOCK = "syncline-worker-alive";

export interface WireError {
  code: string;
  message: string;
}

/** One change a tab made, as sent (and, after a handoff, sent again). */
export interface ChangeMessage {
  t: "change";
  seq: number;
  url: string;
  ops: Op[];
  /** The heads of the value the tab recorded the ops against (its last confirmed value). */
  heads: string[];
  /** The tab's earlier changes of this doc it had not yet seen confirmed: their effects were in its value too. */
  before: number[];
  message?: string;
  /** `false`: undo never reverts it (`ChangeOptions.undoable`). */
  undoable?: false;
  /** The change's hash, when a previous worker reported it (a re-send). */
  hash?: string;
  /** The change itself as that worker encoded it: restored as is (same hash), not made again. */
  bytes?: Uint8Array;
}

export type CallRequest =
  | { op: "create"; initial: JsonValue | undefined }
  | { op: "open"; url: string }
  | { op: "delete"; url: string }
  | { op: "flush" }
  | { op: "history"; url: string }
  | { op: "valueAt"; url: string; heads: string[] }
  | { op: "setPresence"; url: string; state: Uint8Array | null }
  | { op: "setOnline"; online: boolean }
  /** Answered with whether there was a step to undo (redo); its patches go to every tab as "patches". */
  | { op: "undo" | "redo"; url: string }
  | { op: "setUndoCapture"; ms: number }
  | { op: "cursor"; url: string; path: Path; index: number }
  | { op: "cursorPosition"; url: string; path: Path; cursor: string }
  | { op: "marks"; url: string; path: Path }
  | { op: "export"; url: string }
  /** One schema migration step (see `schema.ts`); its patches go to every tab as "patches". */
  | { op: "migrate"; url: string; from: number; ops: Op[] }
  | { op: "import"; bytes: Uint8Array }
  /** Ephemeral messages and requests (`messages.ts`; routed by `worker-messages.ts`). */
  | { op: "sendMessage"; url: string; bytes: Uint8Array }
  /** Answered with the request's id; its result comes as "answer". */
  | { op: "request"; url: string; method: string; payload: Uint8Array; timeoutMs: number }
  | { op: "serve" | "unserve"; url: string; method: string }
  /** (`requestId`: `id` names the call.) */
  | { op: "reply"; url: string; to: string; requestId: string; result: Uint8Array | undefined; error: string | undefined }
  /** The devtools' reads of the worker's engine (`inspect.ts`). */
  | { op: "inspect"; record: boolean; after: number }
  | { op: "inspectDoc"; url: string }
  /** Answered once everything sent before it on this port was handled. */
  | { op: "barrier" };

export interface OpenedDoc {
  url: string;
  value: unknown;
  heads: string[];
}

export type ToWorker =
  | {
      t: "hello";
      version: string;
      name: string;
      relay: string[] | undefined;
      /** Transport and storage options, without the token function. */
      options: Omit<TransportOptions, "token"> & { durability: string; maxUnsavedBytes?: number; token?: string };
      /** The app gave a token function: the worker asks this tab for tokens. */
      tokenFunction: boolean;
      key: Uint8Array;
      /**
       * A Web Lock this tab holds for as long as it lives: the worker waits
       * on it, so it knows when the tab is gone (closed or crashed, with no
       * `bye`) and drops its presence, methods and requests.
       */
      tabLock?: string;
    }
  | ({ t: "call"; id: number } & CallRequest)
  | ChangeMessage
  | { t: "token"; id: number; token?: string; error?: WireError }
  /** The tab heard the network come or go, or became visible: a worker has no window to hear it. */
  | { t: "pageEvent"; event: PageEventName }
  | { t: "bye" };

export type PageEventName = "online" | "offline" | "visible";

/** The engine's status, and that of each document the tab shows. */
export interface TabStatus {
  status: EngineStatus;
  docs: Record<string, DocStatus>;
}

export type FromWorker =
  /** Sent as soon as the worker script runs, before the engine loads. */
  | { t: "alive"; version: string }
  | { t: "welcome"; version: string; status: EngineStatus }
  | { t: "refused"; version: string; error: WireError }
  | { t: "reply"; id: number; value?: unknown; error?: WireError }
  | { t: "patches"; url: string; patches: Patch[]; heads: string[]; own?: { seq: number; hash: string | null; bytes?: Uint8Array } }
  /** The change `seq` failed in the engine; nothing of it was applied. */
  | { t: "rejected"; seq: number; url: string; error: WireError }
  /** The changes `seqs` of this tab are durable; the status after, which counts them (as pending). */
  | ({ t: "durable"; seqs: number[] } & TabStatus)
  | ({ t: "status" } & TabStatus)
  | { t: "caughtUp"; url: string }
  /** History entries of `url` this tab may not have yet (it drops those it has), oldest first. */
  | { t: "history"; url: string; entries: HistoryEntry[] }
  /** `[canUndo, canRedo]` of the worker's engine for `url` changed (or a tab just opened it). */
  | { t: "undoState"; url: string; state: [boolean, boolean] }
  | { t: "presence"; url: string; peer: string; state: Uint8Array | null }
  /** A peer's message on a doc this tab has open. */
  | { t: "message"; url: string; from: string; bytes: Uint8Array }
  /** A peer's request for a method this tab serves: answer with a "reply" call. */
  | { t: "request"; url: string; from: string; id: string; method: string; payload: Uint8Array }
  /** This tab's request `id` settled. */
  | { t: "answer"; url: string; id: string; result?: Uint8Array; error?: WireError }
  | { t: "error"; error: WireError; url?: string }
  | { t: "deleted"; url: string }
  | { t: "token?"; id: number; docId: string }
  | { t: "crashed"; error: WireError };

export type { HistoryEntry };

/** An error as it crosses a port: its code and message only (never its cause, which may hold anything). */
export function toWire(error: unknown): WireError {
  const record = (typeof error === "object" && error !== null ? error : {}) as { code?: unknown; message?: unknown };
  return {
    code: typeof record.code === "string" ? record.code : "Internal",
    message: typeof record.message === "string" ? record.message : String(error),
  };
}

/** A served method of a document, as one string (a URL never holds a space; a method may). */
export function serverKey(url: string, method: string): string {
  return `${url} ${method}`;
}

export function splitKey(key: string): [string, string] {
  const space = key.indexOf(" ");
  return [key.slice(0, space), key.slice(space + 1)];
}
