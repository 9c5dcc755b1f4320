import type { Counter, Text } from "./crdt-values.js";
import type { SynclineErrorCode } from "./errors.js";

/** A JSON value as stored in a document. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonArray = JsonValue[];
export interface JsonObject {
  [key: string]: JsonValue;
}
export type JsonValue = JsonPrimitive | JsonArray | JsonObject;

/** Deeply read-only view of a value: what `doc.value` hands out. */
export type Immutable<T> = T extends JsonPrimitive
  ? T
  : T extends readonly (infer U)[]
    ? readonly Immutable<U>[]
    : T extends object
      ? { readonly [K in keyof T]: Immutable<T[K]> }
      : T;

/**
 * What a `doc.change` callback edits: the document's shape, where a string
 * may also be set to a new `Text` and a number to a new `Counter`.
 */
export type Draft<T> = T extends string
  ? T | Text
  : T extends number
    ? T | Counter
    : T extends JsonPrimitive
      ? T
      : T extends readonly (infer U)[]
        ? Draft<U>[]
        : T extends object
          ? { -readonly [K in keyof T]: Draft<T[K]> }
          : T;

/** From the document root to a container (map or list). */
export type Path = (string | number)[];

/** One edit of a change, as the wasm core applies it. Ops apply in order. */
export type Op =
  /** Sets a map key, or replaces a list element. */
  | { op: "put"; obj: Path; key: string | number; value: JsonValue }
  /** Deletes a map key, or `count` (default 1) list elements from index `key`. */
  | { op: "delete"; obj: Path; key: string | number; count?: number }
  /** Inserts `values` into a list at `index`. */
  | { op: "insert"; obj: Path; index: number; values: JsonValue[] }
  /** Sets a map key or list element to a new collaborative text. */
  | { op: "put_text"; obj: Path; key: string | number; value: string }
  /** Edits the text at `obj`: deletes `delete` UTF-16 units at `index`, then inserts `insert`. */
  | { op: "splice_text"; obj: Path; index: number; delete: number; insert: string }
  /** Sets a map key or list element to a new counter. */
  | { op: "put_counter"; obj: Path; key: string | number; value: number }
  /** Adds `by` (an integer, may be negative) to the counter at `obj`/`key`. */
  | { op: "increment"; obj: Path; key: string | number; by: number }
  /** Marks `start..end` (UTF-16 units) of the text at `obj` with `name` = `value`. */
  | { op: "mark"; obj: Path; start: number; end: number; name: string; value: MarkValue; expand: Expand }
  /** Removes the mark `name` from `start..end` of the text at `obj`. */
  | { op: "unmark"; obj: Path; start: number; end: number; name: string; expand: Expand };

/** What a mark on text holds: bold → `true`, a link → its URL, a comment → its id. */
export type MarkValue = string | number | boolean | null;

/**
 * Whether text typed at an end of a mark gets the mark too: "after" (the
 * default: typing at the end of a bold word stays bold), "before", "both" or
 * "none" (a link or a comment).
 */
export type Expand = "before" | "after" | "both" | "none";

/** A mark on a range of a text, as `doc.marks(path)` lists them (in order of `start`). */
export interface TextMark {
  readonly name: string;
  readonly value: MarkValue;
  /** UTF-16 units, `start` included, `end` excluded. */
  readonly start: number;
  readonly end: number;
}

/**
 * One edit of a document's value, as `doc.change` returns them and as
 * remote changes arrive. `path` leads from the root to the edited container
 * (for `splice` and a `del` of text units: to the text itself).
 */
export type Patch =
  /** A map key or list index was set (a new container arrives whole, or empty and filled by later patches). */
  | { action: "put"; path: Path; key: string | number; value: JsonValue }
  | { action: "insert"; path: Path; index: number; values: JsonValue[] }
  /** `length` list elements, or text units, removed at index `key`; or map key `key` removed. */
  | { action: "del"; path: Path; key: string | number; length: number }
  /** Text inserted at `index` of the text at `path`. */
  | { action: "splice"; path: Path; index: number; value: string }
  /** A counter at `key` changed by `value`. */
  | { action: "inc"; path: Path; key: string | number; value: number };

/** One change in a document's history (`doc.history()`), oldest first. */
export interface HistoryEntry {
  /** The change's hash: `doc.view([hash])` shows the document just after it. */
  readonly hash: string;
  /** Who made it: the Automerge actor id (hex), one per repo instance. */
  readonly actor: string;
  /** Its number among that actor's changes, from 1. */
  readonly seq: number;
  /** When it was made, ms since the epoch (whole seconds; 0 if unknown). */
  readonly time: number;
  /** The app's name for it, from `change(fn, { message })`. */
  readonly message: string | null;
  /** The changes it came after. */
  readonly deps: readonly string[];
}

/** Another replica present on a document, and the state it shared. */
export interface Peer<P = JsonValue> {
  /** The peer's replica id (hex), stable while its page is open. */
  readonly id: string;
  readonly state: P;
}

export type Connection = "offline" | "connecting" | "open" | "closed";

/** Where this replica stands with the relay. */
export interface Status {
  connection: Connection;
  /** Local changes not yet durable on this device: closing the page now could lose them. */
  unsaved: number;
  /** Local changes durable on this device, not yet acknowledged by the relay. */
  pending: number;
  /** When the relay last acknowledged or delivered something (ms since epoch). */
  lastSyncedAt: number | null;
  /**
   * The current connection attempt, counting from 1 since the last open session; 0 while open.
   * Absent when the repo has no relay.
   */
  attempt?: number;
  /**
   * Why the last attempt failed or the relay refused us: e.g. code "ConnectTimeout",
   * "HeartbeatTimeout", "Offline", "TokenProvider", "RelayRejected" (with "closed": final).
   */
  lastError?: { code: SynclineErrorCode; message: string };
  /**
   * Whether the browser granted persistent storage (`navigator.storage.persist()`,
   * requested at `createRepo`): if not, it may evict the local data under storage
   * pressure, so keep `pending` at 0 before relying on the relay copy. Absent until
   * the browser answers.
   */
  persisted?: boolean;
  /**
   * Bytes waiting in memory to go to the relay. Bounded by `sendBufferBytes`
   * (plus about 1 MB in the socket): when the relay reads slower than the app
   * writes, further sends of saved changes are skipped and re-sent later from
   * the durable log, so nothing is lost.
   */
  buffered: number;
  /**
   * Where the engine runs: "worker" (one SharedWorker for the origin's tabs,
   * the default where the browser has SharedWorker), or "page" (asked with
   * `createRepo({ worker: false })`, no SharedWorker, or the worker could not
   * start: then `warning` says why).
   */
  mode: "worker" | "page";
  /** Why the engine runs in the page although a worker was wanted. */
  warning?: string;
}

/** The status an engine reports; the repo adds where it runs (`mode`, `warning`). */
export type EngineStatus = Omit<Status, "mode" | "warning">;

/**
 * Why one document does not (fully) sync: a subset of {@link SynclineErrorCode}.
 * "UnsupportedDocument": made before signed writes (its id does not derive
 * from its key): readable, changes stay on this device. "Unproven": the relay
 * could not verify a write's proof of the document key. "Unreadable": the
 * relay served a snapshot this device cannot read; it asks again with backoff.
 */
export type AccessErrorCode = CodesOf<
  "Unauthorized" | "ReadOnly" | "TokenExpired" | "TokenProvider" | "UnsupportedDocument" | "Unproven" | "Unreadable"
>;

/** `T`, checked to hold only codes of {@link SynclineErrorCode} (a misspelt one fails to compile). */
type CodesOf<T extends SynclineErrorCode> = T;

/**
 * One document's state (`doc.status`): `unsaved` and `pending` as in
 * `Status`, for this document only, and the relay's last refusal of it, if
 * the relay does not (fully) serve it now. A refusal concerns this document
 * only: the repo and every other document keep syncing. With `ReadOnly`,
 * local changes stay on this device (durable, counted in `pending`) and
 * remote changes keep arriving.
 */
export interface DocStatus {
  unsaved: number;
  pending: number;
  lastError?: { code: AccessErrorCode; message: string };
}

/** How the repo talks to the relay. All optional. */
export interface TransportOptions {
  /**
   * An attempt that hasn't opened after this long is abandoned: the next relay of the list is tried at once,
   * or after the backoff once every relay failed in a row. Default 5000.
   */
  connectTimeoutMs?: number;
  /** While open, a ping is sent this often. Default 10000. */
  heartbeatMs?: number;
  /** After a ping, some frame must arrive within this long or the socket is replaced. Default 5000. */
  pongTimeoutMs?: number;
  /** Backoff before retry n is uniform in [0, min(cap, base·2^(n-1))]. Defaults 250 and 10000. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Bound of the in-memory send buffer, in bytes. Default 8 MiB. */
  sendBufferBytes?: number;
  /**
   * Access tokens, for a relay started with a secret: one string for every
   * document, or a function called per document — when it opens, on every
   * reconnect, and when the relay says its token expired — with the
   * document's id (its URL without the `#key` fragment: the key never goes
   * to your token service). A function that throws, rejects or returns no
   * string gives that document `lastError.code === "TokenProvider"`, and is
   * retried with backoff.
   */
  token?: string | ((docId: string) => string | Promise<string>);
}
