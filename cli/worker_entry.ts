/**
 * The module each `--workers` isolate runs (`new Worker(…)` from
 * cli/workers.ts): it builds its own handler from the configuration the
 * main thread posts, listens on the shared port (`reusePort`), sends its
 * access-log lines to the main thread, and drains, cuts or dies as told.
 * Internal to the CLI (not exported from `mod.ts`).
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

/** The worker's side of its channel to the main thread. */
interface _Port {
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
}

/** Most lines held before they are posted (else: at the end of the tick). */
const _LOG_BATCH = 256;

/** Access-log lines to the main thread, batched per tick, in order. */
function _logSink(port: _Port): { write(line: string): void; flush(): void } {
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
async function _run(start: StartMessage, port: _Port): Promise<void> {
  const { config, index } = start;
  const log = _logSink(port);
  const accessLog = config.handler.accessLog;
  if (accessLog) {
    config.handler.accessLog = {
      ...(accessLog === true ? {} : accessLog),
      write: log.write,
    };
  }
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
      h.cgi = {
        ...(h.cgi ?? { dirs: {} }),
        sharedSlots: sharedSlots(buffer, index),
      };
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
  // Never aborted: shutdown() stops the server (an abort after it throws).
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
  let crashed = false;
  const crash = (message: string): void => {
    if (crashed) return;
    crashed = true;
    port.postMessage({ type: "crashed", message });
    server.shutdown().catch(() => {});
    stopping.abort();
    force().finally(() => {
      log.flush();
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
        port.postMessage({ type: "stopped" });
      });
      return;
    }
    if (message.type !== "drain" || stopping.signal.aborted) return;
    port.postMessage({ type: "draining", count: requests.count });
    stopping.abort();
    server.shutdown().catch(() => {});
    Promise.race([server.finished, cutOff.promise]).finally(async () => {
      if (stopped || crashed) return;
      stopped = true;
      // A background child still holding a finished script's pipe dies too.
      await force();
      // In-flight answers get a bounded moment to finish before main ends us.
      await _settled(requests, _CUT_SETTLE_MS);
      log.flush();
      port.postMessage({ type: "stopped" });
    });
  });
}

// The start message starts it; the later ones go to _run's listener.
const port = globalThis as unknown as _Port & {
  removeEventListener(
    type: "message",
    listener: (event: MessageEvent<ToWorker>) => void,
  ): void;
};
const _onStart = (event: MessageEvent<ToWorker>): void => {
  // Only a start starts it; a drain or cut before it is main's, which ends
  // an isolate that had not started yet.
  if (event.data.type !== "start") return;
  port.removeEventListener("message", _onStart);
  void _run(event.data, port);
};
port.addEventListener("message", _onStart);
// Messages posted before this module ran may be lost: main waits for this.
port.postMessage({ type: "loaded" });

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
