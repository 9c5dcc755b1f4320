/**
 * Worker mode's part of ephemeral messages and requests (`messages.ts`):
 * the tabs of one app share the worker's engine, so the worker routes.
 *
 * - A peer's message goes to every tab that has its document open.
 * - `serve` is counted per method and document: the engine serves it while
 *   at least one tab does; a peer's request goes to the tab that has served
 *   it longest, which answers with a `reply` call.
 * - A request's answer goes to the tab that asked, and no other.
 * - A tab that goes away stops serving, and its waiting requests are
 *   forgotten (the tab is gone; nobody waits for them).
 */
import type { CoreApi, CoreEvent } from "./core.js";
import type { CallRequest, FromWorker } from "./worker-protocol.js";
import { serverKey, splitKey, toWire } from "./worker-protocol.js";

/** What the router needs of a tab. */
export interface RoutedTab {
  port: { postMessage(message: FromWorker): void };
}

export type MessageCall = Extract<CallRequest, { op: "sendMessage" | "request" | "serve" | "unserve" | "reply" }>;
type MessageEvent = Extract<CoreEvent, { type: "message" | "request" | "reply" }>;

export function isMessageCall(request: CallRequest): request is MessageCall {
  return ["sendMessage", "request", "serve", "unserve", "reply"].includes(request.op);
}

export class MessageRouter<T extends RoutedTab> {
  readonly #core: CoreApi;
  readonly #tabsOf: (url: string) => Iterable<T>;
  /** `url method` → the tabs serving it, oldest first. */
  readonly #servers = new Map<string, T[]>();
  /** A request's id → the tab that sent it. */
  readonly #askers = new Map<string, T>();

  constructor(core: CoreApi, tabsOf: (url: string) => Iterable<T>) {
    this.#core = core;
    this.#tabsOf = tabsOf;
  }

  /** A tab's call; its answer (the engine's calls are synchronous). */
  call(tab: T, request: MessageCall): unknown {
    const core = this.#core;
    switch (request.op) {
      case "sendMessage":
        return core.sendMessage(request.url, request.bytes);
      case "request": {
        const id = core.request(request.url, request.method, request.payload, request.timeoutMs) as string;
        this.#askers.set(id, tab);
        return id;
      }
      case "serve": {
        const key = serverKey(request.url, request.method);
        const tabs = this.#servers.get(key) ?? [];
        if (tabs.length === 0) core.serve(request.url, request.method);
        if (!tabs.includes(tab)) tabs.push(tab);
        this.#servers.set(key, tabs);
        return undefined;
      }
      case "unserve":
        this.#stopServing(tab, request.url, request.method);
        return undefined;
      case "reply":
        return core.reply(request.url, request.to, request.requestId, request.result, request.error);
    }
  }

  event(event: MessageEvent): void {
    switch (event.type) {
      case "message":
        for (const tab of this.#tabsOf(event.url)) tab.port.postMessage({ t: "message", url: event.url, from: event.from, bytes: event.bytes });
        return;
      case "request": {
        const server = this.#servers.get(serverKey(event.url, event.method))?.[0];
        if (server) {
          const { url, from, id, method, payload } = event;
          server.port.postMessage({ t: "request", url, from, id, method, payload });
        } else {
          this.#core.reply(event.url, event.from, event.id, undefined, `"${event.method}" is no longer served here`);
        }
        return;
      }
      case "reply": {
        const asker = this.#askers.get(event.id);
        this.#askers.delete(event.id);
        const answer: FromWorker = event.result !== undefined
          ? { t: "answer", url: event.url, id: event.id, result: event.result }
          : { t: "answer", url: event.url, id: event.id, error: toWire(event.error) };
        asker?.port.postMessage(answer);
        return;
      }
    }
  }

  /** `tab` went away: it serves nothing, and waits for nothing. */
  leave(tab: T): void {
    for (const key of [...this.#servers.keys()]) {
      const [url, method] = splitKey(key);
      this.#stopServing(tab, url, method);
    }
    for (const [id, asker] of this.#askers) if (asker === tab) this.#askers.delete(id);
  }

  #stopServing(tab: T, url: string, method: string): void {
    const key = serverKey(url, method);
    const tabs = this.#servers.get(key)?.filter((serving) => serving !== tab) ?? [];
    if (tabs.length > 0) {
      this.#servers.set(key, tabs);
      return;
    }
    if (!this.#servers.delete(key)) return;
    try {
      this.#core.unserve(url, method);
    } catch {
      // the engine closed: it serves nothing
    }
  }
}
