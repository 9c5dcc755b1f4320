// The shared note: a collaborative text in a CodeMirror 6 editor bound with
// syncline/codemirror. Two people typing in the same note both keep their
// words; each sees the other's caret and selection with their name; Undo
// (the buttons, or Mod-z / Mod-y / Mod-Shift-z in the editor) reverts only
// this page's own edits: undo works on the whole document, and the list's
// changes (App.tsx) opt out of it, so here it undoes typing.
import { useEffect, useRef, useState } from "react";
import { EditorView, placeholder } from "@codemirror/view";
import { Text, type DocHandle } from "syncline";
import { syncline } from "syncline/codemirror";
import { useRepo, useUndo } from "syncline/react";
import type { Me } from "./me";
import type { Todos } from "./syncline";

export function Note({ url, me }: { url: string; me: Me }) {
  const repo = useRepo();
  const [handle, setHandle] = useState<DocHandle<Todos>>();
  const { canUndo, canRedo, undo, redo } = useUndo(url);
  const parent = useRef<HTMLDivElement>(null);
  // The binding reads the user at each publication: a rename shows at the next one.
  const user = useRef(me);
  user.current = me;

  useEffect(() => {
    let live = true;
    void repo.open<Todos>(url).then((opened) => live && setHandle(opened));
    return () => {
      live = false;
    };
  }, [repo, url]);

  useEffect(() => {
    const element = parent.current;
    if (!handle || !element) return;
    // A list made before the note existed gets its (empty) note now; not an undo step.
    if (typeof handle.value.note !== "string") handle.change((d) => void (d.note = new Text("")), { message: "note.created", undoable: false });
    const view = new EditorView({
      doc: handle.value.note ?? "",
      extensions: [
        syncline(handle, ["note"], { user: () => ({ ...user.current }) }),
        EditorView.lineWrapping,
        placeholder("Type here; everyone with the link types in the same note."),
        EditorView.contentAttributes.of({ "aria-label": "Shared note" }),
      ],
      parent: element,
    });
    return () => view.destroy();
  }, [handle]);

  return (
    <section className="note">
      <h2>
        Shared note
        {/* Pressing a button keeps the focus (and so the shared caret) in the editor. */}
        <span className="undo" onMouseDown={(e) => e.preventDefault()}>
          <button type="button" data-testid="undo" disabled={!canUndo} onClick={undo} title="Undo (Ctrl-Z)">
            Undo
          </button>
          <button type="button" data-testid="redo" disabled={!canRedo} onClick={redo} title="Redo (Ctrl-Y, Ctrl-Shift-Z)">
            Redo
          </button>
        </span>
      </h2>
      <div ref={parent} data-testid="note" className="editor" />
    </section>
  );
}
