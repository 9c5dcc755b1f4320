// A 10,000-item list stays responsive: each change moves only what it
// touched (patches applied with path copying), untouched items keep their
// identity, and the change → patch latency is reported (not asserted: speed
// is measured in the benchmarks, this machine is shared).
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

test("a 10,000-item list: changes touch only their path; change → patch latency reported", { timeout: 120_000 }, async () => {
  const { context, page } = await newPage(env.browser, "large");
  try {
    await page.goto(`${env.site.url}/`);
    const result = await page.evaluate(async () => {
      const { createRepo } = await import("/dist/index.js");
      const repo = await createRepo({ name: "large-doc" });
      const items = Array.from({ length: 10_000 }, (_, i) => ({ id: i, title: `item ${i}`, done: false }));
      const doc = await repo.create({ items });
      const before = doc.value;
      const times = [];
      for (let i = 0; i < 200; i++) {
        const started = performance.now();
        doc.change((d) => {
          d.items[(i * 37) % 10_000].done = true;
          if (i % 10 === 0) d.items.push({ id: 10_000 + i, title: "new", done: false });
        });
        times.push(performance.now() - started);
      }
      await repo.flush();
      times.sort((a, b) => a - b);
      const after = doc.value;
      return {
        length: after.items.length,
        done: after.items.filter((t) => t.done).length,
        untouchedShared: after.items[1] === before.items[1] && after.items[9_999] === before.items[9_999],
        touchedCopied: after.items[0] !== before.items[0] && before.items[0].done === false,
        frozen: Object.isFrozen(after.items) && Object.isFrozen(after.items[0]),
        p50: times[Math.floor(times.length * 0.5)],
        p99: times[Math.floor(times.length * 0.99)],
      };
    });
    console.log(`10,000-item list, 200 changes: change → patch p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms`);
    assert.equal(result.length, 10_020);
    assert.equal(result.done, 200);
    assert.ok(result.untouchedShared, "untouched items keep their identity");
    assert.ok(result.touchedCopied, "a changed item is a new object; the old value is unchanged");
    assert.ok(result.frozen);
  } finally {
    await context.close();
  }
});
