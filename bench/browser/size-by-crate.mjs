// Where the bytes of a wasm module go, per crate: `node size-by-crate.mjs
// MODULE.wasm [--top N] [--crate NAME]`. MODULE must keep its name section
// (wasm-bindgen without --remove-name-section); the shipped module is the
// same code without it.
//
// Each function body is charged to a crate by its demangled name: the first
// path segment of the name, or for `<Type as Trait>::f` the type's crate
// (the trait's when the type is from core/alloc/std), or, for a std item
// such as `core::ptr::drop_in_place<automerge::Foo>`, the first non-std
// crate in its generic arguments. Gzip per crate is `gzip -9` (zlib level 9)
// of that crate's function bodies concatenated, so the column sums to a
// little more than the module's own gzip (each part is compressed alone).
// `--crate NAME` lists that crate's largest functions instead.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a) && args[args.indexOf(a) - 1] !== "--crate");
const top = Number(args[args.indexOf("--top") + 1]) || 40;
const only = args.includes("--crate") ? args[args.indexOf("--crate") + 1] : undefined;
if (!file) {
  console.error("usage: node size-by-crate.mjs MODULE.wasm [--top N] [--crate NAME]");
  process.exit(2);
}
const bytes = readFileSync(file);

let pos = 8;
const u32 = () => {
  let result = 0, shift = 0, b;
  do {
    b = bytes[pos++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return result;
};
const name = () => {
  const len = u32();
  const s = bytes.toString("utf8", pos, pos + len);
  pos += len;
  return s;
};

let importedFuncs = 0;
const bodies = []; // [start, end) of each defined function's body
const sections = [];
let names = new Map();
let data = [];
while (pos < bytes.length) {
  const id = bytes[pos++];
  const size = u32();
  const start = pos, end = pos + size;
  let label = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "datacount", "tag"][id] ?? `section ${id}`;
  if (id === 0) {
    const custom = name();
    label = `custom "${custom}"`;
    if (custom === "name") {
      while (pos < end) {
        const sub = bytes[pos++];
        const subSize = u32();
        const subEnd = pos + subSize;
        if (sub === 1) {
          const count = u32();
          for (let i = 0; i < count; i++) {
            const index = u32();
            names.set(index, name());
          }
        }
        pos = subEnd;
      }
    }
  } else if (id === 2) {
    const count = u32();
    for (let i = 0; i < count; i++) {
      name();
      name();
      const kind = bytes[pos++];
      if (kind === 0) {
        importedFuncs++;
        u32();
      } else if (kind === 1) {
        pos++;
        const flags = u32();
        u32();
        if (flags & 1) u32();
      } else if (kind === 2) {
        const flags = u32();
        u32();
        if (flags & 1) u32();
      } else if (kind === 3) pos += 2;
      else if (kind === 4) {
        pos++;
        u32();
      }
    }
  } else if (id === 10) {
    const count = u32();
    for (let i = 0; i < count; i++) {
      const len = u32();
      bodies.push([pos, pos + len]);
      pos += len;
    }
  } else if (id === 11) {
    data = bytes.subarray(start, end);
  }
  sections.push({ label, size: end - start });
  pos = end;
}

const STD = new Set(["core", "alloc", "std", "hashbrown", "dlmalloc"]);
function crateOf(fn) {
  // std is built with v0 mangling: `core[c5930c85a12de822]::fmt` is `core::fmt`.
  const n = fn.replace(/::h[0-9a-f]{16}$/, "").replace(/\[[0-9a-f]+\]/g, "");
  const candidates = [];
  if (n.startsWith("<")) {
    for (const part of n.slice(1).split(" as ", 2)) {
      const m = /^[&*[(]*(?:mut |dyn |const )?([a-z_][a-z0-9_]*)::/.exec(part);
      if (m) candidates.push(m[1]);
    }
  } else {
    const m = /^([a-z_][a-z0-9_]*)::/.exec(n);
    if (m) candidates.push(m[1]);
  }
  for (const c of candidates) if (!STD.has(c)) return c;
  for (const m of n.matchAll(/[<, ]([a-z_][a-z0-9_]*)::/g)) if (!STD.has(m[1])) return m[1];
  if (candidates.length) return candidates[0];
  if (/^(__wbg|__wbindgen|__externref|wasm_bindgen)/.test(n)) return "wasm_bindgen";
  // wasm-bindgen's exported shims keep the JS names (core_change, ...).
  if (/^[a-z]+_[a-zA-Z]+$/.test(n)) return "(exports)";
  return "(other)";
}

const perCrate = new Map();
bodies.forEach(([s, e], i) => {
  const fn = names.get(importedFuncs + i) ?? `(function ${importedFuncs + i})`;
  const crate = crateOf(fn);
  let entry = perCrate.get(crate);
  if (!entry) perCrate.set(crate, (entry = { raw: 0, parts: [], fns: [] }));
  entry.raw += e - s;
  entry.parts.push(bytes.subarray(s, e));
  entry.fns.push({ fn, size: e - s });
});

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const fmt = (x) => x.toLocaleString("en");
const moduleGzip = gz(bytes);
if (only) {
  const entry = perCrate.get(only);
  if (!entry) throw new Error(`no functions charged to ${only}`);
  console.log(`| ${only}: function | raw |`);
  console.log(`| --- | --- |`);
  for (const { fn, size } of entry.fns.sort((a, b) => b.size - a.size).slice(0, top)) console.log(`| \`${fn.replace(/\|/g, "\\|")}\` | ${fmt(size)} B |`);
  process.exit(0);
}

console.log(`${file}: ${fmt(bytes.length)} B raw, ${fmt(moduleGzip)} B gzip -9 (with its name section)`);
console.log(`\n| section | raw |\n| --- | --- |`);
for (const s of sections.sort((a, b) => b.size - a.size)) console.log(`| ${s.label} | ${fmt(s.size)} B |`);
const rows = [...perCrate].map(([crate, e]) => ({ crate, raw: e.raw, gzip: gz(Buffer.concat(e.parts)), count: e.parts.length }));
rows.push({ crate: "(data segments: string literals, tables)", raw: data.length, gzip: gz(data), count: 0 });
rows.sort((a, b) => b.gzip - a.gzip);
const totalRaw = rows.reduce((a, r) => a + r.raw, 0), totalGz = rows.reduce((a, r) => a + r.gzip, 0);
console.log(`\n| crate | functions | raw | gzip -9 alone | share of gzip |\n| --- | --- | --- | --- | --- |`);
let rest = { raw: 0, gzip: 0, count: 0, crates: 0 };
rows.forEach((r, i) => {
  if (i < top) console.log(`| ${r.crate} | ${r.count} | ${fmt(r.raw)} B | ${fmt(r.gzip)} B | ${((100 * r.gzip) / totalGz).toFixed(1)}% |`);
  else {
    rest.raw += r.raw;
    rest.gzip += r.gzip;
    rest.count += r.count;
    rest.crates++;
  }
});
if (rest.crates) console.log(`| ${rest.crates} more crates | ${rest.count} | ${fmt(rest.raw)} B | ${fmt(rest.gzip)} B | ${((100 * rest.gzip) / totalGz).toFixed(1)}% |`);
console.log(`| **sum** | ${bodies.length} | ${fmt(totalRaw)} B | ${fmt(totalGz)} B | |`);
