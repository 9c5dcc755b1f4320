// Opens the repo and the shared list named in the address bar (or a new one).
import { createRepo, Text, type Repo } from "syncline";

export interface Todo {
  id: string;
  title: string;
  done: boolean;
}
export interface Todos {
  items: Todo[];
  /** A collaborative text, edited in the note's CodeMirror editor (lists made before it existed get it when the note opens). */
  note?: string;
}

export interface Session {
  repo: Repo;
  /** The shared list's URL. */
  url: string;
}

/** The relay serves this page, so it is at the same host. */
function relayUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

let session: Promise<Session> | undefined;

/** One repo per page: `#syncline:…` opens that list, otherwise a new list's URL goes into the hash. */
export function openSession(): Promise<Session> {
  session ??= (async () => {
    const repo = await createRepo({ relay: relayUrl(), name: "syncline-demo" });
    const url = decodeURIComponent(location.hash.slice(1));
    if (url.startsWith("syncline:")) return { repo, url };
    const doc = await repo.create<Todos>({ items: [] });
    // The note's text exists from the start; making it is not an undo step.
    doc.change((d) => void (d.note = new Text("")), { message: "note.created", undoable: false });
    history.replaceState(null, "", `#${doc.url}`);
    return { repo, url: doc.url };
  })();
  return session;
}

export function newId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
