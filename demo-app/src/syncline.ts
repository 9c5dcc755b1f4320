// Opens the repo and the shared list named in the address bar (or a new one).
import { useCallback, useSyncExternalStore } from "react";
import { createRepo, type DocHandle, type Immutable, type Repo, type Status } from "syncline";

export interface Todo {
  id: string;
  title: string;
  done: boolean;
}
export interface Todos {
  items: Todo[];
}

export interface Session {
  repo: Repo;
  doc: DocHandle<Todos>;
}

/** The relay serves this page, so it is at the same host. */
function relayUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

let session: Promise<Session> | undefined;

/** One repo per page: `#syncline:…` opens that list, otherwise a new list's URL goes into the hash. */
export function openSession(onRepo: (repo: Repo) => void): Promise<Session> {
  session ??= (async () => {
    const repo = await createRepo({ relay: relayUrl(), name: "syncline-demo" });
    onRepo(repo);
    const url = decodeURIComponent(location.hash.slice(1));
    if (url.startsWith("syncline:")) return { repo, doc: await repo.open<Todos>(url) };
    const doc = await repo.create<Todos>({ items: [] });
    history.replaceState(null, "", `#${doc.url}`);
    return { repo, doc };
  })();
  return session;
}

/** The doc's current value; re-renders on every change (local or remote). */
export function useDoc<T extends object>(doc: DocHandle<T>): Immutable<T> {
  const subscribe = useCallback((onChange: () => void) => doc.subscribe(() => onChange()), [doc]);
  return useSyncExternalStore(subscribe, () => doc.value);
}

/** Connection state and pending count; `repo.status` keeps its identity until it changes. */
export function useStatus(repo: Repo): Status {
  const subscribe = useCallback((onChange: () => void) => repo.on("status", () => onChange()), [repo]);
  return useSyncExternalStore(subscribe, () => repo.status);
}

export function newId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
