/**
 * What a serving isolate of `--workers` runs: it builds its own handler
 * from the configuration the main thread posts, listens on the shared port
 * (`reusePort`), sends its access-log lines to the main thread, and drains,
 * cuts or dies as told. Each Worker runs it (cli/worker_entry.ts), and so
 * does the main thread for worker 0 ({@linkcode localWorker}): the main
 * isolate holds every layer of the handler anyway, so serving there saves
 * an isolate (about 28 MiB). Internal to the CLI (not exported from
 * `mod.ts`).
 *
 * @module
 */

import { buildApp } from "./app.ts";
import {
  DEFAULT_MAX_CONNECTIONS,
  guardAvailable,
  serveGuarded,
} from "./conn_guard.ts";
import { FORCE_WAIT_MS } from "./in_flight.ts";
import { sharedBackend } from "./shared_backends.ts";
import { serveTlsFront, type TlsFront } from "./tls_front.ts";
import { sharedConns } from "./shared_conns.ts";
import { sharedSlots } from "./shared_slots.ts";
import { withTestHooks } from "./test_hooks.ts";
import type { FromWorker, StartMessage, ToWorker } from "./worker_messages.ts";
import { errorMessage } from "../server/log.ts";
import type { Handler } from "../server/types.ts";

/**
 * A serving isolate's side of its channel to the main thread: a Worker's
 * global scope, or an in-process channel ({@linkcode localWorker}).
 */
export interface WorkerPort {
  postMessage(message: FromWorker): void;
  addEventListener(
    type: "message",
    listener: (event: MessageEvent<ToWorker>) => void,
  ): void;
  addEventListener(
    type: "error",
    listener: (event: ErrorEvent) => void,
  ): void;
  addEventListener(
    type: "unhandledrejection",
    listener: (event: PromiseRejectionEvent) => void,
  ): void;
  removeEventListener(
    type: "message",
    listener: (event: MessageEvent<ToWorker>) => void,
  ): void;
}

/**
 * What the main thread holds of a serving isolate: a `Worker`, or the
 * in-process one of {@linkcode localWorker}.
 */
export interface ServingIsolate {
  /** Posts to the isolate. */
  postMessage(message: ToWorker): void;
  /** Receives what it posts. */
  onmessage: ((event: MessageEvent<FromWorker>) => void) | null;
  /** An error it did not handle itself (a Worker's only). */
  onerror: ((event: ErrorEvent) => void) | null;
  /**
   * Ends it: a Worker's isolate is gone; an in-process one is detached
   * (its channel closed, its global listeners removed) once it has cleaned
   * up after itself.
   */
  terminate(): void;
}

/** Most lines held before they are posted (else: at the end of the tick). */
const _LOG_BATCH = 256;

/** Access-log lines to the main thread, batched per tick, in order. */
function _logSink(
  port: WorkerPort,
): { write(line: string): void; flush(): void } {
  let lines: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (lines.length === 0) return;
    port.postMessage({ type: "log", lines });
    lines = [];
  };
  return {
    write(line) {
      lines.push(line);
      if (lines.length >= _LOG_BATCH) flush();
      else if (timer === undefined) timer = setTimeout(flush, 0);
    },
    flush,
  };
}

/** This thread's id (Linux), for the main thread to find its children. */
function _threadId(): number | undefined {
  try {
    const id = Number(Deno.readLinkSync("/proc/thread-self").split("/").pop());
    return Number.isInteger(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Serves as `start` says until told to stop, or until it crashes. */
async function _run(start: StartMessage, port: WorkerPort): Promise<void> {
  const { config, index } = start;
  const log = _logSink(port);
  const accessLog = config.handler.accessLog;
  if (accessLog) {
    config.handler.accessLog = {
      ...(accessLog === true ? {} : accessLog),
      write: log.write,
    };
  }
  // Shared counts this run holds: given up as it says it is done (main
  // then clears its index for the replacement).
  const retiring: { retire(): void }[] = [];
  const retire = (): void => retiring.forEach((r) => r.retire());
  [config.handler, ...config.sites.map((s) => s.handler)].forEach((h, i) => {
    const buffer = start.cgiSlots[i];
    const backends = start.fastcgiSlots[i];
    if (h.fastcgi && backends) {
      h.fastcgi = {
        ...h.fastcgi,
        shared: backends.map((b) => sharedBackend(b, index)),
      };
    }
    // A rule's "cgi" mount alone: no folder of --cgi's own (dirs: {}).
    if (buffer) {
      const slots = sharedSlots(buffer, index);
      retiring.push(slots);
      h.cgi = { ...(h.cgi ?? { dirs: {} }), sharedSlots: slots };
    }
  });
  const stopping = new AbortController();
  const killing = new AbortController();
  let built: ReturnType<typeof buildApp>;
  try {
    built = buildApp(config, {
      stopping: stopping.signal,
      killing: killing.signal,
    });
  } catch (error) {
    return port.postMessage({ type: "failed", message: errorMessage(error) });
  }
  const { app, requests } = built;
  const handler: Handler = start.testHooks
    ? withTestHooks(requests.handler, index)
    : requests.handler;
  const cutOff = Promise.withResolvers<void>();
  let forced: Promise<unknown> | undefined;
  let giveUp: ReturnType<typeof setTimeout> | undefined;
  const force = (): Promise<unknown> => {
    if (forced) return forced;
    killing.abort();
    forced = Promise.race([
      Promise.allSettled([requests.cut(), app.close()]),
      new Promise((resolve) => giveUp = setTimeout(resolve, FORCE_WAIT_MS)),
    ]).finally(() => clearTimeout(giveUp));
    forced.then(() => cutOff.resolve());
    return forced;
  };
  const listen = {
    hostname: config.host,
    port: start.port,
    onListen: () => port.postMessage({ type: "listening", tid: _threadId() }),
  };
  // Aborted only by a crash (before any shutdown()): shutdown() stops it.
  const controller = new AbortController();
  let server: { shutdown(): Promise<void>; finished: Promise<void> };
  let front: TlsFront | undefined;
  try {
    const guard = config.guard;
    const shared = guard && start.connSlots
      ? sharedConns(start.connSlots, index, {
        maxConnections: guard.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
        maxConnectionsPerClient: guard.maxConnectionsPerClient ?? 0,
      })
      : undefined;
    if (start.tls) {
      // HTTPS: this isolate's own TLS front on the shared port.
      front = await serveTlsFront(handler, {
        ...listen,
        ...start.tls,
        reusePort: true,
        ...(guard ? { guard } : {}),
        ...(shared ? { shared } : {}),
        signal: controller.signal,
      });
      server = front;
    } else {
      server = guard && guardAvailable()
        ? serveGuarded(handler, {
          ...listen,
          ...guard,
          reusePort: true,
          ...(shared ? { shared } : {}),
          signal: controller.signal,
          log: (level, message) => {
            if (level !== "info") console.error(`${level}: ${message}`);
          },
        })
        : Deno.serve({
          ...listen,
          reusePort: true,
          signal: controller.signal,
        }, handler);
    }
  } catch (error) {
    return port.postMessage({
      type: "failed",
      message: `cannot listen on ${config.host}:${start.port}: ${
        errorMessage(error)
      }`,
    });
  }
  // Once shutdown() was called, aborting the server throws (Deno.serve).
  let shutDown = false;
  let crashed = false;
  const crash = (message: string): void => {
    if (crashed) return;
    crashed = true;
    port.postMessage({ type: "crashed", message });
    // As a crashed process's are: its connections close now, listener
    // first, answers under way included (the abort cuts Deno.serve's and
    // the guard's connections and the TLS front's sockets). Worker 0 lives
    // on in the main isolate, so nothing else would close them, and the
    // counts they hold in the shared buffers must be given back before
    // `dead` (main then clears this index for its replacement).
    if (!shutDown) {
      shutDown = true;
      controller.abort();
    }
    stopping.abort();
    force().finally(async () => {
      let wait: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        server.finished.catch(() => {}),
        new Promise((resolve) => wait = setTimeout(resolve, _CLOSE_WAIT_MS)),
      ]);
      clearTimeout(wait);
      log.flush();
      retire();
      port.postMessage({ type: "dead" });
    });
  };
  // An uncaught error or rejection would end the isolate at once, its
  // scripts still running: it stops and cleans up first, then main ends it.
  port.addEventListener("error", (event) => {
    event.preventDefault();
    crash(event.message);
  });
  port.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    crash(`unhandled rejection: ${errorMessage(event.reason)}`);
  });
  let stopped = false;
  port.addEventListener("message", (event) => {
    const message = event.data;
    if (message.type === "certificate") {
      try {
        front?.setCertificate(message.cert, message.key);
      } catch { /* checked by main: the old pair stays */ }
      return;
    }
    if (message.type === "cut") {
      // Past the grace: cut, then say so (main ends the isolate then).
      force().finally(async () => {
        await _settled(requests, _CUT_SETTLE_MS);
        log.flush();
        retire();
        port.postMessage({ type: "stopped" });
      });
      return;
    }
    if (message.type !== "drain" || stopping.signal.aborted) return;
    port.postMessage({ type: "draining", count: requests.count });
    stopping.abort();
    shutDown = true;
    server.shutdown().catch(() => {});
    Promise.race([server.finished, cutOff.promise]).finally(async () => {
      if (stopped || crashed) return;
      stopped = true;
      // A background child still holding a finished script's pipe dies too.
      await force();
      // In-flight answers get a bounded moment to finish before main ends us.
      await _settled(requests, _CUT_SETTLE_MS);
      log.flush();
      retire();
      port.postMessage({ type: "stopped" });
    });
  });
}

/**
 * Runs a serving isolate on `port`: says `loaded`, then serves as the
 * `start` message says until it is told to stop, or crashes.
 *
 * @example In a Worker's module
 * ```ts ignore
 * attachWorker(globalThis as unknown as WorkerPort);
 * ```
 *
 * @param port Its channel to the main thread.
 */
export function attachWorker(port: WorkerPort): void {
  const onStart = (event: MessageEvent<ToWorker>): void => {
    // Only a start starts it; a drain or cut before it is main's, which
    // ends an isolate that had not started yet.
    if (event.data.type !== "start") return;
    port.removeEventListener("message", onStart);
    void _run(event.data, port);
  };
  port.addEventListener("message", onStart);
  // Messages posted before this ran may be lost: main waits for this.
  port.postMessage({ type: "loaded" });
}

/**
 * Worker 0 in the main isolate: {@linkcode attachWorker} over a
 * `MessageChannel`, behind the same interface as a `Worker` (messages are
 * structured clones both ways, as a Worker's). Its uncaught errors and
 * rejections are the main isolate's (`globalThis` listeners, removed by
 * `terminate()`): it stops and cleans up, and the main thread starts a
 * new one in its place.
 *
 * @example Started by the supervisor
 * ```ts ignore
 * const isolate = localWorker();
 * isolate.onmessage = (event) => console.log(event.data.type); // "loaded"
 * ```
 *
 * @returns The isolate's handle.
 */
export function localWorker(): ServingIsolate {
  const { port1: outer, port2: inner } = new MessageChannel();
  const globals: [string, EventListener][] = [];
  let ended = false;
  const isolate: ServingIsolate = {
    onmessage: null,
    onerror: null,
    postMessage(message) {
      if (!ended) outer.postMessage(message);
    },
    terminate() {
      if (ended) return;
      ended = true;
      outer.close();
      inner.close();
      for (const [type, listener] of globals.splice(0)) {
        globalThis.removeEventListener(type, listener);
      }
    },
  };
  outer.onmessage = (event: MessageEvent<FromWorker>) =>
    isolate.onmessage?.(event);
  const port = {
    postMessage(message: FromWorker) {
      if (!ended) inner.postMessage(message);
    },
    addEventListener(type: string, listener: EventListener) {
      if (type === "message") return inner.addEventListener(type, listener);
      if (ended) return;
      globalThis.addEventListener(type, listener);
      globals.push([type, listener]);
    },
    removeEventListener(type: string, listener: EventListener) {
      inner.removeEventListener(type, listener);
    },
  } as WorkerPort;
  inner.start();
  attachWorker(port);
  return isolate;
}

/**
 * How long a crashed run waits for its aborted server to finish (its
 * connections close at once, in milliseconds): with `FORCE_WAIT_MS` before
 * it, still within the main thread's wait before it ends the run itself.
 */
const _CLOSE_WAIT_MS = 500;

/** How long in-flight answers may take to finish before the isolate ends. */
const _CUT_SETTLE_MS = 1000;

/** Resolves once nothing is in flight, or after `ms`. */
async function _settled(
  requests: { readonly count: number },
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (requests.count > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
}
