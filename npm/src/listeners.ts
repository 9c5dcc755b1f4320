/**
 * "status" and "error" listener sets, as the repo and each document handle
 * keep them: `on(event, fn)` subscribes (a wrapper per call, so the same
 * function added twice is two subscriptions), and every call into app code
 * is guarded, so one listener that throws starves no other.
 */
import { SynclineError } from "./errors.js";

export type Unsubscribe = () => void;

export class StatusAndErrorListeners<S> {
  readonly status = new Set<(status: S) => void>();
  readonly error = new Set<(error: SynclineError) => void>();

  /** Adds `listener` for `event`; throws "BadEvent" for any other event name. */
  on(event: string, listener: (value: never) => void): Unsubscribe {
    let listeners: Set<(value: never) => void>;
    if (event === "status") listeners = this.status;
    else if (event === "error") listeners = this.error;
    else throw new SynclineError("BadEvent", `unknown event "${String(event)}": use "status" or "error"`);
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
