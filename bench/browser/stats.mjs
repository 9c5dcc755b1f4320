// What the benchmark runners (run.mjs, worker-bench.mjs, cm-keystroke.mjs)
// share besides serving and launching (serve.mjs): their `--name value`
// flags and the statistics they report.

/** `--name value`, `--name=value` and bare `--name` (= "true") flags of `args`. */
export function parseFlags(args) {
  const flags = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(args[i]);
    if (!m) throw new Error(`unexpected argument ${args[i]}`);
    flags[m[1]] = m[2] ?? (args[i + 1] && !args[i + 1].startsWith("--") ? args[++i] : "true");
  }
  return flags;
}

/** The `p`th percentile of `xs` (nearest rank); NaN for none. */
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const median = (xs) => pct(xs, 50);
