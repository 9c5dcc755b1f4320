// Ephemeral messages and requests between browsers through the real relay
// (`doc.broadcast`, `doc.onMessage`, `doc.request`, `doc.serve`): who
// receives a message and with which sender id, a request's result, its
// handler's error, no server, offline, oversized payloads, the relay's rate
// limit — in the page, in worker mode, and with a server-side agent built
// on the Rust client library (`crates/syncline-cli/examples/agent.rs`).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, repoRoot, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { createRepoIn, killSharedWorkers, waitForConnection, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();
const waitSynced = (page) => waitForConnection(page, "synced", TIMEOUT.sync);

/** A page (its own browser context) with a repo, `window.doc` open at `url` (a new doc if none), and every message it hears in `window.heard`. */
async function peer(name, url, options = {}) {
  const opened = await newPage(env.browser, name);
  await opened.page.goto(`${env.site.url}/`);
  // The engine in the page: "Offline at once" below cuts the page's network
  // with `context.setOffline`, which does not reach a SharedWorker's socket
  // (worker mode has its own tests below).
  await createRepoIn(opened.page, relays.relay.wsUrl, { worker: false });
  const docUrl = await opened.page.evaluate(async (url) => {
    window.doc = url ? await window.repo.open(url) : await window.repo.create({ title: "messages" });
    window.heard = [];
    window.doc.onMessage((message, from) => window.heard.push({ message, from }));
    window.errors = [];
    window.repo.on("error", (error) => window.errors.push(error.code));
    return window.doc.url;
  }, url);
  await waitSynced(opened.page);
  return { ...opened, url: docUrl, ...options };
}

/** Runs `doc.request(...)` in `page`: `{ ok }` or `{ code, message }`, and how long it took. */
const request = (page, method, payload, options) =>
  page.evaluate(
    async ({ method, payload, options }) => {
      const started = performance.now();
      try {
        const ok = await window.doc.request(method, payload, options);
        return { ok, ms: performance.now() - started };
      } catch (error) {
        return { code: error.code, message: error.message, ms: performance.now() - started };
      }
    },
    { method, payload, options },
  );

test("a broadcast reaches the document's other peers with the sender's peer id, not the sender nor another document's peers", { timeout: 90_000 }, async () => {
  const a = await peer("msg-a");
  const b = await peer("msg-b", a.url);
  const c = await peer("msg-c"); // another document
  try {
    // The sender id is the id the sender's presence has.
    await a.page.evaluate(() => window.doc.presence.set({ name: "a" }));
    await waitInPage(b.page, () => window.doc.presence.peers.length === 1, undefined, TIMEOUT.sync, "b sees a's presence");
    const aId = await b.page.evaluate(() => window.doc.presence.peers[0].id);

    const sent = await a.page.evaluate(() => window.doc.broadcast({ n: 1, text: "héllo ✓", list: [1, null, true] }));
    assert.equal(sent, true);
    await waitInPage(b.page, () => window.heard.length === 1, undefined, TIMEOUT.sync, "b hears a's message");
    assert.deepEqual(await b.page.evaluate(() => window.heard), [{ message: { n: 1, text: "héllo ✓", list: [1, null, true] }, from: aId }]);

    // b answers; a hears only b's message (its own never came back, and it was sent first).
    await b.page.evaluate(() => window.doc.broadcast("from b"));
    await waitInPage(a.page, () => window.heard.length >= 1, undefined, TIMEOUT.sync, "a hears b's message");
    assert.deepEqual(await a.page.evaluate(() => window.heard.map((h) => h.message)), ["from b"]);
    assert.deepEqual(await c.page.evaluate(() => window.heard), [], "another document's peer heard nothing");

    // Unsubscribed: b's listener no longer runs.
    await b.page.evaluate(() => {
      window.later = [];
      const stop = window.doc.onMessage((m) => window.later.push(m));
      stop();
      window.doc.onMessage((m) => window.later.push(`kept ${m}`));
    });
    await a.page.evaluate(() => window.doc.broadcast(2));
    await waitInPage(b.page, () => window.later.length === 1, undefined, TIMEOUT.sync, "b hears the second message");
    assert.deepEqual(await b.page.evaluate(() => window.later), ["kept 2"]);
  } finally {
    await Promise.all([a.context.close(), b.context.close(), c.context.close()]);
  }
});

test("requests: the server's result, its handler's error as RemoteError, NoServer after the timeout, Offline at once, MessageTooLarge and BadMethod before sending", { timeout: 90_000 }, async () => {
  const a = await peer("req-a");
  const b = await peer("req-b", a.url);
  try {
    await b.page.evaluate(() => {
      window.stopAdd = window.doc.serve("add", ({ x, y }, from) => ({ sum: x + y, fromLength: from.length }));
      window.doc.serve("fail", () => {
        throw new Error("no luck today");
      });
      window.doc.serve("later", (payload) => new Promise((resolve) => setTimeout(() => resolve(payload), 20)));
      window.doc.serve("nothing", () => undefined);
    });
    assert.deepEqual(await request(a.page, "add", { x: 2, y: 3 }).then((r) => r.ok), { sum: 5, fromLength: 32 });
    assert.deepEqual(await request(a.page, "later", ["a", 1]).then((r) => r.ok), ["a", 1]);
    assert.equal(await request(a.page, "nothing").then((r) => r.ok), null);
    const failed = await request(a.page, "fail");
    assert.deepEqual([failed.code, failed.message], ["RemoteError", "no luck today"]);
    const serving = await b.page.evaluate(() => {
      try {
        window.doc.serve("add", () => 0);
        return "served twice";
      } catch (error) {
        return error.code;
      }
    });
    assert.equal(serving, "BadOption", "one handler per method per handle");

    // Nobody serves it: NoServer once the timeout passed, not before.
    const none = await request(a.page, "multiply", { x: 2 }, { timeoutMs: 400 });
    assert.equal(none.code, "NoServer");
    assert.ok(none.ms >= 390 && none.ms < 5_000, `NoServer after ${Math.round(none.ms)} ms (timeout 400 ms)`);
    await b.page.evaluate(() => window.stopAdd());
    assert.equal((await request(a.page, "add", { x: 1, y: 1 }, { timeoutMs: 300 })).code, "NoServer", "no longer served");

    // Too large, or a bad method: refused before anything is sent.
    const refused = await a.page.evaluate(async () => {
      const big = "x".repeat(70_000);
      const codes = [];
      try {
        window.doc.broadcast(big);
      } catch (error) {
        codes.push(error.code);
      }
      for (const [method, payload, options] of [["add", big], ["", 1], ["add", 1, { timeoutMs: -1 }]]) {
        await window.doc.request(method, payload, options).catch((error) => codes.push(error.code));
      }
      return codes;
    });
    assert.deepEqual(refused, ["MessageTooLarge", "MessageTooLarge", "BadMethod", "BadOption"]);
    assert.deepEqual(await b.page.evaluate(() => window.heard), [], "nothing too large arrived");

    // A result too large for a message: the caller hears why.
    await b.page.evaluate(() => window.doc.serve("huge", () => "y".repeat(70_000)));
    const huge = await request(a.page, "huge");
    assert.equal(huge.code, "RemoteError");
    assert.match(huge.message, /result could not be sent/);

    // Offline: nothing is queued; a request fails at once.
    await a.context.setOffline(true);
    await waitForConnection(a.page, "notOpen", TIMEOUT.offline);
    assert.equal(await a.page.evaluate(() => window.doc.broadcast("lost")), false);
    const offline = await request(a.page, "later", 1);
    assert.equal(offline.code, "Offline");
    assert.ok(offline.ms < 1_000, `Offline after ${Math.round(offline.ms)} ms`);
    await a.context.setOffline(false);
    await waitSynced(a.page);
    assert.deepEqual(await request(a.page, "later", "back").then((r) => r.ok), "back");
    assert.ok(!(await b.page.evaluate(() => window.heard)).some((h) => h.message === "lost"), "the offline message was never sent later");
  } finally {
    await Promise.all([a.context.close(), b.context.close()]);
  }
});

test("the relay's rate limit: a burst past it is cut with RateLimited at the sender; what got through arrives intact", { timeout: 90_000 }, async () => {
  const a = await peer("rate-a");
  const b = await peer("rate-b", a.url);
  try {
    const sent = await a.page.evaluate(() => {
      let sent = 0;
      for (let i = 0; i < 400; i++) if (window.doc.broadcast(i)) sent++;
      return sent;
    });
    assert.equal(sent, 400, "each left this page");
    await waitInPage(a.page, () => window.errors.includes("RateLimited"), undefined, TIMEOUT.sync, "the sender hears RateLimited");
    // Then a marker, sent until one gets past the limit: the relay keeps
    // a sender's order, so once it is here, all that got through is too.
    await a.page.evaluate(() => {
      window.marker = setInterval(() => window.doc.broadcast("end"), 250);
    });
    await waitInPage(b.page, () => window.heard.some((h) => h.message === "end"), undefined, TIMEOUT.sync, "the end marker");
    await a.page.evaluate(() => clearInterval(window.marker));
    const heard = await b.page.evaluate(() => window.heard.map((h) => h.message).filter((m) => m !== "end"));
    assert.ok(heard.length < 400, `${heard.length} of 400 arrived: the relay cut the burst`);
    assert.deepEqual(heard, [...heard].sort((x, y) => x - y), "in order");
  } finally {
    await Promise.all([a.context.close(), b.context.close()]);
  }
});

test("worker mode: the tabs of one app are one peer; a request goes to the tab that serves, its answer to the tab that asked, and messages reach every tab", { timeout: 120_000 }, async () => {
  const b = await peer("wk-b");
  const { context, page: w1 } = await newPage(env.browser, "wk-app");
  const w2 = await context.newPage();
  try {
    for (const page of [w1, w2]) {
      await page.goto(`${env.site.url}/`);
      await page.evaluate(
        async ([relay, url]) => {
          const { createRepo } = await import("/dist/index.js");
          window.repo = await createRepo({ relay, name: "wk", worker: true });
          window.doc = await window.repo.open(url);
          window.heard = [];
          window.doc.onMessage((message, from) => window.heard.push({ message, from }));
        },
        [relays.relay.wsUrl, b.url],
      );
    }
    for (const page of [w1, w2]) await waitSynced(page);
    await w2.evaluate(() => {
      window.stop = window.doc.serve("who", (payload) => ({ tab: "w2", payload }));
    });
    assert.deepEqual((await request(b.page, "who", 7)).ok, { tab: "w2", payload: 7 });

    await b.page.evaluate(() => window.doc.serve("echo", (payload) => payload));
    assert.deepEqual((await request(w1, "echo", "to w1")).ok, "to w1");
    assert.deepEqual((await request(w2, "echo", "to w2")).ok, "to w2");
    const failed = await request(w1, "nobody", 1, { timeoutMs: 300 });
    assert.equal(failed.code, "NoServer");

    assert.equal(await b.page.evaluate(() => window.doc.broadcast({ to: "both tabs" })), true);
    for (const page of [w1, w2]) {
      await waitInPage(page, () => window.heard.length === 1, undefined, TIMEOUT.sync, "each tab hears the message");
      assert.deepEqual((await page.evaluate(() => window.heard))[0].message, { to: "both tabs" });
    }
    assert.equal(await w1.evaluate(() => window.doc.broadcast("from the app")), true);
    await waitInPage(b.page, () => window.heard.some((h) => h.message === "from the app"), undefined, TIMEOUT.sync, "b hears the app");

    // The serving tab stops: nobody serves "who" any more.
    await w2.evaluate(() => window.stop());
    assert.equal((await request(b.page, "who", 1, { timeoutMs: 400 })).code, "NoServer");
    await w2.evaluate(() => window.doc.serve("who", () => "again"));
    assert.equal((await request(b.page, "who", 1)).ok, "again");
    // ...and when it closes, the worker stops serving on its behalf.
    await w2.close();
    assert.equal((await request(b.page, "who", 1, { timeoutMs: 400 })).code, "NoServer");
  } finally {
    await Promise.all([context.close(), b.context.close()]);
  }
});

test("worker mode, the worker killed: a request waiting for its answer fails with Offline, and what the tab served is served again by the new worker", { timeout: 120_000 }, async () => {
  const b = await peer("wh-b");
  const { context, page: w } = await newPage(env.browser, "wh-app");
  try {
    await w.goto(`${env.site.url}/`);
    await w.evaluate(
      async ([relay, url]) => {
        const { createRepo } = await import("/dist/index.js");
        window.repo = await createRepo({ relay, name: "wh", worker: true });
        if (window.repo.status.mode !== "worker") throw new Error(`not in a worker: ${window.repo.status.warning}`);
        window.doc = await window.repo.open(url);
        window.doc.serve("who", () => "the app");
        window.heard = [];
        window.doc.onMessage((message) => window.heard.push(message));
      },
      [relays.relay.wsUrl, b.url],
    );
    await waitSynced(w);
    assert.equal((await request(b.page, "who", 1)).ok, "the app");
    // b serves a method that never answers; the app asks it, and once b has the request the worker dies.
    await b.page.evaluate(() => {
      window.hangs = 0;
      window.doc.serve("hang", () => (window.hangs++, new Promise(() => {})));
    });
    await w.evaluate(() => {
      window.waiting = window.doc.request("hang", 1, { timeoutMs: 60_000 }).then(
        (ok) => ({ ok }),
        (error) => ({ code: error.code, connection: window.repo.status.connection }),
      );
    });
    await waitInPage(b.page, () => window.hangs === 1, undefined, TIMEOUT.sync, "b has the request");
    assert.ok((await killSharedWorkers(env.browser)) >= 1, "a shared worker to kill");
    // Failed at the handoff (not at its 60 s timeout), while the status said there was no connection.
    assert.deepEqual(await w.evaluate(() => window.waiting), { code: "Offline", connection: "connecting" });
    // A request reaches only servers subscribed when it is sent: b pings
    // until the app hears it through its new worker, then asks.
    await b.page.evaluate(() => {
      window.pinging = setInterval(() => window.doc.broadcast("ping"), 200);
    });
    await waitInPage(w, () => window.heard.includes("ping"), undefined, TIMEOUT.sync, "the new worker on the document");
    await b.page.evaluate(() => clearInterval(window.pinging));
    assert.equal((await request(b.page, "who", 2)).ok, "the app", "served again through the new worker");
  } finally {
    await Promise.all([context.close(), b.context.close()]);
  }
});

/** The example agent (`cargo xtask build` builds it), serving "upper" and "fail" on `url`; resolves once it printed `ready`. */
function startAgent(relay, url) {
  const bin = resolve(repoRoot, process.env.SYNCLINE_AGENT_BIN ?? join("target", "debug", "examples", "agent"));
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo xtask build\` (or cargo build -p syncline-cli --examples)`);
  const child = spawn(bin, ["--relay", relay, "--doc", url], { stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  createInterface({ input: child.stderr }).on("line", (line) => log.push(line));
  const ready = new Promise((resolveReady, rejectReady) => {
    const timer = setTimeout(() => rejectReady(new Error(`the agent was not ready within ${TIMEOUT.start} ms: ${log.join("\n")}`)), TIMEOUT.start);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line === "ready") {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      rejectReady(new Error(`the agent exited (${code}): ${log.join("\n")}`));
    });
  });
  return ready.then(() => ({ stop: () => child.kill("SIGKILL") }));
}

test("a browser asks a server-side agent on the Rust client: its result, its error, and its echo of a broadcast", { timeout: 90_000 }, async () => {
  const a = await peer("agent-a");
  const agent = await startAgent(relays.relay.wsUrl, a.url);
  try {
    assert.deepEqual((await request(a.page, "upper", "milk and bread")).ok, "MILK AND BREAD");
    const wrong = await request(a.page, "upper", 42);
    assert.deepEqual([wrong.code, wrong.message], ["RemoteError", "expected a string"]);
    const failed = await request(a.page, "fail", null);
    assert.deepEqual([failed.code, failed.message], ["RemoteError", "the agent failed on purpose"]);
    assert.equal(await a.page.evaluate(() => window.doc.broadcast({ hello: "agent" })), true);
    await waitInPage(a.page, () => window.heard.length === 1, undefined, TIMEOUT.sync, "the agent's echo");
    assert.deepEqual((await a.page.evaluate(() => window.heard))[0].message, { echo: { hello: "agent" } });
    agent.stop();
    assert.equal((await request(a.page, "upper", "x", { timeoutMs: 400 })).code, "NoServer", "the agent is gone");
  } finally {
    agent.stop();
    await a.context.close();
  }
});
