/**
 * Every error the library throws or rejects with. `code` is stable and
 * machine-readable (one of {@link SynclineErrorCode}: "BadUrl", "DocNotFound",
 * "Closed", "WrongKey", "RelayRejected", ...); `message` says what to do.
 */

/**
 * Every code an app can see, as `err.code` or `status.lastError.code`.
 * The same list as `SynclineErrorCode` in `crates/syncline-core/src/codes.rs`,
 * in the same order: the Rust test `crates/syncline-core/tests/error_codes.rs`
 * fails when the two differ.
 */
export const SYNCLINE_ERROR_CODES = [
  // The engine.
  "DocNotFound", // The document is not open in this replica.
  "DocExists", // A document with this id already exists here.
  "BadOp", // A change's ops are malformed or do not fit the document; nothing changed.
  "BadUrl", // Not a `syncline:<id>#<key>` URL.
  "KeyMismatch", // The document is open here with another key.
  "Corrupt", // A stored record is unreadable and was skipped.
  "Protocol", // A frame from the relay could not be decoded.
  "RelayRejected", // The relay refused the connection (final when the status says `closed`).
  "BadDelta", // A delta from the relay or another tab is unusable and was skipped.
  "BadTabMessage", // A message from another tab could not be read.
  "BadPresence", // A peer's presence could not be opened.
  "UnknownHeads", // Heads that name a change the document does not have.
  "BadCursor", // A cursor string that is malformed, or made for another document or text.
  "BadImport", // Bytes to import that are not an Automerge document, or hold values Syncline does not support; nothing was created.
  "SchemaTooNew", // The document records a schema version newer than the app's: it is read-only here until the app is updated.
  // Per-document access (`AccessError`).
  "Unauthorized", // No valid token for the document.
  "ReadOnly", // The token grants read only.
  "TokenExpired", // The token expired, and so did a fresh one.
  "TokenProvider", // The app's token function failed.
  "UnsupportedDocument", // A document made before signed writes: read-only.
  "Unproven", // The relay could not verify a write's proof of the document key.
  "Unreadable", // The relay served a snapshot this replica cannot read.
  // Storage in the browser.
  "Storage", // IndexedDB failed to open, read or write.
  "QuotaExceeded", // The browser's storage quota is exhausted.
  "BacklogFull", // Storage has not saved the engine's limit of changes: new changes are refused until a write succeeds.
  "WrongKey", // The local data was written with another storage key or passphrase.
  "NoRandomness", // The browser's CSPRNG failed; nothing was written.
  // The connection.
  "ConnectTimeout", // A connection attempt did not open in time.
  "HeartbeatTimeout", // An open socket stopped answering heartbeats.
  "Offline", // The browser is offline (or the app said so).
  "BadRelayUrl", // A relay URL the browser's WebSocket refuses.
  // Ephemeral messages and requests.
  "MessageTooLarge", // A message (or a request's payload or result) over the size limit.
  "RateLimited", // Messages or requests sent faster than the relay (or the engine) allows.
  "BadMethod", // A method name that is empty or too long.
  "BadMessage", // A peer's message could not be opened.
  "NoServer", // No peer replied to a request before its timeout.
  "RemoteError", // The serving peer's handler failed: its message is the error's.
  // Arguments and lifecycle.
  "BadKey", // A storage key that is not 32 bytes.
  "BadHeads", // Heads that are not change hashes.
  "BadOption", // An option of the wrong type or value.
  "BadValue", // A value a document cannot hold.
  "BadEvent", // An event name the repo does not emit.
  "Closed", // The repo is closed.
  "Reentrant", // A call made from inside one of the repo's own calls; nothing was done.
  "Crashed", // The wasm module panicked; every later call fails.
  "WasmLoad", // The wasm module could not be loaded.
  "Unsupported", // The browser lacks something Syncline needs (WebCrypto), or a synchronous call that needs the CRDT in the page was made in worker mode.
  "WorkerMismatch", // This page and its origin's shared worker run different package versions (worker mode).
  "NoRepo", // A React hook used outside `<RepoProvider>`.
  "NotReady", // A document handle used before it opened.
  "Internal", // A bug in Syncline: please report it.
] as const;

/** A stable error code: switch on it. */
export type SynclineErrorCode = (typeof SYNCLINE_ERROR_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(SYNCLINE_ERROR_CODES);

/** Whether `code` is one of {@link SYNCLINE_ERROR_CODES}. */
export function isSynclineErrorCode(code: unknown): code is SynclineErrorCode {
  return typeof code === "string" && KNOWN.has(code);
}

/** An error from Syncline: `code` to switch on, `message` for people. */
export class SynclineError extends Error {
  readonly code: SynclineErrorCode;
  /** The document it concerns, when one (e.g. a per-document refusal by the relay): its URL without the key. */
  readonly docId?: string;

  constructor(code: SynclineErrorCode, message: string, options?: { cause?: unknown; docId?: string }) {
    super(message, options);
    this.name = "SynclineError";
    this.code = code;
    if (options?.docId !== undefined) this.docId = options.docId;
  }
}

/**
 * Turns whatever the wasm core threw into a SynclineError, keeping its
 * `code` (an unknown code, which would be a bug, becomes "Internal").
 */
export function toSynclineError(error: unknown): SynclineError {
  if (error instanceof SynclineError) return error;
  if (typeof error === "object" && error !== null) {
    const record = error as { code?: unknown; message?: unknown };
    const code = isSynclineErrorCode(record.code) ? record.code : "Internal";
    const message =
      typeof record.message === "string" && record.message !== "" ? record.message : String(error);
    return new SynclineError(code, message, { cause: error });
  }
  return new SynclineError("Internal", String(error), { cause: error });
}
