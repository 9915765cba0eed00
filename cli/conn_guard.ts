/**
 * {@linkcode serveGuarded}: the connection guard. It accepts connections
 * itself (`Deno.listen`), refuses those beyond the caps, hands each one to
 * Deno's own HTTP engine, and closes the ones that break a deadline: a
 * request head that does not arrive, a kept connection left idle, a
 * client that stops taking the response. `Deno.serve` (Deno 2.9) has none
 * of these (denoland/deno#3515).
 *
 * Each accepted connection goes to Deno's internal `serveHttpOnConnection`
 * (the function behind `Deno.serve`, one connection at a time): requests
 * are framed and parsed by Deno exactly as under `Deno.serve` — the guard
 * never reads or writes a byte of an accepted connection, it only closes
 * it. Where the runtime lacks that function, {@linkcode guardAvailable}
 * says so and the CLI serves without the guard.
 *
 * @module
 */

import { bodyKind } from "../server/body_kind.ts";
import { pieceReader } from "../server/piece_reader.ts";
import { _queueStill, _sendQueueKey, _sendQueues } from "./send_queue.ts";
import type { Handler, LogFn } from "../server/types.ts";

/**
 * Options of {@linkcode serveGuarded}. Durations are in milliseconds; `0`
 * turns a deadline off.
 *
 * @example nginx-like defaults, one client capped
 * ```ts
 * import type { ConnectionGuardOptions } from "./conn_guard.ts";
 *
 * const options: ConnectionGuardOptions = {
 *   hostname: "0.0.0.0",
 *   port: 8080,
 *   signal: new AbortController().signal,
 *   onListen: () => {},
 *   maxConnectionsPerClient: 64,
 * };
 * ```
 */
export interface ConnectionGuardOptions {
  /** The address to listen on. */
  hostname: string;
  /** The port; `0` picks a free one. */
  port: number;
  /** Aborting it cuts every connection and stops the server at once. */
  signal: AbortSignal;
  /** Called once the port listens. */
  onListen(addr: { hostname: string; port: number }): void;
  /**
   * Share the port with other listeners of this process (`SO_REUSEPORT`,
   * Linux; needs `--unstable-net`): the CLI's `--workers` isolates each
   * run a guard of their own (their caps count together through
   * {@linkcode ConnectionGuardOptions.shared}).
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Counts shared with the guards of other isolates (the CLI's
   * `--workers`, cli/shared_conns.ts): `tryOpen(client)` counts a
   * connection when `maxConnections` and `maxConnectionsPerClient` allow
   * it over every isolate, `close(client)` uncounts it. The caps are then
   * checked there only, not against this guard's own connections.
   * @default {undefined} (this guard's own count)
   */
  shared?: {
    tryOpen(client: string): boolean;
    close(client: string): void;
  };
  /**
   * Milliseconds from accepting a connection until its first request head
   * is complete (nginx `client_header_timeout`); then it is closed.
   * @default {60000}
   */
  headerTimeoutMs?: number;
  /**
   * Milliseconds a kept connection may wait, after its last response, for
   * the next request head to be complete (nginx `keepalive_timeout`).
   * @default {75000}
   */
  keepAliveTimeoutMs?: number;
  /**
   * Milliseconds a client may take none of a response (nginx
   * `send_timeout`); then the connection is dropped. On Linux the
   * connection's send queue is sampled (`/proc/net/tcp`): a queue that
   * does not move for this long means the client takes nothing, and the
   * body keeps Deno's native path. Elsewhere a streamed body is watched
   * chunk by chunk and any other body must be delivered within this time
   * per 2 MiB of it.
   * @default {60000}
   */
  sendTimeoutMs?: number;
  /**
   * Most open connections; one beyond it is answered `503` and closed.
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Most open connections from one client address (0 = no limit); one
   * beyond it is answered `503` and closed.
   * @default {0}
   */
  maxConnectionsPerClient?: number;
  /**
   * Where dropped connections (`info`, one line each) and refusals
   * (`warn`, at most one line per 10 s) are logged.
   * @default {undefined} (not logged)
   */
  log?: LogFn;
}

/** `maxConnections` when not given. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/**
 * A guarded server: like `Deno.HttpServer`.
 *
 * @example Stopping it
 * ```ts ignore
 * import { type GuardedServer, serveGuarded } from "./conn_guard.ts";
 * const server: GuardedServer = serveGuarded(() => new Response("hi"), options);
 * await server.shutdown();
 * ```
 */
export interface GuardedServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting; open requests finish, idle connections close. */
  shutdown(): Promise<void>;
  /** Resolves once the listener and every connection are closed. */
  readonly finished: Promise<void>;
  /** Connections open now. */
  open(): number;
}

/** What `Deno[Deno.internal].serveHttpOnConnection` returns. */
interface _ConnServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

type _ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo,
  ) => Response | Promise<Response>,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => _ConnServer;

function _serveOnConnection(): _ServeOnConnection | undefined {
  const deno = Deno as unknown as Record<symbol, unknown> & {
    internal?: symbol;
  };
  const internal = deno.internal === undefined
    ? undefined
    : deno[deno.internal] as Record<string, unknown> | undefined;
  const fn = internal?.serveHttpOnConnection;
  return typeof fn === "function" ? fn as _ServeOnConnection : undefined;
}

/**
 * Whether this Deno lets the guard hand accepted connections to its HTTP
 * engine.
 *
 * @example Choosing how to listen
 * ```ts
 * import { guardAvailable } from "./conn_guard.ts";
 * console.log(guardAvailable() ? "guarded" : "plain Deno.serve");
 * ```
 *
 * @returns True when {@linkcode serveGuarded} can run.
 */
export function guardAvailable(): boolean {
  return _serveOnConnection() !== undefined;
}

/**
 * What Deno's engine takes as the connection's abort signal: it only ever
 * calls `addEventListener("abort", cancel)` on it, so the cancel is kept
 * instead of a whole AbortController and its event machinery per
 * connection (~1 KiB each: memory that 5 000 idle connections make the
 * heap grow by).
 */
function _cutSignal(guarded: _Guarded): AbortSignal {
  return {
    aborted: false,
    addEventListener(_type: string, cancel: () => void) {
      guarded.cut = cancel;
    },
    removeEventListener() {},
  } as unknown as AbortSignal;
}

/** Cuts a connection once (the engine's non-graceful cancel). */
function _cut(guarded: _Guarded): void {
  if (guarded.cutDone) return;
  guarded.cutDone = true;
  guarded.cut?.();
}

/** Streamed bodies larger than this (or of unknown length) are watched chunk by chunk. */
const _WATCH_ABOVE = 2 * 1024 * 1024;

/** One accepted connection. */
interface _Guarded {
  client: string;
  /**
   * Its socket's key in the sampled send queues: by address where it can
   * be written as /proc does (see `_sendQueueKey`), else by ports alone
   * (two clients on the same ports: unknown). Empty when not sampling.
   */
  queueKey: string;
  /** Cuts the connection (set by Deno's engine through {@linkcode _cutSignal}). */
  cut?: () => void;
  /** Cut already. */
  cutDone: boolean;
  /** Requests whose response is not yet delivered. */
  inFlight: number;
  /** When the current wait (for a head, or for the client) started. */
  since: number;
  /** No request has come yet. */
  fresh: boolean;
  /** Responses handed over and not yet delivered: bodies watched or not. */
  sending: Set<_Sending>;
  /** Its server, once started. */
  server?: _ConnServer;
  /**
   * Shut down gracefully already: never aborted after that (Deno 2.9
   * throws an uncaught `BadResource` for an abort after `shutdown()`).
   */
  shuttingDown: boolean;
}

/** A response being delivered. */
interface _Sending {
  /** When it was handed over. */
  since: number;
  /** For a watched body: since when a chunk waits for the client, or 0. */
  waiting: number;
  watched: boolean;
  /** The send queue last sampled, and since when it has not moved (see `_queueStill`). */
  queue: number;
  still: number;
  /**
   * Unsampled and unwatched (bytes): milliseconds allowed for the whole
   * body (0: `sendTimeoutMs`).
   */
  allowed: number;
}

const _encoder = new TextEncoder();

function _refusal(): Uint8Array {
  const body = "503 Service Unavailable: too many connections\n";
  return _encoder.encode(
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n" +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
  );
}

/**
 * A body that notes when a chunk waits for the client to take it (so a
 * stalled reader is seen), as a pull stream with no read-ahead.
 */
function _watchedBody(
  body: ReadableStream<Uint8Array>,
  sending: _Sending,
): ReadableStream<Uint8Array> {
  // A byte stream (a file's) is read in large pieces: fewer hops per MiB.
  const reader = pieceReader(body, _PIECE);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      sending.waiting = 0;
      const value = await reader.read();
      if (value === undefined) return controller.close();
      controller.enqueue(value);
      sending.waiting = Date.now();
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Bytes read at once from a watched byte stream. */
const _PIECE = 1024 * 1024;

/**
 * Serves `handler` with the connection guard. The handler sees what it
 * would under `Deno.serve` (same requests, same `info.remoteAddr`).
 *
 * @example Serving with short deadlines
 * ```ts ignore
 * import { serveGuarded } from "./conn_guard.ts";
 *
 * const server = serveGuarded(() => new Response("hi"), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   signal: new AbortController().signal,
 *   onListen: ({ port }) => console.log(port),
 *   headerTimeoutMs: 5_000,
 * });
 * await server.shutdown();
 * ```
 *
 * @param handler The fetch handler.
 * @param options Address, deadlines and caps.
 * @returns The server.
 */
export function serveGuarded(
  handler: Handler,
  options: ConnectionGuardOptions,
): GuardedServer {
  const found = _serveOnConnection();
  if (!found) {
    throw new Error("This Deno cannot hand connections to its HTTP engine");
  }
  const serveOn: _ServeOnConnection = found;
  const {
    headerTimeoutMs = 60_000,
    keepAliveTimeoutMs = 75_000,
    sendTimeoutMs = 60_000,
    maxConnections = DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerClient = 0,
    shared,
    log,
  } = options;
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    ...(options.reusePort ? { reusePort: true } : {}),
  });
  const open = new Map<Deno.Conn, _Guarded>();
  const perClient = new Map<string, number>();
  // Resolved once every open connection has closed (re-armed as they come).
  let allClosed: { promise: Promise<void>; resolve: () => void } | undefined;
  let stopped = false;

  const addr = listener.addr as Deno.NetAddr;
  // Linux: send queues are sampled, bodies keep Deno's native path.
  const sampling = _sendQueues() !== undefined;
  options.onListen({ hostname: addr.hostname, port: addr.port });

  // Refusals are logged at most once per 10 s, with their count (a flood
  // must not flood the log too).
  let refusals = 0;
  let refusalsLogged = 0;
  function refused(client: string): void {
    refusals++;
    const now = Date.now();
    if (now - refusalsLogged < 10_000) return;
    log?.(
      "warn",
      `refused ${refusals} connection(s) (the last from ${client}): too many connections`,
    );
    refusals = 0;
    refusalsLogged = now;
  }

  function drop(guarded: _Guarded, why: string): void {
    if (guarded.shuttingDown || guarded.cutDone) return;
    log?.("info", `connection from ${guarded.client} closed: ${why}`);
    _cut(guarded);
  }

  /** Closes the connections past a deadline. */
  function sweep(): void {
    const now = Date.now();
    // Sampled only while a response has been on its way a while.
    let queues: Map<string, number> | undefined;
    if (sampling && sendTimeoutMs > 0) {
      const long = [...open.values()].some((g) =>
        [...g.sending].some((x) => now - x.since >= tick)
      );
      if (long) queues = _sendQueues();
    }
    for (const guarded of open.values()) {
      if (guarded.inFlight === 0) {
        const limit = guarded.fresh ? headerTimeoutMs : keepAliveTimeoutMs;
        if (limit > 0 && now - guarded.since >= limit) {
          drop(
            guarded,
            guarded.fresh
              ? `no request head within ${limit} ms`
              : `idle for ${limit} ms`,
          );
        }
        continue;
      }
      if (sendTimeoutMs <= 0) continue;
      for (const sending of guarded.sending) {
        // Sampling, a queue not read this time (none on its way long
        // enough, or /proc failed) never counts as stalled.
        const stalled = sending.watched
          ? sending.waiting > 0 && now - sending.waiting >= sendTimeoutMs
          : sampling
          ? queues !== undefined && _queueStill(
            sending,
            queues.get(guarded.queueKey),
            now,
            sendTimeoutMs,
          )
          : now - sending.since >= (sending.allowed || sendTimeoutMs);
        if (stalled) {
          drop(
            guarded,
            `the client took no response bytes for ${sendTimeoutMs} ms`,
          );
          break;
        }
      }
    }
  }
  const deadlines = [headerTimeoutMs, keepAliveTimeoutMs, sendTimeoutMs]
    .filter((ms) => ms > 0);
  const tick = Math.max(50, Math.min(1_000, ...deadlines.map((ms) => ms / 4)));
  const sweeper = setInterval(sweep, tick);

  function guardedHandler(guarded: _Guarded) {
    return async function guardedRequest(
      req: Request,
      info: Deno.ServeHandlerInfo,
    ): Promise<Response> {
      guarded.inFlight++;
      guarded.fresh = false;
      const sending: _Sending = {
        since: 0,
        waiting: 0,
        watched: false,
        queue: 0,
        still: 0,
        allowed: 0,
      };
      // Settles however the request ends (a handler that throws too: Deno
      // then sends the error response).
      const done = (): void => {
        guarded.sending.delete(sending);
        if (--guarded.inFlight === 0) guarded.since = Date.now();
      };
      info.completed.then(done, done);
      const res = await handler(req, info);
      sending.since = sending.still = Date.now();
      guarded.sending.add(sending);
      // Sampled from the kernel where it can be; else a stream is watched
      // (reading `res.body` of bytes would turn them into a chunked
      // stream), and one of known length up to 2 MiB is timed as a whole,
      // like bytes.
      if (sampling || sendTimeoutMs <= 0) return res;
      const kind = bodyKind(res);
      if (kind !== "stream") {
        // Bytes (a file kept in memory can be 16 MiB) at the pace a
        // watched stream must keep: 2 MiB per sendTimeoutMs.
        if (typeof kind === "number") {
          sending.allowed = sendTimeoutMs *
            Math.max(1, Math.ceil(kind / _WATCH_ABOVE));
        }
        return res;
      }
      const length = Number(res.headers.get("content-length") ?? NaN);
      if (length <= _WATCH_ABOVE || res.body === null) return res;
      sending.watched = true;
      return new Response(_watchedBody(res.body, sending), {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    };
  }

  function onError(error: unknown): Response {
    log?.("error", `request failed: ${String(error)}`);
    return new Response("500 Internal Server Error\n", { status: 500 });
  }

  function accept(conn: Deno.Conn): void {
    const remote = conn.remoteAddr as Deno.NetAddr;
    const client = remote.hostname;
    const fromClient = perClient.get(client) ?? 0;
    const over = stopped ||
      (shared ? !shared.tryOpen(client) : open.size >= maxConnections ||
        (maxConnectionsPerClient > 0 && fromClient >= maxConnectionsPerClient));
    if (over) {
      refused(client);
      conn.write(_refusal()).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // already closed
        }
      });
      return;
    }
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const guarded: _Guarded = {
      client,
      queueKey: sampling
        ? _sendQueueKey(client, remote.port, addr.port) ??
          `${addr.port}:${remote.port}`
        : "",
      cutDone: false,
      inFlight: 0,
      since: Date.now(),
      fresh: true,
      sending: new Set(),
      shuttingDown: false,
    };
    open.set(conn, guarded);
    perClient.set(client, fromClient + 1);
    const server = serveOn(
      conn,
      _cutSignal(guarded),
      guardedHandler(guarded),
      onError,
      () => {},
    );
    guarded.server = server;
    const forget = (): void => {
      open.delete(conn);
      shared?.close(client);
      if (open.size === 0) allClosed?.resolve();
      const left = (perClient.get(client) ?? 1) - 1;
      if (left > 0) perClient.set(client, left);
      else perClient.delete(client);
    };
    server.finished.then(forget, forget);
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) accept(conn);
    } catch {
      // the listener was closed
    }
  })();

  function stopAccepting(): void {
    if (stopped) return;
    stopped = true;
    try {
      listener.close();
    } catch {
      // already closed
    }
  }

  const onAbort = (): void => {
    stopAccepting();
    for (const guarded of open.values()) {
      // Those shut down already end with the process (see _Guarded).
      if (!guarded.shuttingDown) _cut(guarded);
    }
  };
  options.signal.addEventListener("abort", onAbort, { once: true });

  const finished = (async () => {
    await accepting;
    // No more are accepted: wait for the open ones to close.
    if (open.size > 0) {
      allClosed = Promise.withResolvers<void>();
      await allClosed.promise;
    }
    clearInterval(sweeper);
    options.signal.removeEventListener("abort", onAbort);
  })();

  return {
    addr,
    finished,
    open: () => open.size,
    async shutdown() {
      stopAccepting();
      const stopping = [...open.values()].map((guarded) => {
        guarded.shuttingDown = true;
        return guarded.server?.shutdown().catch(() => {});
      });
      await Promise.all(stopping);
      await finished;
    },
  };
}
