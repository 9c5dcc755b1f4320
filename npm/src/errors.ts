/**
 * Every error the library throws or rejects with. `code` is stable and
 * machine-readable ("BadUrl", "BadOp", "BadValue", "DocNotFound", "Closed",
 * "WrongKey", "RelayRejected", ...); `message` says what to do.
 */
export class SynclineError extends Error {
  readonly code: string;
  /** The document it concerns, when one (e.g. a per-document refusal by the relay): its URL without the key. */
  readonly docId?: string;

  constructor(code: string, message: string, options?: { cause?: unknown; docId?: string }) {
    super(message, options);
    this.name = "SynclineError";
    this.code = code;
    if (options?.docId !== undefined) this.docId = options.docId;
  }
}

/** Turns whatever the wasm core threw into a SynclineError, keeping its `code`. */
export function toSynclineError(error: unknown): SynclineError {
  if (error instanceof SynclineError) return error;
  if (typeof error === "object" && error !== null) {
    const record = error as { code?: unknown; message?: unknown };
    const code = typeof record.code === "string" && record.code !== "" ? record.code : "Internal";
    const message =
      typeof record.message === "string" && record.message !== "" ? record.message : String(error);
    return new SynclineError(code, message, { cause: error });
  }
  return new SynclineError("Internal", String(error), { cause: error });
}
