// Two builds of Syncline side by side, in one run: `node compare.mjs
// --before SITE --after SITE [--rounds N] [--only a,b]`. Each SITE is a
// bundle of the benchmark page (`SYNCLINE_BENCH_NPM_SRC=... SYNCLINE_BENCH_GLUE=...
// SYNCLINE_BENCH_SITE=... npx vite build --config vite.config.mjs`, see
// docs/benchmarks.md, issue 21). Every round runs each scenario once per build,
// alternating which goes first, on the same machine, relay and Chromium;
// the table gives, per figure, the median over rounds of each run's
// Syncline figure (of an even count, the lower middle one), and the change
// from before to after.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sites = { before: resolve(arg("before")), after: resolve(arg("after")) };
const rounds = Number(arg("rounds", 3));
const only = arg("only")?.split(",");

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.ceil(xs.length / 2) - 1];

// Each scenario's arguments and the Syncline figures read from its raw samples.
const scenarios = [
  {
    name: "change-patch",
    args: ["--size", "10000", "--changes", "1000", "--warmup", "50"],
    figures: (r) => ({ "change → patch, p50 (ms; lower is better)": median(r.raw.syncline) }),
  },
  {
    name: "durable",
    args: ["--op", "set", "--changes", "2000", "--rounds", "5"],
    figures: (r) => ({ "durable changes/s, set (higher is better)": median(r.raw.syncline.map((x) => (r.args.changes / x.total) * 1000)) }),
  },
  {
    name: "durable",
    label: "durable-push",
    args: ["--op", "push", "--changes", "2000", "--rounds", "5"],
    figures: (r) => ({ "durable changes/s, push (higher is better)": median(r.raw.syncline.map((x) => (r.args.changes / x.total) * 1000)) }),
  },
  {
    name: "latency",
    args: ["--count", "100", "--gap", "100"],
    figures: (r) => ({ "A → B, p50 (ms; lower is better)": median(r.raw.syncline) }),
  },
  {
    name: "cold-open",
    args: ["--batch", "100", "--reps", "3"],
    figures: (r) => ({
      "cold open, time to value (ms; lower is better)": median(r.raw.samples.map((s) => s.syncline.total)),
      "cold open, time to editable (ms; lower is better)": median(r.raw.samples.map((s) => s.syncline.editable)),
      "wasm instantiate (ms; lower is better)": median(r.raw.samples.map((s) => s.wasm.syncline)),
    }),
  },
].filter((s) => !only || only.includes(s.label ?? s.name));

const results = {}; // figure -> { before: [], after: [] }
const load = [loadavg()[0]];
for (let round = 0; round < rounds; round++) {
  for (const scenario of scenarios) {
    const order = round % 2 === 0 ? ["before", "after"] : ["after", "before"];
    for (const build of order) {
      const run = spawnSync(process.execPath, [join(here, "run.mjs"), scenario.name, ...scenario.args, "--site", sites[build]], { cwd: here, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      if (run.status !== 0) throw new Error(`${scenario.name} (${build}) failed:\n${run.stdout}`);
      const file = /raw samples: (.*)$/m.exec(run.stdout)?.[1];
      const report = JSON.parse(readFileSync(file, "utf8"));
      for (const [figure, value] of Object.entries(scenario.figures(report))) {
        results[figure] ??= { before: [], after: [] };
        results[figure][build].push(value);
        console.error(`round ${round + 1} ${build}: ${figure} = ${value.toFixed(2)}`);
      }
      load.push(loadavg()[0]);
    }
  }
}

console.log(`\n${rounds} rounds, builds alternating; 1-minute load average ${Math.min(...load).toFixed(2)}–${Math.max(...load).toFixed(2)}`);
console.log(`before: ${sites.before}\nafter: ${sites.after}\n`);
console.log("| figure (Syncline) | before | after | change |");
console.log("| --- | --- | --- | --- |");
for (const [figure, { before, after }] of Object.entries(results)) {
  const b = median(before), a = median(after);
  const all = (xs) => xs.map((x) => x.toFixed(x < 10 ? 3 : 1)).join(", ");
  console.log(`| ${figure} | ${b.toFixed(b < 10 ? 3 : 1)} (${all(before)}) | ${a.toFixed(a < 10 ? 3 : 1)} (${all(after)}) | ${(((a - b) / b) * 100).toFixed(1)}% |`);
}
