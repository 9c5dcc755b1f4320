// A change from another replica reaches the page's subscribers before this
// replica starts writing it to IndexedDB. Both happen in microtasks after
// the socket's message: the write's synchronous part (sealing the records,
// opening the transaction) costs about a millisecond, which used to come
// first and delay every remote edit on screen.
//
// Page b logs, in order, every relay-socket message, every read-write
// transaction its repo opens and every subscriber call; page a makes
// changes one at a time through the real relay.
// The engine runs in the page (`worker: false`): the hooks are on the page's IndexedDB.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, TIMEOUT, useRelay, useSiteAndBrowser } from "./harness.mjs";
import { createRepoIn, createDocIn, openDocIn, waitForConnection, waitInPage } from "./pages.mjs";

const env = useSiteAndBrowser();
const relays = useRelay();
const CHANGES = 8;

test("a remote change reaches subscribers before its storage write starts", { timeout: 120_000 }, async () => {
  const a = await newPage(env.browser, "a");
  const b = await newPage(env.browser, "b");
  try {
    await a.page.goto(`${env.site.url}/`);
    await createRepoIn(a.page, relays.relay.wsUrl, { worker: false });
    const url = await createDocIn(a.page, { items: [], n: 0 });
    await waitForConnection(a.page, "synced", TIMEOUT.sync);

    await b.page.goto(`${env.site.url}/`);
    await b.page.evaluate((relay) => {
      const log = (window.order = []);
      const native = IDBDatabase.prototype.transaction;
      IDBDatabase.prototype.transaction = function (...args) {
        const tx = native.apply(this, args);
        if (tx.mode === "readwrite") log.push("write");
        return tx;
      };
      const Native = window.WebSocket;
      window.WebSocket = function (url, protocols) {
        const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
        if (url.startsWith(relay)) ws.addEventListener("message", () => log.push("message"));
        return ws;
      };
      window.WebSocket.prototype = Native.prototype;
      Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
    }, relays.relay.wsUrl);
    await createRepoIn(b.page, relays.relay.wsUrl, { worker: false });
    await openDocIn(b.page, url);
    await waitForConnection(b.page, "synced", TIMEOUT.sync);
    await b.page.evaluate(() => {
      window.doc.subscribe((v) => window.order.push(`n=${v.n}`));
      window.order.length = 0;
    });

    for (let n = 1; n <= CHANGES; n++) {
      await a.page.evaluate((n) => window.doc.change((d) => void (d.n = n)), n);
      await waitInPage(b.page, (n) => window.doc.value.n === n, n, TIMEOUT.sync, `change ${n} at b`);
      // b's write of it commits before the next change: a write already
      // under way when a change arrives would make the check below moot.
      await b.page.evaluate(() => window.repo.flush());
    }

    const order = await b.page.evaluate(() => window.order);
    for (let n = 1; n <= CHANGES; n++) {
      const shown = order.indexOf(`n=${n}`);
      assert.ok(shown > 0, `change ${n} reached b's subscriber: ${order.join(" ")}`);
      const arrived = order.lastIndexOf("message", shown);
      assert.ok(arrived >= 0, `a socket message came before change ${n} was shown: ${order.join(" ")}`);
      const between = order.slice(arrived + 1, shown);
      assert.deepEqual(between, [], `nothing between change ${n}'s message and its subscriber call (was a write started first?): ${order.join(" ")}`);
      assert.ok(order.indexOf("write", shown) > shown, `change ${n} was written after it was shown: ${order.join(" ")}`);
    }
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
