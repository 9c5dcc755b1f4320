/**
 * syncline/devtools: an inspector panel in the page.
 *
 *   const { mountDevtools } = await import("syncline/devtools");
 *   const devtools = await mountDevtools(repo); // Alt+Shift+D toggles it
 *
 * The panel's code loads only when `mountDevtools` is called (a dynamic
 * import), and nothing of it is in the main `syncline` entry. It uses no
 * framework: plain DOM in a shadow root, so it works beside React, Svelte
 * or nothing. It never shows nor exports a document key, passphrase or
 * token. In worker mode the frame log and the log/snapshot figures are not
 * available (the engine is in the worker); the panel says so.
 */
import type { Repo } from "./repo.js";

export interface DevtoolsOptions {
  /** Open at once (default `true`); otherwise the shortcut or `open()` shows it. */
  open?: boolean;
  /** The key, with Alt+Shift, that toggles the panel (a `KeyboardEvent.code` letter). Default "D"; `null`: none. */
  shortcutKey?: string | null;
}

export interface Devtools {
  readonly isOpen: boolean;
  open(): void;
  close(): void;
  toggle(): void;
  /** The bug report the "Export" button downloads: JSON, no key, token or passphrase. */
  report(): Promise<string>;
  /** Removes the panel and stops listening. */
  unmount(): void;
}

/** Adds the inspector panel for `repo` to the page. */
export async function mountDevtools(repo: Repo, options: DevtoolsOptions = {}): Promise<Devtools> {
  const { Panel } = await import("./devtools/panel.js");
  return new Panel(repo, options);
}
