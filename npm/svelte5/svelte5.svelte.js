/**
 * `syncline/svelte5`: Svelte 5 runes for syncline documents and status.
 *
 * Shipped as source (`dist/svelte5.svelte.js`): the app's Svelte compiler
 * (`@sveltejs/vite-plugin-svelte`, SvelteKit) compiles it, like a
 * component, so it needs Svelte ≥ 5.7 in the app (`createSubscriber`).
 * Each value lives in a `$state.raw` (a document's value is already a deeply
 * frozen snapshot whose unchanged parts keep their identity, so no deep
 * proxy is needed), kept up to date by a subscription that runs while some
 * effect or template reads it and stops when none does — nothing to clean
 * up. Read outside any effect, `current` is the handle's value now.
 *
 * ```svelte
 * <script>
 *   import { docState, statusState } from "syncline/svelte5";
 *   let { repo, handle } = $props();
 *   const doc = docState(handle);
 *   const status = statusState(repo);
 * </script>
 * {status.current.connection}: {doc.current.items.length} items
 * <button onclick={() => doc.change((d) => { d.items.push("milk"); })}>add</button>
 * <button disabled={!doc.canUndo} onclick={() => doc.undo()}>undo</button>
 * ```
 *
 * It uses only the handle's public API, so it works the same in worker
 * mode (`createRepo({ worker: true })`). Svelte 4 apps use the store
 * contract of `syncline/svelte` (`$doc`), which Svelte 5 keeps too.
 */
import { createSubscriber } from "svelte/reactivity";
// Beside this file in the package's dist/.
import { historyStore } from "./svelte.js";

/**
 * A reader of `read()`, backed by `$state.raw`: `listen(set)` subscribes
 * (calling `set` at once and on every change) and returns the unsubscribe.
 */
function live(read, listen) {
  let value = $state.raw(read());
  const track = createSubscriber(() =>
    listen((next) => {
      value = next;
    }),
  );
  return () => {
    if (!$effect.tracking()) return read();
    track();
    return value;
  };
}

/**
 * A document handle as runes: `current` (its value), `status` (its unsaved
 * and pending changes, the relay's last refusal), `peers` (presence),
 * `canUndo`/`canRedo` (`handle.on("undoState")`), `history` (a new array
 * when entries were added: `handle.on("history")`), and `change(fn,
 * options)`, `undo()`, `redo()` (the handle's own).
 */
export function docState(handle) {
  const current = live(
    () => handle.value,
    (set) => handle.subscribe(set),
  );
  const status = live(
    () => handle.status,
    (set) => {
      set(handle.status);
      return handle.on("status", set);
    },
  );
  const peers = live(
    () => handle.presence.peers,
    (set) => handle.presence.subscribe(set),
  );
  const undoState = live(
    () => ({ canUndo: handle.canUndo, canRedo: handle.canRedo }),
    (set) => {
      set({ canUndo: handle.canUndo, canRedo: handle.canRedo });
      return handle.on("undoState", set);
    },
  );
  const history = live(
    () => handle.history(),
    (set) => historyStore(handle).subscribe(set),
  );
  return {
    handle,
    get current() {
      return current();
    },
    get status() {
      return status();
    },
    get peers() {
      return peers();
    },
    get canUndo() {
      return undoState().canUndo;
    },
    get canRedo() {
      return undoState().canRedo;
    },
    get history() {
      return history();
    },
    change: (fn, options) => handle.change(fn, options),
    undo: () => handle.undo(),
    redo: () => handle.redo(),
  };
}

/** The repo's status (`connection`, `unsaved`, `pending`, …) as a rune: `current`. */
export function statusState(repo) {
  const status = live(
    () => repo.status,
    (set) => {
      set(repo.status);
      return repo.on("status", set);
    },
  );
  return {
    get current() {
      return status();
    },
  };
}
