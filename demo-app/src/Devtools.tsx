// The "Devtools" button: loads syncline/devtools on the first click (not
// in the app's main chunk), then toggles the panel.
import { useRef } from "react";
import type { Devtools } from "syncline/devtools";
import { useRepo } from "syncline/react";

export function DevtoolsButton() {
  const repo = useRepo();
  const devtools = useRef<Promise<Devtools>>(undefined);
  const click = () => {
    if (devtools.current) void devtools.current.then((d) => d.toggle());
    else devtools.current = import("syncline/devtools").then(({ mountDevtools }) => mountDevtools(repo));
  };
  return (
    <button type="button" data-testid="open-devtools" onClick={click}>
      Devtools
    </button>
  );
}
