/**
 * Ephemeral messages and requests on one document: `doc.broadcast()`,
 * `doc.onMessage()`, `doc.request()` and `doc.serve()`.
 *
 * Nothing here is stored. A message is sealed with the document key (the
 * relay routes it but cannot read it) and reaches the peers that have the
 * document open and are connected now: other browsers, other tabs that run
 * their own engine, server-side agents built on the Rust client library
 * (`syncline_cli::Client`). A request is a message to every peer of the
 * document; the peers that serve its method run their handler, and the
 * first answer settles the request's promise.
 *
 * On the wire a message, a request's payload and its result are each the
 * UTF-8 JSON text of one JSON value: the Rust client speaks the same.
 * A value's JSON text may be at most {@link MAX_MESSAGE_JSON_BYTES}; larger
 * ones are refused with "MessageTooLarge" before anything is sent.
 *
 * Where the guarantees stop: a message sent while offline is not queued
 * (`broadcast` returns `false`); the relay drops messages over its rate
 * (the sender's repo gets a "RateLimited" error event, and a dropped
 * request ends with "NoServer" at its timeout); with several servers of a
 * method online, each runs its handler and the first answer wins. In
 * worker mode (the default where the browser has SharedWorker) the tabs of one app are one
 * peer: a message reaches other peers, not the app's other tabs.
 */
import type { CoreApi } from "./core.js";
import { toJson } from "./draft.js";
import { SynclineError, toSynclineError } from "./errors.js";
import type { Unsubscribe } from "./listeners.js";
import type { JsonValue } from "./types.js";

/**
 * The largest JSON text, in UTF-8 bytes, of a message, a request's payload
 * or its result. The relay's limit is 64 KiB sealed; this leaves room for
 * the envelope (request id, method name) and the seal.
 */
export const MAX_MESSAGE_JSON_BYTES = 65_000;
/** How long `doc.request()` waits for an answer unless told otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/**
 * Handlers running at once per document (a handler's promise not settled);
 * a request beyond that is answered at once with a "busy" error. The relay
 * limits each sender, not all senders together: this bounds what they can
 * make a serving page hold, as the Rust client's own limit does.
 */
export const MAX_RUNNING_HANDLERS = 64;

export interface RequestOptions {
  /** How long to wait for an answer before failing with "NoServer". Default 10 s. */
  timeoutMs?: number;
}

/** Receives a peer's message and its peer id (the id its presence has). */
export type MessageListener = (message: JsonValue, from: string) => void;
/** Answers a request: its result, or a promise of it; throwing sends the error's message to the caller. */
export type RequestHandler = (payload: JsonValue, from: string) => JsonValue | undefined | Promise<JsonValue | undefined>;

/** What one document's messages need from its repo. */
export interface MessageHost {
  withCore<R>(call: (core: CoreApi) => R): R;
  /** Reports an error that belongs to no call (a peer's unreadable message). */
  reportError(error: SynclineError): void;
  /** Whether the repo's connection to the relay is open now (its `status`). */
  connected(): boolean;
}

const utf8 = { encoder: new TextEncoder(), decoder: new TextDecoder() };

/** The messages and requests of one document handle. */
export class DocMessages {
  readonly #url: string;
  readonly #host: MessageHost;
  readonly #listeners = new Set<MessageListener>();
  readonly #handlers = new Map<string, RequestHandler>();
  readonly #pending = new Map<string, { resolve: (value: JsonValue) => void; reject: (error: SynclineError) => void }>();
  #running = 0;

  constructor(host: MessageHost, url: string) {
    this.#host = host;
    this.#url = url;
  }

  broadcast(message: JsonValue): boolean {
    const bytes = encode(message, "message");
    const sent = this.#host.withCore((core) => core.sendMessage(this.#url, bytes));
    if (typeof sent === "boolean") return sent;
    // Worker mode: the worker sends it if its connection is open (the
    // status this tab last heard); a refusal arrives as an error event.
    sent.catch((error: unknown) => this.#host.reportError(toSynclineError(error)));
    return this.#host.connected();
  }

  onMessage(listener: MessageListener): Unsubscribe {
    if (typeof listener !== "function") throw new SynclineError("BadOption", "onMessage() takes a function");
    const own = (message: JsonValue, from: string): void => listener(message, from);
    this.#listeners.add(own);
    return () => {
      this.#listeners.delete(own);
    };
  }

  async request(method: string, payload: JsonValue | undefined, options: RequestOptions = {}): Promise<JsonValue> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
      throw new SynclineError("BadOption", "`timeoutMs` must be a number of milliseconds ≥ 0");
    }
    checkMethod(method);
    const bytes = encode(payload ?? null, "request payload");
    const id = this.#host.withCore((core) => core.request(this.#url, method, bytes, timeoutMs));
    // Registered before any event can be delivered: in the page the id is
    // here now; in worker mode the worker answers the call before it
    // forwards any reply.
    const settled = (id: string): Promise<JsonValue> => new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    return typeof id === "string" ? settled(id) : id.then(settled);
  }

  serve(method: string, handler: RequestHandler): Unsubscribe {
    checkMethod(method);
    if (typeof handler !== "function") throw new SynclineError("BadOption", "serve() takes a method name and a handler function");
    if (this.#handlers.has(method)) {
      throw new SynclineError("BadOption", `"${method}" is already served on this document: call the function serve() returned before serving it again`);
    }
    const served = this.#host.withCore((core) => core.serve(this.#url, method));
    if (served instanceof Promise) {
      served.catch((error: unknown) => {
        // Refused by the worker's engine: not served, so not registered either.
        if (this.#handlers.get(method) === handler) this.#handlers.delete(method);
        this.#host.reportError(toSynclineError(error));
      });
    }
    this.#handlers.set(method, handler);
    return () => {
      if (this.#handlers.get(method) !== handler) return;
      this.#handlers.delete(method);
      try {
        this.#host.withCore((core) => core.unserve(this.#url, method));
      } catch {
        // closed: nothing is served any more
      }
    };
  }

  // --- from the repo's events -------------------------------------------

  received(from: string, bytes: Uint8Array): void {
    const message = decode(bytes);
    if (message === undefined) {
      this.#host.reportError(new SynclineError("BadMessage", `a peer's message on ${docId(this.#url)} is not JSON text: dropped`, { docId: docId(this.#url) }));
      return;
    }
    for (const listener of [...this.#listeners]) {
      try {
        listener(message, from);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  requested(from: string, id: string, method: string, payload: Uint8Array): void {
    const handler = this.#handlers.get(method);
    const answer = (result: Uint8Array | undefined, error: string | undefined): void => {
      try {
        this.#host.withCore((core) => core.reply(this.#url, from, id, result, error));
      } catch (failure) {
        const problem = toSynclineError(failure);
        // A handler that finished after the repo closed: nobody to tell.
        if (problem.code !== "Closed") this.#host.reportError(problem);
      }
    };
    const value = decode(payload);
    if (!handler || value === undefined) {
      answer(undefined, handler ? "the request's payload is not JSON text" : `"${method}" is no longer served here`);
      return;
    }
    if (this.#running >= MAX_RUNNING_HANDLERS) {
      answer(undefined, `busy: ${MAX_RUNNING_HANDLERS} requests are already being handled on this document by the serving peer`);
      return;
    }
    this.#running += 1;
    new Promise<JsonValue | undefined>((resolve) => resolve(handler(value, from))).finally(() => {
      this.#running -= 1;
    }).then(
      (result) => {
        let bytes: Uint8Array;
        try {
          bytes = encode(result ?? null, "result");
        } catch (error) {
          answer(undefined, `the handler's result could not be sent: ${toSynclineError(error).message}`);
          return;
        }
        answer(bytes, undefined);
      },
      (error: unknown) => answer(undefined, errorMessage(error)),
    );
  }

  replied(id: string, result: Uint8Array | undefined, error: unknown): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (result === undefined) {
      pending.reject(toSynclineError(error));
      return;
    }
    const value = decode(result);
    if (value === undefined) pending.reject(new SynclineError("RemoteError", "the serving peer's result is not JSON text"));
    else pending.resolve(value);
  }

  /** The repo closed (or the document was deleted): waiting requests fail with `error`. */
  closed(error: SynclineError): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#handlers.clear();
  }
}

function encode(value: JsonValue, what: string): Uint8Array {
  let json: JsonValue;
  try {
    json = toJson(value);
  } catch (error) {
    const problem = toSynclineError(error);
    throw new SynclineError(problem.code, `the ${what} must be plain JSON, as a document's values are: ${problem.message}`);
  }
  const bytes = utf8.encoder.encode(JSON.stringify(json));
  if (bytes.length > MAX_MESSAGE_JSON_BYTES) {
    throw new SynclineError("MessageTooLarge", `the ${what} is ${bytes.length} bytes of JSON, over the limit of ${MAX_MESSAGE_JSON_BYTES}: send a reference (a document URL, a key) instead of the data`);
  }
  return bytes;
}

/** The JSON value in `bytes`, or `undefined` if they are not JSON text. */
function decode(bytes: Uint8Array): JsonValue | undefined {
  try {
    return JSON.parse(utf8.decoder.decode(bytes)) as JsonValue;
  } catch {
    return undefined;
  }
}

/** The engine's limit on a method name, in UTF-8 bytes (`syncline_core::messages`). */
const MAX_METHOD_BYTES = 256;

function checkMethod(method: unknown): void {
  if (typeof method !== "string" || method === "") {
    throw new SynclineError("BadMethod", "a method name is a non-empty string");
  }
  if (utf8.encoder.encode(method).length > MAX_METHOD_BYTES) {
    throw new SynclineError("BadMethod", `a method name is at most ${MAX_METHOD_BYTES} bytes of UTF-8`);
  }
}

function errorMessage(error: unknown): string {
  if (error instanceof Error && error.message !== "") return error.message;
  return String(error);
}

function docId(url: string): string {
  return url.split("#")[0] ?? "";
}
