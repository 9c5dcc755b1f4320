// Worker mode's presence (`PresenceRouter`), over a stand-in engine: the
// tabs of one app see each other as peers; other peers see the presence a
// tab set last, and the one before it once that tab clears or leaves. The
// browser end to end is in tests/e2e/worker.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PresenceRouter } from "../.test-build/worker-presence.js";

const URL = "syncline:doc#key";
const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => (b === null ? null : new TextDecoder().decode(b));

function setup() {
  const engine = [];
  const core = {
    setPresence: (url, state) => engine.push([url, text(state)]),
    clearPresence: (url) => engine.push([url, null]),
  };
  const tab = (name) => {
    const got = [];
    return { name, got, port: { postMessage: (m) => got.push([m.peer, text(m.state)]) } };
  };
  const [a, b, c] = [tab("a"), tab("b"), tab("c")];
  const showing = new Set([a, b]);
  const router = new PresenceRouter(core, () => showing);
  return { engine, a, b, c, showing, router };
}

test("the tabs of one app see each other's presence as peers; the engine shares the last one set", () => {
  const { engine, a, b, c, showing, router } = setup();
  router.set(a, URL, bytes("A"));
  router.set(b, URL, bytes("B"));
  assert.deepEqual(b.got, [["tab:1", "A"]], "b sees a");
  assert.deepEqual(a.got, [["tab:2", "B"]], "a sees b");
  assert.deepEqual(engine, [[URL, "A"], [URL, "B"]], "the relay's peers see the last one set");

  // A tab that opens the doc later hears of both.
  showing.add(c);
  router.opened(c, URL);
  assert.deepEqual(c.got, [["tab:1", "A"], ["tab:2", "B"]]);
});

test("when the tab whose presence the engine shares clears it or leaves, the one set before takes over; then none", () => {
  const { engine, a, b, router } = setup();
  router.set(a, URL, bytes("A"));
  router.set(b, URL, bytes("B"));
  engine.length = 0;
  router.set(a, URL, null); // not the shared one: the engine keeps B
  assert.deepEqual(engine, []);
  assert.deepEqual(b.got.at(-1), ["tab:1", null], "b sees a gone");
  router.set(a, URL, bytes("A2"));
  router.leave(a); // the shared one leaves: B again
  assert.deepEqual(engine, [[URL, "A2"], [URL, "B"]]);
  router.leave(b);
  assert.deepEqual(engine.at(-1), [URL, null], "nobody left: no presence");
  assert.deepEqual(a.got.at(-1), ["tab:2", null]);
});
