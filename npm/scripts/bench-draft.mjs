// Bulk edits in one change: time to record them, for 1k, 10k and 100k
// items. Each step is 10× the last, so linear growth shows as ~10× per row
// (quadratic as ~100×). Runs on the compiled JS: `npm run pretest` first,
// then `node scripts/bench-draft.mjs [sizes...]` (default 1000 10000 100000).
// Medians of 5 runs after one warm-up; no wasm involved.
import { recordChange } from "../.test-build/draft.js";

const deepFreeze = (v) => {
  if (v && typeof v === "object") {
    Object.freeze(v);
    Object.values(v).forEach(deepFreeze);
  }
  return v;
};

const scenarios = {
  "push n items (one push each)": (n) => [{ items: [] }, (d) => {
    for (let i = 0; i < n; i++) d.items.push({ id: i, done: false });
  }],
  "set n keys of a map": (n) => [{ map: {} }, (d) => {
    for (let i = 0; i < n; i++) d.map[`k${i}`] = i;
  }],
  "set a field in each of n list elements": (n) => [{ items: Array.from({ length: n }, (_, i) => ({ id: i, done: false })) }, (d) => {
    for (let i = 0; i < n; i++) d.items[i].done = true;
  }],
  "unshift one, then set a field in each of n elements": (n) => [{ items: Array.from({ length: n }, (_, i) => ({ id: i, done: false })) }, (d) => {
    for (let i = 0; i < n; i++) d.items[i].done = true;
    d.items.unshift({ id: -1, done: false });
    for (let i = 1; i <= n; i++) d.items[i].id += 1;
  }],
};

const sizes = process.argv.slice(2).map(Number);
if (sizes.length === 0) sizes.push(1_000, 10_000, 100_000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`| scenario | ${sizes.map((n) => `${n.toLocaleString("en")} items`).join(" | ")} |`);
console.log(`| --- | ${sizes.map(() => "---").join(" | ")} |`);
for (const [name, make] of Object.entries(scenarios)) {
  const cells = [];
  for (const n of sizes) {
    const [base, fn] = make(n);
    const frozen = deepFreeze(structuredClone(base));
    const times = [];
    for (let rep = 0; rep < 6; rep++) {
      const t0 = performance.now();
      const ops = recordChange(frozen, fn);
      const ms = performance.now() - t0;
      if (ops.length < n) throw new Error(`${name}: ${ops.length} ops for ${n} items`);
      // A quadratic run at 100k takes many seconds: its first sample is enough to show it.
      if (rep > 0 || ms > 5_000) times.push(ms);
      if (ms > 5_000) break;
    }
    cells.push(`${median(times).toFixed(1)} ms`);
  }
  console.log(`| ${name} | ${cells.join(" | ")} |`);
}
