/**
 * The SharedWorker script of worker mode (the default of `createRepo()`):
 * the engine of every tab of this origin, found by the package with
 * `new URL("./worker.js", import.meta.url)`. It loads the wasm module
 * here, off the pages' main threads, holds the Web Lock that tells tabs it
 * is alive for as long as it runs, and serves each tab's port
 * (`worker-host.ts`).
 */
import init, { Core } from "./wasm/syncline_wasm.js";
import type { CoreStatic } from "./core.js";
import { WorkerHost, type PortLike } from "./worker-host.js";
import { WORKER_LOCK } from "./worker-protocol.js";
import { SynclineError } from "./errors.js";

interface SharedWorkerScope {
  onconnect: ((event: MessageEvent) => void) | null;
}

const scope = globalThis as unknown as SharedWorkerScope;

/**
 * How long a tab's `hello` waits for the lock before this worker concludes
 * that another syncline worker of the origin holds it (another build of the
 * app, whose worker script has another URL, still open in another tab) and
 * refuses the tab, which then runs the engine in its page. Once the other
 * worker ends, the lock is this one's and later tabs are served.
 */
const LOCK_WAIT_MS = 3_000;

/** After its last tab left, how long this worker waits for another before it ends (a reload comes back sooner). */
const IDLE_MS = 5_000;

const end = (): void => (globalThis as unknown as { close(): void }).close();

/** The wasm module, loaded at once (one instance: every engine of this worker runs on it). */
const loaded = init();
loaded.catch(() => {}); // each open reports it to its tab

/** Resolves once the lock is held (it is released only when this worker ends). */
const alive = new Promise<void>((held) => {
  const locks = (globalThis as { navigator?: Navigator }).navigator?.locks;
  if (typeof locks?.request !== "function") return held();
  void locks.request(WORKER_LOCK, () => {
    held();
    return new Promise<void>(() => {});
  });
});

/** The wasm loaded and the lock held; refused if the lock stays with another worker for `LOCK_WAIT_MS`. */
async function ready(): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const otherWorker = new Promise<never>((_, refuse) => {
    timer = setTimeout(
      () =>
        refuse(
          new SynclineError(
            "WorkerMismatch",
            "another syncline worker of this origin is running (another build of this app, open in another tab): close or reload the other tabs of this app so they all run one version",
          ),
        ),
      LOCK_WAIT_MS,
    );
  });
  try {
    await Promise.all([loaded, Promise.race([alive, otherWorker])]);
  } finally {
    clearTimeout(timer);
  }
}

const host = new WorkerHost(
  {
    open: async (...args) => (await ready(), (Core as unknown as CoreStatic).open(...args)),
    openWith: async (...args) => (await ready(), (Core as unknown as Required<CoreStatic>).openWith(...args)),
  },
  // A trapped module can't be trusted again: end this worker (its tabs heard "crashed").
  () => setTimeout(end, 0),
  { onIdle: end, idleMs: IDLE_MS },
);

scope.onconnect = (event) => {
  const port = event.ports[0];
  if (port) host.connect(port as unknown as PortLike);
};
