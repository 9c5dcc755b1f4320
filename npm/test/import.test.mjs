// Importing the package must not load wasm or touch browser APIs (SSR in Node).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";

const built = existsSync(new URL("../dist/wasm/syncline_wasm.js", import.meta.url));

test("importing the built entry point in Node has no side effects", { skip: !built && "needs `npm run build` (after `cargo xtask build`)" }, async () => {
  const fetchBefore = globalThis.fetch;
  let fetched = false;
  globalThis.fetch = (...args) => {
    fetched = true;
    return fetchBefore(...args);
  };
  try {
    const mod = await import("../dist/index.js");
    assert.equal(typeof mod.createRepo, "function");
    assert.equal(typeof mod.SynclineError, "function");
    assert.equal(fetched, false, "no wasm fetched at import time");
  } finally {
    globalThis.fetch = fetchBefore;
  }
});
