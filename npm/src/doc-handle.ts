import { recordChange } from "./draft.js";
import { applyPatches, shareAndFreeze } from "./snapshot.js";
import type { Draft, Immutable, JsonObject, Op, Patch } from "./types.js";

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
   * it does is applied as one change. Subscribers are notified after it is
   * applied. Returns the change's patches (none if `fn` changed nothing).
   */
  change(fn: (draft: Draft<T>) => void, options?: ChangeOptions): readonly Patch[];
  /** Calls `fn` at once with the current value, then on every change. Returns the unsubscribe function. */
  subscribe(fn: (value: Immutable<T>) => void): Unsubscribe;
}

/** What a handle needs from its repo. */
export interface DocHost {
  /** Applies `ops` as one change; returns the patches since the handle's value. */
  applyChange(url: string, ops: Op[], message: string | undefined): Patch[];
}

export class Handle<T extends object = JsonObject> implements DocHandle<T> {
  readonly url: string;
  #value: Immutable<T>;
  /** Bumped per new value; subscribers have seen `#notified`. */
  #version = 0;
  #notified = 0;
  readonly #host: DocHost;
  readonly #subscribers = new Set<(value: Immutable<T>) => void>();

  constructor(host: DocHost, url: string, value: unknown) {
    this.#host = host;
    this.url = url;
    this.#value = shareAndFreeze(undefined, value) as Immutable<T>;
  }

  get value(): Immutable<T> {
    return this.#value;
  }

  change(fn: (draft: Draft<T>) => void, options: ChangeOptions = {}): readonly Patch[] {
    const ops = recordChange<Draft<T>>(this.#value, fn);
    if (ops.length === 0) return [];
    const patches = this.#host.applyChange(this.url, ops, options.message);
    this.apply(patches);
    this.notify();
    return patches;
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

  /**
   * Applies patches to the value, without notifying. Patches must be applied
   * in the order the engine produced them (each batch is relative to the last).
   */
  apply(patches: readonly Patch[]): void {
    const next = applyPatches(this.#value, patches) as Immutable<T>;
    if (next === this.#value) return;
    this.#value = next;
    this.#version++;
  }

  /** Tells subscribers about the current value, unless they have seen it. */
  notify(): void {
    if (this.#notified === this.#version) return;
    const version = (this.#notified = this.#version);
    const value = this.#value;
    for (const subscriber of [...this.#subscribers]) {
      // A subscriber that changed the doc already notified everyone with a newer value.
      if (version !== this.#version) return;
      if (!this.#subscribers.has(subscriber)) continue;
      try {
        subscriber(value);
      } catch (error) {
        // One broken subscriber must not starve the others or fail the change.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
