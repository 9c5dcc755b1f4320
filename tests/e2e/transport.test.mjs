// The browser transport against real and deliberately broken relays: connect
// timeout, heartbeat (half-open sockets), page events that wake or pause the
// connection, and fatal rejections that must stop the retries.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { connect as netConnect, createServer as createNetServer } from "node:net";
import { freshDir, newPage, removeDir, startRelay, useSiteAndBrowser } from "./harness.mjs";
import { waitInPage } from "./pages.mjs";

let relay;
const env = useSiteAndBrowser();
const dirs = [];

before(async () => {
  const dataDir = freshDir("syncline-relay-");
  dirs.push(dataDir);
  relay = await startRelay({ dataDir });
});

after(async () => {
  await relay?.kill();
  dirs.forEach(removeDir);
});

/**
 * A TCP proxy to the relay on 127.0.0.1. `freeze()` turns it into a black
 * hole: bytes on open connections are swallowed in both directions (the
 * sockets stay open: a half-open relay), and new connections are accepted
 * but never answered. `thaw()` forwards new connections again. `stall()`
 * stops reading what clients send (TCP backs up to the browser, as with a
 * relay too busy to read); `unstall()` reads again.
 */
function startProxy(targetPort) {
  let frozen = false;
  const clients = new Set();
  let upstreamChunks = 0;
  let onChunk = () => {};
  const sockets = new Set();
  const track = (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  };
  const server = createNetServer((client) => {
    track(client);
    clients.add(client);
    client.on("close", () => clients.delete(client));
    if (frozen) return; // accepted, never answered
    const upstream = netConnect(targetPort, "127.0.0.1");
    track(upstream);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.on("data", (data) => {
      if (frozen) return;
      upstreamChunks++;
      onChunk();
      upstream.write(data);
    });
    upstream.on("data", (data) => {
      if (!frozen) client.write(data);
    });
  });
  return new Promise((resolveListen) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolveListen({
        wsUrl: `ws://127.0.0.1:${port}`,
        /** Resolves once `n` more client-to-relay chunks passed; rejects after `timeout` ms. */
        waitForChunks(n, timeout) {
          const target = upstreamChunks + n;
          return new Promise((resolveWait, rejectWait) => {
            const timer = setTimeout(() => rejectWait(new Error(`only ${n - (target - upstreamChunks)} of ${n} chunks in ${timeout} ms`)), timeout);
            onChunk = () => {
              if (upstreamChunks < target) return;
              clearTimeout(timer);
              onChunk = () => {};
              resolveWait();
            };
          });
        },
        freeze: () => (frozen = true),
        thaw: () => (frozen = false),
        stall: () => clients.forEach((c) => c.pause()),
        unstall: () => clients.forEach((c) => c.resume()),
        close: () =>
          new Promise((done) => {
            sockets.forEach((s) => s.destroy());
            server.close(() => done());
          }),
      });
    });
  });
}

/** A "relay" that completes the WebSocket handshake and then never sends a byte. */
function startMuteRelay() {
  const sockets = new Set();
  const server = createHttpServer((_, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on("data", () => {}); // read and ignore everything
  });
  return new Promise((resolveListen) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolveListen({
        wsUrl: `ws://127.0.0.1:${port}`,
        close: () =>
          new Promise((done) => {
            sockets.forEach((s) => s.destroy());
            server.close(() => done());
          }),
      });
    });
  });
}

/** A page with a repo opened with `options`; statuses seen are kept in `window.statuses`. */
async function openRepoPage(name, options) {
  const { context, page } = await newPage(env.browser, name);
  await page.goto(`${env.site.url}/`);
  await page.evaluate(async (options) => {
    const { createRepo } = await import("/dist/index.js");
    window.repo = await createRepo({ name: "transport", ...options });
    window.statuses = [];
    window.repo.on("status", (status) => window.statuses.push(status));
  }, options);
  return { context, page };
}

const statusOf = (page) => page.evaluate(() => ({ ...window.repo.status }));

function waitStatus(page, predicate, timeout, what) {
  return waitInPage(page, predicate, undefined, timeout, what);
}

test("connect timeout: an attempt that never opens is abandoned and retried with backoff", { timeout: 60_000 }, async () => {
  const proxy = await startProxy(relay.port);
  proxy.freeze(); // accepts TCP, never answers the WebSocket handshake
  const { context, page } = await openRepoPage("timeout", {
    relay: proxy.wsUrl,
    connectTimeoutMs: 300,
    backoffBaseMs: 20,
    backoffCapMs: 100,
  });
  try {
    await waitStatus(page, () => window.repo.status.attempt >= 3, 10_000, "three timed-out attempts");
    const status = await statusOf(page);
    assert.notEqual(status.connection, "open");
    assert.equal(status.lastError?.code, "ConnectTimeout");
    // Once the relay answers again, the next attempt opens.
    proxy.thaw();
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open after thaw");
    assert.equal((await statusOf(page)).attempt, 0, "attempt is 0 while open");
  } finally {
    await context.close();
    await proxy.close();
  }
});

test("heartbeat: a relay that stops answering on an open socket is detected and replaced", { timeout: 60_000 }, async () => {
  const proxy = await startProxy(relay.port);
  const { context, page } = await openRepoPage("half-open", {
    relay: proxy.wsUrl,
    heartbeatMs: 300,
    pongTimeoutMs: 300,
    connectTimeoutMs: 500,
    backoffBaseMs: 20,
    backoffCapMs: 100,
  });
  try {
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open");
    proxy.freeze(); // the socket stays open but nothing passes any more
    // Only the heartbeat can notice: the session is established, so the
    // engine's handshake timeout doesn't apply.
    await waitStatus(page, () => window.repo.status.connection !== "open", 5_000, "the half-open socket to be dropped");
    await waitStatus(page, () => window.repo.status.attempt >= 2, 10_000, "attempts to grow");
    const codes = await page.evaluate(() => window.statuses.map((s) => s.lastError?.code));
    assert.ok(codes.includes("HeartbeatTimeout"), `a HeartbeatTimeout was reported: ${JSON.stringify(codes)}`);
    proxy.thaw();
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open again after thaw");
  } finally {
    await context.close();
    await proxy.close();
  }
});

test("heartbeat: a relay that accepts the WebSocket and then says nothing is left quickly", { timeout: 60_000 }, async () => {
  const mute = await startMuteRelay();
  const { context, page } = await openRepoPage("mute", {
    relay: mute.wsUrl,
    heartbeatMs: 200,
    pongTimeoutMs: 300,
    backoffBaseMs: 20,
    backoffCapMs: 100,
  });
  try {
    // The engine's own handshake timeout is 10 s; the heartbeat must be faster.
    await waitStatus(page, () => window.repo.status.attempt >= 3, 5_000, "attempts to grow against a mute relay");
    const status = await statusOf(page);
    assert.notEqual(status.connection, "open");
    assert.equal(status.lastError?.code, "HeartbeatTimeout");
  } finally {
    await context.close();
    await mute.close();
  }
});

test("heartbeat: a healthy connection stays open over several heartbeat periods", { timeout: 60_000 }, async () => {
  const proxy = await startProxy(relay.port);
  const { context, page } = await openRepoPage("healthy", {
    relay: proxy.wsUrl,
    heartbeatMs: 200,
    pongTimeoutMs: 1_000,
  });
  try {
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open");
    await page.evaluate(() => (window.statuses = []));
    // Nothing else is sent on an idle repo: each chunk from now on is a ping.
    await proxy.waitForChunks(4, 10_000);
    const seen = await page.evaluate(() => window.statuses.map((s) => s.connection));
    assert.deepEqual(seen.filter((c) => c !== "open"), [], "never left open");
    assert.equal((await statusOf(page)).connection, "open");
  } finally {
    await context.close();
    await proxy.close();
  }
});

// In worker mode the worker hears none of these events itself: the tab forwards them.
for (const worker of [false, true]) {
  test(`offline flips the status at once; online and a visible tab retry at once (${worker ? "worker" : "page"})`, { timeout: 90_000 }, async () => {
    const dataDir = freshDir("syncline-relay-");
    dirs.push(dataDir);
    let own = await startRelay({ dataDir });
    // Backoff so long that only a wake-up can explain a prompt reconnect.
    const { context, page } = await openRepoPage(`wake-${worker}`, {
      relay: own.wsUrl,
      backoffBaseMs: 120_000,
      backoffCapMs: 120_000,
      worker,
    });
    assert.equal((await statusOf(page)).mode, worker ? "worker" : "page");
    try {
      await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open");
      await context.setOffline(true);
      await waitStatus(page, () => window.repo.status.connection === "offline", 2_000, "offline at once");
      await context.setOffline(false);
      await waitStatus(page, () => window.repo.status.connection === "open", 5_000, "open at once after `online`");

      // The relay goes away; the failed attempt waits its (long) backoff.
      await own.kill();
      await waitStatus(page, () => window.repo.status.connection === "offline", 10_000, "offline after the relay died");
      own = await startRelay({ dataDir, port: own.port });
      await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
      await waitStatus(page, () => window.repo.status.connection === "open", 5_000, "open at once after the tab became visible");
    } finally {
      await context.close();
      await own.kill();
    }
  });
}

test("a relay that stops reading: memory stays bounded, and every change arrives once it reads again", { timeout: 150_000 }, async () => {
  const proxy = await startProxy(relay.port);
  const cap = 512 * 1024;
  // No heartbeat during the test: a stalled relay would (rightly) be taken
  // for a dead one and replaced, which has its own tests above.
  const { context, page } = await openRepoPage("backpressure", { relay: proxy.wsUrl, sendBufferBytes: cap, heartbeatMs: 600_000 });
  const reader = await openRepoPage("backpressure-reader", { relay: relay.wsUrl });
  try {
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open");
    const url = await page.evaluate(async () => {
      window.doc = await window.repo.create({ blobs: [] });
      await window.repo.flush();
      return window.doc.url;
    });
    proxy.stall();
    // 16 changes of 512 KB each: more than the kernel's socket buffers
    // (about 4 MB here) and the send buffer hold together, so without the
    // bound the page would keep what doesn't fit in `bufferedAmount`.
    const frame = 512 * 1024;
    const maxBuffered = await page.evaluate(async (frame) => {
      let max = 0;
      for (let i = 0; i < 16; i++) {
        const blob = `${i}:`.padEnd(frame, String.fromCharCode(97 + (i % 26)));
        window.doc.change((d) => {
          d.blobs.push(blob);
        });
        await window.repo.flush(); // durable, hence pushed
        await new Promise((r) => setTimeout(r, 10));
        max = Math.max(max, window.repo.status.buffered);
      }
      return max;
    }, frame);
    const highWater = 1024 * 1024;
    assert.ok(maxBuffered >= highWater, `the socket did back up (max buffered ${maxBuffered} bytes)`);
    assert.ok(maxBuffered <= cap + highWater + 2 * frame, `buffered stayed bounded: max ${maxBuffered} bytes`);
    proxy.unstall();
    // Pushes dropped from the full buffer are re-sent from the durable
    // outbox (the engine re-pushes what is unacked every 10 s).
    await waitStatus(page, () => window.repo.status.pending === 0, 60_000, "every change acked");
    await reader.page.evaluate(async (url) => {
      window.doc = await window.repo.open(url);
    }, url);
    await waitInPage(reader.page, () => window.doc.value.blobs.length === 16, undefined, 30_000, "all 16 blobs at the reader");
    const lengths = await reader.page.evaluate(() => window.doc.value.blobs.map((b) => `${b.split(":")[0]}/${b.length}`));
    assert.deepEqual(lengths, Array.from({ length: 16 }, (_, i) => `${i}/${frame}`));
  } finally {
    await context.close();
    await reader.context.close();
    await proxy.close();
  }
});

test("setOnline(false) stays offline whatever the page hears; setOnline(true) reconnects and pushes at once", { timeout: 60_000 }, async () => {
  // Retries so fast that any attempt while "offline" would show in `attempt`.
  const { context, page } = await openRepoPage("switch", { relay: relay.wsUrl, backoffBaseMs: 10, backoffCapMs: 20 });
  try {
    await waitStatus(page, () => window.repo.status.connection === "open", 10_000, "open");
    await page.evaluate(() => window.repo.create({ n: 0 }).then((doc) => (window.doc = doc)));
    await waitStatus(page, () => window.repo.status.pending === 0, 10_000, "the new doc acked");
    await page.evaluate(() => window.repo.setOnline(false));
    await waitStatus(page, () => window.repo.status.connection === "offline", 2_000, "offline at once");
    await page.evaluate(async () => {
      window.dispatchEvent(new Event("online"));
      document.dispatchEvent(new Event("visibilitychange"));
      window.doc.change((d) => {
        d.n = 1;
      });
      await window.repo.flush();
    });
    await page.waitForTimeout(1_000);
    const offline = await statusOf(page);
    assert.equal(offline.connection, "offline", "page events don't override the app");
    assert.equal(offline.pending, 1, "the change waits, saved locally");
    await page.evaluate(() => window.repo.setOnline(true));
    await waitStatus(page, () => window.repo.status.connection === "open" && window.repo.status.pending === 0, 5_000, "back online and pushed");
  } finally {
    await context.close();
  }
});
