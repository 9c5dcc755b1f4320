/**
 * Tabs of one origin that open the same repo name share its IndexedDB log,
 * and keep each other current with no relay at all:
 *
 * - every local change is posted on a BroadcastChannel named after the repo,
 *   and each other tab applies it (and pushes it too, should the author's
 *   tab close before it could: the relay keeps one copy);
 * - only one tab compacts the shared log at a time: the one holding the
 *   repo's Web Lock. When it closes, the lock passes to another tab;
 * - a document deleted in one tab is deleted in the others, so none of them
 *   writes records for it into the shared log afterwards.
 *
 * Where BroadcastChannel or Web Locks don't exist (old browsers, Node), the
 * repo works as a single tab.
 */
export interface TabEvents {
  /** Another tab's bytes arrived. */
  message(bytes: Uint8Array): void;
  /** Another tab deleted this document from the shared log. */
  deleted(url: string): void;
  /** This tab holds the compaction lock now. */
  leader(): void;
}

export class TabLink {
  readonly #channel: BroadcastChannel | null;
  #release: (() => void) | null = null;
  #closed = false;
  /** Whether compaction waits for the lock (false: no Web Locks, compact freely). */
  readonly coordinated: boolean;

  constructor(name: string, events: TabEvents) {
    this.#channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(`syncline:${name}`) : null;
    if (this.#channel) {
      // Node has BroadcastChannel too; there an open channel must not keep the process alive.
      (this.#channel as { unref?: () => void }).unref?.();
      this.#channel.onmessage = (event: MessageEvent<unknown>) => {
        const data = event.data;
        if (data instanceof Uint8Array) events.message(data);
        else if (typeof (data as { deleted?: unknown } | null)?.deleted === "string") {
          events.deleted((data as { deleted: string }).deleted);
        }
      };
    }
    const locks = globalThis.navigator?.locks;
    this.coordinated = typeof locks?.request === "function";
    if (this.coordinated) {
      locks
        .request(
          `syncline-compact:${name}`,
          () =>
            new Promise<void>((release) => {
              if (this.#closed) return release();
              this.#release = release;
              events.leader();
            }),
        )
        .catch(() => {});
    }
  }

  /** Whether changes reach other tabs at all. */
  get linked(): boolean {
    return this.#channel !== null;
  }

  post(bytes: Uint8Array): void {
    if (!this.#closed) this.#channel?.postMessage(bytes);
  }

  /** Tells the other tabs to forget `url` too (else they would keep writing its records). */
  postDeleted(url: string): void {
    if (!this.#closed) this.#channel?.postMessage({ deleted: url });
  }

  close(): void {
    this.#closed = true;
    this.#channel?.close();
    this.#release?.();
  }
}
