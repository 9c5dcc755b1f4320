// Who this tab is to the others: a name and a colour, shared in presence,
// shown on avatars and at this user's cursor in the others' note editors.
// Each tab has its own (sessionStorage: a reload keeps it), so two windows
// of one browser are two people, as the demo's hint suggests. A name the
// user sets is also kept in localStorage, as the name new tabs start with.
import { useCallback, useState } from "react";

export interface Me {
  name: string;
  color: string;
}

/** localStorage: `{ name }`, the last name the user set. */
const KEY = "syncline-demo-me";
/** sessionStorage: this tab's `Me`. */
const TAB_KEY = "syncline-demo-me-tab";
const COLORS = ["#e67e22", "#2980b9", "#8e44ad", "#16a085", "#c0392b", "#2c3e50"];

/** Reads a JSON record; `null` where storage is blocked or the record is unreadable. */
function read(storage: () => Storage, key: string): Partial<Me> | null {
  try {
    return JSON.parse(storage().getItem(key) ?? "null") as Partial<Me> | null;
  } catch {
    return null;
  }
}

/** Writes a JSON record where storage allows (a blocked storage only loses the memory of it). */
function write(storage: () => Storage, key: string, value: Partial<Me>): void {
  try {
    storage().setItem(key, JSON.stringify(value));
  } catch {
    // blocked or full: this tab still has its identity until it closes
  }
}

function load(): Me {
  const mine = read(() => sessionStorage, TAB_KEY);
  if (mine && typeof mine.name === "string" && typeof mine.color === "string") return { name: mine.name, color: mine.color };
  const n = Math.floor(Math.random() * 900) + 100;
  const saved = read(() => localStorage, KEY);
  const fresh = { name: typeof saved?.name === "string" ? saved.name : `Guest ${n}`, color: COLORS[n % COLORS.length]! };
  write(() => sessionStorage, TAB_KEY, fresh);
  return fresh;
}

/** This tab's identity and a function to rename it (saved at once). */
export function useMe(): [Me, (name: string) => void] {
  const [me, setMe] = useState(load);
  const rename = useCallback((name: string) => {
    setMe((old) => {
      const next = { ...old, name };
      write(() => sessionStorage, TAB_KEY, next);
      write(() => localStorage, KEY, { name });
      return next;
    });
  }, []);
  return [me, rename];
}
