/**
 * "status" and "error" listener sets (and a document handle's
 * "undoState" and "history"), as the repo and each document handle keep them: `on(event, fn)` subscribes (a wrapper per call, so the same
 * function added twice is two subscriptions), and every call into app code
 * is guarded, so one listener that throws starves no other.
 */
import { SynclineError } from "./errors.js";

export type Unsubscribe = () => void;

export class StatusAndErrorListeners<S, U = never> {
  readonly status = new Set<(status: S) => void>();
  readonly error = new Set<(error: SynclineError) => void>();
  /** Only where the constructor was told so (a document handle). */
  readonly undoState = new Set<(state: U) => void>();
  readonly history = new Set<(nothing: undefined) => void>();
  readonly #names: readonly string[];

  constructor(forDocument = false) {
    this.#names = forDocument ? ["status", "error", "undoState", "history"] : ["status", "error"];
  }

  /** Adds `listener` for `event`; throws "BadEvent" for any other event name. */
  on(event: string, listener: (value: never) => void): Unsubscribe {
    if (!this.#names.includes(event)) {
      throw new SynclineError("BadEvent", `unknown event "${String(event)}": use ${this.#names.map((n) => `"${n}"`).join(" or ")}`);
    }
    const listeners = this[event as "status" | "error" | "undoState" | "history"] as Set<(value: never) => void>;
    const wrapped = (value: never): void => listener(value);
    listeners.add(wrapped);
    return () => {
      listeners.delete(wrapped);
    };
  }
}

/** Calls an app's listener; what it throws is rethrown from a microtask. */
export function callSafely<A>(listener: (arg: A) => void, arg: A): void {
  try {
    listener(arg);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
