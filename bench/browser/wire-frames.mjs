// What the `diverge` benchmark's WebSocket messages carry (`--frames`): the
// pages' frames as Chromium's DevTools protocol reports them, summed by kind.
//   Syncline: the postcard frames of docs/protocol.md, by variant, with the
//     number of deltas they carry and those deltas' sealed bytes.
//   automerge-repo: its CBOR messages by `type`, and for sync messages the
//     Automerge changes inside (count and bytes) and the rest of the message.
import * as Automerge from "@automerge/automerge";
import { cbor } from "@automerge/automerge-repo";

const CLIENT = ["Hello", "Subscribe", "Push", "Ping", "Unsubscribe", "Authorize", "Presence", "Snapshot", "SignedPush", "SignedSnapshot", "SignedPresence"];
const RELAY = ["Welcome", "Error", "Deltas", "Ack", "Pong", "Presence", "DocError", "Tentative", "Committed"];

/** A postcard reader over one frame. */
function reader(b) {
  let i = 0;
  const r = {
    varint() {
      let x = 0, shift = 0;
      for (;;) {
        const byte = b[i++];
        x += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return x;
        shift += 7;
      }
    },
    skip(n) {
      i += n;
    },
    bytes() {
      const n = r.varint();
      i += n;
      return n;
    },
  };
  return r;
}

/** Deltas and their sealed bytes in one Syncline frame (sent by the client when `up`). */
function synclineDeltas(up, b) {
  const r = reader(b);
  const kind = r.varint();
  const name = (up ? CLIENT : RELAY)[kind] ?? `#${kind}`;
  let deltas = 0, deltaBytes = 0;
  if ((up && (kind === 2 || kind === 8)) || (!up && (kind === 7 || kind === 2))) {
    r.skip(16); // doc
    deltas = r.varint();
    for (let k = 0; k < deltas; k++) {
      if (!up && kind === 2) r.varint(); // seq
      r.skip(32); // id
      deltaBytes += r.bytes();
    }
  } else if (up && kind === 9) {
    r.skip(16);
    r.varint(); // covers_seq
    r.skip(32);
    deltas = 1;
    deltaBytes = r.bytes();
  }
  return { name, deltas, deltaBytes };
}

/** automerge-repo message type, and the changes of a sync message. */
function automergeMessage(b) {
  const m = cbor.decode(b);
  let changes = 0, changeBytes = 0;
  if (m.type === "sync" || m.type === "request") {
    const s = Automerge.decodeSyncMessage(m.data);
    changes = s.changes.length;
    for (const c of s.changes) changeBytes += c.length;
  }
  return { name: m.type, deltas: changes, deltaBytes: changeBytes };
}

/**
 * Starts recording `page`'s WebSocket frames. `classify(url)` names the
 * system of a socket ("syncline" | "automerge" | undefined to skip). The
 * returned function stops and returns the raw frames.
 */
export async function recordFrames(page, classify) {
  const cdp = await page.context().newCDPSession(page);
  const sockets = new Map();
  const frames = [];
  cdp.on("Network.webSocketCreated", ({ requestId, url }) => sockets.set(requestId, classify(url)));
  const on = (up) => ({ requestId, response }) => {
    const system = sockets.get(requestId);
    if (!system || response.opcode !== 2) return;
    frames.push({ system, up, bytes: Buffer.from(response.payloadData, "base64") });
  };
  cdp.on("Network.webSocketFrameSent", on(true));
  cdp.on("Network.webSocketFrameReceived", on(false));
  await cdp.send("Network.enable");
  return async () => {
    await cdp.send("Network.disable");
    await cdp.detach();
    return frames;
  };
}

/** Frames of one system summed by direction and kind: [{dir, kind, frames, bytes, deltas, deltaBytes}]. */
export function summarizeFrames(system, frames) {
  const rows = new Map();
  for (const fr of frames.filter((x) => x.system === system)) {
    const k = system === "syncline" ? synclineDeltas(fr.up, fr.bytes) : automergeMessage(fr.bytes);
    const key = `${fr.up ? "up" : "down"} ${k.name}`;
    const row = rows.get(key) ?? { dir: fr.up ? "up" : "down", kind: k.name, frames: 0, bytes: 0, deltas: 0, deltaBytes: 0 };
    row.frames++;
    row.bytes += fr.bytes.length;
    row.deltas += k.deltas;
    row.deltaBytes += k.deltaBytes;
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => a.dir.localeCompare(b.dir) || b.bytes - a.bytes);
}
