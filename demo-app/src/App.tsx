import { useEffect, useState, type FormEvent } from "react";
import type { Immutable } from "syncline";
import { RepoProvider, useDoc, useRepo, useSyncStatus } from "syncline/react";
import { Avatars, HistoryPanel } from "./Collab";
import { DevtoolsButton } from "./Devtools";
import { useMe } from "./me";
import { Note } from "./Note";
import { newId, openSession, type Session, type Todos } from "./syncline";

export function App() {
  const [session, setSession] = useState<Session>();
  const [error, setError] = useState<string>();
  const [me, rename] = useMe();

  useEffect(() => {
    openSession().then(setSession, (e: unknown) => setError(String(e)));
    const reload = () => location.reload();
    window.addEventListener("hashchange", reload);
    return () => window.removeEventListener("hashchange", reload);
  }, []);

  if (error) return <p className="error" data-testid="error">{error}</p>;
  if (!session) return <p data-testid="loading">Loading…</p>;
  return (
    <RepoProvider repo={session.repo}>
      <main>
        <header>
          <h1>Syncline todos</h1>
          <StatusBar />
        </header>
        <Avatars url={session.url} me={me} rename={rename} />
        <TodoList url={session.url} />
        <Note url={session.url} me={me} />
        <HistoryPanel url={session.url} />
      </main>
    </RepoProvider>
  );
}

function StatusBar() {
  const status = useSyncStatus();
  const repo = useRepo();
  const [offline, setOffline] = useState(false);
  const toggle = () => {
    repo.setOnline(offline);
    setOffline(!offline);
  };
  return (
    <div className="status">
      <span className={`dot ${status.connection}`} data-testid="connection">{status.connection}</span>
      <span data-testid="pending">
        {status.pending === 0 ? "all changes synced" : `${status.pending} pending`}
      </span>
      <DevtoolsButton />
      <label className="switch">
        <input type="checkbox" data-testid="work-offline" checked={offline} onChange={toggle} />
        work offline
      </label>
    </div>
  );
}

function TodoList({ url }: { url: string }) {
  // Re-renders only when the list changes.
  const [items, change] = useDoc<Todos, Immutable<Todos>["items"]>(url, (todos) => todos.items);
  const [title, setTitle] = useState("");
  if (!items) return <p data-testid="loading">Opening…</p>;

  // The list's changes are not undoable: Undo (the note's buttons and keys)
  // works on the whole document, and is meant for the note's text here.
  const add = (event: FormEvent) => {
    event.preventDefault();
    const text = title.trim();
    if (!text) return;
    change((d) => {
      d.items.push({ id: newId(), title: text, done: false });
    }, { message: "todo.added", undoable: false });
    setTitle("");
  };
  const toggle = (id: string) =>
    change((d) => {
      const item = d.items.find((t) => t.id === id);
      if (item) item.done = !item.done;
    }, { message: "todo.toggled", undoable: false });
  const remove = (id: string) =>
    change((d) => {
      const index = d.items.findIndex((t) => t.id === id);
      if (index >= 0) d.items.splice(index, 1);
    }, { message: "todo.deleted", undoable: false });

  return (
    <section>
      <form onSubmit={add}>
        <input
          data-testid="new-item"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
          placeholder="What needs doing?"
          aria-label="New item"
        />
        <button data-testid="add-item" type="submit">Add</button>
      </form>
      <ul data-testid="items">
        {items.map((item) => (
          <li key={item.id} data-testid="item" className={item.done ? "done" : ""}>
            <label>
              <input
                type="checkbox"
                data-testid="toggle-item"
                checked={item.done}
                onChange={() => toggle(item.id)}
              />
              <span data-testid="item-title">{item.title}</span>
            </label>
            <button data-testid="delete-item" onClick={() => remove(item.id)} aria-label={`Delete ${item.title}`}>
              ✕
            </button>
          </li>
        ))}
      </ul>
      {items.length === 0 && <p className="empty">Nothing yet. Open this page in another window to edit together.</p>}
      <p className="share">
        Share: <code data-testid="doc-url">{url}</code>
      </p>
    </section>
  );
}
