// The automerge-paper editing trace, as the benchmark runners (run.mjs,
// worker-bench.mjs) use it: read from the traces folder, and saved by
// `@automerge/automerge` 3.5 with the same grouping as the Syncline side,
// cached in .build/traces.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";

/** The trace in `dir`: its edits per transaction, start and end text. */
export function loadTrace(dir) {
  const file = join(resolve(dir), "automerge-paper.json.gz");
  if (!existsSync(file)) throw new Error(`no trace at ${file}: pass --traces DIR`);
  const trace = JSON.parse(gunzipSync(readFileSync(file)).toString("utf8"));
  const txns = trace.txns.map((t) => t.patches.map(([pos, del, ins]) => [pos, del, ins]));
  return { txns, endContent: trace.endContent, startContent: trace.startContent };
}

/** The trace as an Automerge 3.5 doc, `batch` edits per change, saved under `build`/traces (once): its path. */
export async function automergeBytes(build, trace, batch) {
  const out = join(build, "traces", `automerge-paper-${batch}.automerge`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  console.error("building the Automerge doc of the trace (once, cached)...");
  const A = await import("@automerge/automerge");
  let doc = A.from({ text: trace.startContent });
  const edits = trace.txns.flat();
  for (let i = 0; i < edits.length; i += batch) {
    doc = A.change(doc, (d) => {
      for (const [pos, del, ins] of edits.slice(i, i + batch)) A.splice(d, ["text"], pos, del, ins);
    });
  }
  if (doc.text !== trace.endContent) throw new Error("Automerge replay did not reach endContent");
  writeFileSync(out, A.save(doc));
  return out;
}
