/**
 * The narrow interface between the TypeScript layer and the wasm engine
 * (the `Core` class that wasm-bindgen generates). Everything above this file
 * talks to the engine only through `CoreApi`, so the engine can move into a
 * worker later without changing the public API.
 */
import type { JsonValue, Op, Status, TransportOptions } from "./types.js";

export type CoreEvent =
  /** A remote change (or another tab's) updated this doc. */
  | { type: "changed"; url: string; value: unknown }
  /** The relay sent everything it had for this doc. */
  | { type: "caughtUp"; url: string }
  | { type: "status"; status: Status }
  /** Something failed outside any call (a corrupt record skipped at load, a relay rejection...). */
  | { type: "error"; error: unknown };

export interface CoreApi {
  create(initial: JsonValue | undefined): string;
  /** Starts tracking a doc by URL; true if it already has local data. */
  openDoc(url: string): boolean;
  value(url: string): unknown;
  change(url: string, ops: Op[], message?: string): unknown;
  flush(): Promise<void>;
  status(): Status;
  close(): void;
}

/** The engine as the glue exports it. */
export type RawCore = CoreApi;

export interface CoreStatic {
  /** Opens the local database `name`, encrypted with the 32-byte `key`. */
  open(name: string, relay: string | undefined, onEvent: (event: CoreEvent) => void, key: Uint8Array): Promise<RawCore>;
  /** `open` with transport options (connect timeout, heartbeat, backoff, token). */
  openWith?(
    name: string,
    relay: string | undefined,
    onEvent: (event: CoreEvent) => void,
    key: Uint8Array,
    options: TransportOptions,
  ): Promise<RawCore>;
}

/** A plain delegate over the glue's object, so the rest of the code sees exactly `CoreApi`. */
export function adaptCore(raw: RawCore): CoreApi {
  return {
    create: (initial) => raw.create(initial),
    openDoc: (url) => raw.openDoc(url),
    value: (url) => raw.value(url),
    change: (url, ops, message) => (message === undefined ? raw.change(url, ops) : raw.change(url, ops, message)),
    flush: () => raw.flush(),
    status: () => raw.status(),
    close: () => raw.close(),
  };
}
