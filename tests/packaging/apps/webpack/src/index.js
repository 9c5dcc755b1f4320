// Plain DOM on syncline, bundled by webpack 5 with no configuration. The
// document's URL is kept in localStorage, so a reload reopens it from IndexedDB.
import { createRepo } from "syncline";

const show = (id, text) => {
  document.body.replaceChildren(Object.assign(document.createElement("p"), { id, textContent: text }));
};

async function main() {
  // The default: the engine in a SharedWorker; `?page` in the page's URL: in the page. <html data-mode> says where it runs.
  const repo = await createRepo({ name: "packaging", ...(new URLSearchParams(location.search).has("page") ? { worker: false } : {}) });
  document.documentElement.dataset.mode = repo.status.mode;
  const url = localStorage.getItem("url");
  let doc;
  if (url) {
    doc = await repo.open(url);
  } else {
    doc = await repo.create({ count: 0 });
    doc.change((d) => { d.count = 41; });
    await repo.flush();
    localStorage.setItem("url", doc.url);
  }
  const value = Object.assign(document.createElement("p"), { id: "value" });
  const button = Object.assign(document.createElement("button"), { id: "inc", textContent: "+1" });
  button.onclick = () => {
    doc.change((d) => { d.count += 1; });
    // Marks the page once the change is durable in IndexedDB, so a test can reload then.
    repo.flush().then(() => {
      document.documentElement.dataset.saved = String(Number(document.documentElement.dataset.saved ?? 0) + 1);
    });
  };
  document.body.replaceChildren(value, button);
  doc.subscribe((v) => { value.textContent = String(v.count); });
}

show("status", "loading");
main().catch((error) => show("error", `${error.code ?? ""} ${error.message}`));
