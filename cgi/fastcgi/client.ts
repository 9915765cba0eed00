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
import { Deadlines } from "../../server/deadlines.ts";
import { describeError } from "../../server/log.ts";
import type { LogFn } from "../../server/types.ts";
import {
  exchange,
  type ExchangeOptions,
  type FastCgiOutput,
  type FastCgiRequest,
} from "./exchange.ts";
import {
  type BackendPool,
  type BackendPoolStats,
  createBackendPool,
  NoRoomError,
  type SharedBackendCount,
} from "./pool.ts";

export type { FastCgiOutput, FastCgiRequest } from "./exchange.ts";

/**
 * Options of {@linkcode createFastCgiClient}. Durations are in milliseconds.
 *
 * @example Two backends, short timeouts
 * ```ts
 * import { createFastCgiClient, type FastCgiClientOptions } from "@x/serve/fastcgi";
 *
 * const options: FastCgiClientOptions = {
 *   backends: ["10.0.0.5:9000", "10.0.0.6:9000"],
 *   keepAlive: 1,
 *   connectTimeoutMs: 1_000,
 *   readTimeoutMs: 30_000,
 *   downTimeMs: 10_000,
 * };
 * createFastCgiClient(options).close();
 * ```
 */
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
   * wait (up to `connectTimeoutMs`) for a free connection.
   * @default {0}
   */
  maxConnections?: number;
  /**
   * Milliseconds an idle kept connection stays open.
   * @default {10000}
   */
  keepAliveTimeoutMs?: number;
  /**
   * Milliseconds to get a connection (waiting for a free one included), then 504.
   * @default {5000}
   */
  connectTimeoutMs?: number;
  /**
   * Milliseconds from sending the request until the first response byte, then 504.
   * @default {60000}
   */
  firstByteTimeoutMs?: number;
  /**
   * Milliseconds of silence allowed while the response streams in.
   * @default {60000}
   */
  readTimeoutMs?: number;
  /**
   * Milliseconds a backend that refused a connection is skipped (while
   * another one is available).
   * @default {5000}
   */
  downTimeMs?: number;
  /**
   * Per backend (in the order of `backends`), a connection count shared
   * with the clients of other isolates (the CLI's `--workers`), so that
   * `maxConnections` and `keepAlive` hold for the whole server: see
   * {@linkcode SharedBackendCount}.
   * @default {undefined} (each client counts its own)
   */
  shared?: readonly (SharedBackendCount | undefined)[];
  /**
   * Where connection problems are logged.
   * @default {undefined} (not logged)
   */
  log?: LogFn;
}

/**
 * Per-backend state reported by {@linkcode FastCgiClient.stats}.
 *
 * @example Listing the backends that are down
 * ```ts
 * import { createFastCgiClient, type FastCgiBackendStats } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const client = createFastCgiClient({ backends: ["127.0.0.1:9000"] });
 * const stats: FastCgiBackendStats[] = client.stats();
 * assert.deepEqual(stats.filter((b) => b.down).map((b) => b.label), []);
 * client.close();
 * ```
 */
export interface FastCgiBackendStats extends BackendPoolStats {
  /** The backend address. */
  label: string;
  /** True while the backend is being skipped after a failure. */
  down: boolean;
}

/**
 * A FastCGI client over several backends; see {@linkcode createFastCgiClient}.
 *
 * @example Mapping a failure to its status
 * ```ts
 * import { createFastCgiClient, type FastCgiClient, FastCgiError } from "@x/serve/fastcgi";
 * import assert from "node:assert/strict";
 *
 * const client: FastCgiClient = createFastCgiClient({ backends: ["unix:/nonexistent.sock"] });
 * await assert.rejects(
 *   client.request({ params: [["REQUEST_METHOD", "GET"]] }),
 *   (error) => error instanceof FastCgiError && error.status === 502,
 * );
 * client.close();
 * ```
 */
export interface FastCgiClient {
  /**
   * Runs a request; resolves with STDOUT (a CGI response) once its first
   * bytes arrived: whole bytes when the response was complete by then,
   * else a stream (see {@linkcode FastCgiOutput}). Rejects with a
   * {@linkcode FastCgiError} (502/504).
   */
  request(request: FastCgiRequest): Promise<FastCgiOutput>;
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

/** What a pass over the backends got: a connection, or the last failure. */
type _Attempt =
  | { backend: _Backend; conn: FastCgiConnection }
  | { error: unknown }
  | undefined;

/** The client's options with its defaults filled in once. */
type _BalancerOptions =
  & FastCgiClientOptions
  & Required<
    Pick<
      FastCgiClientOptions,
      "keepAlive" | "maxConnections" | "connectTimeoutMs" | "downTimeMs"
    >
  >;

/**
 * The reason the waiting path's own signals are aborted with: any value
 * but `undefined` (for which `abort()` makes a `DOMException`, stack
 * trace and all, each time).
 */
const _ENDED = "ended";

/**
 * A request counted as waiting for a place in the shared counts (for the
 * other isolates' {@linkcode SharedBackendCount.givesWay}): from its first
 * wait until it takes a place, gives up or its signal aborts — between its
 * waits too, while it looks again.
 */
class _Waiting {
  readonly #signal: AbortSignal | undefined;
  #until: AbortController | undefined;
  #on: readonly _Backend[] = [];

  constructor(signal: AbortSignal | undefined) {
    this.#signal = signal;
  }

  /**
   * Counts the request as waiting on `backends` (those it would try now;
   * a backend marked down since the last wait is let go).
   */
  start(backends: readonly _Backend[]): void {
    if (this.#until && !_same(this.#on, backends)) this.stop();
    if (this.#until || this.#signal?.aborted) return;
    this.#on = backends;
    this.#until = new AbortController();
    for (const b of backends) b.pool.holdWaiting(this.#until.signal);
    this.#signal?.addEventListener("abort", this.stop, { once: true });
  }

  readonly stop = (): void => {
    if (!this.#until) return;
    this.#signal?.removeEventListener("abort", this.stop);
    this.#until.abort(_ENDED);
    this.#until = undefined;
  };
}

/** Same backends, in the same order. */
function _same(a: readonly _Backend[], b: readonly _Backend[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The backends in turn (round-robin), skipping those that are down. */
class _Balancer {
  readonly backends: _Backend[];
  readonly #waiters: (() => void)[] = [];
  readonly #options: _BalancerOptions;
  // The connect and read timeouts of every connection: one timer for all.
  readonly #deadlines = new Deadlines();
  /** Some backend's count is shared with other isolates. */
  readonly #sharing: boolean;
  #next = 0;
  #closed = false;

  constructor(
    addresses: readonly (string | FastCgiAddress)[],
    options: _BalancerOptions,
  ) {
    this.#options = options;
    this.#sharing = addresses.some((_, i) => options.shared?.[i] !== undefined);
    this.backends = addresses.map((address, i) => ({
      pool: createBackendPool(address, {
        ...(options.shared?.[i] ? { shared: options.shared[i] } : {}),
        keepAlive: options.keepAlive,
        maxConnections: options.maxConnections,
        keepAliveTimeoutMs: options.keepAliveTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        deadlines: this.#deadlines,
        onRelease: () => this.wake(),
        waiting: () => this.#waiters.length,
      }),
      downUntil: 0,
    }));
  }

  /** Lets the longest waiting request look for a connection again. */
  wake(): void {
    this.#waiters.shift()?.();
  }

  /**
   * A connection, waiting up to `connectTimeoutMs` for a free one; a
   * backend that fails is marked down for `downTimeMs`.
   */
  async acquire(
    signal: AbortSignal | undefined,
  ): Promise<{ backend: _Backend; conn: FastCgiConnection }> {
    const { connectTimeoutMs } = this.#options;
    const deadline = Date.now() + connectTimeoutMs;
    const waiting = new _Waiting(signal);
    try {
      return await this.#acquire(signal, deadline, waiting);
    } finally {
      waiting.stop();
    }
  }

  async #acquire(
    signal: AbortSignal | undefined,
    deadline: number,
    waiting: _Waiting,
  ): Promise<{ backend: _Backend; conn: FastCgiConnection }> {
    const { connectTimeoutMs } = this.#options;
    while (true) {
      if (this.#closed) throw new FastCgiError(502, "FastCGI client is closed");
      if (signal?.aborted) {
        throw new FastCgiError(
          502,
          "Request aborted while waiting for a connection",
        );
      }
      // Seen before looking for room: a place freed meanwhile ends the
      // wait below at once (it is not missed). Only a cap makes a request
      // wait, so an uncapped pool (the default) skips it.
      const seen = this.#sharing && this.#options.maxConnections > 0
        ? this.backends.map((b) => b.pool.sharedChanges())
        : undefined;
      const { attempt, everyone } = await this.#pass(waiting);
      if (attempt && "conn" in attempt) return attempt;
      if (attempt && (everyone || Date.now() >= deadline)) {
        throw attempt.error instanceof FastCgiError
          ? attempt.error
          : new FastCgiError(502, "No FastCGI backend is reachable", {
            cause: attempt.error,
          });
      }
      if (attempt) continue; // the ones tried are now down: look again
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new FastCgiError(
          504,
          `No free FastCGI connection within ${connectTimeoutMs} ms`,
        );
      }
      const now = Date.now();
      const up = this.backends.filter((b) => b.downUntil <= now);
      waiting.start(up.length ? up : this.backends);
      await this.#waitForRelease(Math.min(left, 250), signal, seen);
    }
  }

  /** Tries each backend with room once, in turn; `undefined`: none had room. */
  async #pass(
    waiting: _Waiting,
  ): Promise<{ attempt: _Attempt; everyone: boolean }> {
    const { backends } = this;
    const n = backends.length;
    const now = Date.now();
    // One backend (the usual case): no arrays to make per request.
    const order = n === 1 ? backends : Array.from(
      { length: n },
      (_, i) => backends[(this.#next + i) % n]!,
    );
    const up = n === 1
      ? (backends[0]!.downUntil <= now ? backends : [])
      : order.filter((b) => b.downUntil <= now);
    // When every backend is marked down, try them all: one may be back.
    const everyone = up.length === 0;
    let attempt: _Attempt;
    for (const backend of everyone ? order : up) {
      if (!backend.pool.hasCapacity()) continue;
      this.#next = (backends.indexOf(backend) + 1) % n;
      try {
        // Once it has a place it no longer waits (a connect is no wait).
        const conn = await backend.pool.acquire(waiting.stop);
        backend.downUntil = 0;
        return { attempt: { backend, conn }, everyone };
      } catch (error) {
        // Another isolate took the last place: no room, not down.
        if (error instanceof NoRoomError) continue;
        attempt = { error };
        this.#markDown(backend, error);
      }
    }
    return { attempt, everyone };
  }

  #markDown(backend: _Backend, error: unknown): void {
    if (backend.downUntil <= Date.now()) {
      this.#options.log?.(
        "warn",
        `FastCGI backend ${backend.pool.label} is down: ${
          describeError(error)
        }`,
      );
    }
    backend.downUntil = Date.now() + this.#options.downTimeMs;
  }

  /**
   * Waits for a released connection, at most `ms` (of this client, or of
   * another isolate's sharing a backend's count; `seen`: their counters
   * before the caller looked for room), or until `signal` aborts.
   */
  #waitForRelease(
    ms: number,
    signal: AbortSignal | undefined,
    seen: readonly (number | undefined)[] | undefined,
  ): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    const waiters = this.#waiters;
    const deadlines = this.#deadlines;
    let done = (): void => {};
    const local = new Promise<void>((resolve) => {
      done = (): void => {
        deadlines.clear(timer);
        signal?.removeEventListener("abort", done);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      };
      // Ref'd: while it waits on other isolates' places, nothing of this
      // isolate (no busy connection) may keep the process alive.
      const timer = deadlines.add(ms, done, true);
      waiters.push(done);
      // An aborted request stops waiting (and counting as waiting) at once.
      signal?.addEventListener("abort", done, { once: true });
    });
    if (!this.#sharing) return local;
    // Woken one way, stop waiting the other ways: a stale waiter here gets
    // a released connection kept idle for it (beyond keepAlive), one in
    // the shared count makes other isolates close their idle connections.
    const woken = new AbortController();
    const shared = this.#options.shared ?? [];
    const elsewhere = this.backends.flatMap((b, i) =>
      shared[i] === undefined
        ? []
        : [b.pool.waitShared(ms, woken.signal, seen?.[i])]
    );
    return Promise.race([local, ...elsewhere]).then(() => {
      done();
      woken.abort(_ENDED);
    });
  }

  close(): void {
    this.#closed = true;
    for (const b of this.backends) b.pool.close();
    for (const w of this.#waiters.splice(0)) w();
    // The deadlines stay: busy connections end their requests (their
    // timeouts never keep the process alive; a woken wait's is cleared).
  }
}

/**
 * Runs a request on a connection from `balancer`; a kept connection found
 * dead before any byte of it went out is retried once on a fresh one.
 */
async function _request(
  balancer: _Balancer,
  req: FastCgiRequest,
  options: Omit<ExchangeOptions, "onDone">,
  log: LogFn | undefined,
): Promise<FastCgiOutput> {
  for (let attempt = 0;; attempt++) {
    const { backend, conn } = await balancer.acquire(req.signal);
    try {
      return await exchange(conn, req, {
        ...options,
        onDone: (reusable) => backend.pool.release(conn, reusable),
      });
    } catch (error) {
      // Never a request the responder may have run.
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

/**
 * Creates a FastCGI client.
 *
 * @example Running a request against php-fpm
 * ```ts ignore
 * import { createFastCgiClient } from "@x/serve/fastcgi";
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
    connectTimeoutMs = 5_000,
    downTimeMs = 5_000,
    firstByteTimeoutMs,
    readTimeoutMs,
    log,
  } = options;
  if (addresses.length === 0) {
    throw new TypeError("Cannot create FastCGI client: no backends");
  }
  const balancer = new _Balancer(addresses, {
    ...options,
    keepAlive,
    maxConnections,
    connectTimeoutMs,
    downTimeMs,
  });

  const exchangeOptions = {
    firstByteTimeoutMs,
    readTimeoutMs,
    keepConn: keepAlive > 0,
  };
  const request = (req: FastCgiRequest) =>
    _request(balancer, req, exchangeOptions, log);

  function stats(): FastCgiBackendStats[] {
    const now = Date.now();
    return balancer.backends.map((b) => ({
      label: b.pool.label,
      down: b.downUntil > now,
      ...b.pool.stats(),
    }));
  }

  function markUp(index: number): void {
    const backend = balancer.backends[index];
    if (backend) backend.downUntil = 0;
    balancer.wake();
  }

  return { request, stats, markUp, close: () => balancer.close() };
}
