// Who else is here (presence avatars) and what happened (the history panel).
import { useEffect, useState } from "react";
import type { DocHandle, HistoryEntry, JsonValue } from "syncline";
import { useDoc, useHistory, usePresence, useRepo } from "syncline/react";
import type { Me } from "./me";
import type { Todos } from "./syncline";

/** The others here, and this user's own name (editable: kept in localStorage, shared at once). */
export function Avatars({ url, me, rename }: { url: string; me: Me; rename: (name: string) => void }) {
  const [peers, setPresence] = usePresence<Partial<Me> & Record<string, JsonValue>>(url);
  const [value] = useDoc<Todos>(url);
  const open = value !== undefined;
  // While the note's editor has focus its binding shares { ...me, selection }; this shares the name on open and on a rename.
  useEffect(() => {
    if (open) setPresence({ ...me });
  }, [open, setPresence, me]);
  return (
    <div className="avatars" data-testid="avatars">
      <label className="avatar me" style={{ background: me.color }} title="Your name, as the others see it: click to change">
        You:
        <input
          data-testid="my-name"
          value={me.name}
          onChange={(e) => rename(e.target.value)}
          aria-label="Your name"
          size={Math.max(4, me.name.length)}
        />
      </label>
      {peers.map((peer) => (
        <span key={peer.id} className="avatar" data-testid="peer" style={{ background: peer.state?.color ?? "#888" }}>
          {peer.state?.name ?? peer.id.slice(0, 6)}
        </span>
      ))}
    </div>
  );
}

export function HistoryPanel({ url }: { url: string }) {
  const repo = useRepo();
  const [handle, setHandle] = useState<DocHandle<Todos>>();
  // Re-renders when the history grows: with the engine in a worker, a round trip after the value.
  const entries: readonly HistoryEntry[] = useHistory(url);
  const [viewing, setViewing] = useState<{ hash: string; items: string[] }>();
  useEffect(() => {
    void repo.open<Todos>(url).then(setHandle);
  }, [repo, url]);
  if (!handle || entries.length === 0) return null;
  const recent = entries.slice(-8).reverse();
  return (
    <details className="history" data-testid="history">
      <summary>History ({entries.length} changes)</summary>
      <ol>
        {recent.map((entry) => (
          <li key={entry.hash} data-testid="history-entry">
            <button
              onClick={() =>
                // viewAsync: works whether the engine is in the page or in a worker.
                void handle.viewAsync([entry.hash]).then((then) => setViewing({ hash: entry.hash, items: then.items.map((t) => t.title) }))
              }
            >
              {entry.message ?? "change"}
            </button>{" "}
            <time>{entry.time ? new Date(entry.time).toLocaleTimeString() : ""}</time>
          </li>
        ))}
      </ol>
      {viewing && (
        <p data-testid="history-view">
          Just after that change the list was: {viewing.items.length ? viewing.items.join(", ") : "(empty)"}
        </p>
      )}
    </details>
  );
}
