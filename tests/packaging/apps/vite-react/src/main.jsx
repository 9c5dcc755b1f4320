// A React app on syncline: the document's URL is kept in localStorage, so a
// reload reopens it from IndexedDB.
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { createRepo } from "syncline";
import { RepoProvider, useDoc, useRepo } from "syncline/react";

/** Marks the page once a change is durable in IndexedDB (`repo.flush()`), so a test can reload then. */
const saved = () => {
  document.documentElement.dataset.saved = String(Number(document.documentElement.dataset.saved ?? 0) + 1);
};

function Counter({ url }) {
  const repo = useRepo();
  const [value, change] = useDoc(url);
  if (!value) return <p id="status">opening</p>;
  return (
    <>
      <p id="value">{value.count}</p>
      <button id="inc" onClick={() => { change((d) => { d.count += 1; }); void repo.flush().then(saved); }}>+1</button>
      <button id="devtools" onClick={() => void import("syncline/devtools").then(({ mountDevtools }) => mountDevtools(repo))}>devtools</button>
    </>
  );
}

function App() {
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
      <Counter url={state.url} />
    </RepoProvider>
  );
}

createRoot(document.getElementById("root")).render(<App />);
