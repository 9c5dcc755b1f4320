/**
 * The SharedWorker script of worker mode (`createRepo({ worker: true })`):
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

interface SharedWorkerScope {
  onconnect: ((event: MessageEvent) => void) | null;
}

const scope = globalThis as unknown as SharedWorkerScope;

/** Resolves once the lock is held (it is released only when this worker ends). */
const alive = new Promise<void>((held) => {
  const locks = (globalThis as { navigator?: Navigator }).navigator?.locks;
  if (typeof locks?.request !== "function") return held();
  void locks.request(WORKER_LOCK, () => {
    held();
    return new Promise<void>(() => {});
  });
});

const ready = Promise.all([init(), alive]);
const host = new WorkerHost(
  {
    open: async (...args) => (await ready, (Core as unknown as CoreStatic).open(...args)),
    openWith: async (...args) => (await ready, (Core as unknown as Required<CoreStatic>).openWith(...args)),
  },
  // A trapped module can't be trusted again: end this worker (its tabs heard "crashed").
  () => setTimeout(() => (globalThis as unknown as { close(): void }).close(), 0),
);

scope.onconnect = (event) => {
  const port = event.ports[0];
  if (port) host.connect(port as unknown as PortLike);
};
