// A do-nothing SharedWorker for worker-bench.mjs's latency floor: it posts
// every message straight back to the port it came from. A page's round trip
// through it is the two thread hops (tab → SharedWorker → tab) that worker
// mode adds to A → B (A's tab → A's worker, B's worker → B's tab), with no
// engine work at all.
globalThis.onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (e) => port.postMessage(e.data);
};
