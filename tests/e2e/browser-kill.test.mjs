// A browser killed with SIGKILL right after `flush()` resolved loses nothing
// that flush covered. Chromium runs on a persistent profile
// (`launchPersistentContext`, the harness's flags). The page writes
// changes one after another, each followed by `await repo.flush()`; right
// after the 25th flush resolves it makes a *synchronous* request to the
// test, which blocks the page's main thread, and the test answers it by
// SIGKILLing the Chromium browser process itself (found by its
// `--user-data-dir`; no graceful close). Nothing can run in the page
// between the flush resolving and the kill. Chromium restarts on the same
// profile, opens the repo with no relay (only IndexedDB can answer) and
// must find changes 1..25.
//
// Durability: the repo uses `createRepo({ durability: "strict" })`, the
// mode whose promise is "on the disk when flush() resolves" — the one a
// user who needs durability picks. What this test can and cannot see: a
// SIGKILL of the browser leaves the operating system's page cache intact,
// so it checks that flush() waits for IndexedDB's commit to reach the OS
// (a browser crash), not that the data reached the disk (a power cut;
// relaxed durability would very likely pass this test too).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";
import { CHROMIUM, TIMEOUT, freshDir, removeDir, requireBuilt, startStaticServer } from "./harness.mjs";

/** The write after whose flush the browser is killed. */
const KILL_AFTER = 25;

let site;
let profile;

before(async () => {
  requireBuilt();
  site = await startStaticServer();
  profile = freshDir("syncline-profile-");
});

after(async () => {
  await site?.close();
  removeDir(profile);
});

/** Pids of live processes started with this profile (zombies have no cmdline). */
function profilePids(dir) {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args;
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    if (args.includes(`--user-data-dir=${dir}`)) pids.push({ pid: Number(entry), browser: !args.some((a) => a.startsWith("--type=")) });
  }
  return pids;
}

async function waitUntil(predicate, timeout, what) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function launch() {
  return chromium.launchPersistentContext(profile, CHROMIUM);
}

/**
 * A server that SIGKILLs `pid` when the page asks `/kill?n=N`, before it
 * answers (the answer never arrives); `killed` resolves with N.
 */
function startKiller(pid) {
  let onKill;
  const killed = new Promise((resolve) => (onKill = resolve));
  const server = createServer((req, res) => {
    const n = Number(new URL(req.url, "http://x").searchParams.get("n"));
    process.kill(pid, "SIGKILL");
    onKill(n);
    res.writeHead(200, { "access-control-allow-origin": "*" }).end();
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/kill`,
        killed,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

test("SIGKILL of the browser right after flush() resolved loses nothing flush covered", { timeout: 120_000 }, async () => {
  const context = await launch();
  const browsers = profilePids(profile).filter((p) => p.browser);
  assert.equal(browsers.length, 1, `one Chromium browser process on the profile: ${JSON.stringify(browsers)}`);
  const killer = await startKiller(browsers[0].pid);
  try {
    const disconnected = new Promise((resolve) => context.once("close", resolve));
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${site.url}/`);
    const url = await page.evaluate(
      async ({ killUrl, killAfter }) => {
        const { createRepo } = await import("/dist/index.js");
        const repo = await createRepo({ name: "kill", durability: "strict" });
        const doc = await repo.create({ items: [] });
        await repo.flush();
        (async () => {
          for (let i = 1; i <= killAfter; i++) {
            doc.change((d) => {
              d.items.push(i);
            });
            await repo.flush();
          }
          // Synchronous: the page runs nothing more until the browser is gone.
          const request = new XMLHttpRequest();
          request.open("GET", `${killUrl}?n=${killAfter}`, false);
          request.send();
        })();
        return doc.url;
      },
      { killUrl: killer.url, killAfter: KILL_AFTER },
    );

    assert.equal(await killer.killed, KILL_AFTER);
    await disconnected;
    await waitUntil(() => profilePids(profile).length === 0, TIMEOUT.start, "every Chromium process of the profile to exit");

    const again = await launch();
    try {
      const reopened = again.pages()[0] ?? (await again.newPage());
      await reopened.goto(`${site.url}/`);
      const items = await reopened.evaluate(async (url) => {
        const { createRepo } = await import("/dist/index.js");
        const repo = await createRepo({ name: "kill", durability: "strict" });
        const doc = await repo.open(url);
        return [...doc.value.items];
      }, url);
      const expected = Array.from({ length: KILL_AFTER }, (_, i) => i + 1);
      assert.deepEqual(items, expected, `flush() resolved for 1..${KILL_AFTER} before the kill`);
    } finally {
      await again.close().catch(() => {});
    }
  } finally {
    killer.close();
  }
});
