// The automerge-repo peer's server for the A → B latency benchmark, on
// 127.0.0.1 only. Env: PORT, DATA_DIR, AM_SERVER.
//   AM_SERVER=published (default): @automerge/automerge-repo-sync-server as
//     published (0.2.8, its own automerge-repo 1.2 + automerge 2.2), started
//     exactly as its bin does; only the listen address is pinned to loopback
//     (its server listens on every interface).
//   AM_SERVER=current: the same server code on automerge-repo 2.5.6 (the
//     version the browsers run): Repo + WebSocket server adapter + nodefs
//     storage, sharePolicy false.
import http from "node:http";

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port))) {
    const callback = rest.find((a) => typeof a === "function");
    return listen.call(this, Number(port), "127.0.0.1", callback);
  }
  return listen.call(this, port, ...rest);
};

if ((process.env.AM_SERVER ?? "published") === "published") {
  await import("@automerge/automerge-repo-sync-server");
} else {
  const { WebSocketServer } = await import("ws");
  const { Repo } = await import("@automerge/automerge-repo");
  const { WebSocketServerAdapter } = await import("@automerge/automerge-repo-network-websocket");
  const { NodeFSStorageAdapter } = await import("@automerge/automerge-repo-storage-nodefs");
  const port = Number(process.env.PORT);
  const server = http.createServer((_, res) => res.end("automerge-repo 2.5.6 sync server"));
  const wss = new WebSocketServer({ server });
  new Repo({
    network: [new WebSocketServerAdapter(wss)],
    storage: new NodeFSStorageAdapter(process.env.DATA_DIR),
    peerId: "storage-server-bench",
    sharePolicy: async () => false,
  });
  server.listen(port, () => console.log(`Listening on port ${port}`));
}
