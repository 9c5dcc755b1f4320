// If the wasm module ever panics, the page must not go silently dead: every
// open repo hears code "Crashed", closes itself, and fails later calls with
// that code; after a reload, everything that was durable is still there.
// The panic comes from `crashForTesting`, which only the test-hooks build
// of the package exports (served at /test-hooks/; see harness.mjs).
// The engine runs in the page (`worker: false`): the panic is raised on the page's module instance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, useSiteAndBrowser } from "./harness.mjs";

const env = useSiteAndBrowser();

test("a panic in the wasm module reaches every repo as code Crashed; the data survives a reload", { timeout: 60_000 }, async () => {
  const { context, page } = await newPage(env.browser, "crash");
  try {
    await page.goto(`${env.site.url}/`);
    const seen = await page.evaluate(async () => {
      const { createRepo } = await import("/test-hooks/index.js");
      const repos = [await createRepo({ name: "crash-a", worker: false }), await createRepo({ name: "crash-b", worker: false })];
      const errors = [];
      repos.forEach((repo, i) => repo.on("error", (e) => errors.push(`${i}:${e.code}`)));
      const doc = await repos[0].create({ kept: "before the crash" });
      await repos[0].flush();
      localStorage.setItem("url", doc.url);

      // The same module instance the repos run on (already initialised).
      const wasm = await import("/test-hooks/wasm/syncline_wasm.js");
      let thrown;
      try {
        wasm.crashForTesting();
      } catch (error) {
        thrown = error.constructor.name;
      }
      await new Promise((r) => setTimeout(r, 0));
      let changeError;
      try {
        doc.change((d) => {
          d.kept = "after";
        });
      } catch (error) {
        changeError = error.code;
      }
      const flushError = await repos[1].flush().then(
        () => "resolved",
        (error) => error.code,
      );
      return {
        thrown,
        errors: errors.sort(),
        statuses: repos.map((r) => [r.status.connection, r.status.lastError?.code]),
        changeError,
        flushError,
      };
    });
    assert.equal(seen.thrown, "RuntimeError", "the panic is a wasm trap");
    assert.deepEqual(seen.errors, ["0:Crashed", "1:Crashed"], "every repo heard it");
    assert.deepEqual(seen.statuses, [
      ["closed", "Crashed"],
      ["closed", "Crashed"],
    ]);
    assert.equal(seen.changeError, "Crashed");
    assert.equal(seen.flushError, "Crashed");

    await page.reload();
    const value = await page.evaluate(async () => {
      const { createRepo } = await import("/test-hooks/index.js");
      const repo = await createRepo({ name: "crash-a", worker: false });
      const doc = await repo.open(localStorage.getItem("url"));
      return doc.value;
    });
    assert.deepEqual(value, { kept: "before the crash" });

    // The shipped build has no such hook: no page script can crash it.
    const shipped = await page.evaluate(async () => Object.keys(await import("/dist/wasm/syncline_wasm.js")));
    assert.ok(shipped.includes("Core"), `the shipped glue exports Core: ${shipped}`);
    assert.ok(!shipped.includes("crashForTesting"), `the shipped glue exports crashForTesting: ${shipped}`);
  } finally {
    await context.close();
  }
});
