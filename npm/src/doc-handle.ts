import { recordChange } from "./draft.js";
import { shareAndFreeze } from "./snapshot.js";
import type { Draft, Immutable, JsonObject, Op } from "./types.js";

export interface ChangeOptions {
  /** An app-level name for the change (the domain event, e.g. "todo.added"), kept in the log. */
  message?: string;
}

export type Unsubscribe = () => void;

/** A live document. Get one from `repo.create()` or `repo.open()`. */
export interface DocHandle<T extends object = JsonObject> {
  /** The shareable URL of the document, `syncline:<id>#<key>`: whoever has it can read and write the document. */
  readonly url: string;
  /** The current value: a deeply frozen plain snapshot; unchanged subtrees keep their identity. */
  readonly value: Immutable<T>;
  /**
   * Changes the document: `fn` mutates a draft of the current value, and what
   * it does is applied as one change. Subscribers are notified after it is applied.
   */
  change(fn: (draft: Draft<T>) => void, options?: ChangeOptions): void;
  /** Calls `fn` at once with the current value, then on every change. Returns the unsubscribe function. */
  subscribe(fn: (value: Immutable<T>) => void): Unsubscribe;
}

/** What a handle needs from its repo. */
export interface DocHost {
  applyChange(url: string, ops: Op[], message: string | undefined): unknown;
}

export class Handle<T extends object = JsonObject> implements DocHandle<T> {
  readonly url: string;
  #value: Immutable<T>;
  #version = 0;
  readonly #host: DocHost;
  readonly #subscribers = new Set<(value: Immutable<T>) => void>();
  /** Bumped by every local change; lets the repo drop remote snapshots that a local change already superseded. */
  localChanges = 0;

  constructor(host: DocHost, url: string, value: unknown) {
    this.#host = host;
    this.url = url;
    this.#value = shareAndFreeze(undefined, value) as Immutable<T>;
  }

  get value(): Immutable<T> {
    return this.#value;
  }

  change(fn: (draft: Draft<T>) => void, options: ChangeOptions = {}): void {
    const ops = recordChange<Draft<T>>(this.#value, fn);
    if (ops.length === 0) return;
    const next = this.#host.applyChange(this.url, ops, options.message);
    this.localChanges++;
    this.update(next);
  }

  subscribe(fn: (value: Immutable<T>) => void): Unsubscribe {
    // A wrapper, so the same function subscribed twice gets two subscriptions.
    const subscriber = (value: Immutable<T>): void => fn(value);
    this.#subscribers.add(subscriber);
    fn(this.#value);
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /** Replaces the value (from a local change's result or a remote change) and notifies. */
  update(next: unknown): void {
    const shared = shareAndFreeze(this.#value, next) as Immutable<T>;
    if (shared === this.#value) return;
    this.#value = shared;
    const version = ++this.#version;
    for (const subscriber of [...this.#subscribers]) {
      // A subscriber that changed the doc already notified everyone with a newer value.
      if (version !== this.#version) return;
      if (!this.#subscribers.has(subscriber)) continue;
      try {
        subscriber(shared);
      } catch (error) {
        // One broken subscriber must not starve the others or fail the change.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
