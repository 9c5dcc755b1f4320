// A TCP proxy on 127.0.0.1 that counts the bytes passing each way, for the
// `diverge` benchmark: the pages connect to it instead of the server, so
// what it counts is everything on the wire above TCP — the HTTP upgrade,
// WebSocket frame headers and (client → server) masking keys included.
// Both sockets are TCP_NODELAY, so the extra hop adds no Nagle delay.
import { connect, createServer } from "node:net";

/**
 * Listens on a free port and forwards every connection to `target`
 * (`{ host, port }`). `counts()` returns `{ up, down, connections, lastAt }`:
 * bytes client → server, bytes server → client, connections accepted, and
 * the time (performance.now() of this process) of the last byte either way.
 */
export function startCountingProxy(target) {
  const c = { up: 0, down: 0, connections: 0, lastAt: 0 };
  const sockets = new Set();
  const server = createServer((client) => {
    c.connections++;
    client.setNoDelay(true);
    const upstream = connect(target.port, target.host);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    client.on("data", (d) => {
      c.up += d.length;
      c.lastAt = performance.now();
    });
    upstream.on("data", (d) => {
      c.down += d.length;
      c.lastAt = performance.now();
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () =>
      ok({
        port: server.address().port,
        counts: () => ({ ...c }),
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}
