// The cold-open pages' shared part (site/main.js, site-worker/main.js):
// the trace written into an encrypted Syncline doc through the raw `Core`,
// and a look at the value record compaction stores beside its snapshot.

export const fromHex = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));

/**
 * Writes the trace's edits into a Syncline doc through the engine's own
 * command interface (`Core`, the wasm glue's class behind `createRepo`, its
 * wasm already instantiated; ops as JSON text): `batch` consecutive edits
 * per change (`splice_text` ops), a flush every 50 changes. Returns the doc
 * URL once everything is flushed, the time it took and the text's length.
 */
export async function writeTrace(Core, { name, keyHex, edits, batch }) {
  const core = await Core.open(name, undefined, () => {}, fromHex(keyHex));
  const url = core.create({});
  core.change(url, JSON.stringify([{ op: "put_text", obj: [], key: "text", value: "" }]));
  const t0 = performance.now();
  for (let i = 0; i < edits.length; i += batch) {
    const ops = [];
    for (const [pos, del, ins] of edits.slice(i, i + batch)) ops.push({ op: "splice_text", obj: ["text"], index: pos, delete: del, insert: ins });
    core.change(url, JSON.stringify(ops));
    if (i % (50 * batch) === 0) {
      await core.flush();
      if (i % (400 * batch) === 0) console.info(`setup: ${i} edits, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  await core.flush();
  const ms = performance.now() - t0;
  const length = core.value(url).text.length;
  core.close();
  return { url, ms, length };
}

/** The sealed value record of `url`'s doc in the repo's IndexedDB (outside any timing). */
export async function storedValue(name, url) {
  const db = await new Promise((resolve, reject) => {
    const request = indexedDB.open(`syncline:${name}`);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  try {
    const id = url.slice("syncline:".length).split("#")[0];
    return await new Promise((resolve, reject) => {
      const request = db.transaction("values").objectStore("values").get(id);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

export const sameBytes = (a, b) => (!a || !b ? a === b : a.length === b.length && a.every((x, i) => x === b[i]));
