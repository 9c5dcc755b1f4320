// Inclusive time per function in a .cpuprofile (from `--profile`), for the
// functions whose name matches a pattern: `node profile-summary.mjs FILE [REGEX] [TOP]`.
import { readFileSync } from "node:fs";

const [file, pattern = "syncline|automerge::|Core|change|flush", top = "40"] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, "utf8"));
const re = new RegExp(pattern);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map();
prof.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const name = (n) => n.callFrame.functionName.replace(/::h[0-9a-f]{16}$/, "") || "(anonymous)";
const incl = new Map();
let total = 0;
for (const [id, us] of selfUs) {
  total += us;
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = name(byId.get(cur));
    if (seen.has(key)) continue; // count recursion once
    seen.add(key);
    incl.set(key, (incl.get(key) ?? 0) + us);
  }
}
console.log(`total sampled ${(total / 1000).toFixed(0)} ms; inclusive time of functions matching /${pattern}/:`);
for (const [k, us] of [...incl].filter(([k]) => re.test(k)).sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k.slice(0, 160)}`);
}
