// Who this browser is to the others: a name the user sets (kept in
// localStorage, so every tab of this browser shares it and a reload keeps
// it) and a colour picked once. Shared in presence, shown on avatars and
// at this user's cursor in the others' note editors.
import { useCallback, useState } from "react";

export interface Me {
  name: string;
  color: string;
}

const KEY = "syncline-demo-me";
const COLORS = ["#e67e22", "#2980b9", "#8e44ad", "#16a085", "#c0392b", "#2c3e50"];

function load(): Me {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "null") as Partial<Me> | null;
    if (saved && typeof saved.name === "string" && typeof saved.color === "string") return { name: saved.name, color: saved.color };
  } catch {
    // unreadable: start again
  }
  const n = Math.floor(Math.random() * 900) + 100;
  const fresh = { name: `Guest ${n}`, color: COLORS[n % COLORS.length]! };
  localStorage.setItem(KEY, JSON.stringify(fresh));
  return fresh;
}

/** This browser's identity and a function to rename it (saved at once). */
export function useMe(): [Me, (name: string) => void] {
  const [me, setMe] = useState(load);
  const rename = useCallback((name: string) => {
    setMe((old) => {
      const next = { ...old, name };
      localStorage.setItem(KEY, JSON.stringify(next));
      return next;
    });
  }, []);
  return [me, rename];
}
