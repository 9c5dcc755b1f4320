/**
 * The devtools panel: plain DOM in an open shadow root (styles isolated
 * both ways), fed by the repo's read-only inspection surface
 * (`repo[INSPECT]()`, `npm/src/inspect.ts`). Sections re-render when what
 * they show changed (a document's change, a status event, or a 300 ms poll
 * of the frame log while open); every text goes through `redact`, so a
 * document key can't reach the DOM or the export even by way of a value.
 */
import type { Devtools, DevtoolsOptions } from "../devtools.js";
import { INSPECT, type FrameRecord, type InspectedDoc, type Inspector, type LinkInspection } from "../inspect.js";
import type { Repo } from "../repo.js";
import type { HistoryEntry } from "../types.js";
import { STYLES } from "./styles.js";
import { bytes, diff, el, redact, short, time, tree } from "./view.js";

/** Event-log rows kept in memory (the oldest go first). */
const LOG_CAPACITY = 1_000;
/** Rows shown (the newest). */
const LOG_SHOWN = 200;
const POLL_MS = 300;

interface LogRow {
  at: number;
  dir: "in" | "out" | "local";
  kind: string;
  bytes?: number;
  doc?: string;
  items?: number;
  code?: string;
}

interface Storage {
  usage?: number;
  quota?: number;
  persisted?: boolean;
}

export class Panel implements Devtools {
  readonly #inspector: Inspector;
  readonly #host: HTMLElement;
  readonly #root: ShadowRoot;
  readonly #body: HTMLElement;
  readonly #sections = new Map<string, { node: HTMLElement; signature: string }>();
  readonly #stops: (() => void)[] = [];
  readonly #openPaths = new Map<string, Set<string>>();
  readonly #log: LogRow[] = [];
  #lastFrame = 0;
  /** Resumed: the next poll only moves past the frames recorded while paused. */
  #skipPaused = false;
  #paused = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #selected: string | undefined;
  #history: { id: string; heads: string; entries: readonly HistoryEntry[] } | undefined;
  #asOf: { hash: string; value: unknown } | undefined;
  #storage: Storage = {};
  #watched = new Set<string>();
  #link: LinkInspection | undefined;
  #isOpen = false;

  constructor(repo: Repo, options: DevtoolsOptions) {
    const inspect = (repo as unknown as { [INSPECT]?: () => Inspector })[INSPECT];
    if (typeof inspect !== "function") throw new TypeError("mountDevtools() takes a repo from createRepo()");
    this.#inspector = inspect.call(repo);
    this.#host = el("div", { id: "syncline-devtools", "data-testid": "syncline-devtools" });
    this.#root = this.#host.attachShadow({ mode: "open" });
    const style = el("style");
    style.textContent = STYLES;
    const close = el("button", { class: "close", title: "Close (Alt+Shift+D)" }, "×");
    close.addEventListener("click", () => this.close());
    this.#body = el("div", { class: "body" });
    this.#root.append(style, el("div", { class: "panel" }, el("header", {}, el("strong", {}, "Syncline devtools"), close), this.#body));
    document.body.append(this.#host);
    const key = options.shortcutKey === undefined ? "D" : options.shortcutKey;
    if (key) {
      const onKey = (event: KeyboardEvent): void => {
        if (event.altKey && event.shiftKey && event.code === `Key${key.toUpperCase()}`) {
          event.preventDefault();
          this.toggle();
        }
      };
      window.addEventListener("keydown", onKey);
      this.#stops.push(() => window.removeEventListener("keydown", onKey));
    }
    this.#stops.push(this.#inspector.onStatus(() => this.#refresh()));
    this.#stops.push(
      this.#inspector.onError((error) => {
        this.#append({ at: Date.now(), dir: "local", kind: "error", code: error.code, doc: error.docId });
        this.#refresh();
      }),
    );
    if (options.open ?? true) this.open();
    else this.#host.hidden = true;
  }

  get isOpen(): boolean {
    return this.#isOpen;
  }

  open(): void {
    if (this.#isOpen) return;
    this.#isOpen = true;
    this.#host.hidden = false;
    this.#timer = setInterval(() => this.#refresh(), POLL_MS);
    void this.#readStorage();
    this.#refresh();
  }

  close(): void {
    this.#isOpen = false;
    this.#host.hidden = true;
    clearInterval(this.#timer);
  }

  toggle(): void {
    if (this.#isOpen) this.close();
    else this.open();
  }

  unmount(): void {
    this.close();
    for (const stop of this.#stops.splice(0)) stop();
    this.#inspector.frames(false, 0);
    this.#host.remove();
  }

  async report(): Promise<string> {
    await this.#readStorage();
    const docs = await Promise.all(
      this.#inspector.docs().map(async (doc) => ({
        id: doc.id,
        heads: doc.heads(),
        status: doc.status(),
        figures: doc.figures() ?? null,
        changes: (await doc.history().catch(() => [])).length,
        peers: doc.peers().length,
      })),
    );
    const report = {
      syncline: "devtools report",
      at: new Date().toISOString(),
      userAgent: navigator.userAgent,
      mode: this.#inspector.mode,
      relays: this.#inspector.relays,
      status: this.#inspector.status(),
      link: this.#link ?? null,
      storage: this.#storage,
      docs,
      events: this.#log,
    };
    return redact(JSON.stringify(report, null, 2));
  }

  #append(row: LogRow): void {
    if (this.#paused) return;
    this.#log.push(row);
    if (this.#log.length > LOG_CAPACITY) this.#log.splice(0, this.#log.length - LOG_CAPACITY);
  }

  async #readStorage(): Promise<void> {
    const storage = globalThis.navigator?.storage;
    try {
      const estimate = await storage?.estimate?.();
      const persisted = await storage?.persisted?.();
      this.#storage = { usage: estimate?.usage, quota: estimate?.quota, persisted };
    } catch {
      this.#storage = {};
    }
  }

  #refresh(): void {
    if (!this.#isOpen) return;
    try {
      this.#render();
    } catch (error) {
      // The repo closed or crashed: say so instead of throwing every poll.
      const code = (error as { code?: unknown } | null)?.code;
      this.#show("gone", "Repo", () => [el("p", { class: "muted" }, `The repo can't be read (${String(code ?? error)}).`)], String(code));
    }
  }

  #render(): void {
    const docs = this.#inspector.docs();
    for (const doc of docs) {
      if (this.#watched.has(doc.id)) continue;
      this.#watched.add(doc.id);
      this.#stops.push(doc.subscribe(() => this.#refresh()), doc.onPeers(() => this.#refresh()));
    }
    if (!this.#selected || !docs.some((d) => d.id === this.#selected)) this.#selected = docs[0]?.id;
    const polled = this.#paused ? null : this.#inspector.frames(true, this.#lastFrame);
    if (polled) {
      this.#link = polled.link;
      if (!this.#skipPaused) for (const frame of polled.frames) this.#append(frameRow(frame));
      this.#skipPaused = false;
      this.#lastFrame = polled.frames.at(-1)?.seq ?? this.#lastFrame;
    }
    const selected = docs.find((d) => d.id === this.#selected);
    if (selected) this.#loadHistory(selected);
    this.#show("docs", "Documents", () => this.#docs(docs), docs.map((d) => [d.id, d.heads(), d.figures()]));
    this.#show("history", "History", () => this.#historyView(docs), [this.#selected, this.#history, this.#asOf?.hash]);
    this.#show("sync", "Sync", () => this.#sync(docs), [this.#inspector.status(), this.#link, docs.map((d) => [d.status(), d.figures()])]);
    this.#show("presence", "Presence", () => this.#presence(docs), docs.map((d) => d.peers()));
    this.#show("storage", "Storage", () => this.#storageView(docs), [this.#storage, docs.map((d) => d.figures())]);
    this.#show("log", "Event log", () => this.#logView(), [this.#log.length, this.#log.at(-1), this.#paused, polled === null]);
  }

  /** Renders a section again only when what it shows changed. */
  #show(name: string, title: string, render: () => Node[], state: unknown): void {
    const signature = JSON.stringify(state) ?? "";
    const known = this.#sections.get(name);
    if (known?.signature === signature) return;
    const section = el("section", { "data-section": name }, el("h2", {}, title), ...render());
    if (known) known.node.replaceWith(section);
    else this.#body.append(section);
    this.#sections.set(name, { node: section, signature });
  }

  #docs(docs: InspectedDoc[]): Node[] {
    if (docs.length === 0) return [el("p", { class: "muted" }, "No document is open in this repo.")];
    return docs.map((doc) => {
      const figures = doc.figures();
      const open = this.#openPaths.get(doc.id) ?? new Set<string>();
      this.#openPaths.set(doc.id, open);
      const pick = el("button", { "data-testid": "select-doc" }, doc.id === this.#selected ? "● history" : "history");
      pick.addEventListener("click", () => {
        this.#selected = doc.id;
        this.#asOf = undefined;
        this.#refresh();
      });
      return el(
        "div",
        { class: "doc", "data-doc": doc.id },
        el("div", {}, el("code", {}, doc.id), " ", pick),
        el("div", { class: "muted" }, `heads: ${doc.heads().map(short).join(", ") || "—"}`),
        el("div", { class: "muted" }, figuresLine(figures)),
        tree(doc.value(), open),
      );
    });
  }

  #loadHistory(doc: InspectedDoc): void {
    const heads = doc.heads().join(",");
    if (this.#history?.id === doc.id && this.#history.heads === heads) return;
    this.#history = { id: doc.id, heads, entries: this.#history?.id === doc.id ? this.#history.entries : [] };
    void doc.history().then(
      (entries) => {
        if (this.#history?.id === doc.id && this.#history.heads === heads) {
          this.#history = { id: doc.id, heads, entries };
          this.#refresh();
        }
      },
      () => {},
    );
  }

  #historyView(docs: InspectedDoc[]): Node[] {
    const doc = docs.find((d) => d.id === this.#selected);
    const entries = this.#history?.id === doc?.id ? (this.#history?.entries ?? []) : [];
    if (!doc || entries.length === 0) return [el("p", { class: "muted" }, "No history yet.")];
    const list = el("ol", { class: "history", reversed: "" });
    for (const entry of [...entries].reverse().slice(0, 200)) {
      const pick = el(
        "button",
        { "data-testid": "history-entry", "data-hash": entry.hash, class: entry.hash === this.#asOf?.hash ? "chosen" : "" },
        `${entry.message ?? "(no message)"}`,
      );
      pick.addEventListener("click", () => {
        void doc.valueAt([entry.hash]).then((value) => {
          this.#asOf = { hash: entry.hash, value };
          this.#refresh();
        });
      });
      list.append(el("li", {}, pick, el("span", { class: "muted" }, ` ${short(entry.actor)} · ${time(entry.time)} · ${short(entry.hash)}`)));
    }
    const out: Node[] = [list];
    if (this.#asOf) {
      const changes = diff(this.#asOf.value, doc.value());
      out.push(
        el("h3", {}, `As of ${short(this.#asOf.hash)} (read-only)`),
        el("div", { "data-testid": "as-of" }, tree(this.#asOf.value, "all")),
        el("h3", {}, "Changed since"),
        changes.length === 0
          ? el("p", { class: "muted" }, "Nothing.")
          : el(
              "ul",
              { "data-testid": "changed-since" },
              ...changes.slice(0, 100).map((c) =>
                el("li", {}, `${c.kind} ${c.path}`, c.kind === "changed" ? `: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}` : ""),
              ),
            ),
      );
    }
    return out;
  }

  #sync(docs: InspectedDoc[]): Node[] {
    const status = this.#inspector.status();
    const link = this.#link;
    const rows: [string, string][] = [
      ["connection", status.connection],
      ["attempt", String(status.attempt ?? "—")],
      ["dial", link ? `${link.dial}${link.retryInMs !== undefined ? `, retry in ${link.retryInMs} ms` : ""}` : "asking the worker…"],
      ["backoff bound", link ? `${link.backoffBoundMs} ms` : "—"],
      ["last error", status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : "—"],
      ["unsaved / pending", `${status.unsaved} / ${status.pending}`],
      ["buffered", bytes(status.buffered)],
      ["relays", this.#inspector.relays.join(", ") || "none"],
      ["last sync", time(status.lastSyncedAt)],
      ["engine", this.#inspector.mode],
    ];
    const table = el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
    const perDoc = el(
      "table",
      {},
      el("tr", {}, el("th", {}, "document"), el("th", {}, "unsaved"), el("th", {}, "pending"), el("th", {}, "acknowledged (relay seq)"), el("th", {}, "error")),
      ...docs.map((doc) => {
        const s = doc.status();
        const f = doc.figures();
        return el(
          "tr",
          {},
          el("td", {}, short(doc.id.slice(9))),
          el("td", {}, String(s.unsaved)),
          el("td", {}, String(s.pending)),
          el("td", {}, f ? String(f.relaySeq) : "—"),
          el("td", {}, s.lastError?.code ?? "—"),
        );
      }),
    );
    return [table, perDoc];
  }

  #presence(docs: InspectedDoc[]): Node[] {
    const rows = docs.flatMap((doc) => doc.peers().map((peer) => el("li", {}, el("code", {}, short(peer.id)), ` on ${short(doc.id.slice(9))}: ${JSON.stringify(peer.state)}`)));
    return rows.length === 0 ? [el("p", { class: "muted" }, "No peer present.")] : [el("ul", {}, ...rows)];
  }

  #storageView(docs: InspectedDoc[]): Node[] {
    const s = this.#storage;
    const compaction = docs.map((doc) => {
      const f = doc.figures();
      const state =
        f === undefined
          ? "asking the worker…"
          : f === null
            ? "loading"
            : `${f.freshChanges} change(s) since the snapshot, ${f.relayHeldChanges} held by the relay; ${f.compactionEnabled ? `${this.#inspector.mode === "worker" ? "the worker" : "this tab"} compacts` : "another tab compacts"}`;
      return el("li", {}, `${short(doc.id.slice(9))}: ${state}`);
    });
    return [
      el(
        "table",
        {},
        el("tr", {}, el("th", {}, "origin usage"), el("td", {}, `${bytes(s.usage)} of ${bytes(s.quota)}`)),
        el("tr", {}, el("th", {}, "persisted"), el("td", {}, s.persisted === undefined ? "unknown" : s.persisted ? "yes" : "no (may be evicted)")),
      ),
      el("ul", {}, ...compaction),
    ];
  }

  #logView(): Node[] {
    const pause = el("button", { "data-testid": "log-pause" }, this.#paused ? "Resume" : "Pause");
    pause.addEventListener("click", () => {
      this.#paused = !this.#paused;
      if (!this.#paused) this.#skipPaused = true;
      this.#refresh();
    });
    const clear = el("button", { "data-testid": "log-clear" }, "Clear");
    clear.addEventListener("click", () => {
      this.#log.length = 0;
      this.#refresh();
    });
    const exportButton = el("button", { "data-testid": "log-export" }, "Export");
    exportButton.addEventListener("click", () => void this.#download());
    const notice =
      this.#inspector.mode === "worker"
        ? [el("p", { class: "muted" }, "Worker mode: the shared worker's connection, for every tab of this app.")]
        : [];
    const rows = this.#log.slice(-LOG_SHOWN).reverse();
    const table = el(
      "table",
      { class: "log", "data-testid": "event-log" },
      el("tr", {}, el("th", {}, "time"), el("th", {}, ""), el("th", {}, "kind"), el("th", {}, "size"), el("th", {}, "doc"), el("th", {}, "code")),
      ...rows.map((r) =>
        el(
          "tr",
          { "data-kind": r.kind, "data-dir": r.dir },
          el("td", {}, time(r.at).slice(11)),
          el("td", {}, r.dir === "in" ? "←" : r.dir === "out" ? "→" : "·"),
          el("td", {}, r.items ? `${r.kind} ×${r.items}` : r.kind),
          el("td", {}, r.bytes === undefined ? "" : bytes(r.bytes)),
          el("td", {}, r.doc ? short(r.doc.slice(9)) : ""),
          el("td", {}, r.code ?? ""),
        ),
      ),
    );
    return [el("div", { class: "buttons" }, pause, clear, exportButton), ...notice, table];
  }

  async #download(): Promise<void> {
    const text = await this.report();
    const link = el("a", { download: `syncline-devtools-${Date.now()}.json` });
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    this.#root.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }
}

function frameRow(frame: FrameRecord): LogRow {
  return { at: frame.at, dir: frame.dir, kind: frame.kind, bytes: frame.bytes, doc: frame.doc, items: frame.items, code: frame.code };
}

function figuresLine(figures: ReturnType<InspectedDoc["figures"]>): string {
  if (figures === undefined) return "log and snapshot: asking the worker…";
  if (figures === null) return "log and snapshot: loading";
  return `log: ${figures.logEntries} entries, ${bytes(figures.logBytes)} · snapshot: ${figures.snapshotBytes === null ? "none yet" : bytes(figures.snapshotBytes)}`;
}
