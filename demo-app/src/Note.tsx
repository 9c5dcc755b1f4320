// The shared note: a collaborative text. Each keystroke becomes one splice
// (the difference between the old and new textarea value), so two people
// typing in the same note both keep their words.
import { useLayoutEffect, useRef } from "react";
import { splice, Text } from "syncline";
import { useDoc } from "syncline/react";
import type { Todos } from "./syncline";

/** The single edit that turns `before` into `after`: common prefix and suffix kept. */
export function textEdit(before: string, after: string): { index: number; deleteCount: number; insert: string } {
  let start = 0;
  const shortest = Math.min(before.length, after.length);
  while (start < shortest && before[start] === after[start]) start++;
  let end = 0;
  while (end < shortest - start && before[before.length - 1 - end] === after[after.length - 1 - end]) end++;
  return { index: start, deleteCount: before.length - start - end, insert: after.slice(start, after.length - end) };
}

/** Where a caret at `at` ends up after `edit` was applied before or around it. */
function shift(at: number, edit: ReturnType<typeof textEdit>): number {
  if (at <= edit.index) return at;
  if (at >= edit.index + edit.deleteCount) return at - edit.deleteCount + edit.insert.length;
  return edit.index + edit.insert.length;
}

export function Note({ url }: { url: string }) {
  // `undefined` until the doc has opened; a doc without a note reads as "".
  const [note, change] = useDoc<Todos, string>(url, (todos) => todos.note ?? "");
  const area = useRef<HTMLTextAreaElement>(null);
  const shown = useRef("");

  // A remote edit replaced the text: keep the caret where the user had it.
  useLayoutEffect(() => {
    const element = area.current;
    if (note === undefined) return;
    const next = note;
    if (!element || element.value === next) {
      shown.current = next;
      return;
    }
    const edit = textEdit(element.value, next);
    const [start, end] = [shift(element.selectionStart, edit), shift(element.selectionEnd, edit)];
    element.value = next;
    shown.current = next;
    if (document.activeElement === element) element.setSelectionRange(start, end);
  }, [note]);

  if (note === undefined) return null;
  const onInput = () => {
    const element = area.current;
    if (!element) return;
    const value = element.value;
    const edit = textEdit(shown.current, value);
    shown.current = value;
    change((d) => {
      if (typeof d.note !== "string") d.note = new Text(value);
      else splice(d, "note", edit.index, edit.deleteCount, edit.insert);
    }, { message: "note.edited" });
  };
  return (
    <section className="note">
      <h2>Shared note</h2>
      <textarea
        ref={area}
        data-testid="note"
        defaultValue={note}
        onInput={onInput}
        rows={4}
        placeholder="Type here; everyone with the link types in the same note."
        aria-label="Shared note"
      />
    </section>
  );
}
