// An in-memory host for a real `Handle` whose engine undo stack is reduced
// to two counts: each change is one step. Shared by the React and Svelte
// binding tests (not a test file itself).

/** `core` as `host.withCore` hands it to the handle; `applyChange` counts a step. */
export function undoHost() {
  const core = {
    done: 0,
    undone: 0,
    undoState: () => [core.done > 0, core.undone > 0],
    undo: () => (core.done > 0 ? (core.done--, core.undone++, [{ action: "put", path: [], key: "undone", value: core.undone }]) : null),
    redo: () => (core.undone > 0 ? (core.undone--, core.done++, [{ action: "put", path: [], key: "undone", value: core.undone }]) : null),
  };
  return {
    applyChange: (_url, ops) => {
      core.done++;
      core.undone = 0;
      return ops.map((op) => ({ action: "put", path: op.obj, key: op.key, value: op.value }));
    },
    withCore: (call) => call(core),
    setPresence: () => {},
  };
}
