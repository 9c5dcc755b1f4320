"use client";
// The Vite + React packaging app's component, as a Next client component: the
// document's URL is kept in localStorage, so a reload reopens it from
// IndexedDB. On the server it renders `loading` (effects don't run there).
import { useEffect, useState } from "react";
import { createRepo } from "syncline";
import { RepoProvider, useDoc, useRepo } from "syncline/react";

/** Marks the page once a change is durable in IndexedDB (`repo.flush()`), so a test can reload then. */
const saved = () => {
  document.documentElement.dataset.saved = String(Number(document.documentElement.dataset.saved ?? 0) + 1);
};

function Value({ url }) {
  const repo = useRepo();
  const [value, change] = useDoc(url);
  if (!value) return <p id="status">opening</p>;
  return (
    <>
      <p id="value">{value.count}</p>
      <button id="inc" onClick={() => { change((d) => { d.count += 1; }); void repo.flush().then(saved); }}>+1</button>
    </>
  );
}

export default function Counter() {
  const [state, setState] = useState(null);
  useEffect(() => {
    (async () => {
      // The default: the engine in a SharedWorker; `?page` in the page's URL: in the page. <html data-mode> says where it runs.
      const repo = await createRepo({ name: "packaging", ...(new URLSearchParams(location.search).has("page") ? { worker: false } : {}) });
      document.documentElement.dataset.mode = repo.status.mode;
      let url = localStorage.getItem("url");
      if (!url) {
        const doc = await repo.create({ count: 0 });
        doc.change((d) => { d.count = 41; });
        await repo.flush();
        url = doc.url;
        localStorage.setItem("url", url);
      }
      setState({ repo, url });
    })().catch((error) => setState({ error: `${error.code ?? ""} ${error.message}` }));
  }, []);
  if (!state) return <p id="status">loading</p>;
  if (state.error) return <p id="error">{state.error}</p>;
  return (
    <RepoProvider repo={state.repo}>
      <Value url={state.url} />
    </RepoProvider>
  );
}
