/**
 * {@linkcode createFastCgiClient}: sends requests to one or more FastCGI
 * backends. Backends take turns (round-robin); one that cannot be reached is
 * skipped for a while; a reused connection found dead before any byte of
 * the request went out is retried once on a fresh one.
 *
 * @module
 */

import type { FastCgiAddress } from "./address.ts";
import type { FastCgiConnection } from "./connection.ts";
import { FastCgiError } from "./errors.ts";
import type { LogFn } from "../../server/types.ts";
import { exchange, type FastCgiRequest } from "./exchange.ts";
import {
  type BackendPool,
  type BackendPoolStats,
  createBackendPool,
} from "./pool.ts";

export type { FastCgiRequest } from "./exchange.ts";

/** Options of {@linkcode createFastCgiClient}. */
export interface FastCgiClientOptions {
  /**
   * The backends: `host:port`, `unix:/path` or parsed addresses.
   * @default {["127.0.0.1:9000"]}
   */
  backends?: readonly (string | FastCgiAddress)[];
  /**
   * Idle kept connections per backend (FCGI_KEEP_CONN). Keep it below the
   * responder's worker count: each idle connection pins a php-fpm worker.
   * 0 opens a connection per request.
   * @default {2}
   */
  keepAlive?: number;
  /**
   * Most open connections per backend (0 = no limit). Requests beyond it
   * wait (up to `connectTimeout`) for a free connection.
   * @default {0}
   */
  maxConnections?: number;
  /**
   * Milliseconds an idle kept connection stays open.
   * @default {10000}
   */
  keepAliveTimeout?: number;
  /**
   * Milliseconds to get a connection (waiting for a free one included), then 504.
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * Milliseconds from sending the request until the first response byte, then 504.
   * @default {60000}
   */
  firstByteTimeout?: number;
  /**
   * Milliseconds of silence allowed while the response streams in.
   * @default {60000}
   */
  readTimeout?: number;
  /**
   * Milliseconds a backend that refused a connection is skipped (while
   * another one is available).
   * @default {5000}
   */
  downTime?: number;
  /**
   * Where connection problems are logged.
   * @default {undefined} (not logged)
   */
  log?: LogFn;
}

/** Per-backend state reported by {@linkcode FastCgiClient.stats}. */
export interface FastCgiBackendStats extends BackendPoolStats {
  /** The backend address. */
  label: string;
  /** True while the backend is being skipped after a failure. */
  down: boolean;
}

/** A FastCGI client over several backends; see {@linkcode createFastCgiClient}. */
export interface FastCgiClient {
  /**
   * Runs a request; resolves with STDOUT (a CGI response) once its first
   * bytes arrived. Rejects with a {@linkcode FastCgiError} (502/504).
   */
  request(request: FastCgiRequest): Promise<ReadableStream<Uint8Array>>;
  /** Connection counters per backend. */
  stats(): FastCgiBackendStats[];
  /** Marks a backend usable again at once (e.g. after a restart). */
  markUp(index: number): void;
  /** Closes idle connections; busy ones close when their request ends. */
  close(): void;
}

interface _Backend {
  pool: BackendPool;
  downUntil: number;
}

/**
 * Creates a FastCGI client.
 *
 * @example Running a request against php-fpm
 * ```ts ignore
 * import { createFastCgiClient } from "./client.ts";
 *
 * const client = createFastCgiClient({ backends: ["127.0.0.1:9000", "unix:/run/php/php-fpm.sock"] });
 * const stdout = await client.request({
 *   params: [["SCRIPT_FILENAME", "/srv/www/index.php"], ["REQUEST_METHOD", "GET"], ["QUERY_STRING", ""]],
 * });
 * console.log(await new Response(stdout).text()); // "Content-type: text/html...\r\n\r\n..."
 * client.close();
 * ```
 *
 * @param options Backends, pool sizes and timeouts.
 * @returns The client.
 */
export function createFastCgiClient(
  options: FastCgiClientOptions = {},
): FastCgiClient {
  const {
    backends: addresses = ["127.0.0.1:9000"],
    keepAlive = 2,
    maxConnections = 0,
    keepAliveTimeout = 10_000,
    connectTimeout = 5_000,
    firstByteTimeout = 60_000,
    readTimeout = 60_000,
    downTime = 5_000,
    log,
  } = options;
  if (addresses.length === 0) {
    throw new TypeError("Cannot create FastCGI client: no backends");
  }
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    waiters.shift()?.();
  };
  const backends: _Backend[] = addresses.map((address) => ({
    pool: createBackendPool(address, {
      keepAlive,
      maxConnections,
      keepAliveTimeout,
      connectTimeout,
      onRelease: wake,
      waiting: () => waiters.length,
    }),
    downUntil: 0,
  }));
  let next = 0;
  let closed = false;

  /** Waits for a released connection, at most `ms`. */
  function waitForRelease(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.push(done);
    });
  }

  async function acquire(
    signal: AbortSignal | undefined,
  ): Promise<{ backend: _Backend; conn: FastCgiConnection }> {
    const deadline = Date.now() + connectTimeout;
    while (true) {
      if (closed) throw new FastCgiError(502, "FastCGI client is closed");
      if (signal?.aborted) {
        throw new FastCgiError(
          502,
          "Request aborted while waiting for a connection",
        );
      }
      const n = backends.length;
      const order = Array.from(
        { length: n },
        (_, i) => backends[(next + i) % n]!,
      );
      const now = Date.now();
      const up = order.filter((b) => b.downUntil <= now);
      // When every backend is marked down, try them all: one may be back.
      const everyone = up.length === 0;
      let lastError: unknown;
      for (const backend of everyone ? order : up) {
        if (!backend.pool.hasCapacity()) continue;
        next = (backends.indexOf(backend) + 1) % n;
        try {
          const conn = await backend.pool.acquire();
          backend.downUntil = 0;
          return { backend, conn };
        } catch (error) {
          lastError = error;
          if (backend.downUntil <= Date.now()) {
            log?.(
              "warn",
              `FastCGI backend ${backend.pool.label} is down: ${
                _message(error)
              }`,
            );
          }
          backend.downUntil = Date.now() + downTime;
        }
      }
      if (lastError !== undefined && (everyone || Date.now() >= deadline)) {
        throw lastError instanceof FastCgiError
          ? lastError
          : new FastCgiError(502, "No FastCGI backend is reachable", {
            cause: lastError,
          });
      }
      if (lastError !== undefined) continue; // the ones tried are now down: look again
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new FastCgiError(
          504,
          `No free FastCGI connection within ${connectTimeout} ms`,
        );
      }
      await waitForRelease(Math.min(left, 250));
    }
  }

  async function request(
    req: FastCgiRequest,
  ): Promise<ReadableStream<Uint8Array>> {
    for (let attempt = 0;; attempt++) {
      const { backend, conn } = await acquire(req.signal);
      try {
        return await exchange(conn, req, {
          firstByteTimeout,
          readTimeout,
          keepConn: keepAlive > 0,
          onDone: (reusable) => backend.pool.release(conn, reusable),
        });
      } catch (error) {
        // Only a kept connection found dead before any byte of the request
        // went out is retried (never a request the responder may have run).
        if (
          error instanceof FastCgiError && error.stale && attempt === 0 &&
          !req.signal?.aborted
        ) {
          backend.pool.closeIdle(); // they are likely dead too: retry on a fresh connection
          log?.(
            "info",
            `FastCGI connection to ${backend.pool.label} was stale; retrying on a fresh one`,
          );
          continue;
        }
        throw error;
      }
    }
  }

  function stats(): FastCgiBackendStats[] {
    const now = Date.now();
    return backends.map((b) => ({
      label: b.pool.label,
      down: b.downUntil > now,
      ...b.pool.stats(),
    }));
  }

  function markUp(index: number): void {
    const backend = backends[index];
    if (backend) backend.downUntil = 0;
    wake();
  }

  function close(): void {
    closed = true;
    for (const b of backends) b.pool.close();
    for (const w of waiters.splice(0)) w();
  }

  return { request, stats, markUp, close };
}

function _message(error: unknown): string {
  if (error instanceof Error) {
    return error.cause instanceof Error
      ? `${error.message} (${error.cause.message})`
      : error.message;
  }
  return String(error);
}
