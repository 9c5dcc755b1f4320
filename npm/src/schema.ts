/**
 * Schema versions: `repo.open(url, { schema: { version, migrations } })`.
 *
 * A document records its schema version under the reserved top-level key
 * `"syncline:schema"` (an integer; none is version 0). Opening a document
 * of an older version runs the missing migrations in order, each as one
 * change recorded like `doc.change` and made deterministic by the engine
 * (`crates/syncline-core/src/schema.rs`): two replicas that migrate the
 * same document from the same heads make the same change, applied once. A
 * document of a newer version than the app's opens read-only: its writes
 * throw `SchemaTooNew`. In worker mode the tab records the migration's ops
 * and the worker's engine makes the change (the `migrate` call of
 * `worker-protocol.ts`).
 */
import type { Handle } from "./doc-handle.js";
import { recordChange } from "./draft.js";
import { SynclineError } from "./errors.js";
import type { Op, Patch } from "./types.js";

/** The reserved top-level key holding a document's schema version. */
export const SCHEMA_KEY = "syncline:schema";

/** The app's schema: its version, and how to reach it from each older one. */
export interface Schema {
  /** The app's schema version: a whole number ≥ 0. */
  version: number;
  /**
   * `migrations[i]` takes a document from version `i` to `i + 1`: a change
   * function, as given to `doc.change`. Synchronous, and the same on every
   * replica for the same value (so two replicas make the same change).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  migrations: readonly ((draft: any) => void)[];
}

/** Options of `repo.open` and `repo.create`. */
export interface OpenOptions {
  /** Migrate the document to this schema (open), or stamp its version (create). */
  schema?: Schema;
}

/** The schema, checked; `BadOption` otherwise. */
export function checkSchema(schema: unknown): Schema {
  const s = schema as Partial<Schema> | null;
  if (typeof s !== "object" || s === null || !Number.isSafeInteger(s.version) || (s.version as number) < 0) {
    throw new SynclineError("BadOption", "`schema.version` must be a whole number ≥ 0");
  }
  const version = s.version as number;
  if (!Array.isArray(s.migrations) || s.migrations.length < version || !s.migrations.slice(0, version).every((m) => typeof m === "function")) {
    throw new SynclineError("BadOption", `\`schema.migrations\` must hold ${version} functions: migrations[i] takes version i to i + 1`);
  }
  return { version, migrations: s.migrations };
}

/** The version a document's value records (0 when none). */
export function recordedVersion(value: unknown): number {
  const version = (value as Record<string, unknown> | null)?.[SCHEMA_KEY];
  return typeof version === "number" && Number.isSafeInteger(version) && version >= 0 ? version : 0;
}

/**
 * Brings `handle` to `schema`: runs each missing migration through
 * `migrate(url, from, ops)` (the engine's deterministic change), or, for a
 * document newer than the app's schema, makes the handle read-only.
 * Returns the `SchemaTooNew` error in that case.
 */
export async function applySchema(
  handle: Handle<object>,
  schema: Schema,
  migrate: (url: string, from: number, ops: Op[]) => Promise<Patch[] | null>,
): Promise<SynclineError | null> {
  const recorded = recordedVersion(handle.value);
  if (recorded > schema.version) {
    const error = new SynclineError(
      "SchemaTooNew",
      `this document is at schema version ${recorded}, newer than this app's ${schema.version}: it is read-only here; update the app to change it`,
      { docId: handle.url.split("#")[0] },
    );
    handle.blockWrites(error);
    return error;
  }
  for (let from = recorded; from < schema.version; from++) {
    let ops: Op[];
    try {
      ops = recordChange(handle.value, schema.migrations[from] as (draft: unknown) => void);
    } catch (error) {
      throw new SynclineError("BadOp", `the migration from schema version ${from} to ${from + 1} failed, nothing of it was applied: ${String((error as Error)?.message ?? error)}`, { cause: error });
    }
    // `null`: the new value already reached the handle (worker mode's patches).
    const patches = await migrate(handle.url, from, ops);
    if (patches) handle.apply(patches);
    handle.notify();
  }
  return null;
}

/**
 * Which documents the relay has caught up on the current connection, so a
 * migration waits for them: migrating a stale copy (others' edits and
 * migrations not yet here) would start from other heads than theirs and
 * apply the step again. Fed by the repo's core events.
 */
export class CatchUps {
  readonly #done = new Set<string>();
  readonly #waiting = new Map<string, (() => void)[]>();
  #connection = "offline";

  caughtUp(url: string): void {
    this.#done.add(url);
    this.#release(url);
  }

  /** The relay refused the document: nothing more will come for it now. */
  refused(url: string): void {
    this.#release(url);
  }

  connection(connection: string): void {
    this.#connection = connection;
    if (connection === "open") return;
    this.#done.clear();
    // Offline (no relay, or it can't be reached) or closed: migrate what is here.
    if (connection !== "connecting") for (const url of [...this.#waiting.keys()]) this.#release(url);
  }

  /** Resolves once `url` is caught up, or at once when there is nothing to wait for. */
  wait(url: string): Promise<void> {
    if (this.#done.has(url) || this.#connection === "offline" || this.#connection === "closed") return Promise.resolve();
    return new Promise((resolve) => this.#waiting.set(url, [...(this.#waiting.get(url) ?? []), resolve]));
  }

  #release(url: string): void {
    const waiters = this.#waiting.get(url) ?? [];
    this.#waiting.delete(url);
    for (const resolve of waiters) resolve();
  }
}
