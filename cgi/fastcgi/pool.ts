/**
 * {@linkcode createBackendPool}: the connections to one FastCGI backend. It
 * opens connections on demand, keeps a few idle ones (FCGI_KEEP_CONN) for
 * reuse, closes them after an idle timeout, and caps the open count.
 *
 * @module
 */

import { type FastCgiAddress, formatAddress, parseAddress } from "./address.ts";
import { type Deadline, Deadlines } from "../../server/deadlines.ts";
import { FastCgiConnection } from "./connection.ts";
import { FastCgiError } from "./errors.ts";

/**
 * Options of {@linkcode createBackendPool}. Durations are in milliseconds.
 *
 * @example A pool of at most 4 connections
 * ```ts
 * import { createBackendPool, type BackendPoolOptions } from "./pool.ts";
 *
 * const options: BackendPoolOptions = { keepAlive: 2, maxConnections: 4, keepAliveTimeoutMs: 5_000 };
 * createBackendPool("127.0.0.1:9000", options).close();
 * ```
 */
export interface BackendPoolOptions {
  /**
   * Idle connections kept open for reuse. Each one pins a responder worker
   * (php-fpm), so keep it below the worker count (divided by the number of
   * server isolates). 0 disables connection reuse.
   * @default {2}
   */
  keepAlive?: number;
  /**
   * Most connections open at once (busy + idle); further requests wait for
   * one. 0 means no limit (extra connections wait in the responder's listen
   * backlog).
   * @default {0}
   */
  maxConnections?: number;
  /**
   * Milliseconds an idle kept connection stays open. Keep it below php-fpm's
   * `request_terminate_timeout`, which also kills idle kept workers.
   * @default {10000}
   */
  keepAliveTimeoutMs?: number;
  /**
   * Milliseconds allowed to establish a connection (then 504).
   * @default {5000}
   */
  connectTimeoutMs?: number;
  /**
   * Called whenever a connection becomes free or closes (so waiters retry).
   * @default {undefined}
   */
  onRelease?: () => void;
  /**
   * How many requests wait for a connection of this pool; a released
   * connection is then kept for them even beyond `keepAlive`.
   * @default {() => 0}
   */
  waiting?: () => number;
  /**
   * Counts shared with the pools of other isolates for the same backend
   * (the CLI's `--workers`): `maxConnections` and `keepAlive` then hold
   * over all of them, and an idle connection is closed when another
   * isolate waits for a place.
   * @default {undefined} (this pool's own count)
   */
  shared?: SharedBackendCount;
  /**
   * Where the connect timeouts and the connections' read timeouts are
   * kept (one timer for all).
   * @default {undefined} (the pool's own)
   */
  deadlines?: Deadlines;
}

/**
 * A backend's connection count shared between isolates (e.g. a
 * `SharedArrayBuffer` counted with `Atomics`), so that a pool's
 * `maxConnections` and `keepAlive` hold over every isolate.
 *
 * @example A count for one isolate alone
 * ```ts
 * import type { SharedBackendCount } from "./pool.ts";
 *
 * let open = 0;
 * let idle = 0;
 * const alone: SharedBackendCount = {
 *   open: () => open,
 *   tryOpen: (limit) => (limit <= 0 || open < limit) && ++open > 0,
 *   closed: () => void open--,
 *   tryIdle: (limit) => idle < limit && ++idle > 0,
 *   unidle: () => void idle--,
 *   wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
 *   demanded: () => Promise.resolve(false),
 * };
 * ```
 */
export interface SharedBackendCount {
  /** Connections open over every isolate. */
  open(): number;
  /** Counts a connection when fewer than `limit` are open (0 = no limit). */
  tryOpen(limit: number): boolean;
  /** Uncounts a connection (wakes the waiters of every isolate). */
  closed(): void;
  /** Counts an idle connection when fewer than `limit` are idle. */
  tryIdle(limit: number): boolean;
  /** Uncounts an idle connection (reused or closed). */
  unidle(): void;
  /**
   * Waits for a connection to close anywhere, at most `ms` or until
   * `signal` aborts; meanwhile this request counts as waiting (see
   * {@linkcode SharedBackendCount.demanded}). With `since` (what
   * {@linkcode SharedBackendCount.changes} said before the caller looked
   * for room), a change since then ends the wait at once.
   */
  wait(ms: number, signal?: AbortSignal, since?: number): Promise<void>;
  /**
   * A counter that changes whenever a place may have come free for
   * another isolate (a close; an isolate no longer waiting), for
   * {@linkcode SharedBackendCount.wait}'s `since`.
   */
  changes?(): number;
  /** True when a request of another isolate waits for a place. */
  othersWait?(): boolean;
  /**
   * Resolves `true` when a request of some isolate waits for a place, or
   * `false` after `ms`.
   */
  demanded(ms: number): Promise<boolean>;
  /**
   * True when this isolate should leave a place to another isolate's
   * waiting request, which holds fewer places: when `opening`, fewer than
   * this one; when releasing, at least two fewer, or none while this one
   * holds some. A connection released is then closed rather than handed
   * to this isolate's next request, and no new one is opened, so places
   * go to the isolate holding fewest and one isolate's steady load cannot
   * keep them all (places no one waits for are never left free). Without
   * it, never.
   */
  givesWay?(opening: boolean): boolean;
  /**
   * Counts a request of this isolate as waiting until `until` aborts
   * (between its waits too: it still wants a place while it looks again).
   */
  hold?(until: AbortSignal): void;
}

/** Thrown by {@linkcode BackendPool.acquire} when another isolate took the last place. */
export class NoRoomError extends Error {}

/**
 * Counters of a {@linkcode BackendPool}.
 *
 * @example A fresh pool's counters
 * ```ts
 * import { type BackendPoolStats, createBackendPool } from "./pool.ts";
 * import assert from "node:assert/strict";
 *
 * const pool = createBackendPool("127.0.0.1:9000");
 * const stats: BackendPoolStats = pool.stats();
 * assert.deepEqual(stats, { open: 0, idle: 0, opened: 0, received: 0 });
 * pool.close();
 * ```
 */
export interface BackendPoolStats {
  /** Connections open (busy + idle). */
  open: number;
  /** Idle connections kept for reuse. */
  idle: number;
  /** Connections opened since the pool was created. */
  opened: number;
  /** Bytes received from the backend since the pool was created. */
  received: number;
}

/**
 * The connections to one backend; see {@linkcode createBackendPool}.
 *
 * @example Labelling a backend
 * ```ts
 * import { type BackendPool, createBackendPool } from "./pool.ts";
 * import assert from "node:assert/strict";
 *
 * const pool: BackendPool = createBackendPool("[::1]:9000");
 * assert.equal(pool.label, "[::1]:9000");
 * assert.equal(pool.hasCapacity(), true);
 * pool.close();
 * ```
 */
export interface BackendPool {
  /** The backend address. */
  readonly address: FastCgiAddress;
  /** The address as text, for logs. */
  readonly label: string;
  /** True when {@linkcode BackendPool.acquire} would not have to wait. */
  hasCapacity(): boolean;
  /**
   * An idle connection, or a new one (throws a {@linkcode FastCgiError}
   * when connecting fails, a {@linkcode NoRoomError} when the shared
   * count is full). `onPlace` runs once a place is taken, before any
   * connect.
   */
  acquire(onPlace?: () => void): Promise<FastCgiConnection>;
  /**
   * Waits at most `ms`, or until `signal` aborts, for a connection of
   * another isolate to close (resolves at once without
   * {@linkcode BackendPoolOptions.shared}).
   */
  waitShared(ms: number, signal?: AbortSignal, since?: number): Promise<void>;
  /** {@linkcode SharedBackendCount.changes}, when shared. */
  sharedChanges(): number | undefined;
  /**
   * Counts a request as waiting for a place (for the other isolates'
   * fair shares) until `until` aborts; nothing without
   * {@linkcode BackendPoolOptions.shared}.
   */
  holdWaiting(until: AbortSignal): void;
  /** Gives a connection back: kept idle when `reusable` and there is room, else closed. */
  release(conn: FastCgiConnection, reusable: boolean): void;
  /** Current counters. */
  stats(): BackendPoolStats;
  /** Closes the idle connections. */
  closeIdle(): void;
  /** Closes every connection; later releases close theirs. */
  close(): void;
}

async function _connect(
  address: FastCgiAddress,
  timeoutMs: number,
  deadlines: Deadlines,
): Promise<Deno.Conn> {
  const controller = new AbortController();
  let timedOut = false;
  let timer: Deadline | undefined;
  const connecting = address.transport === "unix"
    ? Deno.connect({ transport: "unix", path: address.path })
    : Deno.connect({
      hostname: address.hostname,
      port: address.port,
      signal: controller.signal,
    });
  const expired = new Promise<never>((_, reject) => {
    timer = deadlines.add(timeoutMs, () => {
      timedOut = true;
      controller.abort();
      reject(
        new FastCgiError(
          504,
          `Timed out connecting to ${
            formatAddress(address)
          } after ${timeoutMs} ms`,
        ),
      );
    });
  });
  try {
    const conn = await Promise.race([connecting, expired]);
    // A request goes out as a few small writes: without TCP_NODELAY, Nagle's
    // algorithm holds the last one until the responder's delayed ACK
    // (~40 ms per request over TCP; unix sockets have no such wait).
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    return conn;
  } catch (error) {
    if (error instanceof FastCgiError) throw error;
    if (timedOut) {
      throw new FastCgiError(
        504,
        `Timed out connecting to ${formatAddress(address)}`,
      );
    }
    throw new FastCgiError(502, `Cannot connect to ${formatAddress(address)}`, {
      cause: error,
    });
  } finally {
    if (timer) deadlines.clear(timer);
    if (timedOut) connecting.then((c) => c.close(), () => {});
  }
}

/**
 * Creates the connection pool of one backend.
 *
 * @example Reusing a connection
 * ```ts ignore
 * import { createBackendPool } from "./pool.ts";
 *
 * const pool = createBackendPool("127.0.0.1:9000", { keepAlive: 2 });
 * const conn = await pool.acquire();
 * // ... run a request with exchange() ...
 * pool.release(conn, true);
 * pool.close();
 * ```
 *
 * @param address `host:port`, `unix:/path` or a parsed address.
 * @param options Keep-alive, limits and timeouts.
 * @returns The pool.
 */
export function createBackendPool(
  address: string | FastCgiAddress,
  options: BackendPoolOptions = {},
): BackendPool {
  const {
    keepAlive = 2,
    maxConnections = 0,
    keepAliveTimeoutMs = 10_000,
    connectTimeoutMs = 5_000,
    onRelease,
    shared,
  } = options;
  // A pool on its own keeps its own (the client's are shared by its pools).
  const deadlines = options.deadlines ?? new Deadlines();
  const waiting = options.waiting ?? (() => 0);
  const parsed = parseAddress(address);
  const label = formatAddress(parsed);
  const idle: FastCgiConnection[] = [];
  // Idle connections counted in `shared` (one kept for a waiter of this
  // pool beyond the shared keepAlive is not).
  const counted = new Set<FastCgiConnection>();
  let watching = false;
  // When each idle connection went idle; one sweep timer closes those idle
  // too long. It stays armed while connections come and go (no timer per
  // request: it finds nothing to do, or re-arms), and never keeps the
  // process alive.
  const idleSince = new Map<FastCgiConnection, number>();
  let sweep: ReturnType<typeof setTimeout> | undefined;
  const live = new Set<FastCgiConnection>();
  let open = 0;
  let opened = 0;
  let receivedClosed = 0;
  let closed = false;

  function clearIdle(conn: FastCgiConnection): void {
    if (counted.delete(conn)) shared?.unidle();
    idleSince.delete(conn);
    const i = idle.indexOf(conn);
    if (i >= 0) idle.splice(i, 1);
  }

  /** Closes the connections idle for `keepAliveTimeoutMs`; re-arms for the next. */
  function sweepIdle(): void {
    sweep = undefined;
    const now = Date.now();
    let next = Infinity;
    for (const [conn, since] of [...idleSince]) {
      if (now - since >= keepAliveTimeoutMs) conn.close();
      else next = Math.min(next, since + keepAliveTimeoutMs);
    }
    if (next !== Infinity) armSweep(next - now);
  }

  function armSweep(ms: number): void {
    sweep = setTimeout(sweepIdle, ms);
    Deno.unrefTimer(sweep);
  }

  function hasCapacity(): boolean {
    if (idle.length > 0 || maxConnections <= 0) return true;
    if (givesWay(true)) return false;
    return (shared ? shared.open() : open) < maxConnections;
  }

  /** See SharedBackendCount.givesWay (only for a capped, shared pool). */
  function givesWay(opening: boolean): boolean {
    return maxConnections > 0 && (shared?.givesWay?.(opening) ?? false);
  }

  /**
   * While this pool holds idle connections, another isolate waiting for
   * a place gets one: the oldest idle connection is closed.
   */
  async function watchDemand(): Promise<void> {
    if (!shared || watching) return;
    watching = true;
    try {
      while (idle.length > 0 && !closed) {
        const wanted = await shared.demanded(keepAliveTimeoutMs);
        if (wanted && waiting() === 0) idle[0]?.close();
      }
    } finally {
      watching = false;
    }
  }

  async function acquire(onPlace?: () => void): Promise<FastCgiConnection> {
    if (closed) throw new FastCgiError(502, `Backend ${label} is closed`);
    const reused = idle.pop();
    if (reused) {
      clearIdle(reused);
      reused.unwatch();
      onPlace?.();
      return reused;
    }
    if (shared && !shared.tryOpen(maxConnections)) {
      throw new NoRoomError(`Backend ${label} has no free connection`);
    }
    onPlace?.();
    open++;
    let conn: FastCgiConnection;
    try {
      conn = new FastCgiConnection(
        await _connect(parsed, connectTimeoutMs, deadlines),
        deadlines,
      );
    } catch (error) {
      open--;
      shared?.closed();
      onRelease?.();
      throw error;
    }
    opened++;
    live.add(conn);
    conn.onClose(() => {
      live.delete(conn);
      receivedClosed += conn.received;
      clearIdle(conn);
      open--;
      shared?.closed();
      onRelease?.();
    });
    if (closed) {
      conn.close();
      throw new FastCgiError(502, `Backend ${label} is closed`);
    }
    return conn;
  }

  function release(conn: FastCgiConnection, reusable: boolean): void {
    if (conn.closed) return;
    const handOff = idle.length < waiting();
    // Without a connection cap, more than `keepAlive` open connections means
    // others of ours may sit in the responder's backlog: keeping this one
    // idle would pin a worker they need, so close it.
    const overloaded = maxConnections <= 0 &&
      (shared ? shared.open() : open) > keepAlive;
    // Capped and shared: another isolate's waiting request gets a place
    // this one holds beyond its share (else it would wait for a lull), or
    // one this isolate would only keep idle.
    const yields = givesWay(false) ||
      (!handOff && maxConnections > 0 && (shared?.othersWait?.() ?? false));
    if (
      !reusable || closed || yields ||
      (!handOff && (idle.length >= keepAlive || overloaded))
    ) {
      conn.close();
      return;
    }
    // Shared: at most keepAlive idle over every isolate (a hand-off to a
    // waiter of this pool is kept, uncounted, as with one isolate).
    if (shared) {
      if (shared.tryIdle(keepAlive)) counted.add(conn);
      else if (!handOff) return conn.close();
    }
    idle.push(conn);
    idleSince.set(conn, Date.now());
    if (sweep === undefined) armSweep(keepAliveTimeoutMs);
    conn.watch();
    onRelease?.();
    void watchDemand();
  }

  function stats(): BackendPoolStats {
    let received = receivedClosed;
    for (const conn of live) received += conn.received;
    return { open, idle: idle.length, opened, received };
  }

  function closeIdle(): void {
    for (const conn of [...idle]) conn.close();
  }

  function close(): void {
    closed = true;
    closeIdle();
    if (sweep !== undefined) clearTimeout(sweep);
    sweep = undefined;
  }

  return {
    address: parsed,
    label,
    hasCapacity,
    acquire,
    waitShared: (ms, signal, since) =>
      shared ? shared.wait(ms, signal, since) : Promise.resolve(),
    sharedChanges: () => shared?.changes?.(),
    holdWaiting: (until) => shared?.hold?.(until),
    release,
    stats,
    closeIdle,
    close,
  };
}
