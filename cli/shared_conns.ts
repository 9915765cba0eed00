/**
 * The connection guard's caps across `--workers` isolates
 * (`--max-connections`, `--max-connections-per-client`): one
 * `SharedArrayBuffer` for the server, counted with `Atomics`.
 *
 * Layout (`Int32Array` cells): `0` the connections open in every isolate,
 * `1 + i` those of worker `i`; then {@linkcode CLIENT_BUCKETS} per-client
 * counters, then the same counters per worker (so that what a worker that
 * died held can be given back, as cli/shared_slots.ts does for CGI).
 *
 * A client address is counted in two buckets chosen by two hashes of it
 * (a count-min sketch): each bucket holds at least the connections of
 * every client that maps to it, so the smaller of the two is at least
 * this client's own count, and exactly it unless another open client
 * shares both buckets. A connection is refused when that smaller count has
 * reached the cap: a collision can only make a refusal come earlier (two
 * clients sharing both buckets share the cap), never later. With 16 384
 * buckets and 1 000 clients open at once, a given client shares both
 * buckets with another about 0.4 % of the time.
 *
 * Counts are taken by adding first and looking at the value before
 * (`Atomics.add`), then undone when over a cap: two isolates racing for
 * the last place may both be refused (earlier), never both admitted.
 * Internal to the CLI (not exported from `mod.ts`).
 *
 * @module
 */

/** Per-client counters (a power of two). */
export const CLIENT_BUCKETS = 16_384;

/**
 * A shared count for `count` workers.
 *
 * @example Two workers, one cap
 * ```ts
 * import { createConnBuffer, sharedConns } from "./shared_conns.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createConnBuffer(2);
 * const a = sharedConns(buffer, 0, { maxConnections: 1, maxConnectionsPerClient: 0 });
 * const b = sharedConns(buffer, 1, { maxConnections: 1, maxConnectionsPerClient: 0 });
 * assert.ok(a.tryOpen("10.0.0.1"));
 * assert.ok(!b.tryOpen("10.0.0.2"));
 * a.close("10.0.0.1");
 * assert.ok(b.tryOpen("10.0.0.2"));
 * ```
 *
 * @param count How many workers share it.
 * @returns The buffer (to post to each worker).
 */
export function createConnBuffer(count: number): SharedArrayBuffer {
  return new SharedArrayBuffer(
    4 * (1 + count + CLIENT_BUCKETS * (1 + count)),
  );
}

/** One worker's view of the shared connection count (see {@linkcode sharedConns}). */
export interface SharedConns {
  /**
   * Counts a connection from `client` when both caps allow it; `false`
   * (nothing counted) when one is reached.
   */
  tryOpen(client: string): boolean;
  /** Uncounts a connection {@linkcode SharedConns.tryOpen} counted. */
  close(client: string): void;
  /** Connections open in every isolate. */
  open(): number;
}

/** FNV-1a of `text` (UTF-16 code units), from `seed`. */
function _fnv(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final mix: FNV's low bits are weak for short keys.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** The two buckets of `client`. */
function _buckets(client: string): [number, number] {
  const mask = CLIENT_BUCKETS - 1;
  const first = _fnv(client, 0x811c9dc5) & mask;
  let second = _fnv(client, 0x9e3779b9) & mask;
  if (second === first) second = (first + 1) & mask;
  return [first, second];
}

/**
 * Worker `index`'s view of the shared count, for the guard of that
 * isolate (`ConnectionGuardOptions.shared`).
 *
 * @param buffer From {@linkcode createConnBuffer}.
 * @param index The worker's index.
 * @param caps The caps (`0` per client: no per-client count is kept).
 * @returns The view.
 */
export function sharedConns(
  buffer: SharedArrayBuffer,
  index: number,
  caps: { maxConnections: number; maxConnectionsPerClient: number },
): SharedConns {
  const cells = new Int32Array(buffer);
  const workers = cells.length / (1 + CLIENT_BUCKETS) - 1;
  const clients = 1 + workers;
  const own = clients + CLIENT_BUCKETS * (1 + index);
  const { maxConnections, maxConnectionsPerClient: perClient } = caps;
  const give = (cell: number) => Atomics.sub(cells, cell, 1);
  return {
    tryOpen(client) {
      if (Atomics.add(cells, 0, 1) >= maxConnections) {
        give(0);
        return false;
      }
      if (perClient > 0) {
        const [a, b] = _buckets(client);
        const before = Math.min(
          Atomics.add(cells, clients + a, 1),
          Atomics.add(cells, clients + b, 1),
        );
        // Two workers may add between each other's two adds: once both of
        // ours are in, the counts seen now decide (both may then refuse —
        // earlier, never later).
        const after = Math.min(
          Atomics.load(cells, clients + a),
          Atomics.load(cells, clients + b),
        );
        if (before >= perClient || after > perClient) {
          give(clients + a);
          give(clients + b);
          give(0);
          return false;
        }
        Atomics.add(cells, own + a, 1);
        Atomics.add(cells, own + b, 1);
      }
      Atomics.add(cells, 1 + index, 1);
      return true;
    },
    close(client) {
      if (perClient > 0) {
        for (const bucket of _buckets(client)) {
          give(own + bucket);
          give(clients + bucket);
        }
      }
      give(1 + index);
      give(0);
    },
    open: () => Atomics.load(cells, 0),
  };
}

/**
 * Gives back the connections worker `index` still counted (call once its
 * isolate is gone: its connections closed with it).
 *
 * @example A dead worker's connections
 * ```ts
 * import { createConnBuffer, releaseWorkerConns, sharedConns } from "./shared_conns.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createConnBuffer(1);
 * const view = sharedConns(buffer, 0, { maxConnections: 10, maxConnectionsPerClient: 1 });
 * assert.ok(view.tryOpen("::1"));
 * assert.ok(!view.tryOpen("::1"));
 * assert.equal(releaseWorkerConns(buffer, 0), 1);
 * assert.equal(view.open(), 0);
 * assert.ok(view.tryOpen("::1"));
 * ```
 *
 * @param buffer From {@linkcode createConnBuffer}.
 * @param index The worker's index.
 * @returns How many connections it held.
 */
export function releaseWorkerConns(
  buffer: SharedArrayBuffer,
  index: number,
): number {
  const cells = new Int32Array(buffer);
  const workers = cells.length / (1 + CLIENT_BUCKETS) - 1;
  const clients = 1 + workers;
  const own = clients + CLIENT_BUCKETS * (1 + index);
  for (let bucket = 0; bucket < CLIENT_BUCKETS; bucket++) {
    const held = Atomics.exchange(cells, own + bucket, 0);
    if (held !== 0) Atomics.sub(cells, clients + bucket, held);
  }
  const held = Atomics.exchange(cells, 1 + index, 0);
  Atomics.sub(cells, 0, held);
  return held;
}
