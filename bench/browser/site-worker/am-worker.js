// The floor under worker mode's time to editable (worker-bench.mjs, cold
// open): `@automerge/automerge` alone in a fresh SharedWorker. The page
// constructs it and posts the saved trace's bytes; the worker instantiates
// Automerge's wasm, loads the bytes and makes one change, then answers with
// its own timings. No Syncline code, no storage, no encryption: whatever a
// cold worker needs before a loaded CRDT takes a change, and nothing else.
import * as A from "@automerge/automerge/slim";
import automergeWasmUrl from "@automerge/automerge/automerge.wasm?url";

const started = performance.now();
globalThis.onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = async ({ data: { bytes, marker } }) => {
    const t0 = performance.now();
    await A.initializeWasm(automergeWasmUrl);
    const t1 = performance.now();
    const doc = A.change(A.load(bytes), (d) => {
      d.marker = marker;
    });
    const t2 = performance.now();
    port.postMessage({ initMs: t1 - t0, loadChangeMs: t2 - t1, scriptToMessageMs: t0 - started, length: doc.text.length, ok: doc.marker === marker });
  };
};
