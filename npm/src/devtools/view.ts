/**
 * The devtools' pure helpers: key redaction, a value as a collapsible tree
 * (`<details>`, open state kept by path), a structural diff between two
 * values, and number/time formatting. No dependency: the package's files
 * must work served as they are, with no bundler to resolve one.
 */

/** A document key in any text (`syncline:<id>#<key>`): replaced by "#…". */
const URL_WITH_KEY = /(syncline:[1-9A-HJ-NP-Za-km-z]+)#[1-9A-HJ-NP-Za-km-z]+/g;

export function redact(text: string): string {
  return text.replace(URL_WITH_KEY, "$1#…");
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(typeof child === "string" ? redact(child) : child);
  return node;
}

function leaf(value: unknown): string {
  return redact(JSON.stringify(value) ?? String(value));
}

/**
 * `value` as nested `<details>`; `open` holds the paths whose state the user
 * flipped (the root starts open, the rest closed; `"all"`: every level open).
 */
export function tree(value: unknown, open: Set<string> | "all", path = "$", label = "value"): HTMLElement {
  if (value === null || typeof value !== "object") {
    return el("div", { class: "leaf", "data-path": path }, el("span", { class: "key" }, `${label}: `), leaf(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const details = el("details", { "data-path": path });
  if (open === "all" || open.has(path) !== (path === "$")) details.open = true;
  if (open !== "all") {
    details.addEventListener("toggle", () => {
      if (details.open !== (path === "$")) open.add(path);
      else open.delete(path);
    });
  }
  const shape = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  details.append(el("summary", {}, el("span", { class: "key" }, label), ` ${shape}`));
  for (const [key, child] of entries) details.append(tree(child, open, `${path}.${key}`, key));
  return details;
}

export interface Difference {
  path: string;
  kind: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

/** What changed from `before` to `after`, leaf by leaf (a list compared index by index). */
export function diff(before: unknown, after: unknown, path = "", out: Difference[] = []): Difference[] {
  const container = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object";
  if (container(before) && container(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const key of keys) {
      const at = `${path}/${key}`;
      if (!(key in after)) out.push({ path: at, kind: "removed", before: before[key] });
      else if (!(key in before)) out.push({ path: at, kind: "added", after: after[key] });
      else diff(before[key], after[key], at, out);
    }
  } else if (JSON.stringify(before) !== JSON.stringify(after)) {
    out.push({ path: path || "/", kind: "changed", before, after });
  }
  return out;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function time(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "—";
}

export function short(hash: string): string {
  return hash.slice(0, 8);
}
