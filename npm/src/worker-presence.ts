/**
 * Worker mode's part of presence: the tabs of one app share the worker's
 * engine, which is one peer on the relay, so the worker keeps each tab's
 * presence itself.
 *
 * - Every tab showing a document sees the other tabs of the app that set a
 *   presence on it as peers of their own (`tab:<n>`), as tabs in page mode
 *   see each other; a tab that opens the document later is told of them.
 * - Other peers (through the relay) see one presence for the app: the one a
 *   tab set last. When that tab clears its presence or goes away, the
 *   engine shares the presence of the tab that set one most recently before
 *   it, or none.
 *
 * A tab that goes away without saying so (a crash: no `bye`) keeps its
 * presence here until the worker ends.
 */
import type { CoreApi } from "./core.js";
import type { FromWorker } from "./worker-protocol.js";

/** What the router needs of a tab. */
export interface PresentTab {
  port: { postMessage(message: FromWorker): void };
}

export class PresenceRouter<T extends PresentTab> {
  readonly #core: CoreApi;
  readonly #tabsOf: (url: string) => Iterable<T>;
  /** Per document: each tab's presence, in the order they were set (the last is the engine's). */
  readonly #states = new Map<string, Map<T, Uint8Array>>();
  readonly #ids = new WeakMap<T, string>();
  #nextId = 1;

  constructor(core: CoreApi, tabsOf: (url: string) => Iterable<T>) {
    this.#core = core;
    this.#tabsOf = tabsOf;
  }

  /** `tab` sets (or with `null` clears) its presence on `url`. */
  set(tab: T, url: string, state: Uint8Array | null): void {
    const states = this.#states.get(url) ?? new Map<T, Uint8Array>();
    const wasShared = [...states.keys()].at(-1) === tab;
    states.delete(tab); // re-inserted last: the most recent
    if (state) states.set(tab, state);
    if (states.size > 0) this.#states.set(url, states);
    else this.#states.delete(url);
    if (state) this.#core.setPresence(url, state);
    else if (wasShared) this.#shareLatest(url);
    this.#tellSiblings(tab, url, state);
  }

  /** `tab` opened `url`: it hears of the other tabs' presence there. */
  opened(tab: T, url: string): void {
    for (const [other, state] of this.#states.get(url) ?? []) {
      if (other !== tab) tab.port.postMessage({ t: "presence", url, peer: this.#id(other), state });
    }
  }

  /** `url` was deleted: nothing of its presence is kept. */
  forget(url: string): void {
    this.#states.delete(url);
  }

  /** `tab` went away: its presence is gone from every document. */
  leave(tab: T): void {
    for (const [url, states] of [...this.#states]) {
      if (states.has(tab)) this.set(tab, url, null);
    }
  }

  /** The engine shares the most recent presence left on `url`, or none. */
  #shareLatest(url: string): void {
    const latest = [...(this.#states.get(url)?.values() ?? [])].at(-1);
    try {
      if (latest) this.#core.setPresence(url, latest);
      else this.#core.clearPresence(url);
    } catch {
      // the document is closed or deleted: nothing is shared for it
    }
  }

  #tellSiblings(tab: T, url: string, state: Uint8Array | null): void {
    const peer = this.#id(tab);
    for (const other of this.#tabsOf(url)) {
      if (other !== tab) other.port.postMessage({ t: "presence", url, peer, state });
    }
  }

  #id(tab: T): string {
    let id = this.#ids.get(tab);
    if (!id) this.#ids.set(tab, (id = `tab:${this.#nextId++}`));
    return id;
  }
}
