/**
 * `syncline/codemirror`: binds a collaborative `Text` of a document to a
 * CodeMirror 6 editor, both ways, and shows the other viewers' cursors.
 *
 *   import { EditorView } from "@codemirror/view";
 *   import { syncline } from "syncline/codemirror";
 *
 *   new EditorView({
 *     doc: doc.value.note,
 *     extensions: [syncline(doc, ["note"], { user: { name: "Ada", color: "#c0392b" } })],
 *     parent,
 *   });
 *
 * - **Edits.** Each editor transaction that changes the text becomes one
 *   `doc.change` of splices (undoable, grouped into undo steps by the
 *   repo's capture window). Each patch of the text from elsewhere (another
 *   page, another tab, an undo) is applied to the editor as a change, so
 *   the local selection maps through it; a patch that replaces the text or
 *   one of its parents (or a worker-mode reconciliation) replaces the
 *   editor's content with the document's.
 * - **Undo.** Mod-z undoes, Mod-y and Mod-Shift-z redo, through the
 *   document handle (`doc.undo()`): only this page's changes are undone and
 *   others' edits stay. Don't add CodeMirror's own `history()` beside it.
 * - **Cursors.** While the editor has focus, its main selection is shared
 *   in the document's presence as stable cursors (`doc.cursorAsync`), as
 *   `{ ...user, selection: { path, anchor, head } }`: the binding owns the
 *   document's presence while it is mounted. The other viewers' selections
 *   show as a coloured caret with their name and a tinted range, placed
 *   with `doc.cursorPositionAsync`, so they stay on the same characters
 *   through any edit.
 *
 * `@codemirror/state` and `@codemirror/view` are peer dependencies: the
 * app's copy is used, so the extension works in the app's editor.
 */
import { Annotation, type Extension, Prec, StateEffect, StateField, type Transaction } from "@codemirror/state";
import { Decoration, type DecorationSet, EditorView, ViewPlugin, type ViewUpdate, WidgetType, keymap } from "@codemirror/view";
import type { DocHandle } from "./doc-handle.js";
import { splice } from "./draft.js";
import type { JsonValue, Patch, Path, Peer } from "./types.js";

/** Who this page is to the others: any JSON object; `name` and `color` are shown at its cursor. */
export interface CursorUser {
  name?: string;
  /** A CSS colour for this page's caret and selection in the other editors. */
  color?: string;
  [key: string]: JsonValue | undefined;
}

export interface SynclineEditorOptions {
  /** This page's name and colour, or a function returning them (read at each publication, so a rename shows at once). */
  user?: CursorUser | (() => CursorUser);
  /** `false`: leave Mod-z/Mod-y to the app. Default `true`. */
  undoKeys?: boolean;
}

/** A shared selection as it travels in presence. */
interface SharedSelection {
  path: Path;
  anchor: string;
  head: string;
}

/** A remote selection placed in this editor. */
interface Placed {
  peer: string;
  name: string;
  color: string;
  anchor: number;
  head: number;
}

const fromDocument = Annotation.define<boolean>();
const setRemote = StateEffect.define<Placed[]>();

/** The extension that binds `doc`'s text at `path` (the path leads to the text itself) to the editor. */
export function syncline(doc: DocHandle<object>, path: Path, options: SynclineEditorOptions = {}): Extension {
  if (!Array.isArray(path) || path.length === 0) throw new TypeError("syncline(doc, path): path must lead to a text, e.g. [\"note\"]");
  const textPath = [...path];
  const remote = StateField.define<DecorationSet>({
    create: () => Decoration.none,
    update(decorations, tr) {
      for (const effect of tr.effects) if (effect.is(setRemote)) return decorate(effect.value, tr.state.doc.length);
      return decorations.map(tr.changes);
    },
    provide: (field) => EditorView.decorations.from(field),
  });
  const plugin = ViewPlugin.define((view) => new Binding(view, doc, textPath, options));
  const extensions: Extension[] = [remote, plugin, THEME];
  if (options.undoKeys !== false) {
    const undo = (): boolean => (doc.undo(), true);
    const redo = (): boolean => (doc.redo(), true);
    extensions.push(
      Prec.high(
        keymap.of([
          { key: "Mod-z", run: undo, preventDefault: true },
          { key: "Mod-y", run: redo, preventDefault: true },
          { key: "Mod-Shift-z", run: redo, preventDefault: true },
        ]),
      ),
    );
  }
  return extensions;
}

class Binding {
  readonly #view: EditorView;
  readonly #doc: DocHandle<object>;
  readonly #path: Path;
  readonly #options: SynclineEditorOptions;
  readonly #stops: (() => void)[] = [];
  /** Set while this binding's own `doc.change` runs: its patches are already in the editor. */
  #changing = false;
  #destroyed = false;
  /** Bumped per placement of the peers: an older, slower one is dropped. */
  #placement = 0;
  #publishing = false;
  #publishAgain = false;

  constructor(view: EditorView, doc: DocHandle<object>, path: Path, options: SynclineEditorOptions) {
    this.#view = view;
    this.#doc = doc;
    this.#path = path;
    this.#options = options;
    // The editor shows the document's text, whatever it was created with.
    queueMicrotask(() => this.#replaceAll());
    this.#stops.push(doc.onPatches((patches) => this.#patched(patches)));
    this.#stops.push(doc.presence.subscribe(() => this.#placePeers()));
  }

  update(update: ViewUpdate): void {
    const local = update.transactions.filter((tr) => tr.docChanged && !tr.annotation(fromDocument));
    for (const tr of local) this.#send(tr);
    if (local.length > 0 || (update.selectionSet && update.view.hasFocus) || update.focusChanged) this.#publish();
    if (update.docChanged && update.transactions.some((tr) => tr.annotation(fromDocument))) this.#placePeers();
  }

  destroy(): void {
    this.#destroyed = true;
    for (const stop of this.#stops) stop();
    try {
      this.#doc.presence.clear();
    } catch {
      // the repo is closed: nothing is shared any more
    }
  }

  /** The editor's changes as one document change of splices, last first so earlier positions hold. */
  #send(tr: Transaction): void {
    const edits: { from: number; to: number; text: string }[] = [];
    tr.changes.iterChanges((from, to, _fromB, _toB, inserted) => edits.push({ from, to, text: inserted.toString() }));
    const parent = this.#path.slice(0, -1);
    const key = this.#path[this.#path.length - 1]!;
    this.#changing = true;
    try {
      this.#doc.change((draft) => {
        let container = draft as Record<string | number, unknown>;
        for (const step of parent) container = container[step] as Record<string | number, unknown>;
        for (const edit of edits.reverse()) splice(container, key, edit.from, edit.to - edit.from, edit.text);
      });
    } catch (error) {
      // Refused (the text is gone, storage is full...): the editor shows the document again.
      queueMicrotask(() => this.#replaceAll());
      queueMicrotask(() => {
        throw error;
      });
    } finally {
      this.#changing = false;
    }
  }

  /** A change of the document from elsewhere: its text patches become editor changes. */
  #patched(patches: readonly Patch[] | null): void {
    if (this.#changing || this.#destroyed) return;
    if (patches === null) return this.#replaceAll();
    const changes: { from: number; to?: number; insert?: string }[] = [];
    for (const patch of patches) {
      const at = relation(patch.path, this.#path);
      if (at === "inside") {
        if (patch.action === "splice") changes.push({ from: patch.index, insert: patch.value });
        else if (patch.action === "del" && typeof patch.key === "number") changes.push({ from: patch.key, to: patch.key + patch.length });
        else return this.#replaceAll();
      } else if (at === "above" && touches(patch, this.#path[patch.path.length]!)) {
        return this.#replaceAll();
      }
    }
    // Each patch is relative to the text after the previous one: dispatch them in order.
    for (const change of changes) this.#view.dispatch({ changes: change, annotations: fromDocument.of(true) });
  }

  #replaceAll(): void {
    if (this.#destroyed) return;
    const text = textAt(this.#doc.value, this.#path);
    const current = this.#view.state.doc.toString();
    if (text === current) return;
    // Only the differing middle, so a selection outside it stays where it was.
    let start = 0;
    while (start < text.length && start < current.length && text[start] === current[start]) start++;
    let end = 0;
    while (end < text.length - start && end < current.length - start && text[text.length - 1 - end] === current[current.length - 1 - end]) end++;
    this.#view.dispatch({
      changes: { from: start, to: current.length - end, insert: text.slice(start, text.length - end) },
      annotations: fromDocument.of(true),
    });
  }

  /** Shares the main selection as stable cursors; one publication in flight, the latest wins. */
  #publish(): void {
    if (this.#publishing) {
      this.#publishAgain = true;
      return;
    }
    this.#publishing = true;
    void (async () => {
      try {
        do {
          this.#publishAgain = false;
          const user = typeof this.#options.user === "function" ? this.#options.user() : (this.#options.user ?? {});
          if (!this.#view.hasFocus) {
            this.#doc.presence.set({ ...clean(user) });
            continue;
          }
          const { anchor, head } = this.#view.state.selection.main;
          const selection: SharedSelection = {
            path: this.#path,
            anchor: await this.#doc.cursorAsync(this.#path, anchor),
            head: anchor === head ? "" : await this.#doc.cursorAsync(this.#path, head),
          };
          if (this.#destroyed) return;
          if (selection.head === "") selection.head = selection.anchor;
          this.#doc.presence.set({ ...clean(user), selection: { ...selection } });
        } while (this.#publishAgain && !this.#destroyed);
      } catch {
        // The editor and the document disagreed for a moment (a position past the end): the next update publishes again.
      } finally {
        this.#publishing = false;
      }
    })();
  }

  /** Places every peer's shared selection in this editor. */
  #placePeers(): void {
    const placement = ++this.#placement;
    void (async () => {
      // Never inside an editor update (this runs from one, and from the constructor).
      await Promise.resolve();
      const placed: Placed[] = [];
      for (const peer of this.#doc.presence.peers) {
        const at = await this.#place(peer);
        if (at) placed.push(at);
      }
      if (placement !== this.#placement || this.#destroyed) return;
      this.#view.dispatch({ effects: setRemote.of(placed) });
    })();
  }

  async #place(peer: Peer): Promise<Placed | null> {
    const state = peer.state as { name?: unknown; color?: unknown; selection?: Partial<SharedSelection> } | null;
    const selection = state?.selection;
    if (!selection || typeof selection.anchor !== "string" || typeof selection.head !== "string") return null;
    if (JSON.stringify(selection.path) !== JSON.stringify(this.#path)) return null;
    try {
      const anchor = await this.#doc.cursorPositionAsync(this.#path, selection.anchor);
      const head = selection.head === selection.anchor ? anchor : await this.#doc.cursorPositionAsync(this.#path, selection.head);
      return {
        peer: peer.id,
        name: typeof state.name === "string" ? state.name : peer.id.slice(0, 6),
        color: typeof state.color === "string" ? state.color : "#888",
        anchor,
        head,
      };
    } catch {
      return null; // a cursor into a change not here yet: placed after it arrives
    }
  }
}

/** Where a patch's path is relative to the text's: at the text, at one of its parents, or elsewhere. */
function relation(patchPath: Path, textPath: Path): "inside" | "above" | "elsewhere" {
  if (patchPath.length > textPath.length) return "elsewhere";
  for (let i = 0; i < patchPath.length; i++) if (patchPath[i] !== textPath[i]) return "elsewhere";
  return patchPath.length === textPath.length ? "inside" : "above";
}

/** Whether a patch of a parent container replaces or moves the child at `step` (the next step to the text). */
function touches(patch: Patch, step: string | number): boolean {
  if (patch.action === "put" || patch.action === "del") {
    if (patch.key === step) return true;
    return typeof step === "number" && typeof patch.key === "number" && patch.key <= step;
  }
  if (patch.action === "insert") return typeof step === "number" && patch.index <= step;
  return false;
}

function textAt(value: unknown, path: Path): string {
  let at = value;
  for (const step of path) at = typeof at === "object" && at !== null ? (at as Record<string | number, unknown>)[step] : undefined;
  return typeof at === "string" ? at : "";
}

/** `user` without undefined fields (presence is JSON). */
function clean(user: CursorUser): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(user)) if (value !== undefined && key !== "selection") out[key] = value;
  return out;
}

class Caret extends WidgetType {
  constructor(
    readonly name: string,
    readonly color: string,
  ) {
    super();
  }

  override eq(other: Caret): boolean {
    return other.name === this.name && other.color === this.color;
  }

  toDOM(): HTMLElement {
    const caret = document.createElement("span");
    caret.className = "cm-syncline-caret";
    caret.style.setProperty("--syncline-color", this.color);
    const label = document.createElement("span");
    label.className = "cm-syncline-name";
    label.textContent = this.name;
    caret.append(label);
    return caret;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

function decorate(placed: readonly Placed[], length: number): DecorationSet {
  const ranges: { from: number; to: number; decoration: Decoration }[] = [];
  for (const peer of placed) {
    const anchor = Math.min(peer.anchor, length);
    const head = Math.min(peer.head, length);
    const [from, to] = anchor <= head ? [anchor, head] : [head, anchor];
    if (from < to) {
      ranges.push({
        from,
        to,
        decoration: Decoration.mark({ class: "cm-syncline-selection", attributes: { style: `--syncline-color: ${cssColor(peer.color)}` } }),
      });
    }
    ranges.push({ from: head, to: head, decoration: Decoration.widget({ widget: new Caret(peer.name, cssColor(peer.color)), side: 1 }) });
  }
  return Decoration.set(
    ranges.map((range) => range.decoration.range(range.from, range.to)),
    true,
  );
}

/** A peer's colour, if it is one (a name or `#`/`rgb()`/`hsl()` without anything that could end the declaration). */
function cssColor(color: string): string {
  return /^[#\w(),.%\s-]{1,40}$/.test(color) ? color : "#888";
}

const THEME = EditorView.baseTheme({
  ".cm-syncline-selection": { backgroundColor: "color-mix(in srgb, var(--syncline-color) 25%, transparent)" },
  ".cm-syncline-caret": {
    position: "relative",
    borderLeft: "2px solid var(--syncline-color)",
    marginLeft: "-1px",
    marginRight: "-1px",
  },
  ".cm-syncline-name": {
    position: "absolute",
    top: "-1.3em",
    left: "-2px",
    fontSize: "11px",
    lineHeight: "1.2",
    padding: "0 3px",
    whiteSpace: "nowrap",
    color: "white",
    backgroundColor: "var(--syncline-color)",
    pointerEvents: "none",
  },
});
