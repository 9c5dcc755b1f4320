// A server component, rendered by Node at each request (`next start`): it
// imports syncline itself, echoes a header of the request (so a test can
// tell it was rendered for that request), and server-renders the client
// component, which imports syncline and syncline/react. None of this may
// load the wasm or touch a browser global on the server.
import { headers } from "next/headers";
import { createRepo, SynclineError } from "syncline";
import Counter from "./counter.jsx";

export const dynamic = "force-dynamic";

export default async function Page() {
  const nonce = (await headers()).get("x-packaging-nonce") ?? "a browser";
  return (
    <main>
      <h1 id="ssr">{`server-rendered with syncline (${typeof createRepo}, ${typeof SynclineError}) for ${nonce}`}</h1>
      <Counter />
    </main>
  );
}
