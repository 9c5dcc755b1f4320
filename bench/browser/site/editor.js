// The CodeMirror keystroke benchmark's page (cm-keystroke.mjs): one
// CodeMirror 6 editor bound either with syncline/codemirror (Syncline,
// through syncline-relay) or with y-codemirror.next (Yjs, through a
// y-websocket server). Page A types; page B timestamps each keystroke's
// arrival in its editor (an update listener: the editor's DOM is updated
// when it runs). Times are on a clock shared by the pages of one machine.
import { EditorView } from "@codemirror/view";
import { createRepo, Text } from "syncline";
import { syncline } from "syncline/codemirror";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { yCollab } from "y-codemirror.next";

const wallMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (test, what, timeoutMs = 20_000) => {
  const end = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
};

const state = { view: null, arrivals: [], typed: [], dispatched: [], stop: [], sockets: [] };

/** Logs the page's WebSocket sends and receives (time, bytes), to split the latency into legs. */
function watchSockets() {
  const Native = window.WebSocket;
  function Watched(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("message", (e) => state.sockets.push({ dir: "recv", at: wallMs(), bytes: e.data.byteLength ?? e.data.size ?? e.data.length }));
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      state.sockets.push({ dir: "send", at: wallMs(), bytes: data.byteLength ?? data.size ?? data.length });
      return send(data);
    };
    return ws;
  }
  Watched.prototype = Native.prototype;
  Object.assign(Watched, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Watched;
}
watchSockets();

/** Records, in page B, when the editor's text first reached each length (the text only grows: one character per keystroke). */
const arrivals = EditorView.updateListener.of((update) => {
  if (!update.docChanged) return;
  const t = wallMs();
  const length = update.state.doc.length;
  while (state.arrivals.length < length) state.arrivals.push(t);
});

function mount(extensions, doc) {
  state.view = new EditorView({ doc, extensions: [...extensions, arrivals], parent: document.getElementById("editor") });
}

/**
 * Sets up one side. Syncline: page A creates the document (an empty Text
 * at `note`) and returns its URL; B opens it. Yjs: both join `room`.
 */
async function setup({ system, role, relay, url, room, name, worker = false }) {
  const user = { name, color: role === "a" ? "#c0392b" : "#2980b9" };
  if (system === "syncline") {
    const repo = await createRepo({ relay, name: `cm-bench-${role}-${crypto.randomUUID()}`, worker });
    if (repo.status.mode !== (worker ? "worker" : "page")) throw new Error(`asked for worker: ${worker}, runs in the ${repo.status.mode}: ${repo.status.warning}`);
    state.stop.push(() => repo.close());
    let doc;
    if (role === "a") {
      doc = await repo.create({});
      doc.change((d) => void (d.note = new Text("")), { undoable: false });
      await repo.flush();
      await until(() => repo.status.connection === "open" && repo.status.pending === 0, "A synced");
    } else {
      doc = await repo.open(url);
      await until(() => typeof doc.value.note === "string", "the note in B");
    }
    mount([syncline(doc, ["note"], { user })], doc.value.note);
    return { url: doc.url };
  }
  const ydoc = new Y.Doc();
  const provider = new WebsocketProvider(relay, room, ydoc);
  state.stop.push(() => provider.destroy());
  await until(() => provider.synced, "y-websocket synced");
  const ytext = ydoc.getText("note");
  provider.awareness.setLocalStateField("user", user);
  mount([yCollab(ytext, provider.awareness)], ytext.toString());
  return {};
}

/** Page A: types `text` one character per keystroke at the end, `gapMs` apart, as the editor's own input transactions. */
async function type({ text, gapMs }) {
  state.view.focus();
  let next = performance.now();
  for (const ch of text) {
    next += gapMs;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    const at = state.view.state.doc.length;
    state.typed.push(wallMs());
    state.view.dispatch({ changes: { from: at, insert: ch }, selection: { anchor: at + 1 }, userEvent: "input.type", scrollIntoView: true });
    state.dispatched.push(wallMs()); // the synchronous part: the editor's update and the binding's own work in it
  }
  // Whether the editor had focus: each binding shares the caret only while it has.
  return { typed: state.typed.length, hasFocus: state.view.hasFocus };
}

async function waitLength(length, timeoutMs = 20_000) {
  await until(() => state.view.state.doc.length >= length, `${length} characters`, timeoutMs);
  return state.view.state.doc.toString();
}

window.bench = {
  setup,
  type,
  waitLength,
  typed: () => state.typed,
  dispatched: () => state.dispatched,
  arrivals: () => state.arrivals,
  sockets: () => state.sockets,
  text: () => state.view.state.doc.toString(),
  close: async () => {
    state.view?.destroy();
    for (const stop of state.stop) await stop();
  },
};
window.benchReady = true;
