// N automerge-repo clients on one document, each making a real Automerge
// text edit `rate` times a second (one character spliced into `text`, and
// its send time in `stamps[me]`), all in this process (one clock).
// Latency: edit made -> the change event on every other client.
// Prints one JSON line: {n, p50_ms, p99_ms, max_ms, delivered, expected, pushes, note}.
import { parseArgs } from "node:util"
import { performance } from "node:perf_hooks"
import { Repo } from "@automerge/automerge-repo"
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { next as A } from "@automerge/automerge"

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    n: { type: "string", default: "4" },
    rate: { type: "string", default: "6" },
    warmup: { type: "string", default: "3" },
    seconds: { type: "string", default: "10" },
    "setup-timeout": { type: "string", default: "60" },
  },
})
const n = Number(values.n)
const rate = Number(values.rate)
const warmupMs = Number(values.warmup) * 1000
const windowMs = Number(values.seconds) * 1000
const setupMs = Number(values["setup-timeout"]) * 1000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let note = ""
const within = (promise, ms, what) =>
  Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error(`${what} took over ${ms / 1000} s`)
    }),
  ])

const repos = []
for (let i = 0; i < n; i++) {
  repos.push(
    new Repo({
      network: [new BrowserWebSocketClientAdapter(values.url)],
      peerId: `typist-${i}`,
      sharePolicy: async () => true,
    }),
  )
}

const setupStart = performance.now()
const first = repos[0].create({ text: "", stamps: {} })
const handles = [first]
let ready = 0
try {
  // Let the creator hand the document to the server before others ask.
  await within(
    (async () => {
      await first.whenReady()
      await sleep(500)
      const others = repos.slice(1).map(async (repo) => {
        for (;;) {
          const handle = repo.find(first.url)
          try {
            await within(handle.whenReady(["ready"]), 5000, "find")
            ready++
            return handle
          } catch {
            await sleep(200)
          }
        }
      })
      handles.push(...(await Promise.all(others)))
    })(),
    setupMs,
    `${n} clients opening the document`,
  )
} catch (e) {
  console.log(JSON.stringify({ n, p50_ms: 0, p99_ms: 0, max_ms: 0, delivered: 0, expected: 0, pushes: 0, note: `${e.message} (${ready + 1}/${n} ready)` }))
  process.exit(0)
}
const setupSeconds = (performance.now() - setupStart) / 1000

let windowStart = Infinity
let windowEnd = Infinity
const latencies = []
let pushes = 0
handles.forEach((handle, i) => {
  const me = `t${i}`
  handle.on("change", ({ patches }) => {
    const now = performance.now()
    for (const patch of patches) {
      if (patch.path[0] === "stamps" && patch.path.length === 2 && patch.path[1] !== me && patch.action === "put") {
        const sent = patch.value
        if (sent >= windowStart && sent <= windowEnd) latencies.push(now - sent)
      }
    }
  })
})

let stop = false
const typing = handles.map(async (handle, i) => {
  const me = `t${i}`
  const period = 1000 / rate
  await sleep(Math.random() * period)
  let next = performance.now()
  while (!stop) {
    const sent = performance.now()
    handle.change((d) => {
      const pos = Math.floor(Math.random() * (d.text.length + 1))
      A.splice(d, ["text"], pos, 0, "x")
      d.stamps[me] = sent
    })
    if (sent >= windowStart && sent <= windowEnd) pushes++
    next += period
    await sleep(Math.max(0, next - performance.now()))
  }
})

await sleep(warmupMs)
windowStart = performance.now()
await sleep(windowMs)
windowEnd = performance.now()
await sleep(2000)
stop = true
await Promise.all(typing)

latencies.sort((a, b) => a - b)
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil(p * latencies.length) - 1))] : 0)
const expected = pushes * (n - 1)
if (latencies.length < expected) note = `${expected - latencies.length} of ${expected} deliveries missing 2 s after the window`
console.log(
  JSON.stringify({ n, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1), delivered: latencies.length, expected, pushes, setup_s: setupSeconds, note }),
)
process.exit(0)
