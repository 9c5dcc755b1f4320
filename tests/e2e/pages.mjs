// Page-side steps of the tests, run through page.evaluate. The repo and the
// doc handle live on `window` between calls.
import { TIMEOUT } from "./harness.mjs";

/**
 * Loads the package and opens a repo named "e2e" connected to `relay`, in
 * the default mode (the engine in the origin's SharedWorker) unless
 * `options` say otherwise (`{ worker: false }`: the engine in the page).
 */
export function createRepoIn(page, relay, options = {}) {
  return page.evaluate(
    async ({ relay, options }) => {
      const { createRepo } = await import("/dist/index.js");
      window.repo = await createRepo({ relay, name: "e2e", ...options });
      return window.repo.status;
    },
    { relay, options },
  );
}

/** Creates a doc, keeps it as `window.doc`, returns its URL. */
export function createDocIn(page, initial) {
  return page.evaluate(async (initial) => {
    window.doc = await window.repo.create(initial);
    return window.doc.url;
  }, initial);
}

/** Starts `repo.open(url)` and waits (bounded) until it resolved; returns the value. */
export async function openDocIn(page, url, timeout = TIMEOUT.sync) {
  await page.evaluate((url) => {
    window.doc = undefined;
    window.openError = undefined;
    window.repo.open(url).then(
      (doc) => (window.doc = doc),
      (error) => (window.openError = `${error.code}: ${error.message}`),
    );
  }, url);
  await waitInPage(page, () => window.doc !== undefined || window.openError !== undefined, undefined, timeout, "repo.open() to resolve");
  const error = await page.evaluate(() => window.openError);
  if (error) throw new Error(`repo.open(${url}) failed: ${error}`);
  return items(page);
}

export function pushItem(page, item) {
  return page.evaluate((item) => {
    window.doc.change((d) => {
      d.items.push(item);
    });
    return [...window.doc.value.items];
  }, item);
}

export function items(page) {
  return page.evaluate(() => (window.doc ? [...window.doc.value.items] : undefined));
}

export function status(page) {
  return page.evaluate(() => ({ ...window.repo.status }));
}

/** waitForFunction with a bounded timeout and a useful message (the page's doc and status). */
export async function waitInPage(page, predicate, arg, timeout, what) {
  try {
    await page.waitForFunction(predicate, arg, { timeout, polling: 50 });
  } catch (error) {
    const state = await page
      .evaluate(() => ({ items: window.doc?.value?.items, status: window.repo?.status }))
      .catch((e) => `unavailable: ${e.message}`);
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page state: ${JSON.stringify(state)}`, { cause: error });
  }
}

/** Waits until the page's doc holds exactly this set of items. */
export function waitForItemSet(page, expected, timeout = TIMEOUT.sync) {
  const sorted = [...expected].sort();
  return waitInPage(
    page,
    (sorted) => {
      const items = window.doc?.value?.items;
      return Array.isArray(items) && JSON.stringify([...items].sort()) === JSON.stringify(sorted);
    },
    sorted,
    timeout,
    `items ${JSON.stringify(sorted)}`,
  );
}

export function waitForConnection(page, predicateName, timeout) {
  const predicates = {
    open: () => window.repo.status.connection === "open",
    notOpen: () => window.repo.status.connection !== "open",
    // Nothing unsaved either: a change not yet durable (longer so in worker mode) is not acknowledged yet.
    synced: () => window.repo.status.connection === "open" && window.repo.status.pending === 0 && window.repo.status.unsaved === 0,
  };
  return waitInPage(page, predicates[predicateName], undefined, timeout, `connection ${predicateName}`);
}

/** Terminates every SharedWorker of the browser (as a crash would): through the DevTools protocol. */
export async function killSharedWorkers(browser) {
  const cdp = await browser.newBrowserCDPSession();
  try {
    const { targetInfos } = await cdp.send("Target.getTargets");
    const workers = targetInfos.filter((target) => target.type === "shared_worker");
    for (const worker of workers) await cdp.send("Target.closeTarget", { targetId: worker.targetId });
    return workers.length;
  } finally {
    await cdp.detach().catch(() => {});
  }
}
