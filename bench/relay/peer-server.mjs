// The peer: @automerge/automerge-repo-sync-server, unmodified, run as its
// own `index.js` does (`new Server()`, PORT and DATA_DIR from the
// environment). Two adjustments from outside, for the benchmark only:
// it listens on 127.0.0.1 (not every interface) on a free port, and it
// prints "peer listening on ADDR" for the load generator.
import net from "node:net"

const listen = net.Server.prototype.listen
let server
net.Server.prototype.listen = function (...args) {
  if (server === undefined && (typeof args[0] === "number" || typeof args[0] === "string")) {
    server = this
    // (port, callback) -> (port, "127.0.0.1", callback)
    args.splice(1, 0, "127.0.0.1")
  }
  return listen.apply(this, args)
}

process.env.PORT ??= "0"
const { Server } = await import("@automerge/automerge-repo-sync-server/src/server.js")
const peer = new Server()
await peer.ready()
const { address, port } = server.address()
console.log(`peer listening on ${address}:${port}`)

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    peer.close()
    process.exit(0)
  })
}
