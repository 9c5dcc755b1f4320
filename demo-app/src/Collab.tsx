// Who else is here (presence avatars) and what happened (the history panel).
import { useEffect, useState } from "react";
import type { DocHandle, HistoryEntry } from "syncline";
import { useDoc, usePresence, useRepo } from "syncline/react";
import type { Todos } from "./syncline";

interface Me {
  name: string;
  color: string;
}

const COLORS = ["#e67e22", "#2980b9", "#8e44ad", "#16a085", "#c0392b", "#2c3e50"];

/** This window's identity for presence: random, kept for the tab's life. */
function me(): Me {
  const saved = sessionStorage.getItem("syncline-demo-me");
  if (saved) return JSON.parse(saved) as Me;
  const n = Math.floor(Math.random() * 900) + 100;
  const fresh = { name: `Guest ${n}`, color: COLORS[n % COLORS.length]! };
  sessionStorage.setItem("syncline-demo-me", JSON.stringify(fresh));
  return fresh;
}

export function Avatars({ url }: { url: string }) {
  const [peers, setPresence] = usePresence<Me & Record<string, string>>(url);
  const [self] = useState(me);
  const [value] = useDoc<Todos>(url);
  const open = value !== undefined;
  useEffect(() => {
    if (open) setPresence({ ...self });
  }, [open, setPresence, self]);
  return (
    <div className="avatars" data-testid="avatars">
      <span className="avatar" style={{ background: self.color }} title={`${self.name} (you)`}>
        {self.name.slice(-3)}
      </span>
      {peers.map((peer) => (
        <span key={peer.id} className="avatar" data-testid="peer" style={{ background: peer.state.color }} title={peer.state.name}>
          {peer.state.name.slice(-3)}
        </span>
      ))}
    </div>
  );
}

export function HistoryPanel({ url }: { url: string }) {
  const repo = useRepo();
  const [handle, setHandle] = useState<DocHandle<Todos>>();
  const [value] = useDoc<Todos>(url); // re-render on every change
  const [viewing, setViewing] = useState<{ hash: string; items: string[] }>();
  useEffect(() => {
    void repo.open<Todos>(url).then(setHandle);
  }, [repo, url]);
  if (!handle || !value) return null;
  const entries: readonly HistoryEntry[] = handle.history();
  const recent = entries.slice(-8).reverse();
  return (
    <details className="history" data-testid="history">
      <summary>History ({entries.length} changes)</summary>
      <ol>
        {recent.map((entry) => (
          <li key={entry.hash} data-testid="history-entry">
            <button
              onClick={() => setViewing({ hash: entry.hash, items: handle.view([entry.hash]).items.map((t) => t.title) })}
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
