/**
 * syncline: local-first documents in the browser.
 *
 *   const repo = await createRepo({ relay: "ws://localhost:8787" });
 *   const doc = await repo.create({ items: [] as string[] });
 *   doc.change((d) => { d.items.push("milk"); });
 */
import init, { Core } from "./wasm/syncline_wasm.js";
import type { CoreStatic } from "./core.js";
import { SynclineError } from "./errors.js";
import { openRepo, type Repo, type RepoOptions } from "./repo.js";

export type { ChangeOptions, DocEvents, DocHandle, UndoState, Unsubscribe } from "./doc-handle.js";
export type { Repo, RepoEvents, RepoOptions } from "./repo.js";
export type { MessageListener, RequestHandler, RequestOptions } from "./messages.js";
export { DEFAULT_REQUEST_TIMEOUT_MS, MAX_MESSAGE_JSON_BYTES } from "./messages.js";
export type { OpenOptions, Schema } from "./schema.js";
export { SCHEMA_KEY } from "./schema.js";
export type * from "./types.js";
export { SYNCLINE_ERROR_CODES, SynclineError, isSynclineErrorCode } from "./errors.js";
export type { SynclineErrorCode } from "./errors.js";
export { Counter, Text } from "./crdt-values.js";
export { increment, mark, splice, unmark } from "./draft.js";
export type { MarkRange } from "./draft.js";

let wasmReady: Promise<void> | undefined;

/** Loads the wasm module once, on first use (never at import time, so importing during SSR is safe). */
function loadWasm(): Promise<void> {
  wasmReady ??= init().then(
    () => undefined,
    (error: unknown) => {
      wasmReady = undefined;
      throw new SynclineError(
        "WasmLoad",
        `could not load syncline_wasm_bg.wasm (is it served next to the package's wasm/syncline_wasm.js, as application/wasm?): ${String(error)}`,
        { cause: error },
      );
    },
  );
  return wasmReady;
}

/** Opens (creating if needed) the local database `name` and connects to `relay` if given. */
export async function createRepo(options: RepoOptions = {}): Promise<Repo> {
  return openRepo(Core as unknown as CoreStatic, options, loadWasm);
}
