// The page's side of messages and requests (`DocMessages`) and worker
// mode's routing (`MessageRouter`), over a stand-in engine that records
// what it was asked. The browser end to end is tests/e2e/messages.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DocMessages, MAX_MESSAGE_JSON_BYTES, MAX_RUNNING_HANDLERS } from "../.test-build/messages.js";
import { MessageRouter } from "../.test-build/worker-messages.js";

const URL = "syncline:doc#key";
const utf8 = { encode: (v) => new TextEncoder().encode(JSON.stringify(v)), decode: (b) => JSON.parse(new TextDecoder().decode(b)) };

/** A stand-in engine: records calls; `request` hands out ids r1, r2... */
function fakeCore() {
  const calls = [];
  let next = 1;
  return {
    calls,
    sendMessage: (url, bytes) => (calls.push(["sendMessage", url, utf8.decode(bytes)]), true),
    request: (url, method, payload, timeoutMs) => (calls.push(["request", url, method, utf8.decode(payload), timeoutMs]), `r${next++}`),
    serve: (url, method) => void calls.push(["serve", url, method]),
    unserve: (url, method) => void calls.push(["unserve", url, method]),
    reply: (url, to, id, result, error) => void calls.push(["reply", url, to, id, result && utf8.decode(result), error]),
  };
}

function messagesOver(core, connected = () => true) {
  const errors = [];
  const host = { withCore: (call) => call(core), reportError: (error) => errors.push(error.code), connected };
  return { messages: new DocMessages(host, URL), errors };
}

test("a request settles with its reply's JSON, or its error; a closed repo fails what still waits", async () => {
  const core = fakeCore();
  const { messages } = messagesOver(core);
  const first = messages.request("add", { x: 1 });
  const second = messages.request("add", 2, { timeoutMs: 5 });
  const third = messages.request("add");
  assert.deepEqual(core.calls, [
    ["request", URL, "add", { x: 1 }, 10_000],
    ["request", URL, "add", 2, 5],
    ["request", URL, "add", null, 10_000],
  ]);
  messages.replied("r2", undefined, { code: "NoServer", message: "nobody" });
  messages.replied("r1", utf8.encode({ sum: 1 }), undefined);
  assert.doesNotThrow(() => messages.replied("r1", utf8.encode("twice"), undefined), "a second reply is dropped");
  assert.deepEqual(await first, { sum: 1 });
  await assert.rejects(second, { code: "NoServer" });
  messages.closed(Object.assign(new Error("closed"), { code: "Closed" }));
  await assert.rejects(third, { code: "Closed" });
});

test("a served request runs its handler once and replies with its result or its error message", async () => {
  const core = fakeCore();
  const { messages } = messagesOver(core);
  const stop = messages.serve("double", (n, from) => (n === 0 ? Promise.reject(new Error("zero")) : { n: n * 2, from }));
  assert.throws(() => messages.serve("double", () => 0), { code: "BadOption" });
  messages.requested("peer", "q1", "double", utf8.encode(21));
  messages.requested("peer", "q2", "double", utf8.encode(0));
  messages.requested("peer", "q3", "double", new TextEncoder().encode("not json {"));
  messages.requested("peer", "q4", "triple", utf8.encode(1));
  await new Promise((resolve) => setImmediate(resolve));
  const replies = core.calls.filter((c) => c[0] === "reply").sort((a, b) => a[3].localeCompare(b[3]));
  assert.deepEqual(replies, [
    ["reply", URL, "peer", "q1", { n: 42, from: "peer" }, undefined],
    ["reply", URL, "peer", "q2", undefined, "zero"],
    ["reply", URL, "peer", "q3", undefined, "the request's payload is not JSON text"],
    ["reply", URL, "peer", "q4", undefined, '"triple" is no longer served here'],
  ]);
  stop();
  stop();
  assert.deepEqual(core.calls.filter((c) => c[0] === "serve" || c[0] === "unserve"), [["serve", URL, "double"], ["unserve", URL, "double"]]);
});

test("messages: JSON in and out, the size limit checked before sending, a non-JSON message reported and dropped", () => {
  const core = fakeCore();
  const { messages, errors } = messagesOver(core);
  const heard = [];
  const stop = messages.onMessage((message, from) => heard.push([message, from]));
  assert.equal(messages.broadcast({ a: [1, "é"] }), true);
  assert.throws(() => messages.broadcast("x".repeat(MAX_MESSAGE_JSON_BYTES)), { code: "MessageTooLarge" });
  assert.equal(core.calls.length, 1, "the large one was never handed to the engine");
  messages.received("p1", utf8.encode({ hi: true }));
  messages.received("p2", new Uint8Array([0xff, 0x00]));
  stop();
  messages.received("p1", utf8.encode("after"));
  assert.deepEqual(heard, [[{ hi: true }, "p1"]]);
  assert.deepEqual(errors, ["BadMessage"]);
});

test("worker routing: messages to every tab of the doc, a request to the tab serving longest, the answer to the asker only; a tab that leaves stops serving", () => {
  const core = fakeCore();
  const tab = (name) => ({ name, got: [], port: { postMessage: (m) => tab.all.get(name).got.push(m) } });
  tab.all = new Map();
  const [t1, t2, t3] = ["t1", "t2", "t3"].map((name) => {
    const t = tab(name);
    tab.all.set(name, t);
    return t;
  });
  const router = new MessageRouter(core, () => [t1, t2]);
  router.call(t2, { op: "serve", url: URL, method: "m" });
  router.call(t3, { op: "serve", url: URL, method: "m" });
  assert.deepEqual(core.calls, [["serve", URL, "m"]], "the engine serves once");
  const id = router.call(t1, { op: "request", url: URL, method: "other", payload: utf8.encode(1), timeoutMs: 9 });

  router.event({ type: "message", url: URL, from: "p", bytes: utf8.encode("hi") });
  router.event({ type: "request", url: URL, from: "p", id: "q", method: "m", payload: utf8.encode(2) });
  router.event({ type: "reply", url: URL, id, result: utf8.encode("done") });
  assert.deepEqual(t1.got.map((m) => m.t), ["message", "answer"]);
  assert.deepEqual(t2.got.map((m) => m.t), ["message", "request"]);
  assert.deepEqual(t3.got, []);

  router.leave(t2);
  router.event({ type: "request", url: URL, from: "p", id: "q2", method: "m", payload: utf8.encode(3) });
  assert.deepEqual(t3.got.map((m) => m.t), ["request"], "the next server takes over");
  router.call(t3, { op: "unserve", url: URL, method: "m" });
  assert.deepEqual(core.calls.at(-1), ["unserve", URL, "m"], "the last server gone: the engine stops serving");
  router.event({ type: "request", url: URL, from: "p", id: "q3", method: "m", payload: utf8.encode(4) });
  assert.deepEqual(core.calls.at(-1), ["reply", URL, "p", "q3", undefined, '"m" is no longer served here']);
});

test("a serving page runs at most MAX_RUNNING_HANDLERS handlers at once; more requests are answered busy at once", async () => {
  const core = fakeCore();
  const { messages } = messagesOver(core);
  const finish = [];
  messages.serve("slow", () => new Promise((resolve) => finish.push(resolve)));
  for (let i = 0; i <= MAX_RUNNING_HANDLERS; i++) messages.requested("peer", `q${i}`, "slow", utf8.encode(i));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(finish.length, MAX_RUNNING_HANDLERS, "the one over the limit never reached the handler");
  const busy = core.calls.filter((c) => c[0] === "reply");
  assert.equal(busy.length, 1);
  assert.equal(busy[0][3], `q${MAX_RUNNING_HANDLERS}`);
  assert.match(busy[0][5], /^busy: /);
  finish[0]("done");
  await new Promise((resolve) => setImmediate(resolve));
  messages.requested("peer", "again", "slow", utf8.encode(0));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(finish.length, MAX_RUNNING_HANDLERS + 1, "a finished handler makes room");
});

test("method names: empty or over 256 bytes of UTF-8 are refused at once, in both modes", async () => {
  const core = fakeCore();
  const { messages } = messagesOver(core);
  assert.throws(() => messages.serve("", () => 0), { code: "BadMethod" });
  assert.throws(() => messages.serve("é".repeat(129), () => 0), { code: "BadMethod" });
  await assert.rejects(messages.request("x".repeat(257)), { code: "BadMethod" });
  assert.deepEqual(core.calls, [], "nothing reached the engine");
  assert.doesNotThrow(() => messages.serve("é".repeat(128), () => 0));
});

test("worker mode: broadcast says whether the connection is open; a serve the worker refuses is not kept", async () => {
  let open = false;
  const core = {
    ...fakeCore(),
    sendMessage: () => Promise.resolve(false),
    serve: () => Promise.reject(Object.assign(new Error("refused"), { code: "DocNotFound" })),
  };
  const { messages, errors } = messagesOver(core, () => open);
  assert.equal(messages.broadcast("hi"), false, "offline: not sent");
  open = true;
  assert.equal(messages.broadcast("hi"), true);
  messages.serve("m", () => 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(errors, ["DocNotFound"]);
  assert.doesNotThrow(() => messages.serve("m", () => 2), "the refused handler was dropped, so serving again is allowed");
});

test("worker routing: a failed request's error goes to its asker with its code; a tab that leaves is sent no answer", () => {
  const core = fakeCore();
  const tabs = ["t1", "t2"].map((name) => ({ name, got: [], port: { postMessage: (m) => tabs.find((t) => t.name === name).got.push(m) } }));
  const [t1, t2] = tabs;
  const router = new MessageRouter(core, () => tabs);
  const failed = router.call(t1, { op: "request", url: URL, method: "m", payload: utf8.encode(1), timeoutMs: 9 });
  const dropped = router.call(t2, { op: "request", url: URL, method: "m", payload: utf8.encode(2), timeoutMs: 9 });
  router.event({ type: "reply", url: URL, id: failed, error: Object.assign(new Error("nobody"), { code: "NoServer" }) });
  assert.deepEqual(t1.got, [{ t: "answer", url: URL, id: failed, error: { code: "NoServer", message: "nobody" } }]);
  router.leave(t2);
  router.event({ type: "reply", url: URL, id: dropped, result: utf8.encode("late") });
  assert.deepEqual(t2.got, [], "the tab is gone: nothing is posted to it");
});
