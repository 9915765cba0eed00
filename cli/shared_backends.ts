/**
 * `--fastcgi-max-connections` and `--fastcgi-keep-alive` across
 * `--workers` isolates: one `SharedArrayBuffer` per FastCGI backend,
 * counted with `Atomics`, seen by each isolate's pool as a
 * `SharedBackendCount` (cgi/fastcgi/pool.ts). The caps mean what they
 * mean with one isolate: at most N connections open to the backend, at
 * most K of them idle, for the whole server.
 *
 * Cells (`Int32Array`): `0` connections open (every isolate), `1` idle,
 * `2` requests waiting for a place, `3` a counter bumped on every close
 * and whenever an isolate leaves the line of waiting ones (waiters sleep on
 * it with `Atomics.waitAsync`), `4` a counter bumped by
 * every wait (isolates holding idle connections sleep on it and close
 * one: an idle connection of one isolate must not starve another), `5`
 * the last ticket of the line of waiting workers; then per worker `i`:
 * open (`6 + i`), idle (`6 + n + i`), waiting (`6 + 2n + i`), given back
 * when the worker dies, and its ticket in the line (`6 + 3n + i`, 0 when
 * none of its requests waits). Internal to the CLI (not exported from
 * `mod.ts`).
 *
 * @module
 */

import type { SharedBackendCount } from "../cgi/fastcgi/pool.ts";

const _OPEN = 0;
const _IDLE = 1;
const _WAITING = 2;
const _CHANGES = 3;
const _DEMANDS = 4;
const _TICKETS = 5;
const _HEAD = 6;
const _PER_WORKER = 4;

/**
 * A shared count of one backend's connections for `count` workers.
 *
 * @example Two workers, one connection
 * ```ts
 * import { createBackendBuffer, sharedBackend } from "./shared_backends.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createBackendBuffer(2);
 * const a = sharedBackend(buffer, 0);
 * const b = sharedBackend(buffer, 1);
 * assert.ok(a.tryOpen(1));
 * assert.ok(!b.tryOpen(1));
 * const woken = b.wait(1_000);
 * a.closed();
 * await woken;
 * assert.ok(b.tryOpen(1));
 * ```
 *
 * @param count How many workers share it.
 * @returns The buffer (to post to each worker).
 */
export function createBackendBuffer(count: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (_HEAD + _PER_WORKER * count));
}

/** Waits until `cells[at]` is no longer `value`, at most `ms`. */
async function _sleep(
  cells: Int32Array,
  at: number,
  value: number,
  ms: number,
): Promise<void> {
  const waited = Atomics.waitAsync(cells, at, value, Math.max(0, ms));
  if (waited.async) await waited.value;
}

/** The cells of `buffer`, and which of them are worker `index`'s own counts. */
function _cells(buffer: SharedArrayBuffer, index: number) {
  const cells = new Int32Array(buffer);
  const workers = (cells.length - _HEAD) / _PER_WORKER;
  const at = (i: number) => ({
    open: _HEAD + i,
    idle: _HEAD + workers + i,
    waiting: _HEAD + 2 * workers + i,
    line: _HEAD + 3 * workers + i,
  });
  return { cells, own: at(index), at, workers };
}

/** Wakes every waiter: a place may have come free (cell 3). */
function _changed(cells: Int32Array): void {
  Atomics.add(cells, _CHANGES, 1);
  Atomics.notify(cells, _CHANGES);
}

/** A new ticket of the line (1…2^30, then round again). */
function _ticket(cells: Int32Array): number {
  return (Atomics.add(cells, _TICKETS, 1) & 0x3fffffff) + 1;
}

/** Ticket `a` came before `b` (compared as sequence numbers: they wrap). */
function _before(a: number, b: number): boolean {
  return ((a - b) << 2) < 0;
}

/**
 * Worker `index`'s view of a backend's shared count, for
 * `FastCgiClientOptions.shared`.
 *
 * @param buffer From {@linkcode createBackendBuffer}.
 * @param index The worker's index.
 * @returns The view.
 */
export function sharedBackend(
  buffer: SharedArrayBuffer,
  index: number,
): SharedBackendCount {
  const { cells, own, at, workers } = _cells(buffer, index);
  // This isolate's requests counted by hold(): its place in the line is
  // taken by the first and given up with the last.
  let holds = 0;
  const requeue = (): void => {
    Atomics.store(cells, own.line, holds > 0 ? _ticket(cells) : 0);
  };
  const othersWait = (): boolean =>
    Atomics.load(cells, _WAITING) - Atomics.load(cells, own.waiting) > 0;
  /** Takes a place of `total` below `limit`. */
  const take = (total: number, mine: number, limit: number): boolean => {
    if (Atomics.add(cells, total, 1) >= limit) {
      Atomics.sub(cells, total, 1);
      return false;
    }
    Atomics.add(cells, mine, 1);
    return true;
  };
  return {
    open: () => Atomics.load(cells, _OPEN),
    // 0 open: no limit (counted only); 0 idle: none.
    tryOpen: (limit) => take(_OPEN, own.open, limit > 0 ? limit : Infinity),
    closed() {
      Atomics.sub(cells, own.open, 1);
      Atomics.sub(cells, _OPEN, 1);
      _changed(cells);
    },
    tryIdle: (limit) => take(_IDLE, own.idle, limit),
    unidle() {
      Atomics.sub(cells, own.idle, 1);
      Atomics.sub(cells, _IDLE, 1);
    },
    changes: () => Atomics.load(cells, _CHANGES),
    othersWait,
    async wait(ms, signal, since) {
      if (signal?.aborted) return;
      const changes = since ?? Atomics.load(cells, _CHANGES);
      Atomics.add(cells, own.waiting, 1);
      Atomics.add(cells, _WAITING, 1);
      Atomics.add(cells, _DEMANDS, 1);
      Atomics.notify(cells, _DEMANDS);
      // Uncounted once, at the wake-up or the abort (the sleep itself
      // cannot be cancelled and runs out on its own).
      let waiting = true;
      let stop = (): void => {};
      const aborted = new Promise<void>((resolve) => {
        stop = () => {
          if (!waiting) return;
          waiting = false;
          signal?.removeEventListener("abort", stop);
          Atomics.sub(cells, own.waiting, 1);
          Atomics.sub(cells, _WAITING, 1);
          resolve();
        };
        signal?.addEventListener("abort", stop);
      });
      try {
        await Promise.race([_sleep(cells, _CHANGES, changes, ms), aborted]);
      } finally {
        stop();
      }
    },
    async demanded(ms) {
      await _sleep(cells, _DEMANDS, Atomics.load(cells, _DEMANDS), ms);
      return Atomics.load(cells, _WAITING) > 0;
    },
    hold(until) {
      if (until.aborted) return;
      Atomics.add(cells, own.waiting, 1);
      Atomics.add(cells, _WAITING, 1);
      if (holds++ === 0) requeue();
      until.addEventListener("abort", () => {
        Atomics.sub(cells, own.waiting, 1);
        Atomics.sub(cells, _WAITING, 1);
        holds--;
        requeue(); // one of ours is done waiting: the others go to the back
        // Out of the line: those who deferred to it look again.
        if (holds === 0) _changed(cells);
      }, { once: true });
    },
    givesWay(opening) {
      if (!othersWait()) return false;
      const mine = Atomics.load(cells, own.open);
      const myTurn = Atomics.load(cells, own.line);
      for (let i = 0; i < workers; i++) {
        if (i === index) continue;
        const them = at(i);
        if (Atomics.load(cells, them.waiting) <= 0) continue;
        const theirs = Atomics.load(cells, them.open);
        if (opening) {
          // The fewest places first; among equals, the longest in line.
          const turn = Atomics.load(cells, them.line);
          if (
            theirs < mine ||
            (theirs === mine && turn !== 0 &&
              (myTurn === 0 || _before(turn, myTurn)))
          ) return true;
        } else if (theirs + 1 < mine || (theirs === 0 && mine > 0)) {
          requeue(); // it gave way: its own requests wait behind theirs
          return true;
        }
      }
      return false;
    },
  };
}

/**
 * Gives back what worker `index` still counted (call once its isolate is
 * gone: its connections closed with it).
 *
 * @example A dead worker's connection
 * ```ts
 * import { createBackendBuffer, releaseWorkerBackend, sharedBackend } from "./shared_backends.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = createBackendBuffer(2);
 * assert.ok(sharedBackend(buffer, 0).tryOpen(1));
 * assert.equal(releaseWorkerBackend(buffer, 0), 1);
 * assert.ok(sharedBackend(buffer, 1).tryOpen(1));
 * ```
 *
 * @param buffer From {@linkcode createBackendBuffer}.
 * @param index The worker's index.
 * @returns How many connections it had open.
 */
export function releaseWorkerBackend(
  buffer: SharedArrayBuffer,
  index: number,
): number {
  const { cells, own } = _cells(buffer, index);
  Atomics.store(cells, own.line, 0);
  Atomics.sub(cells, _IDLE, Atomics.exchange(cells, own.idle, 0));
  const waiting = Atomics.exchange(cells, own.waiting, 0);
  Atomics.sub(cells, _WAITING, waiting);
  const open = Atomics.exchange(cells, own.open, 0);
  Atomics.sub(cells, _OPEN, open);
  // Its places are free, and those who deferred to it look again.
  if (open > 0 || waiting > 0) _changed(cells);
  return open;
}
